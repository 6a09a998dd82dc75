package crus

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/wlm"
)

var allPhases = []Phase{PhasePending, PhaseQuiescing, PhaseQuiesced, PhaseBooting, PhaseReturning,
	PhaseResuming, PhaseFailing, PhaseReleasing, PhaseDone}

// drawRollout draws any valid rollout for a step size.
func drawRollout(t *rapid.T, step int) Rollout {
	r := Rollout{
		Strategy:  rapid.SampledFrom([]Strategy{"", StrategyClassic, StrategyRolling}).Draw(t, "strategy"),
		Order:     rapid.SampledFrom([]Order{"", OrderListed, OrderIdleFirst, OrderJobEnd}).Draw(t, "order"),
		Lookahead: rapid.IntRange(0, 5).Draw(t, "lookahead"),
	}
	if r.Strategy == StrategyRolling {
		r.BootBatchSize = rapid.IntRange(0, 3).Draw(t, "bootBatch")
	}
	r.MaxFailures = rapid.IntRange(0, 3).Draw(t, "maxFailures")
	if rapid.Bool().Draw(t, "drainTimeout") {
		r.DrainTimeout = Duration(rapid.SampledFrom([]time.Duration{20 * time.Minute, 2 * time.Hour}).Draw(t, "timeout"))
		r.DrainTimeoutAction = rapid.SampledFrom([]DrainTimeoutAction{DrainRelease, DrainFail}).Draw(t, "timeoutAction")
	}
	if rapid.Bool().Draw(t, "canary") {
		r.Canary = []int{1, min(2, step)}
		r.CanaryApproval = rapid.Bool().Draw(t, "approval")
	}
	if rapid.Bool().Draw(t, "window") {
		r.MaintenanceWindows = []Window{{Start: "20:00", End: "08:00"}}
	}
	return r
}

// drawSession draws a session record in the middle of a run, and what the
// world might show of it.
func drawSession(t *rapid.T) (*Session, Observation) {
	n := rapid.IntRange(1, 30).Draw(t, "nodes")
	step := rapid.IntRange(1, 6).Draw(t, "step")
	s := newTestSession(n, step)
	s.Rollout = drawRollout(t, step)
	s.Progress.Step = rapid.IntRange(0, 4).Draw(t, "progressStep")
	s.Progress.Cancel = rapid.Float64Range(0, 1).Draw(t, "cancel") < 0.1
	s.Progress.Paused = rapid.Float64Range(0, 1).Draw(t, "paused") < 0.1
	s.Progress.Approved = rapid.Bool().Draw(t, "approved")
	now := t0.Add(time.Duration(rapid.IntRange(0, 600).Draw(t, "minutes")) * time.Minute)
	obs := observe(now).obs
	obs.JobEnds = map[string]time.Time{}
	states := []wlm.Node{
		{State: wlm.StateIdle}, {State: wlm.StateAllocated},
		{State: wlm.StateIdle, Drain: true, Reason: ourReason}, {State: wlm.StateAllocated, Drain: true, Reason: ourReason},
		{State: wlm.StateDown, NotResponding: true}, {State: wlm.StateIdle, Drain: true, Reason: "admin: x"},
		{State: wlm.StateIdle, BootTime: now},
	}
	boots := map[string]bool{}
	for i := range s.Progress.Nodes {
		nr := &s.Progress.Nodes[i]
		nr.Phase = rapid.SampledFrom(allPhases).Draw(t, fmt.Sprintf("phase%d", i))
		nr.Grouped = nr.Phase.InFlight() || rapid.Float64Range(0, 1).Draw(t, fmt.Sprintf("grouped%d", i)) < 0.1
		nr.Retries = rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("retries%d", i))
		nr.DrainRequested, nr.RebootRequested, nr.Booted, nr.Since = t0, t0, t0, t0
		switch nr.Phase {
		case PhaseDone:
			nr.Outcome = rapid.SampledFrom([]Outcome{OutcomeUpgraded, OutcomeFailed, OutcomeSkipped}).Draw(t, fmt.Sprintf("outcome%d", i))
		case PhaseBooting:
			nr.Boot = fmt.Sprintf("crus-u1-%d", rapid.IntRange(1, 2).Draw(t, fmt.Sprintf("boot%d", i)))
			boots[nr.Boot] = true
		case PhaseReleasing:
			nr.Reason = rapid.SampledFrom([]string{reasonCancelled, reasonDrainTimeout, "refused"}).Draw(t, fmt.Sprintf("reason%d", i))
		}
		if rapid.Float64Range(0, 1).Draw(t, fmt.Sprintf("seen%d", i)) < 0.9 {
			w := rapid.SampledFrom(states).Draw(t, fmt.Sprintf("state%d", i))
			w.Name = nr.Name
			obs.Nodes[nr.XName] = w
			if w.Busy() {
				obs.JobEnds[nr.XName] = now.Add(time.Duration(rapid.IntRange(-10, 300).Draw(t, fmt.Sprintf("end%d", i))) * time.Minute)
			}
		}
	}
	for b := range boots {
		st := bos.Status{Name: b, Phase: rapid.SampledFrom([]bos.Phase{bos.PhasePending, bos.PhaseRunning, bos.PhaseComplete}).Draw(t, "bootPhase"+b), Nodes: map[string]bos.NodeStatus{}}
		for _, nr := range s.Progress.Nodes {
			if nr.Boot == b {
				st.Nodes[nr.XName] = bos.NodeStatus{Result: rapid.SampledFrom([]bos.Result{bos.ResultSucceeded, bos.ResultFailed}).Draw(t, "result"+nr.XName)}
			}
		}
		obs.Boots[b] = st
	}
	var members []string
	for _, nr := range s.Progress.Nodes {
		if nr.Grouped {
			members = append(members, nr.XName)
		}
	}
	obs.Upgrading, obs.UpgradingObserved = members, rapid.Bool().Draw(t, "groupObserved")
	return s, obs
}

// TestIndexedPlanIsPlan checks that the executor's indexed planning decides
// exactly what Plan decides, and that an index kept up to date across
// decisions equals one built afresh.
func TestIndexedPlanIsPlan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s, obs := drawSession(t)
		if rapid.Bool().Draw(t, "scheduled") {
			// Its look-ahead walks only the pending records (and those
			// the decision changed).
			s.Rollout.Strategy, s.Rollout.Canary, s.Rollout.CanaryApproval = StrategyScheduled, nil, false
			obs.Scheduling = rapid.Bool().Draw(t, "scheduling")
		}
		idx := newNodeIndex(s)
		for round := range 3 {
			want, err := Plan(s, obs)
			require.NoError(t, err)
			got, err := planWith(s, obs, idx)
			require.NoError(t, err)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("round %d: indexed plan differs (-plan +indexed):\n%s", round, diff)
			}
			sc, pos, endsPos := scopeWith(s, idx, false)
			if diff := cmp.Diff(ScopeFor(s), sc); diff != "" {
				t.Fatalf("round %d: indexed scope differs (-plain +indexed):\n%s", round, diff)
			}
			for k, i := range pos {
				require.Equal(t, sc.Nodes[k], s.Progress.Nodes[i].XName, "positions of the scope's nodes")
			}
			require.Len(t, endsPos, len(sc.JobEnds))
			for k, i := range endsPos {
				require.Equal(t, sc.JobEnds[k], s.Progress.Nodes[i].XName, "positions of the scope's job ends")
			}
			require.True(t, slices.IndexFunc(idx.chg, func(c int32) bool { return c != 0 }) < 0, "scratch space left clean")
			if want.Done {
				return
			}
			s.Apply(want, obs.Now)
			idx.update(want)
			fresh := newNodeIndex(s)
			require.Equal(t, fresh.active, idx.active, "active nodes")
			require.Equal(t, fresh.failures, idx.failures, "failures")
			require.Equal(t, fresh.firstPending, idx.firstPending, "first pending")
			require.Equal(t, fresh.pending, idx.pending, "pending records")
			require.Equal(t, fresh.retried, idx.retried, "records put back")
			obs.Now = obs.Now.Add(time.Minute)
		}
	})
}

func TestMemoryStoreUpdateNodes(t *testing.T) {
	ctx := t.Context()
	m := NewMemoryStore()
	s := newTestSession(5, 2)
	require.NoError(t, m.Create(ctx, s))
	mine, err := m.Get(ctx, s.UpgradeID)
	require.NoError(t, err)
	x := mine.Progress.Nodes[3].XName
	d := Decision{Stage: StageQuiescing, Step: 1, Steps: 3, Messages: []string{"hello"},
		Changes: []Change{{XName: x, Phase: PhaseQuiescing, Step: 1, Group: GroupAdded}}}
	mine.Apply(d, t0)
	require.NoError(t, m.UpdateNodes(ctx, mine, []int{3}))
	got, err := m.Get(ctx, s.UpgradeID)
	require.NoError(t, err)
	if diff := cmp.Diff(mine, got); diff != "" {
		t.Fatalf("stored record differs (-mine +stored):\n%s", diff)
	}
	stale := s.Clone() // at the first revision
	assert.ErrorIs(t, m.UpdateNodes(ctx, stale, nil), ErrConflict)
	got.Progress.Nodes[3].Reason = "changed on a copy"
	again, err := m.Get(ctx, s.UpgradeID)
	require.NoError(t, err)
	assert.Empty(t, again.Progress.Nodes[3].Reason, "the stored record shares nothing with copies handed out")
}

// TestNamesAt: reading names by position gives what the session-wide
// look-up gives, with where each record is among the scope's positions
// (-1 for one that is not).
func TestNamesAt(t *testing.T) {
	s := &Session{Progress: Progress{Nodes: []NodeRecord{
		{XName: "x1c0s0b0n0", Name: "nid01"}, {XName: "x1c0s0b0n1", Name: "nid02"},
		{XName: "x1c0s1b0n0", Name: "nid03"}, {XName: "x1c0s1b0n1", Name: "nid04"},
	}}}
	nn := newNodeNames(s)
	pos := []int{1, 2, 3}
	for _, want := range [][]int{
		nil,
		{1, 3},
		{0, 2}, // the first is not among pos
		{0, 1, 2, 3},
	} {
		var xnames []string
		for _, i := range want {
			xnames = append(xnames, s.Progress.Nodes[i].XName)
		}
		names, at := nn.namesAt(want, pos, nil, nil)
		// Into arrays used before, longer, and full of other values.
		reNames, reAt := nn.namesAt(want, pos, []string{"x", "y", "z", "w", "v"}, []int{7, 7, 7, 7, 7})
		assert.True(t, slices.Equal(names, reNames), "%v: reusing arrays: %v, not %v", want, reNames, names)
		assert.True(t, slices.Equal(at, reAt), "%v: reusing arrays: %v, not %v", want, reAt, at)
		assert.True(t, slices.Equal(nn.names(xnames), names), "%v: %v", want, names)
		for i, w := range want {
			if at[i] >= 0 {
				assert.Equal(t, w, pos[at[i]], "where %d is among pos", w)
			} else {
				assert.NotContains(t, pos, w)
			}
		}
	}
}

// TestIndexCandidates: the index's walk of the candidates (bitmaps of the
// pending records and those put back, with a decision's changes) keeps
// what the walk of every record keeps.
func TestIndexCandidates(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 300).Draw(t, "records")
		s := newTestSession(max(n, 1), 1)
		s.Progress.Nodes = s.Progress.Nodes[:n]
		phases := []Phase{PhasePending, PhaseDone, PhaseBooting}
		for i := range s.Progress.Nodes {
			s.Progress.Nodes[i].Phase = rapid.SampledFrom(phases).Draw(t, fmt.Sprint("phase", i))
			s.Progress.Nodes[i].Retries = rapid.IntRange(0, 2).Draw(t, fmt.Sprint("retries", i))
		}
		idx := newNodeIndex(s)
		// A decision's changes: every node changed is active; some active
		// ones are not changed.
		chg := make([]int32, n)
		changed := map[int]Phase{}
		var act []int
		if n > 0 {
			act = rapid.SliceOfDistinct(rapid.IntRange(0, n-1), rapid.ID).Draw(t, "active")
			slices.Sort(act)
			for _, i := range act {
				if rapid.Bool().Draw(t, fmt.Sprint("changed", i)) {
					chg[i], changed[i] = 1, rapid.SampledFrom(phases).Draw(t, fmt.Sprint("to", i))
				}
			}
		}
		phase := func(i int) Phase {
			if ph, ok := changed[i]; ok {
				return ph
			}
			return s.Progress.Nodes[i].Phase
		}
		from := rapid.IntRange(-1, n+1).Draw(t, "from")
		limit := rapid.IntRange(0, n+2).Draw(t, "limit")
		want := append([]int{}, candidates(s.Progress.Nodes, phase, limit, from)...)
		require.Equal(t, want, idx.candidates([]int{}, from, limit, act, chg, phase), "with changes %v, from %d, limit %d", changed, from, limit)
		if len(changed) == 0 {
			require.Equal(t, want, idx.candidates([]int{}, from, limit, nil, nil, phase), "without a decision")
		}
	})
}

// TestRecordFinder: the planner (and Apply, Transitions and the events)
// find a node's record by xname from any record found before it, forward
// or back, near or far, and find no record for a name the session does
// not have.
func TestRecordFinder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 200).Draw(t, "n")
		var nodes []NodeRecord
		for i := range n {
			nodes = append(nodes, NodeRecord{XName: fmt.Sprintf("x%04d", 2*i)}) // odd numbers are missing
		}
		p := &planner{s: &Session{Progress: Progress{Nodes: nodes}}}
		for k := range rapid.IntRange(0, 30).Draw(t, "lookups") {
			j := rapid.IntRange(-1, 2*n+1).Draw(t, fmt.Sprint("name", k))
			x := fmt.Sprintf("x%04d", j)
			want := -1
			if j >= 0 && j%2 == 0 && j/2 < n {
				want = j / 2
			}
			if got := p.index(x); got != want {
				t.Fatalf("index(%s) = %d after %d, want %d", x, got, p.finder.last, want)
			}
		}
	})
}
