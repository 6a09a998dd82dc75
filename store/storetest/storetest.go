package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
)

// NewStore returns a new, empty store for one test. It closes the store
// with t.Cleanup if it needs closing.
type NewStore func(t *testing.T) crus.Store

// Session returns a realistic session record with n nodes, in progress:
// the first third upgraded, the next few in flight, the rest pending.
// Useful for tests and benchmarks of stores.
func Session(id string, n int) *crus.Session {
	t0 := time.Date(2026, 1, 5, 8, 0, 0, 123456789, time.UTC)
	s := &crus.Session{
		UpgradeID: id, Kind: crus.Kind, APIVersion: crus.APIVersion, State: crus.StateUpdating,
		Messages: []string{fmt.Sprintf("Session created: %d nodes to upgrade in %d steps of at most 50", n, (n+49)/50)},
		Spec: crus.Spec{
			StartingLabel: "starting-" + id, UpgradingLabel: "upgrading-" + id, FailedLabel: "failed-" + id,
			StepSize: 50, TemplateID: "compute-template", WorkloadManagerType: "slurm",
		}.WithDefaults(),
		Progress: crus.Progress{
			Stage: crus.StageQuiescing, StageSince: t0.Add(time.Hour), Step: n/150 + 1, Steps: (n + 49) / 50,
			CreatedAt: t0, StartedAt: t0.Add(time.Second), Boots: n / 150,
		},
	}
	s.Progress.Nodes = make([]crus.NodeRecord, n)
	for i := range n {
		r := crus.NodeRecord{
			XName: fmt.Sprintf("x%dc%ds%db%dn%d", 1000+i/256, i%256/32, i%32/4, i%4/2, i%2),
			Name:  fmt.Sprintf("nid%06d", i+1), Step: i/50 + 1, Phase: crus.PhasePending, Since: t0,
		}
		switch {
		case i < n/3:
			r.Phase, r.Outcome, r.Reason = crus.PhaseDone, crus.OutcomeUpgraded, "rebooted and back in service"
			r.Boot = fmt.Sprintf("crus-%s-%d", id, i/50+1)
			r.DrainRequested, r.Drained = t0.Add(time.Minute), t0.Add(20*time.Minute)
			r.RebootRequested, r.Booted = t0.Add(21*time.Minute), t0.Add(31*time.Minute)
			r.Returned, r.Finished = t0.Add(32*time.Minute), t0.Add(33*time.Minute)
		case i < n/3+5:
			r.Phase, r.Grouped, r.DrainRequested = crus.PhaseQuiescing, true, t0.Add(time.Hour)
		}
		s.Progress.Nodes[i] = r
	}
	// Sorted by xname, as the executor keeps them.
	sortNodes(s.Progress.Nodes)
	return s
}

func sortNodes(ns []crus.NodeRecord) {
	for i := 1; i < len(ns); i++ { // insertion sort: the input is nearly sorted
		for j := i; j > 0 && ns[j].XName < ns[j-1].XName; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
}

// equal compares sessions as stored: nil and empty lists are the same.
func equal(t *testing.T, want, got *crus.Session, msg string) {
	t.Helper()
	// The same JSON is the same record (and much faster to tell for 10,000
	// nodes than a deep comparison); otherwise compare field by field,
	// where equal instants in other zones and nil or empty lists match.
	if want.Revision == got.Revision {
		jw, errw := json.Marshal(want)
		jg, errg := json.Marshal(got)
		if errw == nil && errg == nil && bytes.Equal(jw, jg) {
			return
		}
	}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("%s: stored session differs (-want +got):\n%s", msg, d)
	}
}

// RunConformanceTests runs the suite, one subtest per property, each on a
// store from newStore.
func RunConformanceTests(t *testing.T, newStore NewStore) {
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, newStore(t)) })
	t.Run("CreateExisting", func(t *testing.T) { testCreateExisting(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("Copies", func(t *testing.T) { testCopies(t, newStore(t)) })
	t.Run("UpdateCompareAndSwap", func(t *testing.T) { testUpdateCAS(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, newStore(t)) })
	t.Run("LargeSession", func(t *testing.T) { testLargeSession(t, newStore(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, newStore(t)) })
	optional(t, newStore, "RevisionLister", testRevisionLister)
	optional(t, newStore, "RevisionReader", testRevisionReader)
	optional(t, newStore, "Reserver", testReserver)
	optional(t, newStore, "ReserverNames", testReserverNames)
	optional(t, newStore, "Viewer", testViewer)
	optional(t, newStore, "UpdateNodes", testUpdateNodes)
	optional(t, newStore, "UpdateNodesCompareAndSwap", testUpdateNodesCAS)
	optional(t, newStore, "UpdateNodesLarge", testUpdateNodesLarge)
	optional(t, newStore, "ReserverConcurrent", testReserverConcurrent)
}

// optional runs f as the subtest name on a store from newStore that
// implements the optional interface T, and skips it, saying so, on one
// that does not.
func optional[T any](t *testing.T, newStore NewStore, name string, f func(*testing.T, crus.Store, T)) {
	t.Run(name, func(t *testing.T) {
		st := newStore(t)
		x, ok := st.(T)
		if !ok {
			t.Skipf("the store does not implement %v", reflect.TypeFor[T]())
		}
		f(t, st, x)
	})
}

func testCreateGet(t *testing.T, st crus.Store) {
	ctx := context.Background()
	s := Session("a", 7)
	s.Progress.FailedToClear = []string{"x9000c0s0b0n0"}
	s.ClearFailed = true
	require.NoError(t, st.Create(ctx, s))
	assert.Positive(t, s.Revision, "Create sets the revision")
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, s, got, "after Create")

	empty := &crus.Session{UpgradeID: "empty"}
	require.NoError(t, st.Create(ctx, empty))
	got, err = st.Get(ctx, "empty")
	require.NoError(t, err)
	equal(t, empty, got, "a record with no nodes")
}

func testCreateExisting(t *testing.T, st crus.Store) {
	ctx := context.Background()
	s := Session("a", 3)
	require.NoError(t, st.Create(ctx, s))
	other := Session("a", 5)
	err := st.Create(ctx, other)
	assert.ErrorIs(t, err, crus.ErrSessionExists)
	assert.ErrorContains(t, err, "a")
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, s, got, "the first record is kept")
}

func testNotFound(t *testing.T, st crus.Store) {
	ctx := context.Background()
	_, err := st.Get(ctx, "no-such-session")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	assert.ErrorContains(t, err, "no-such-session", "the error names the id")
	s := Session("no-such-session", 2)
	s.Revision = 1
	assert.ErrorIs(t, st.Update(ctx, s), crus.ErrSessionNotFound)
	assert.ErrorIs(t, st.Delete(ctx, "no-such-session"), crus.ErrSessionNotFound)
	list, err := st.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "a failed Update creates nothing")
}

func testCopies(t *testing.T, st crus.Store) {
	ctx := context.Background()
	s := Session("a", 3)
	require.NoError(t, st.Create(ctx, s))
	s.Messages = append(s.Messages, "not stored")
	s.Progress.Nodes[0].Reason = "not stored either"
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	assert.Len(t, got.Messages, 1)
	assert.NotEqual(t, "not stored either", got.Progress.Nodes[0].Reason)
	got.Messages[0] = "changed"
	got.Progress.Nodes[1].Phase = crus.PhaseFailing
	again, err := st.Get(ctx, "a")
	require.NoError(t, err)
	assert.NotEqual(t, "changed", again.Messages[0])
	assert.NotEqual(t, crus.PhaseFailing, again.Progress.Nodes[1].Phase)
}

func testUpdateCAS(t *testing.T, st crus.Store) {
	ctx := context.Background()
	s := Session("a", 20)
	require.NoError(t, st.Create(ctx, s))
	first := s.Revision
	stale, err := st.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, first, stale.Revision, "Get returns the revision")

	s.Messages = append(s.Messages, "first")
	s.Progress.Nodes[10].Phase = crus.PhaseQuiescing
	require.NoError(t, st.Update(ctx, s))
	assert.Greater(t, s.Revision, first, "Update moves the revision on")
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, s, got, "after Update")

	stale.Messages = append(stale.Messages, "second")
	stale.Progress.Nodes[11].Phase = crus.PhaseQuiescing
	err = st.Update(ctx, stale)
	assert.ErrorIs(t, err, crus.ErrConflict, "a stale writer loses")
	assert.Equal(t, first, stale.Revision, "a refused Update leaves the revision")
	got, err = st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, s, got, "the stale write changed nothing")

	// Writing the same record again is a new revision.
	rev := s.Revision
	require.NoError(t, st.Update(ctx, s))
	assert.Greater(t, s.Revision, rev)
}

func testList(t *testing.T, st crus.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"c", "a", "b", "d"} {
		s := Session(id, 2)
		s.Progress.CreatedAt = t0.Add(time.Duration(i) * time.Hour)
		if id == "d" {
			s.Progress.CreatedAt = t0 // same time as "c": ordered by id
		}
		require.NoError(t, st.Create(ctx, s))
	}
	list, err := st.List(ctx)
	require.NoError(t, err)
	var ids []string
	for _, s := range list {
		ids = append(ids, s.UpgradeID)
		assert.Len(t, s.Progress.Nodes, 2, "List returns whole records")
		assert.Positive(t, s.Revision)
	}
	assert.Equal(t, []string{"c", "d", "a", "b"}, ids, "ordered by creation time, then id")
}

func testDelete(t *testing.T, st crus.Store) {
	ctx := context.Background()
	a, b := Session("a", 3), Session("b", 3)
	require.NoError(t, st.Create(ctx, a))
	require.NoError(t, st.Create(ctx, b))
	require.NoError(t, st.Delete(ctx, "a"))
	_, err := st.Get(ctx, "a")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	assert.ErrorIs(t, st.Delete(ctx, "a"), crus.ErrSessionNotFound)
	assert.ErrorIs(t, st.Update(ctx, a), crus.ErrSessionNotFound)
	got, err := st.Get(ctx, "b")
	require.NoError(t, err)
	equal(t, b, got, "other sessions are kept")
	// The id can be used again.
	again := Session("a", 4)
	require.NoError(t, st.Create(ctx, again))
	got, err = st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, again, got, "a new session under a deleted id")
}

func testConcurrentWriters(t *testing.T, st crus.Store) {
	ctx := context.Background()
	require.NoError(t, st.Create(ctx, Session("s", 10)))
	const writers, each = 4, 15
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				for { // read, change, write; on conflict read again
					s, err := st.Get(ctx, "s")
					if !assert.NoError(t, err) {
						return
					}
					s.Messages = append(s.Messages, fmt.Sprintf("%d.%d", w, i))
					s.Progress.Nodes[w].LastError = fmt.Sprintf("writer %d, write %d", w, i)
					err = st.Update(ctx, s)
					if err == nil {
						break
					}
					if !assert.ErrorIs(t, err, crus.ErrConflict) {
						return
					}
					conflicts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	s, err := st.Get(ctx, "s")
	require.NoError(t, err)
	assert.Len(t, s.Messages, 1+writers*each, "no update lost")
	for w := range writers {
		assert.Equal(t, fmt.Sprintf("writer %d, write %d", w, each-1), s.Progress.Nodes[w].LastError)
	}
	t.Logf("%d conflicts resolved", conflicts.Load())
}

func testLargeSession(t *testing.T, st crus.Store) {
	ctx := context.Background()
	s := Session("big", 10000)
	require.NoError(t, st.Create(ctx, s))
	got, err := st.Get(ctx, "big")
	require.NoError(t, err)
	equal(t, s, got, "10,000 nodes after Create")

	// A typical write: a step's nodes change phase.
	for i := 5000; i < 5050; i++ {
		s.Progress.Nodes[i].Phase = crus.PhaseBooting
		s.Progress.Nodes[i].Boot = "crus-big-101"
		s.Progress.Nodes[i].RebootRequested = time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)
	}
	s.Messages = append(s.Messages, "Step 101: all 50 nodes quiesced")
	require.NoError(t, st.Update(ctx, s))
	got, err = st.Get(ctx, "big")
	require.NoError(t, err)
	equal(t, s, got, "after a step's update")

	// A write that changes every node (a cancel of a session never run).
	for i := range s.Progress.Nodes {
		s.Progress.Nodes[i].Reason = fmt.Sprintf("session cancelled before this node's step began (%d)", i)
	}
	require.NoError(t, st.Update(ctx, s))
	got, err = st.Get(ctx, "big")
	require.NoError(t, err)
	equal(t, s, got, "after every node changed")

	// From another copy, so that nothing cached helps.
	again, err := st.Get(ctx, "big")
	require.NoError(t, err)
	again.Progress.Nodes[9999].LastError = "last"
	require.NoError(t, st.Update(ctx, again))
	got, err = st.Get(ctx, "big")
	require.NoError(t, err)
	equal(t, again, got, "after an update from a fresh copy")
}

func testCancelled(t *testing.T, st crus.Store) {
	require.NoError(t, st.Create(context.Background(), Session("a", 2)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := st.Get(ctx, "a")
	assert.ErrorIs(t, err, context.Canceled)
	s := Session("b", 2)
	assert.ErrorIs(t, st.Create(ctx, s), context.Canceled)
	_, err = st.Get(context.Background(), "b")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound, "a cancelled Create stores nothing")
}

func testRevisionReader(t *testing.T, st crus.Store, rr crus.RevisionReader) {
	ctx := context.Background()
	s := Session("a", 3)
	require.NoError(t, st.Create(ctx, s))
	rev, err := rr.Revision(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, s.Revision, rev)
	s.Messages = append(s.Messages, "more")
	require.NoError(t, st.Update(ctx, s))
	rev, err = rr.Revision(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, s.Revision, rev)
	_, err = rr.Revision(ctx, "nope")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
}

// testRevisionLister checks that Revisions tells what List tells of each
// session's revision, through creates, updates of either kind (and the
// reads that follow them), deletes and a session created again.
func testRevisionLister(t *testing.T, st crus.Store, rl crus.RevisionLister) {
	ctx := context.Background()
	check := func(msg string) {
		t.Helper()
		list, err := st.List(ctx)
		require.NoError(t, err)
		want := map[string]int64{}
		for _, s := range list {
			want[s.UpgradeID] = s.Revision
		}
		got, err := rl.Revisions(ctx)
		require.NoError(t, err, msg)
		assert.Equal(t, want, got, msg)
	}
	got, err := rl.Revisions(ctx)
	require.NoError(t, err)
	assert.Empty(t, got, "an empty store")
	a, b := Session("a", 40), Session("b", 3)
	require.NoError(t, st.Create(ctx, a))
	require.NoError(t, st.Create(ctx, b))
	check("two created")
	a.Progress.Nodes[7].Phase = crus.PhaseQuiescing
	require.NoError(t, st.Update(ctx, a))
	check("a updated")
	if nu, ok := st.(crus.NodeUpdater); ok {
		for i := range 5 {
			a.Progress.Nodes[i].Reason = fmt.Sprint("step ", i)
			a.AddMessages(fmt.Sprint("message ", i))
			require.NoError(t, nu.UpdateNodes(ctx, a, []int{i}))
			if i == 2 {
				check("a updated by nodes, between")
			}
		}
		check("a updated by nodes")
		got, err := rl.Revisions(ctx)
		require.NoError(t, err)
		assert.Equal(t, a.Revision, got["a"], "the revision of the last write")
	}
	require.NoError(t, st.Delete(ctx, "b"))
	check("b deleted")
	b = Session("b", 3)
	require.NoError(t, st.Create(ctx, b))
	check("b created again")
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	_, err = rl.Revisions(ctx2)
	assert.ErrorIs(t, err, context.Canceled)
}

// reserved returns a small session holding nodes (workload-manager name
// "w-" and the xname) and its own groups (u-<id>, f-<id>) unless labels
// are given.
func reserved(id string, nodes []string, labels ...string) *crus.Session {
	s := Session(id, 0)
	s.UpgradingLabel, s.FailedLabel = "u-"+id, "f-"+id
	if len(labels) == 2 {
		s.UpgradingLabel, s.FailedLabel = labels[0], labels[1]
	}
	for _, x := range nodes {
		s.Progress.Nodes = append(s.Progress.Nodes, crus.NodeRecord{XName: x, Name: "w-" + x, Phase: crus.PhasePending})
	}
	return s
}

func testReserver(t *testing.T, st crus.Store, rs crus.Reserver) {
	ctx := context.Background()
	held, err := rs.Reservations(ctx)
	require.NoError(t, err)
	assert.Empty(t, held)

	a := reserved("a", []string{"x1000c0s0b0n0", "x1000c0s0b0n1", "x1000c0s1b0n0"})
	require.NoError(t, rs.CreateReserved(ctx, a))
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, a, got, "CreateReserved stores the session")

	// A shared node.
	b := reserved("b", []string{"x1000c0s0b0n1", "x1000c0s4b0n0"})
	err = rs.CreateReserved(ctx, b)
	var re *crus.ReservedError
	require.ErrorAs(t, err, &re)
	assert.ErrorIs(t, err, crus.ErrReserved)
	assert.Equal(t, []crus.Conflict{{Session: "a", Nodes: []string{"x1000c0s0b0n1"}, Names: []string{"w-x1000c0s0b0n1"}}}, re.Conflicts)
	assert.ErrorContains(t, err, "session a holds 1 of its nodes (x1000c0s0b0n1)")
	_, err = st.Get(ctx, "b")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound, "a refused session is not stored")

	// A shared group.
	c := reserved("c", []string{"x1000c0s3b0n0"}, "u-a", "f-c")
	err = rs.CreateReserved(ctx, c)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, []crus.Conflict{{Session: "a", Labels: []string{"u-a"}}}, re.Conflicts)

	// Disjoint: accepted. Then both are listed.
	d := reserved("d", []string{"x1000c0s2b0n0"})
	require.NoError(t, rs.CreateReserved(ctx, d))
	held, err = rs.Reservations(ctx)
	require.NoError(t, err)
	assert.Equal(t, []crus.Reservation{
		{Session: "a", Nodes: []string{"x1000c0s0b0n0", "x1000c0s0b0n1", "x1000c0s1b0n0"},
			Names: []string{"w-x1000c0s0b0n0", "w-x1000c0s0b0n1", "w-x1000c0s1b0n0"}, Labels: []string{"f-a", "u-a"}},
		{Session: "d", Nodes: []string{"x1000c0s2b0n0"}, Names: []string{"w-x1000c0s2b0n0"}, Labels: []string{"f-d", "u-d"}},
	}, held)

	// Conflicts with two sessions at once are all named.
	e := reserved("e", []string{"x1000c0s0b0n0", "x1000c0s2b0n0"})
	err = rs.CreateReserved(ctx, e)
	require.ErrorAs(t, err, &re)
	require.Len(t, re.Conflicts, 2)
	assert.Equal(t, "a", re.Conflicts[0].Session)
	assert.Equal(t, "d", re.Conflicts[1].Session)

	// An existing id is ErrSessionExists, whatever it holds.
	assert.ErrorIs(t, rs.CreateReserved(ctx, reserved("a", []string{"x9999c0s0b0n0"})), crus.ErrSessionExists)

	// Completing a session releases what it held, in the same write.
	a, err = st.Get(ctx, "a")
	require.NoError(t, err)
	a.Completed, a.State = true, crus.StateReady
	require.NoError(t, st.Update(ctx, a))
	require.NoError(t, rs.CreateReserved(ctx, b), "a completed session holds nothing")

	// Deleting a session releases it too.
	require.NoError(t, st.Delete(ctx, "d"))
	held, err = rs.Reservations(ctx)
	require.NoError(t, err)
	require.Len(t, held, 1)
	assert.Equal(t, "b", held[0].Session)
	require.NoError(t, rs.CreateReserved(ctx, reserved("f", []string{"x1000c0s2b0n1"}, "u-d", "f-d")))
}

func testReserverConcurrent(t *testing.T, st crus.Store, rs crus.Reserver) {
	ctx := context.Background()
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// Every session shares node x1000c0s0b0n0 with every other.
			errs[i] = rs.CreateReserved(ctx, reserved(fmt.Sprintf("s%d", i), []string{"x1000c0s0b0n0", fmt.Sprintf("x1001c0s%db0n0", i)}))
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, crus.ErrReserved):
			t.Errorf("unexpected error: %v", err)
		}
	}
	assert.Equal(t, 1, won, "exactly one of the overlapping sessions is created")
	list, err := st.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}

// testReserverNames: two sessions whose xnames differ but map to the same
// workload-manager nodes (a wrong mapper, a bad NID) must not both hold
// them: drain, resume and fail act on the workload manager's names.
func testReserverNames(t *testing.T, st crus.Store, rs crus.Reserver) {
	ctx := context.Background()
	a := reserved("a", []string{"x1000c0s0b0n0", "x1000c0s0b0n1"})
	a.Progress.Nodes[0].Name, a.Progress.Nodes[1].Name = "nid000001", "nid000002"
	require.NoError(t, rs.CreateReserved(ctx, a))

	b := reserved("b", []string{"x2000c0s0b0n0", "x2000c0s0b0n1"})
	b.Progress.Nodes[0].Name, b.Progress.Nodes[1].Name = "nid000002", "nid000003"
	err := rs.CreateReserved(ctx, b)
	var re *crus.ReservedError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, []crus.Conflict{{Session: "a", Names: []string{"nid000002"}}}, re.Conflicts)
	assert.ErrorContains(t, err, "session a holds 1 of its workload-manager nodes (nid000002)")
	_, err = st.Get(ctx, "b")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound, "a refused session is not stored")

	b.Progress.Nodes[0].Name = "nid000004"
	require.NoError(t, rs.CreateReserved(ctx, b), "disjoint names: accepted")
	held, err := rs.Reservations(ctx)
	require.NoError(t, err)
	require.Len(t, held, 2)
	assert.Equal(t, []string{"nid000001", "nid000002"}, held[0].Names, "the names are kept with the reservation")
	assert.Equal(t, []string{"nid000003", "nid000004"}, held[1].Names)
}

// change is one write of the NodeUpdater tests: header fields, some node
// records and some messages, applied alike to two copies.
type change struct {
	step     int
	stage    crus.Stage
	nodes    map[int]crus.NodeRecord
	messages []string
}

var t0 = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

func drawChange(r *rand.Rand, s *crus.Session, step int) change {
	c := change{step: step, nodes: map[int]crus.NodeRecord{}}
	c.stage = []crus.Stage{crus.StageQuiescing, crus.StageBooting, crus.StageWLMWaiting, crus.StageCleanup}[r.IntN(4)]
	k := r.IntN(4)
	if r.IntN(10) == 0 {
		k = 60
	}
	n := len(s.Progress.Nodes)
	for range k {
		if n == 0 {
			break
		}
		i := r.IntN(n)
		rec := s.Progress.Nodes[i]
		rec.Phase = []crus.Phase{crus.PhaseQuiescing, crus.PhaseBooting, crus.PhaseReturning}[r.IntN(3)]
		rec.Since = t0.Add(time.Duration(step) * time.Minute)
		rec.Boot = fmt.Sprintf("crus-boot-%d", step)
		rec.Reason = fmt.Sprintf("write %d", step)
		rec.Retries = r.IntN(3)
		c.nodes[i] = rec
	}
	m := r.IntN(3)
	if r.IntN(20) == 0 {
		m = crus.MessagesLast + 50 // more than a record keeps at once
	}
	for j := range m {
		c.messages = append(c.messages, fmt.Sprintf("write %d, message %d", step, j))
	}
	return c
}

// apply makes the change to s and returns the positions it changed.
func (c change) apply(s *crus.Session) []int {
	s.Progress.Step, s.Progress.Stage, s.Progress.Boots = c.step, c.stage, c.step
	s.Progress.StageSince = t0.Add(time.Duration(c.step) * time.Minute)
	var changed []int
	for i, rec := range c.nodes {
		s.Progress.Nodes[i] = rec
		changed = append(changed, i)
	}
	s.AddMessages(c.messages...)
	return changed
}

// same compares a record written through UpdateNodes with its twin
// written through Update: the same but for the id and the groups.
func same(t *testing.T, viaNodes, viaUpdate *crus.Session, msg string) {
	t.Helper()
	u := viaUpdate.Clone()
	u.UpgradeID, u.Revision = viaNodes.UpgradeID, viaNodes.Revision
	equal(t, u, viaNodes, msg+": UpdateNodes and Update stored different records")
}

func testUpdateNodes(t *testing.T, st crus.Store, nu crus.NodeUpdater) {
	ctx := context.Background()
	// a through UpdateNodes, b through Update: twins but for the id.
	a, b := Session("a", 300), Session("a", 300)
	b.UpgradeID = "b"
	require.NoError(t, st.Create(ctx, a))
	require.NoError(t, st.Create(ctx, b))
	r := rand.New(rand.NewPCG(1, 2))
	for step := 1; step <= 60; step++ {
		c := drawChange(r, a, step)
		changed := c.apply(a)
		c.apply(b)
		rev := a.Revision
		require.NoError(t, nu.UpdateNodes(ctx, a, changed), "write %d", step)
		assert.Greater(t, a.Revision, rev, "UpdateNodes moves the revision on")
		require.NoError(t, st.Update(ctx, b))
		gotA, err := st.Get(ctx, "a")
		require.NoError(t, err)
		equal(t, a, gotA, fmt.Sprintf("read after UpdateNodes %d", step))
		gotB, err := st.Get(ctx, "b")
		require.NoError(t, err)
		equal(t, b, gotB, fmt.Sprintf("read after Update %d", step))
		same(t, gotA, gotB, fmt.Sprintf("write %d", step))
		if t.Failed() {
			return
		}
		switch step % 7 {
		case 3:
			// Carry on from a fresh read: a copy the store returned.
			a = gotA
		case 5:
			// A whole Update in between, then UpdateNodes again.
			a.Progress.Nodes[0].LastError = fmt.Sprintf("whole %d", step)
			b.Progress.Nodes[0].LastError = a.Progress.Nodes[0].LastError
			require.NoError(t, st.Update(ctx, a))
			require.NoError(t, st.Update(ctx, b))
		}
	}
	assert.Positive(t, a.MessagesDropped, "the test went past the bound of the messages")
	list, err := st.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	equal(t, a, list[0], "List after UpdateNodes")

	// A whole-record write of a copy that changed more than it says is
	// not UpdateNodes' business, but completing through it must release
	// the session as Update does.
	a.Completed, a.State = true, crus.StateReady
	require.NoError(t, nu.UpdateNodes(ctx, a, nil))
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, a, got, "completed through UpdateNodes")
	if rs, ok := st.(crus.Reserver); ok {
		held, err := rs.Reservations(ctx)
		require.NoError(t, err)
		for _, h := range held {
			assert.NotEqual(t, "a", h.Session, "a completed session holds nothing")
		}
	}
}

func testUpdateNodesCAS(t *testing.T, st crus.Store, nu crus.NodeUpdater) {
	ctx := context.Background()
	s := Session("a", 20)
	require.NoError(t, st.Create(ctx, s))
	stale, err := st.Get(ctx, "a")
	require.NoError(t, err)

	s.Progress.Nodes[10].Phase = crus.PhaseQuiescing
	s.AddMessages("first")
	require.NoError(t, nu.UpdateNodes(ctx, s, []int{10}))

	stale.Progress.Nodes[11].Phase = crus.PhaseQuiescing
	stale.AddMessages("second")
	err = nu.UpdateNodes(ctx, stale, []int{11})
	assert.ErrorIs(t, err, crus.ErrConflict, "a stale writer loses")
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, s, got, "the stale write changed nothing")

	// A whole Update by another copy; then the first copy is stale.
	other := got.Clone()
	other.Progress.Nodes[12].Reason = "other"
	require.NoError(t, st.Update(ctx, other))
	s.Progress.Nodes[13].Reason = "stale"
	assert.ErrorIs(t, nu.UpdateNodes(ctx, s, []int{13}), crus.ErrConflict)
	got, err = st.Get(ctx, "a")
	require.NoError(t, err)
	equal(t, other, got, "after a conflict")

	// A position out of range is an error, and nothing is stored.
	other.Progress.Nodes[1].LastError = "not stored"
	err = nu.UpdateNodes(ctx, other, []int{1, 20})
	require.Error(t, err)
	assert.NotErrorIs(t, err, crus.ErrConflict)
	again, err := st.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, got.Revision, again.Revision, "nothing stored")
	assert.Empty(t, again.Progress.Nodes[1].LastError)

	// A deleted session is not found.
	require.NoError(t, st.Delete(ctx, "a"))
	assert.ErrorIs(t, nu.UpdateNodes(ctx, got, []int{2}), crus.ErrSessionNotFound)
	_, err = st.Get(ctx, "a")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound, "UpdateNodes creates nothing")
}

// testUpdateNodesLarge writes a 10,000-node session many times a few
// nodes at a time, as the executor does, reading it back now and then,
// and once from a copy read afresh.
func testUpdateNodesLarge(t *testing.T, st crus.Store, nu crus.NodeUpdater) {
	ctx := context.Background()
	s := Session("big", 10000)
	require.NoError(t, st.Create(ctx, s))
	r := rand.New(rand.NewPCG(5, 6))
	for step := 1; step <= 400; step++ {
		c := drawChange(r, s, step)
		require.NoError(t, nu.UpdateNodes(ctx, s, c.apply(s)), "write %d", step)
		if step%100 == 0 {
			got, err := st.Get(ctx, "big")
			require.NoError(t, err)
			equal(t, s, got, fmt.Sprintf("after %d writes", step))
			if step == 200 {
				s = got // carry on from the copy read
			}
		}
	}
}

// view returns a copy of what v shows of the session.
func view(t *testing.T, v crus.Viewer, id string) *crus.Session {
	t.Helper()
	var got *crus.Session
	require.NoError(t, v.View(context.Background(), id, func(s *crus.Session) error {
		got = s.Clone()
		return nil
	}))
	return got
}

// testViewer: View shows the record Get returns, as each kind of write
// leaves it (a store that keeps records to show them must keep them up
// to date), including a completed session; ViewAll shows List's records
// in List's order; fn's error is returned; a missing session is
// ErrSessionNotFound.
func testViewer(t *testing.T, st crus.Store, v crus.Viewer) {
	ctx := context.Background()
	a, b := Session("a", 200), Session("b", 3)
	require.NoError(t, st.Create(ctx, a))
	equal(t, a, view(t, v, "a"), "after Create")
	require.NoError(t, st.Create(ctx, b))
	nu, _ := st.(crus.NodeUpdater)
	r := rand.New(rand.NewPCG(3, 4))
	for step := 1; step <= 30; step++ {
		c := drawChange(r, a, step)
		changed := c.apply(a)
		if nu != nil && step%4 != 0 {
			require.NoError(t, nu.UpdateNodes(ctx, a, changed), "write %d", step)
		} else {
			require.NoError(t, st.Update(ctx, a), "write %d", step)
		}
		equal(t, a, view(t, v, "a"), fmt.Sprintf("View after write %d", step))
		got, err := st.Get(ctx, "a")
		require.NoError(t, err)
		equal(t, a, got, fmt.Sprintf("Get after write %d", step))
		if t.Failed() {
			return
		}
	}
	a.Completed, a.State = true, crus.StateReady
	require.NoError(t, st.Update(ctx, a))
	equal(t, a, view(t, v, "a"), "completed")

	var ids []string
	require.NoError(t, v.ViewAll(ctx, func(s *crus.Session) error {
		ids = append(ids, s.UpgradeID)
		return nil
	}))
	list, err := st.List(ctx)
	require.NoError(t, err)
	var want []string
	for _, s := range list {
		want = append(want, s.UpgradeID)
	}
	assert.Equal(t, want, ids, "ViewAll in List's order")

	stop := errors.New("stop here")
	assert.ErrorIs(t, v.View(ctx, "a", func(*crus.Session) error { return stop }), stop)
	n := 0
	assert.ErrorIs(t, v.ViewAll(ctx, func(*crus.Session) error { n++; return stop }), stop)
	assert.Equal(t, 1, n, "ViewAll stops at fn's first error")
	err = v.View(ctx, "missing", func(*crus.Session) error { t.Error("fn called for a missing session"); return nil })
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	require.NoError(t, st.Delete(ctx, "b"))
	err = v.View(ctx, "b", func(*crus.Session) error { t.Error("fn called for a deleted session"); return nil })
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
}

// BenchmarkReads measures what the surfaces pay to read a session in
// progress that moved since they last read it (a page's event stream, a
// scrape, a description, while the session runs): after each write of
// one node record through UpdateNodes (not timed), a Get and a View (if
// the store is a Viewer) of n node records.
func BenchmarkReads(b *testing.B, st crus.Store, n int) {
	ctx := context.Background()
	nu, ok := st.(crus.NodeUpdater)
	if !ok {
		b.Skip("the store does not implement crus.NodeUpdater")
	}
	s := Session(fmt.Sprint("bench-", n), n)
	require.NoError(b, st.Create(ctx, s))
	write := func(i int) {
		b.StopTimer()
		k := (i * 37) % n
		s.Progress.Nodes[k].LastError = fmt.Sprint(i)
		require.NoError(b, nu.UpdateNodes(ctx, s, []int{k}))
		b.StartTimer()
	}
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			write(i)
			if _, err := st.Get(ctx, s.UpgradeID); err != nil {
				b.Fatal(err)
			}
		}
	})
	v, ok := st.(crus.Viewer)
	if !ok {
		return
	}
	b.Run("view", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			write(i)
			if err := v.View(ctx, s.UpgradeID, func(*crus.Session) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
