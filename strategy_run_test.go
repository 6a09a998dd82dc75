package crus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

// rollouts are the option sets the run tests go through.
var rollouts = map[string]crus.Rollout{
	"classic-job_end":   {Order: crus.OrderJobEnd},
	"classic-canary":    {Canary: []int{1, 2}},
	"classic-timeout":   {DrainTimeout: crus.Duration(30 * time.Minute)},
	"rolling":           {Strategy: crus.StrategyRolling},
	"rolling-idle":      {Strategy: crus.StrategyRolling, Order: crus.OrderIdleFirst},
	"rolling-job_end":   {Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd, BootBatchSize: 2},
	"rolling-timeout":   {Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd, DrainTimeout: crus.Duration(20 * time.Minute)},
	"rolling-fail-slow": {Strategy: crus.StrategyRolling, DrainTimeout: crus.Duration(20 * time.Minute), DrainTimeoutAction: crus.DrainFail},
	"rolling-canary":    {Strategy: crus.StrategyRolling, Canary: []int{1, 3}, Lookahead: 5},
}

func TestRunEveryRollout(t *testing.T) {
	for name, r := range rollouts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 30, Busy: 0.8, MaxJob: 3 * time.Hour, Options: fake.Options{Seed: 3}}, 4)
			e.w.KeepBusy(0.5, 3*time.Hour, 10*time.Minute, e.w.Now().Add(24*time.Hour))
			e.spec.Rollout = r
			s := e.run()
			c := s.Counts()
			assert.Equal(t, crus.ResultComplete, s.Progress.Result)
			assert.Equal(t, 30, c.Upgraded+c.Failed, "%+v", c)
			if r.DrainTimeoutAction != crus.DrainFail {
				assert.Equal(t, 30, c.Upgraded, "%+v", c)
			}
			for _, m := range s.Messages {
				assert.False(t, strings.Contains(m, "of 0"), m)
			}
		})
	}
}

func TestRunRollingKeepsWindowFull(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 40, Busy: 0.9, MaxJob: 4 * time.Hour}, 5)
	e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd}
	s := e.run()
	assert.Equal(t, 40, s.Counts().Upgraded)
	assert.Equal(t, 5, e.w.MaxOut())
	require.Greater(t, s.Progress.Boots, 8, "nodes booted as they drain, in many small boot sessions")

	c := newEnv(t, fake.ClusterOptions{Nodes: 40, Busy: 0.9, MaxJob: 4 * time.Hour}, 5)
	cs := c.run()
	t.Logf("rolling %s, classic %s", s.Progress.EndedAt.Sub(s.Progress.StartedAt), cs.Progress.EndedAt.Sub(cs.Progress.StartedAt))
	assert.Less(t, s.Progress.EndedAt.Sub(s.Progress.StartedAt), cs.Progress.EndedAt.Sub(cs.Progress.StartedAt))
	_ = context.Background()
}
