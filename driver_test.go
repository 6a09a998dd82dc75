package crus_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/filestore"
)

func TestDriverConfig(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 1}, 1)
	_, err := crus.NewDriver(nil, nil, crus.DriverConfig{})
	assert.Error(t, err)
	d, err := crus.NewDriver(e.ex, nil, crus.DriverConfig{})
	require.NoError(t, err)
	assert.NotEmpty(t, d.Name())
	for _, bad := range []crus.DriverConfig{{TTL: -time.Second}, {Rescan: -1}} {
		_, err := crus.NewDriver(e.ex, nil, bad)
		assert.Error(t, err, "%+v", bad)
	}
}

// TestDriverRunsEverySessionOfAStore: without leases, a driver runs every
// session in progress of its store — those a previous process left, and a
// new one as soon as it is kicked — and stops them when its context ends.
func TestDriverRunsEverySessionOfAStore(t *testing.T) {
	dir := t.TempDir()
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 12, Busy: 0.5, MaxJob: time.Hour})
	w.AddGroup("upg-2")
	w.AddGroup("failed-2")
	w.AddGroup("second", w.XNames()[6:]...)
	w.AddGroup(fake.StartingLabel, w.XNames()[:6]...)
	w.AddTemplate("t2", "upg-2")
	st, err := filestore.Open(dir, filestore.Options{Create: true})
	require.NoError(t, err)
	defer st.Close()
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), crus.Config{Store: st, Clock: w})
	require.NoError(t, err)
	spec := crus.Spec{StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 2, TemplateID: fake.Template, WorkloadManagerType: "slurm"}
	first, err := ex.Create(context.Background(), spec) // left by an earlier process
	require.NoError(t, err)

	d, err := crus.NewDriver(ex, nil, crus.DriverConfig{Rescan: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	spec.StartingLabel, spec.UpgradingLabel, spec.FailedLabel, spec.TemplateID = "second", "upg-2", "failed-2", "t2"
	second, err := ex.Create(context.Background(), spec)
	require.NoError(t, err)
	d.Kick()
	for _, id := range []string{first.UpgradeID, second.UpgradeID} {
		var s *crus.Session
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			s, err = ex.Get(context.Background(), id)
			require.NoError(t, err)
			if s.Completed {
				break
			}
			require.True(t, time.Now().Before(deadline), "session %s not driven to completion", id)
		}
		assert.Equal(t, 6, s.Counts().Upgraded)
	}
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Empty(t, d.Driving())
}
