package crus_test

import (
	"context"
	"errors"
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

// TestExecutorView: Executor.View shows the stored record itself when the
// store can (a Viewer: no copy of 160,000 node records for a request
// that reads a few fields of each), a copy otherwise, and says when the
// session is gone.
func TestExecutorView(t *testing.T) {
	ctx := context.Background()
	st := scaletest.NewStore()
	s := scaletest.Session("v", 100, 10)
	require.NoError(t, st.Create(ctx, s))
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
	for _, store := range []crus.Store{st, getOnly{st}} {
		ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: store})
		require.NoError(t, err)
		st.Reset()
		var nodes int
		require.NoError(t, ex.View(ctx, "v", func(s *crus.Session) error { nodes = len(s.Progress.Nodes); return nil }))
		assert.Equal(t, 100, nodes)
		if _, ok := store.(crus.Viewer); ok {
			assert.Equal(t, scaletest.Counts{Views: 1}, st.Counts(), "shown, not copied")
		} else {
			assert.Equal(t, scaletest.Counts{Gets: 1, Nodes: 100}, st.Counts(), "a copy")
		}
		assert.ErrorIs(t, ex.View(ctx, "none", func(*crus.Session) error { return nil }), crus.ErrSessionNotFound)
		boom := errors.New("boom")
		assert.ErrorIs(t, ex.View(ctx, "v", func(*crus.Session) error { return boom }), boom)
	}
}

// TestExecutorViewAll: Executor.ViewAll shows every record in List's
// order, in place when the store can, copies otherwise, and stops at the
// first error.
func TestExecutorViewAll(t *testing.T) {
	ctx := context.Background()
	st := scaletest.NewStore()
	for _, id := range []string{"c", "a", "b"} {
		require.NoError(t, st.Create(ctx, scaletest.Session(id, 10, 5)))
	}
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
	for _, store := range []crus.Store{st, getOnly{st}} {
		ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: store})
		require.NoError(t, err)
		st.Reset()
		var ids []string
		require.NoError(t, ex.ViewAll(ctx, func(s *crus.Session) error { ids = append(ids, s.UpgradeID); return nil }))
		assert.Equal(t, []string{"a", "b", "c"}, ids, "List's order")
		if _, ok := store.(crus.Viewer); ok {
			assert.Equal(t, scaletest.Counts{ViewAlls: 1}, st.Counts(), "shown, not copied")
		} else {
			assert.Equal(t, scaletest.Counts{Lists: 1, Nodes: 30}, st.Counts(), "copies")
		}
		boom := errors.New("boom")
		calls := 0
		assert.ErrorIs(t, ex.ViewAll(ctx, func(*crus.Session) error { calls++; return boom }), boom)
		assert.Equal(t, 1, calls, "stops at the first error")
	}
}
