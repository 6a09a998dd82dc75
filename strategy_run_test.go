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
}

func TestPauseResumeApprove(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 12, Busy: 0.5, MaxJob: 2 * time.Hour}, 4)
	e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyRolling, Canary: []int{1}, CanaryApproval: true}
	s := e.create()
	ctx := context.Background()
	id := s.UpgradeID

	p, err := e.ex.Pause(ctx, id)
	require.NoError(t, err)
	assert.True(t, p.Progress.Paused)
	again, err := e.ex.Pause(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, p.Revision, again.Revision, "pausing a paused session changes nothing")

	// Resume once the paused session has waited a while, approve once the
	// canary is held.
	held := map[crus.Stage]bool{}
	e.onEvent = func(ev crus.Event) {
		if ev.Kind != crus.EventStage || held[ev.Stage] {
			return
		}
		held[ev.Stage] = true
		switch ev.Stage {
		case crus.StagePaused:
			e.w.Schedule(e.w.Now().Add(time.Hour), func() {
				_, err := e.ex.Resume(ctx, id)
				require.NoError(t, err)
			})
		case crus.StageApproval:
			e.w.Schedule(e.w.Now().Add(time.Hour), func() {
				_, err := e.ex.Approve(ctx, id)
				require.NoError(t, err)
			})
		}
	}
	final, err := e.ex.Run(ctx, id)
	require.NoError(t, err)
	e.check(final)
	assert.Equal(t, crus.ResultComplete, final.Progress.Result)
	assert.Equal(t, 12, final.Counts().Upgraded)
	assert.True(t, held[crus.StagePaused] && held[crus.StageApproval], "%v", held)
	var canary, rest []time.Time
	for _, n := range final.Progress.Nodes {
		if n.Step == 1 {
			canary = append(canary, n.DrainRequested)
		} else {
			rest = append(rest, n.DrainRequested)
		}
	}
	require.Len(t, canary, 1)
	for _, d := range rest {
		assert.True(t, d.After(canary[0].Add(time.Hour)), "no node taken before the canary was approved")
	}
	assert.True(t, canary[0].After(final.Progress.StartedAt.Add(59*time.Minute)), "nothing taken while paused")
	assert.Contains(t, final.Messages, "Canary approved: the session goes on at full step size")

	_, err = e.ex.Pause(ctx, id)
	assert.ErrorIs(t, err, crus.ErrSessionDone)
	_, err = e.ex.Approve(ctx, "nope")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
}

func TestFailureBudgetAbortsTheSession(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 20, Busy: 0.3, MaxJob: time.Hour}, 2)
	xs := e.w.XNames()
	for _, x := range xs[:4] {
		e.w.SetFaults(x, fake.NodeFaults{BootFails: true})
	}
	e.spec.Rollout = crus.Rollout{MaxFailures: 2}
	s := e.run()
	assert.Equal(t, crus.ResultAborted, s.Progress.Result)
	assert.Equal(t, crus.StateReady, s.State)
	c := s.Counts()
	// Step 1: two failures, the budget; step 2: two more, over it. The
	// other 16 nodes are left in service.
	assert.Equal(t, 4, c.Failed)
	assert.Equal(t, 16, c.Untouched)
	assert.Equal(t, 20, c.Upgraded+c.Failed+c.Untouched)
	assert.Contains(t, s.Messages[len(s.Messages)-1], "Upgrade session aborted")
}
