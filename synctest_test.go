package crus_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

// TestRealClockWaitsAndWakes runs the executor on the real clock (inside a
// synctest bubble, so its hour-long polls take no time) and checks that a
// Delete wakes a Run that is waiting, instead of leaving it asleep until
// its next poll.
func TestRealClockWaitsAndWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
		for _, x := range w.XNames() {
			require.NoError(t, w.StartJob(x, 1000*time.Hour, 1000*time.Hour)) // the world never moves
		}
		ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), crus.Config{PollInterval: time.Hour})
		require.NoError(t, err)
		s, err := ex.Create(t.Context(), crus.Spec{
			StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
			StepSize: 2, TemplateID: fake.Template, WorkloadManagerType: "slurm",
		})
		require.NoError(t, err)

		done := make(chan *crus.Session)
		go func() {
			final, err := ex.Run(context.Background(), s.UpgradeID)
			assert.NoError(t, err)
			done <- final
		}()
		start := time.Now()
		synctest.Wait() // Run is asleep, waiting for the busy nodes to drain
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		got, err := ex.Get(context.Background(), s.UpgradeID)
		require.NoError(t, err)
		assert.Equal(t, crus.StageQuiescing, got.Progress.Stage)
		// One read at creation, two as the step starts (before and after
		// the drain), then one per hourly poll.
		assert.Equal(t, 6, w.Calls()["wlm.Nodes"])

		_, err = ex.Delete(context.Background(), s.UpgradeID)
		require.NoError(t, err)
		final := <-done
		assert.Less(t, time.Since(start), 3*time.Hour+time.Minute, "Delete woke the sleeping Run")
		assert.Equal(t, crus.ResultCancelled, final.Progress.Result)
		assert.Equal(t, 4, final.Counts().Untouched)
	})
}

// TestRetryBackoffOnRealClock checks failing calls are retried with
// growing waits on the real clock, and give up after RetryTimeout.
func TestRetryBackoffOnRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
		w.FailNext("bos.Template", 100, fake.ErrInjected) // read by pre-flight
		ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), crus.Config{
			RetryInitial: time.Second, RetryMax: 8 * time.Second, RetryTimeout: time.Minute,
		})
		require.NoError(t, err)
		start := time.Now()
		_, err = ex.Create(context.Background(), crus.Spec{
			StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
			StepSize: 1, TemplateID: fake.Template, WorkloadManagerType: "slurm",
		})
		assert.ErrorIs(t, err, fake.ErrInjected)
		elapsed := time.Since(start)
		// It stops retrying when the next wait would pass RetryTimeout.
		assert.GreaterOrEqual(t, elapsed, time.Minute-8*time.Second)
		assert.LessOrEqual(t, elapsed, time.Minute)
		// Waits of 1, 1.5, 2.25, ... capped at 8 s: about ten attempts.
		calls := w.Calls()["bos.Template"]
		assert.GreaterOrEqual(t, calls, 9)
		assert.LessOrEqual(t, calls, 12)
		assert.Empty(t, w.Touched())
	})
}
