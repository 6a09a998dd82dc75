package crus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

// TestReservationsRefuseOverlappingSessions creates a session, then tries
// sessions that share a node or a group with it: each is refused at
// pre-flight with an error naming the holder and what it shares, and
// nothing is touched. Once the first session ends, they are accepted.
func TestReservationsRefuseOverlappingSessions(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 8}, 2)
	xs := e.w.XNames()
	e.w.AddGroup(fake.StartingLabel, xs[:4]...)
	e.w.AddGroup("second-starting", xs[3:6]...)
	e.w.AddGroup("third-starting", xs[6:]...)
	e.w.AddGroup("third-upgrading")
	e.w.AddGroup("third-failed")
	e.w.AddTemplate("third-template", "third-upgrading")
	first := e.create()

	second := e.spec
	second.StartingLabel = "second-starting" // shares xs[3]
	second.UpgradingLabel, second.FailedLabel = "third-upgrading", "third-failed"
	second.TemplateID = "third-template"
	third := e.spec
	third.StartingLabel = "third-starting" // disjoint nodes, same upgrading and failed groups

	for _, tc := range []struct {
		name string
		spec crus.Spec
		has  []string
	}{
		{"shared node", second, []string{"session s1 holds 1 of its nodes (" + xs[3] + ")"}},
		{"shared groups", third, []string{"session s1 holds groups " + fake.FailedLabel + ", " + fake.UpgradingLabel}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ex.Create(context.Background(), tc.spec)
			require.Error(t, err)
			assert.ErrorIs(t, err, crus.ErrPreflight)
			assert.ErrorIs(t, err, crus.ErrReserved)
			var re *crus.ReservedError
			require.True(t, errors.As(err, &re))
			require.Len(t, re.Conflicts, 1)
			assert.Equal(t, first.UpgradeID, re.Conflicts[0].Session)
			for _, h := range tc.has {
				assert.Contains(t, err.Error(), h)
			}
			assert.Empty(t, e.w.Touched(), "a refused session touches nothing")
			list, _ := e.ex.List(context.Background())
			assert.Len(t, list, 1, "nothing recorded")
		})
	}

	held, err := e.store.Reservations(context.Background())
	require.NoError(t, err)
	require.Len(t, held, 1)
	assert.Equal(t, xs[:4], held[0].Nodes)

	// The first session ends (here: deleted before it ran); its
	// reservation goes with it.
	_, err = e.ex.Delete(context.Background(), first.UpgradeID)
	require.NoError(t, err)
	held, err = e.store.Reservations(context.Background())
	require.NoError(t, err)
	assert.Empty(t, held)
	s2, err := e.ex.Create(context.Background(), second)
	require.NoError(t, err)
	_, err = e.ex.Create(context.Background(), third)
	require.NoError(t, err, "disjoint from the second session in nodes and groups")

	final, err := e.ex.Run(context.Background(), s2.UpgradeID)
	require.NoError(t, err)
	assert.Equal(t, 3, final.Counts().Upgraded)
}

// TestReservationsAtomic checks CreateReserved on its own: of two
// overlapping sessions, the second is refused even without the executor's
// pre-flight check.
func TestReservationsAtomic(t *testing.T) {
	ctx := context.Background()
	st := crus.NewMemoryStore()
	mk := func(id string, nodes ...string) *crus.Session {
		s := &crus.Session{UpgradeID: id, Spec: crus.Spec{UpgradingLabel: "u-" + id, FailedLabel: "f-" + id}}
		for _, x := range nodes {
			s.Progress.Nodes = append(s.Progress.Nodes, crus.NodeRecord{XName: x})
		}
		return s
	}
	require.NoError(t, st.CreateReserved(ctx, mk("a", "x1", "x2")))
	err := st.CreateReserved(ctx, mk("b", "x2", "x3"))
	assert.ErrorIs(t, err, crus.ErrReserved)
	assert.EqualError(t, err, "crus: held by another session in progress: session a holds 1 of its nodes (x2)")
	_, err = st.Get(ctx, "b")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	assert.ErrorIs(t, st.CreateReserved(ctx, mk("a", "x9")), crus.ErrSessionExists)

	a, err := st.Get(ctx, "a")
	require.NoError(t, err)
	a.Completed = true
	require.NoError(t, st.Update(ctx, a))
	require.NoError(t, st.CreateReserved(ctx, mk("b", "x2", "x3")), "a completed session holds nothing")
}
