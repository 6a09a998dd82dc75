package crus_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/scaletest"
)

// getOnly is a Store that cannot tell revisions on their own.
type getOnly struct{ crus.Store }

// TestExecutorRevision: Executor.Revision reads only the revision from a
// store that can tell it (a surface polling a 160,000-node session must
// not copy its records to learn that it did not move), the whole record
// from one that cannot, and says when the session is gone.
func TestExecutorRevision(t *testing.T) {
	ctx := context.Background()
	spec := crus.Spec{StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 2, TemplateID: fake.Template, WorkloadManagerType: "slurm"}
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 8})
	st := scaletest.NewStore()
	for _, store := range []crus.Store{st, getOnly{st}} {
		ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: store})
		require.NoError(t, err)
		s, err := ex.Create(ctx, spec)
		require.NoError(t, err)
		st.Reset()
		rev, err := ex.Revision(ctx, s.UpgradeID)
		require.NoError(t, err)
		assert.Equal(t, s.Revision, rev)
		if _, ok := store.(crus.RevisionReader); ok {
			assert.Equal(t, scaletest.Counts{Revisions: 1}, st.Counts(), "only the revision read")
		} else {
			assert.Equal(t, 1, st.Counts().Gets, "the record read")
		}
		_, err = ex.Revision(ctx, "no-such-session")
		assert.ErrorIs(t, err, crus.ErrSessionNotFound)
		_, err = ex.Delete(ctx, s.UpgradeID)
		require.NoError(t, err)
	}
}
