package crus

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/wlm"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// newTestSession returns a session of n nodes in steps of step, as Create
// records it: xnames x1000c0s0b0n0..., names nid000001...
func newTestSession(n, step int) *Session {
	s := &Session{
		UpgradeID: "u1", Kind: Kind, APIVersion: APIVersion, State: StateUpdating,
		Spec: Spec{
			StartingLabel: "start", UpgradingLabel: "upg", FailedLabel: "fail",
			StepSize: step, TemplateID: "tmpl", WorkloadManagerType: "slurm",
		}.WithDefaults(),
		Progress: Progress{Stage: StageStarting, CreatedAt: t0, StartedAt: t0, Steps: (n + step - 1) / step},
	}
	for i := range n {
		s.Progress.Nodes = append(s.Progress.Nodes, NodeRecord{
			XName: xname(i), Name: fmt.Sprintf("nid%06d", i+1), Phase: PhasePending, Step: i/step + 1, Since: t0,
		})
	}
	slices.SortFunc(s.Progress.Nodes, func(a, b NodeRecord) int { return strings.Compare(a.XName, b.XName) })
	return s
}

func xname(i int) string { return fmt.Sprintf("x1000c0s%db0n%d", i/2, i%2) }

// world is an observation under construction.
type world struct{ obs Observation }

func observe(now time.Time) *world {
	return &world{obs: Observation{
		Now: now, Nodes: map[string]wlm.Node{}, Unknown: map[string]string{},
		Boots: map[string]bos.Status{}, MissingBoots: map[string]bool{},
		BootTimes: true, BootTimeSlack: time.Second,
	}}
}

func (w *world) node(x string, n wlm.Node) *world {
	if n.State == "" {
		n.State = wlm.StateIdle
	}
	w.obs.Nodes[x] = n
	return w
}

func (w *world) idle(xs ...string) *world {
	for _, x := range xs {
		w.node(x, wlm.Node{Name: x, State: wlm.StateIdle, BootTime: t0.Add(-24 * time.Hour)})
	}
	return w
}

func (w *world) drained(reason string, xs ...string) *world {
	for _, x := range xs {
		w.node(x, wlm.Node{Name: x, State: wlm.StateIdle, Drain: true, Reason: reason, BootTime: t0.Add(-24 * time.Hour)})
	}
	return w
}

func (w *world) boot(name string, phase bos.Phase, errText string, results map[string]bos.NodeStatus) *world {
	w.obs.Boots[name] = bos.Status{Name: name, Phase: phase, Error: errText, Nodes: results}
	return w
}

func (w *world) group(members ...string) *world {
	w.obs.Upgrading, w.obs.UpgradingObserved = members, true
	return w
}

const ourReason = "crus u1: rolling upgrade, step 1 of 2"

// setPhase puts nodes in a phase as if an earlier plan had.
func setPhase(s *Session, ph Phase, at time.Time, xs ...string) {
	for _, x := range xs {
		n := s.Node(x)
		n.Phase, n.Since, n.Grouped = ph, at, true
		if ph.InFlight() || ph == PhaseDone {
			n.DrainRequested = at
		}
		switch ph {
		case PhaseBooting, PhaseReturning, PhaseResuming:
			n.Boot, n.RebootRequested = "crus-u1-1", at
		}
		if ph == PhaseReturning || ph == PhaseResuming {
			n.Booted = at
		}
	}
	if s.Progress.Step == 0 {
		s.Progress.Step = 1
	}
}

func plan(t *testing.T, s *Session, obs Observation) Decision {
	t.Helper()
	before := s.Clone()
	d, err := Plan(s, obs)
	require.NoError(t, err)
	if diff := cmp.Diff(before, s); diff != "" {
		t.Fatalf("Plan modified the session (-before +after):\n%s", diff)
	}
	again, err := Plan(s, obs)
	require.NoError(t, err)
	if diff := cmp.Diff(d, again); diff != "" {
		t.Fatalf("Plan is not deterministic (-first +second):\n%s", diff)
	}
	return d
}

func changeOf(d Decision, x string) (Change, bool) {
	for _, c := range d.Changes {
		if c.XName == x {
			return c, true
		}
	}
	return Change{}, false
}

func actionsOf(d Decision, k ActionKind) []Action {
	var out []Action
	for _, a := range d.Actions {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

func nodes(s *Session, step int) []string {
	var out []string
	for _, n := range s.Progress.Nodes {
		if n.Step == step {
			out = append(out, n.XName)
		}
	}
	return out
}

func TestPlanStartsFirstStep(t *testing.T) {
	s := newTestSession(4, 2)
	step1 := nodes(s, 1)
	assert.Equal(t, Scope{Nodes: step1}, ScopeFor(s))
	d := plan(t, s, observe(t0).idle(step1...).obs)

	assert.Equal(t, 1, d.Step)
	assert.Equal(t, StageQuiescing, d.Stage)
	for _, x := range step1 {
		c, ok := changeOf(d, x)
		require.True(t, ok, x)
		assert.Equal(t, PhaseQuiescing, c.Phase)
		assert.Equal(t, GroupAdded, c.Group)
	}
	require.Len(t, d.Actions, 2)
	assert.Equal(t, Action{Kind: ActAddMembers, Label: "upg", Nodes: step1, Why: d.Actions[0].Why}, d.Actions[0])
	assert.Equal(t, ActDrain, d.Actions[1].Kind)
	assert.Equal(t, step1, d.Actions[1].Nodes)
	assert.True(t, d.Actions[1].SkipFailed, "drain only what made it into the group")
	assert.Equal(t, ourReason, d.Actions[1].Reason)
	assert.Equal(t, []string{"Step 1 of 2: quiescing 2 nodes"}, d.Messages)
}

func TestPlanStepStartSkipsNodesOutOfService(t *testing.T) {
	s := newTestSession(6, 3)
	step1 := nodes(s, 1)
	w := observe(t0).idle(step1[0]).drained("bad DIMM", step1[1])
	w.obs.Unknown[step1[2]] = "not found"
	d := plan(t, s, w.obs)

	c, _ := changeOf(d, step1[0])
	assert.Equal(t, PhaseQuiescing, c.Phase)
	c, _ = changeOf(d, step1[1])
	assert.Equal(t, Change{XName: step1[1], Phase: PhaseDone, Outcome: OutcomeSkipped,
		Reason: "not in service at the start of its step: idle, drained (bad DIMM)"}, c)
	c, _ = changeOf(d, step1[2])
	assert.Equal(t, OutcomeSkipped, c.Outcome)
	assert.Contains(t, c.Reason, "unknown to the workload manager")
	assert.Equal(t, []string{step1[0]}, d.Actions[0].Nodes)
}

func TestPlanStepStartWaitsForObservation(t *testing.T) {
	s := newTestSession(4, 2)
	d := plan(t, s, observe(t0).idle(nodes(s, 1)[0]).obs)
	assert.Empty(t, d.Changes)
	assert.Empty(t, d.Actions)
	assert.False(t, d.Done)
}

func TestPlanAllOfStepSkippedMovesOn(t *testing.T) {
	s := newTestSession(4, 2)
	step1, step2 := nodes(s, 1), nodes(s, 2)
	d := plan(t, s, observe(t0).drained("admin", step1...).idle(step2...).obs)
	assert.Equal(t, 2, d.Step)
	for _, x := range step1 {
		c, _ := changeOf(d, x)
		assert.Equal(t, OutcomeSkipped, c.Outcome)
	}
	for _, x := range step2 {
		c, _ := changeOf(d, x)
		assert.Equal(t, PhaseQuiescing, c.Phase)
	}
}

func TestPlanQuiescing(t *testing.T) {
	busy := wlm.Node{State: wlm.StateAllocated, Drain: true, Reason: ourReason}
	completing := wlm.Node{State: wlm.StateIdle, Completing: true, Drain: true, Reason: ourReason}
	drained := wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason}
	downDrained := wlm.Node{State: wlm.StateDown, NotResponding: true, Drain: true, Reason: ourReason}
	lost := wlm.Node{State: wlm.StateAllocated}
	foreign := wlm.Node{State: wlm.StateIdle, Drain: true, Reason: "admin: bad fan"}
	failedByAdmin := wlm.Node{State: wlm.StateIdle, Fail: true, Reason: "admin: dead"}
	tests := []struct {
		name      string
		node      wlm.Node
		unknown   bool
		want      Phase
		outcome   Outcome
		nudge     ActionKind
		reasonHas string
	}{
		{name: "still running jobs", node: busy, want: PhaseQuiescing},
		{name: "completing is still draining", node: completing, want: PhaseQuiescing},
		{name: "drained", node: drained, want: PhaseQuiesced},
		{name: "down and drained counts as drained", node: downDrained, want: PhaseQuiesced},
		{name: "drain lost: drain again", node: lost, want: PhaseQuiescing, nudge: ActDrain},
		{name: "drained by someone else", node: foreign, want: PhaseDone, outcome: OutcomeSkipped, reasonHas: "bad fan"},
		{name: "failed by someone else", node: failedByAdmin, want: PhaseDone, outcome: OutcomeSkipped, reasonHas: "dead"},
		{name: "vanished from the WLM", unknown: true, want: PhaseFailing, reasonHas: "disappeared"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSession(2, 2)
			xs := nodes(s, 1)
			setPhase(s, PhaseQuiescing, t0, xs...)
			w := observe(t0.Add(time.Hour)).node(xs[1], busy)
			if tc.unknown {
				w.obs.Unknown[xs[0]] = "unknown node"
			} else {
				w.node(xs[0], tc.node)
			}
			d := plan(t, s, w.obs)
			got := PhaseQuiescing
			c, ok := changeOf(d, xs[0])
			if ok {
				got = c.Phase
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.outcome, c.Outcome)
			assert.Contains(t, c.Reason, tc.reasonHas)
			if tc.nudge != "" {
				a := actionsOf(d, tc.nudge)
				require.Len(t, a, 1)
				assert.Equal(t, []string{xs[0]}, a[0].Nodes)
			} else {
				assert.Empty(t, actionsOf(d, ActDrain))
			}
			assert.Empty(t, actionsOf(d, ActReboot), "no reboot while a node still drains")
		})
	}
}

// TestPlanDrainNotTaking: a node crus drained that reads not drained for
// 10 minutes is named in condition drain_not_taking (the drain is asked
// again either way). The 10 minutes count from crus's first request, or
// from when the node was first seen undrained since it last showed the
// drain: a node an operator resumes after hours drained, or one whose job
// drained for hours, is not named at once.
func TestPlanDrainNotTaking(t *testing.T) {
	lost := wlm.Node{State: wlm.StateAllocated}
	busy := wlm.Node{State: wlm.StateAllocated, Drain: true, Reason: ourReason}
	drained := wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason}
	type seen struct {
		at   time.Duration // after the first request
		node wlm.Node
	}
	for _, c := range []struct {
		name  string
		seen  []seen
		want  bool // named at the last observation
		since time.Duration
	}{
		{"never taken, 9 minutes", []seen{{30 * time.Second, lost}, {9 * time.Minute, lost}}, false, 30 * time.Second},
		{"never taken, 10 minutes", []seen{{0, lost}, {10 * time.Minute, lost}}, true, 0},
		{"never taken, 5 hours", []seen{{30 * time.Second, lost}, {5 * time.Hour, lost}}, true, 30 * time.Second},
		{"first seen at 5 hours", []seen{{5 * time.Hour, lost}}, false, 5 * time.Hour},
		{"draining at 5 hours", []seen{{30 * time.Second, lost}, {5 * time.Hour, busy}}, false, -1},
		{"drained 5 hours, resumed", []seen{{time.Minute, drained}, {5 * time.Hour, lost}}, false, 5 * time.Hour},
		{"drained 5 hours, resumed 10 minutes", []seen{{time.Minute, drained}, {5 * time.Hour, lost}, {5*time.Hour + 10*time.Minute, lost}}, true, 5 * time.Hour},
		{"draining 5 hours, resumed 9 minutes", []seen{{time.Minute, busy}, {5 * time.Hour, lost}, {5*time.Hour + 9*time.Minute, lost}}, false, 5 * time.Hour},
		{"lost, held, lost again", []seen{{time.Minute, lost}, {time.Hour, busy}, {2 * time.Hour, lost}, {2*time.Hour + 5*time.Minute, lost}}, false, 2 * time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestSession(2, 2)
			xs := nodes(s, 1)
			setPhase(s, PhaseQuiescing, t0, xs...)
			var d Decision
			for _, o := range c.seen {
				now := t0.Add(o.at)
				d = plan(t, s, observe(now).node(xs[0], o.node).node(xs[1], busy).obs)
				s.Apply(d, now)
				if !o.node.Drain {
					require.Len(t, actionsOf(d, ActDrain), 1, "the drain is asked again")
				}
			}
			if c.since < 0 {
				assert.Zero(t, s.Node(xs[0]).Undrained, "a node showing the drain has no undrained time")
			} else {
				assert.Equal(t, t0.Add(c.since), s.Node(xs[0]).Undrained, "undrained since its first sight")
			}
			assert.Zero(t, s.Node(xs[1]).Undrained, "a node that drains is not undrained")
			var got []Condition
			for _, k := range d.Conditions {
				if k.Kind == CondDrainNotTaking {
					got = append(got, k)
				}
			}
			if !c.want {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Contains(t, got[0].Message, xs[0])
			assert.NotContains(t, got[0].Message, xs[1], "a node that drains is not named")
			assert.Contains(t, strings.Join(d.Messages, "\n"), "not drained", "its beginning is a message")
		})
	}
}

func TestPlanBootsWholeStepOnceAllQuiesced(t *testing.T) {
	for _, limit := range []BootLimit{LimitNodes, LimitLabel} {
		t.Run(string(limit), func(t *testing.T) {
			s := newTestSession(3, 3)
			s.BootLimit = limit
			xs := nodes(s, 1)
			setPhase(s, PhaseQuiesced, t0, xs[:2]...)
			setPhase(s, PhaseQuiescing, t0, xs[2])

			// One node still drains: barrier holds.
			w := observe(t0.Add(time.Minute)).drained(ourReason, xs[:2]...).node(xs[2], wlm.Node{State: wlm.StateMixed, Drain: true, Reason: ourReason})
			d := plan(t, s, w.obs)
			assert.Empty(t, d.Actions)
			assert.Equal(t, StageQuiescing, d.Stage)

			// It drains; the upgrading group has not been read yet: wait.
			w = observe(t0.Add(2*time.Minute)).drained(ourReason, xs...)
			d = plan(t, s, w.obs)
			assert.Empty(t, d.Actions)
			s.Apply(d, w.obs.Now)
			assert.True(t, ScopeFor(s).Upgrading, "at the barrier, read the group")

			// The group lost a node (a crash before the add): add it again.
			d = plan(t, s, w.group(xs[0], xs[2]).obs)
			require.Len(t, d.Actions, 1)
			assert.Equal(t, ActAddMembers, d.Actions[0].Kind)
			assert.Equal(t, []string{xs[1]}, d.Actions[0].Nodes)

			// All there: the whole step boots in one session.
			d = plan(t, s, w.group(xs...).obs)
			require.Len(t, d.Actions, 1)
			a := d.Actions[0]
			assert.Equal(t, ActReboot, a.Kind)
			assert.Equal(t, "crus-u1-1", a.Reboot.Name)
			assert.Equal(t, "tmpl", a.Reboot.Template)
			assert.Equal(t, xs, a.Reboot.Limit)
			if limit == LimitLabel {
				// Within the label, and only the step's nodes: no one
				// else's node in the group is rebooted.
				assert.Equal(t, "upg", a.Reboot.Within)
			}
			assert.Equal(t, 1, d.Boots)
			assert.Equal(t, StageBooting, d.Stage)
			for _, x := range xs {
				c, _ := changeOf(d, x)
				assert.Equal(t, Change{XName: x, Phase: PhaseBooting, Boot: "crus-u1-1"}, c)
			}
		})
	}
}

func TestPlanQuiescedNodeThatTookAJobIsNotBooted(t *testing.T) {
	s := newTestSession(2, 2)
	xs := nodes(s, 1)
	setPhase(s, PhaseQuiesced, t0, xs...)
	w := observe(t0.Add(time.Minute)).drained(ourReason, xs[0]).node(xs[1], wlm.Node{State: wlm.StateAllocated})
	d := plan(t, s, w.obs)
	assert.Empty(t, actionsOf(d, ActReboot))
	c, _ := changeOf(d, xs[1])
	assert.Equal(t, PhaseQuiescing, c.Phase)
	require.Len(t, actionsOf(d, ActDrain), 1)

	// A node not observed this time is not booted either.
	d = plan(t, s, observe(t0.Add(time.Minute)).drained(ourReason, xs[0]).obs)
	assert.Empty(t, actionsOf(d, ActReboot))
}

func TestPlanBooting(t *testing.T) {
	ok := bos.NodeStatus{Result: bos.ResultSucceeded}
	bad := bos.NodeStatus{Result: bos.ResultFailed, Reason: "power on failed"}
	tests := []struct {
		name      string
		at        time.Duration // since the reboot request
		missing   bool
		drained   bool     // the nodes are observed drained by the session
		group     []string // the upgrading group is observed holding these (indices 0, 1 as "0", "1")
		grouped   bool     // the upgrading group is observed
		phase     bos.Phase
		errText   string
		results   map[int]bos.NodeStatus
		want      [2]Phase
		reasonHas string
		nudge     bool
		stage     Stage
	}{
		{name: "pending", at: time.Minute, phase: bos.PhasePending, want: [2]Phase{PhaseBooting, PhaseBooting}, stage: StageBooting},
		{name: "running", at: time.Minute, phase: bos.PhaseRunning, results: map[int]bos.NodeStatus{0: ok}, want: [2]Phase{PhaseBooting, PhaseBooting}, stage: StageBooting},
		{name: "complete", at: 10 * time.Minute, phase: bos.PhaseComplete, results: map[int]bos.NodeStatus{0: ok, 1: ok}, want: [2]Phase{PhaseReturning, PhaseReturning}, stage: StageBooted},
		{name: "one node failed", at: 10 * time.Minute, phase: bos.PhaseComplete, results: map[int]bos.NodeStatus{0: ok, 1: bad}, want: [2]Phase{PhaseReturning, PhaseFailing}, reasonHas: "power on failed", stage: StageBooted},
		// Failed as a whole: the nodes still in the upgrading group are
		// failed; one taken out of it was not rebooted (back to service);
		// until the group is read, they wait.
		{name: "whole session failed", at: time.Minute, phase: bos.PhaseComplete, errText: "no nodes found", grouped: true, group: []string{"0", "1"}, want: [2]Phase{PhaseFailing, PhaseFailing}, reasonHas: "no nodes found", stage: StageBooted},
		{name: "whole session failed, nodes out of the group", at: time.Minute, phase: bos.PhaseComplete, errText: "no nodes found", grouped: true, want: [2]Phase{PhaseReleasing, PhaseReleasing}, reasonHas: "no longer in the upgrading group", stage: StageBooted},
		{name: "whole session failed, group not read yet", at: time.Minute, phase: bos.PhaseComplete, errText: "no nodes found", want: [2]Phase{PhaseBooting, PhaseBooting}, stage: StageBooting},
		// Not rebooted, so not failed: back to service (skipped).
		{name: "node not reported", at: 10 * time.Minute, phase: bos.PhaseComplete, results: map[int]bos.NodeStatus{0: ok}, want: [2]Phase{PhaseReturning, PhaseReleasing}, reasonHas: "completed without rebooting this node", stage: StageBooted},
		{name: "timed out", at: 61 * time.Minute, phase: bos.PhaseRunning, want: [2]Phase{PhaseFailing, PhaseFailing}, reasonHas: "did not complete within 1h0m0s", stage: StageBooted},
		// A boot request never accepted is sent again, only for nodes seen
		// drained in this observation; past the boot timeout its nodes go
		// back to service (never rebooted, never failed).
		{name: "missing: create again", at: time.Minute, missing: true, drained: true, grouped: true, group: []string{"0", "1"}, want: [2]Phase{PhaseBooting, PhaseBooting}, nudge: true, stage: StageBooting},
		// Sent again only once the upgrading group is read: the request is
		// noted on its nodes (their last error), which has the group read.
		{name: "missing, group not read: noted", at: time.Minute, missing: true, drained: true, want: [2]Phase{PhaseBooting, PhaseBooting}, stage: StageBooting},
		{name: "missing, not observed: wait", at: time.Minute, missing: true, want: [2]Phase{PhaseBooting, PhaseBooting}, stage: StageBooting},
		{name: "missing past the timeout", at: 61 * time.Minute, missing: true, drained: true, want: [2]Phase{PhaseReleasing, PhaseReleasing}, reasonHas: "not accepted by the boot orchestrator", stage: StageCleanup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSession(2, 2)
			xs := nodes(s, 1)
			setPhase(s, PhaseBooting, t0, xs...)
			s.Progress.Boots = 1
			w := observe(t0.Add(tc.at))
			if tc.drained {
				w.drained(ourReason, xs...)
			}
			if tc.grouped {
				var members []string
				for _, k := range tc.group {
					members = append(members, xs[k[0]-'0'])
				}
				w.group(members...)
			}
			if tc.missing {
				w.obs.MissingBoots["crus-u1-1"] = true
			} else {
				res := map[string]bos.NodeStatus{}
				for i, r := range tc.results {
					res[xs[i]] = r
				}
				w.boot("crus-u1-1", tc.phase, tc.errText, res)
			}
			d := plan(t, s, w.obs)
			for i, x := range xs {
				got := PhaseBooting
				if c, ok := changeOf(d, x); ok {
					got = c.Phase
					if got == PhaseFailing || got == PhaseReleasing {
						assert.Contains(t, c.Reason, tc.reasonHas)
					}
				}
				assert.Equal(t, tc.want[i], got, x)
			}
			assert.Equal(t, tc.nudge, len(actionsOf(d, ActReboot)) == 1)
			if tc.missing && tc.drained && tc.want[0] == PhaseBooting {
				// The request is noted on its nodes, sent or not: once
				// accepted, its boot_timeout starts then (Settle).
				for _, x := range xs {
					c, ok := changeOf(d, x)
					if assert.True(t, ok, "%s noted", x) {
						assert.Contains(t, c.LastError, "is not known to the boot orchestrator")
					}
				}
			}
			assert.Equal(t, tc.stage, d.Stage)
			if tc.want[0] == PhaseBooting && !tc.missing {
				assert.Equal(t, t0.Add(time.Hour), d.Wake, "wake at the boot timeout")
			}
			if tc.want[1] == PhaseFailing {
				require.NotEmpty(t, actionsOf(d, ActFail))
				for _, a := range actionsOf(d, ActFail) {
					assert.Equal(t, "fail", a.Label)
					assert.True(t, strings.HasPrefix(a.Reason, "crus u1: "), a.Reason)
				}
			}
		})
	}
}

func TestPlanNoGroupChangeWhileBootPending(t *testing.T) {
	s := newTestSession(3, 3)
	xs := nodes(s, 1)
	setPhase(s, PhaseBooting, t0, xs[:2]...)
	setPhase(s, PhaseDone, t0, xs[2]) // skipped during quiescing, still grouped
	s.Node(xs[2]).Outcome = OutcomeSkipped
	d := plan(t, s, observe(t0.Add(time.Minute)).boot("crus-u1-1", bos.PhasePending, "", nil).obs)
	assert.Empty(t, actionsOf(d, ActRemoveMembers), "BOS reads the group while pending")
	d = plan(t, s, observe(t0.Add(time.Minute)).boot("crus-u1-1", bos.PhaseRunning, "", nil).obs)
	require.Len(t, actionsOf(d, ActRemoveMembers), 1)
	assert.Equal(t, []string{xs[2]}, actionsOf(d, ActRemoveMembers)[0].Nodes)
}

func TestPlanReturning(t *testing.T) {
	before := t0.Add(-time.Hour)
	after := t0.Add(5 * time.Minute)
	tests := []struct {
		name      string
		node      wlm.Node
		unknown   bool
		noBoot    bool
		at        time.Duration
		want      Phase
		outcome   Outcome
		resume    bool
		reasonHas string
	}{
		{name: "still down", node: wlm.Node{State: wlm.StateDown, NotResponding: true, Drain: true, Reason: ourReason, BootTime: before}, at: 10 * time.Minute, want: PhaseReturning},
		{name: "back with an old boot time", node: wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason, BootTime: before}, at: 10 * time.Minute, want: PhaseReturning},
		{name: "boot time unknown", node: wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason}, at: 10 * time.Minute, want: PhaseReturning},
		{name: "rebooted", node: wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason, BootTime: after}, at: 10 * time.Minute, want: PhaseResuming, resume: true},
		{name: "rebooted within the slack", node: wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason, BootTime: t0.Add(-500 * time.Millisecond)}, at: 10 * time.Minute, want: PhaseResuming, resume: true},
		{name: "rebooted and already in service", node: wlm.Node{State: wlm.StateIdle, BootTime: after}, at: 10 * time.Minute, want: PhaseDone, outcome: OutcomeUpgraded},
		{name: "rebooted, drained by someone else", node: wlm.Node{State: wlm.StateIdle, Drain: true, Reason: "admin", BootTime: after}, at: 10 * time.Minute, want: PhaseDone, outcome: OutcomeUpgraded, reasonHas: "someone else"},
		{name: "no boot times: idle and responding", noBoot: true, node: wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason}, at: 10 * time.Minute, want: PhaseResuming, resume: true},
		{name: "no boot times: down", noBoot: true, node: wlm.Node{State: wlm.StateDown, NotResponding: true, Drain: true, Reason: ourReason}, at: 10 * time.Minute, want: PhaseReturning},
		{name: "timed out", node: wlm.Node{State: wlm.StateDown, NotResponding: true, Drain: true, Reason: ourReason, BootTime: before}, at: 31 * time.Minute, want: PhaseFailing, reasonHas: "did not return"},
		{name: "back just after the timeout still counts", node: wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason, BootTime: after}, at: 45 * time.Minute, want: PhaseResuming, resume: true},
		{name: "vanished", unknown: true, at: time.Minute, want: PhaseFailing, reasonHas: "disappeared"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSession(1, 1)
			x := s.Progress.Nodes[0].XName
			setPhase(s, PhaseReturning, t0, x)
			w := observe(t0.Add(tc.at))
			w.obs.BootTimes = !tc.noBoot
			if tc.unknown {
				w.obs.Unknown[x] = "gone"
			} else {
				w.node(x, tc.node)
			}
			d := plan(t, s, w.obs)
			got := PhaseReturning
			c, ok := changeOf(d, x)
			if ok {
				got = c.Phase
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.outcome, c.Outcome)
			assert.Contains(t, c.Reason, tc.reasonHas)
			assert.Equal(t, tc.resume, len(actionsOf(d, ActResume)) == 1)
			if got == PhaseReturning {
				assert.Equal(t, t0.Add(30*time.Minute), d.Wake)
				assert.Equal(t, StageWLMWaiting, d.Stage)
			}
		})
	}
}

func TestPlanResuming(t *testing.T) {
	s := newTestSession(1, 1)
	x := s.Progress.Nodes[0].XName
	setPhase(s, PhaseResuming, t0, x)

	d := plan(t, s, observe(t0.Add(11*time.Minute)).node(x, wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason, BootTime: t0.Add(5 * time.Minute)}).obs)
	assert.Empty(t, d.Changes)
	require.Len(t, actionsOf(d, ActResume), 1, "resume again while it is still drained")

	d = plan(t, s, observe(t0.Add(12*time.Minute)).node(x, wlm.Node{State: wlm.StateIdle, BootTime: t0.Add(5 * time.Minute)}).obs)
	c, _ := changeOf(d, x)
	assert.Equal(t, Change{XName: x, Phase: PhaseDone, Outcome: OutcomeUpgraded, Reason: "rebooted and back in service"}, c)

	d = plan(t, s, observe(t0.Add(31*time.Minute)).node(x, wlm.Node{State: wlm.StateIdle, Drain: true, Reason: ourReason}).obs)
	c, _ = changeOf(d, x)
	assert.Equal(t, PhaseFailing, c.Phase)
	assert.Contains(t, c.Reason, "could not be resumed")
}

func TestPlanStepEndThenNextStep(t *testing.T) {
	s := newTestSession(4, 2)
	step1, step2 := nodes(s, 1), nodes(s, 2)
	setPhase(s, PhaseDone, t0, step1...)
	for _, x := range step1 {
		s.Node(x).Outcome = OutcomeUpgraded
	}
	// Nodes done, still grouped: leave the group first, no new step yet.
	d := plan(t, s, observe(t0).idle(step2...).obs)
	require.Len(t, d.Actions, 1)
	assert.Equal(t, Action{Kind: ActRemoveMembers, Label: "upg", Nodes: step1, Why: d.Actions[0].Why}, d.Actions[0])
	assert.Equal(t, StageStarting, d.Stage)

	for _, x := range step1 {
		s.Node(x).Grouped = false
	}
	d = plan(t, s, observe(t0).idle(step2...).obs)
	assert.Equal(t, 2, d.Step)
	assert.Equal(t, step2, d.Actions[0].Nodes)
}

func TestPlanStepSummary(t *testing.T) {
	s := newTestSession(4, 2)
	xs := nodes(s, 1)
	setPhase(s, PhaseDone, t0, xs...)
	s.Node(xs[0]).Outcome, s.Node(xs[1]).Outcome = OutcomeUpgraded, OutcomeFailed
	for _, x := range xs {
		s.Node(x).Grouped = false
	}
	d := plan(t, s, observe(t0.Add(time.Minute)).idle(nodes(s, 2)...).obs)
	assert.Equal(t, []string{"Step 1 of 2 complete: 1 upgraded, 1 failed, 0 skipped, 0 untouched", "Step 2 of 2: quiescing 2 nodes"}, d.Messages)
}

func TestPlanCleanupAndDone(t *testing.T) {
	s := newTestSession(2, 2)
	xs := nodes(s, 1)
	setPhase(s, PhaseDone, t0, xs...)
	for _, x := range xs {
		n := s.Node(x)
		n.Outcome, n.Grouped = OutcomeUpgraded, false
	}
	assert.True(t, ScopeFor(s).Upgrading)

	d := plan(t, s, observe(t0).obs) // group not observed yet
	assert.False(t, d.Done)

	d = plan(t, s, observe(t0).group(xs[0], "x9999c0s0b0n0").obs)
	assert.False(t, d.Done)
	require.Len(t, d.Actions, 1)
	assert.Equal(t, []string{xs[0]}, d.Actions[0].Nodes, "only the session's nodes are removed")

	d = plan(t, s, observe(t0).group("x9999c0s0b0n0").obs)
	assert.True(t, d.Done)
	assert.Equal(t, ResultComplete, d.Result)
	assert.Equal(t, StageDone, d.Stage)
	require.Len(t, d.Messages, 3, "the stranger is reported")
	assert.Equal(t, "Step 1 of 1 complete: 2 upgraded, 0 failed, 0 skipped, 0 untouched", d.Messages[0])
	assert.Contains(t, d.Messages[1], "x9999c0s0b0n0")
	assert.Equal(t, "Upgrade session completed: 2 upgraded, 0 failed, 0 skipped, 0 untouched", d.Messages[2])
}

func TestPlanCancel(t *testing.T) {
	s := newTestSession(6, 6)
	xs := s.Progress.Nodes
	setPhase(s, PhaseQuiescing, t0, xs[0].XName)
	setPhase(s, PhaseQuiesced, t0, xs[1].XName)
	setPhase(s, PhaseBooting, t0, xs[2].XName)
	setPhase(s, PhaseReturning, t0, xs[3].XName)
	setPhase(s, PhaseQuiesced, t0, xs[5].XName)
	s.Progress.Cancel = true
	w := observe(t0.Add(time.Minute)).
		node(xs[0].XName, wlm.Node{State: wlm.StateAllocated, Drain: true, Reason: ourReason}).
		drained(ourReason, xs[1].XName).
		drained("admin took it", xs[5].XName).
		boot("crus-u1-1", bos.PhaseRunning, "", nil)
	d := plan(t, s, w.obs)

	phase := func(i int) Phase {
		if c, ok := changeOf(d, xs[i].XName); ok {
			return c.Phase
		}
		return xs[i].Phase
	}
	assert.Equal(t, PhaseReleasing, phase(0), "draining node is released")
	assert.Equal(t, PhaseReleasing, phase(1), "drained node not yet rebooting is released")
	assert.Equal(t, PhaseBooting, phase(2), "rebooting node is seen through")
	assert.Equal(t, PhaseReturning, phase(3), "rebooted node is seen through")
	c, _ := changeOf(d, xs[4].XName)
	assert.Equal(t, OutcomeUntouched, c.Outcome, "a node never touched is not failed")
	require.Len(t, actionsOf(d, ActResume), 1)
	assert.Equal(t, []string{xs[0].XName, xs[1].XName, xs[5].XName}, actionsOf(d, ActResume)[0].Nodes)
	assert.Empty(t, actionsOf(d, ActReboot))
	assert.Empty(t, actionsOf(d, ActFail))

	// Releasing: back in service is untouched; a foreign drain is left alone.
	s2 := s.Clone()
	s2.Apply(d, w.obs.Now)
	d = plan(t, s2, observe(t0.Add(2*time.Minute)).idle(xs[0].XName).drained(ourReason, xs[1].XName).
		drained("admin took it", xs[5].XName).boot("crus-u1-1", bos.PhaseRunning, "", nil).obs)
	c, _ = changeOf(d, xs[0].XName)
	assert.Equal(t, OutcomeUntouched, c.Outcome)
	c, _ = changeOf(d, xs[5].XName)
	assert.Equal(t, OutcomeSkipped, c.Outcome)
	assert.Contains(t, c.Reason, "admin took it")
	assert.Equal(t, []string{xs[1].XName}, actionsOf(d, ActResume)[0].Nodes)
}

func TestPlanClearsFailedGroupFirst(t *testing.T) {
	s := newTestSession(2, 2)
	s.ClearFailed = true
	s.Progress.FailedToClear = []string{"x3000c0s1b0n0"}
	d := plan(t, s, observe(t0).idle(nodes(s, 1)...).obs)
	require.Len(t, d.Actions, 1)
	assert.Equal(t, Action{Kind: ActRemoveMembers, Label: "fail", Nodes: []string{"x3000c0s1b0n0"}, Why: d.Actions[0].Why}, d.Actions[0])
	assert.Empty(t, d.Changes)
	assert.Empty(t, ScopeFor(s).Nodes, "no step starts before the failed group is cleared")
}

func TestPlanCompletedSession(t *testing.T) {
	s := newTestSession(1, 1)
	s.Completed = true
	_, err := Plan(s, observe(t0).obs)
	assert.ErrorIs(t, err, ErrSessionDone)
}

func TestScopeFor(t *testing.T) {
	s := newTestSession(6, 2)
	xs := s.Progress.Nodes
	setPhase(s, PhaseBooting, t0, xs[0].XName, xs[1].XName)
	assert.Equal(t, Scope{
		Nodes: []string{xs[0].XName, xs[1].XName},
		Boots: []BootRef{{Name: "crus-u1-1", Nodes: []string{xs[0].XName, xs[1].XName}, Requested: t0, TimedFrom: t0}},
	}, ScopeFor(s))
}

func TestSettle(t *testing.T) {
	transient := fmt.Errorf("connection reset")
	permanent := fmt.Errorf("refused: %w", ErrPermanentForTest)
	tests := []struct {
		name    string
		phase   Phase
		action  Action
		perNode error
		callErr error
		want    Change
		none    bool
	}{
		{name: "group add refused for a node", phase: PhaseQuiescing, action: Action{Kind: ActAddMembers, Label: "upg"}, perNode: permanent,
			want: Change{Phase: PhaseReleasing, Reason: "could not be put in the upgrading group: refused: permanent for test", LastError: "refused: permanent for test"}},
		{name: "group add failed transiently: intent kept", phase: PhaseQuiescing, action: Action{Kind: ActAddMembers, Label: "upg"}, callErr: transient,
			want: Change{Phase: PhaseQuiescing, LastError: "connection reset"}},
		{name: "drain refused", phase: PhaseQuiescing, action: Action{Kind: ActDrain}, perNode: permanent,
			want: Change{Phase: PhaseReleasing, Reason: "the workload manager refused to drain it: refused: permanent for test", LastError: "refused: permanent for test"}},
		{name: "drain failed transiently: nothing recorded", phase: PhaseQuiescing, action: Action{Kind: ActDrain}, callErr: transient, none: true},
		// Never rebooted, never failed: back to service (and the session
		// aborts: the next request would be refused too).
		{name: "boot refused", phase: PhaseBooting, action: Action{Kind: ActReboot, Reboot: bos.Request{Name: "crus-u1-1"}}, callErr: permanent,
			want: Change{Phase: PhaseReleasing, Reason: "its boot request was refused by the boot orchestrator (boot session crus-u1-1: refused: permanent for test)", LastError: "refused: permanent for test"}},
		{name: "boot failed transiently", phase: PhaseBooting, action: Action{Kind: ActReboot, Reboot: bos.Request{Name: "crus-u1-1"}}, callErr: transient,
			want: Change{Phase: PhaseBooting, LastError: "connection reset"}},
		{name: "fail done", phase: PhaseFailing, action: Action{Kind: ActFail}, want: Change{Phase: PhaseDone, Outcome: OutcomeFailed}},
		{name: "fail refused: failed all the same", phase: PhaseFailing, action: Action{Kind: ActFail}, perNode: permanent,
			want: Change{Phase: PhaseDone, Outcome: OutcomeFailed, Reason: " (and failing it was refused: refused: permanent for test)", LastError: "refused: permanent for test"}},
		{name: "fail failed transiently: try again", phase: PhaseFailing, action: Action{Kind: ActFail}, callErr: transient, none: true},
		{name: "fail refused as a whole: failed all the same", phase: PhaseFailing, action: Action{Kind: ActFail}, callErr: permanent,
			want: Change{Phase: PhaseDone, Outcome: OutcomeFailed, Reason: " (and failing it was refused: refused: permanent for test)", LastError: "refused: permanent for test"}},
		{name: "left the group", phase: PhaseDone, action: Action{Kind: ActRemoveMembers, Label: "upg"}, want: Change{Phase: PhaseDone, Group: GroupGone}},
		{name: "resume refused: noted", phase: PhaseResuming, action: Action{Kind: ActResume}, perNode: permanent,
			want: Change{Phase: PhaseResuming, LastError: "resume refused: refused: permanent for test"}},
		{name: "resume not delivered: noted, sent again", phase: PhaseResuming, action: Action{Kind: ActResume}, callErr: transient,
			want: Change{Phase: PhaseResuming, LastError: "resume not delivered: connection reset"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSession(1, 1)
			x := s.Progress.Nodes[0].XName
			setPhase(s, tc.phase, t0, x)
			r := ActionResult{Action: tc.action, Nodes: []string{x}, Err: tc.callErr}
			if tc.perNode != nil {
				r.PerNode = map[string]error{x: tc.perNode}
			}
			d := Settle(s, r)
			if tc.none {
				assert.Empty(t, d.Changes)
				return
			}
			require.Len(t, d.Changes, 1)
			tc.want.XName = x
			assert.Equal(t, tc.want, d.Changes[0])
		})
	}
}

func TestApplyStampsTransitions(t *testing.T) {
	s := newTestSession(1, 1)
	x := s.Progress.Nodes[0].XName
	steps := []struct {
		phase Phase
		field func(*NodeRecord) time.Time
	}{
		{PhaseQuiescing, func(n *NodeRecord) time.Time { return n.DrainRequested }},
		{PhaseQuiesced, func(n *NodeRecord) time.Time { return n.Drained }},
		{PhaseBooting, func(n *NodeRecord) time.Time { return n.RebootRequested }},
		{PhaseReturning, func(n *NodeRecord) time.Time { return n.Booted }},
		{PhaseResuming, func(n *NodeRecord) time.Time { return n.Returned }},
		{PhaseDone, func(n *NodeRecord) time.Time { return n.Finished }},
	}
	for i, st := range steps {
		at := t0.Add(time.Duration(i+1) * time.Minute)
		s.Apply(Decision{Stage: s.Progress.Stage, Changes: []Change{{XName: x, Phase: st.phase, Boot: "b", Outcome: OutcomeUpgraded}}}, at)
		n := s.Node(x)
		assert.Equal(t, st.phase, n.Phase)
		assert.Equal(t, at, st.field(n), st.phase)
		assert.Equal(t, at, n.Since)
	}
	assert.Equal(t, OutcomeUpgraded, s.Node(x).Outcome)
	require.NoError(t, s.check())
}

// TestApplyUndrained: Undrained is set at the first sight of a lost drain
// and kept at later ones, cleared when the drain shows again, and cleared
// when the node leaves the phases of a drain crus holds, or is taken anew.
func TestApplyUndrained(t *testing.T) {
	s := newTestSession(1, 1)
	x := s.Progress.Nodes[0].XName
	apply := func(at time.Duration, c Change) time.Time {
		c.XName = x
		s.Apply(Decision{Stage: s.Progress.Stage, Changes: []Change{c}}, t0.Add(at))
		return s.Node(x).Undrained
	}
	apply(0, Change{Phase: PhaseQuiescing})
	assert.Equal(t, t0.Add(time.Minute), apply(time.Minute, Change{Phase: PhaseQuiescing, Drain: DrainLost}))
	assert.Equal(t, t0.Add(time.Minute), apply(2*time.Minute, Change{Phase: PhaseQuiescing, Drain: DrainLost}), "kept from its first sight")
	assert.Zero(t, apply(3*time.Minute, Change{Phase: PhaseQuiesced, Drain: DrainHeld}))
	assert.Equal(t, t0.Add(4*time.Minute), apply(4*time.Minute, Change{Phase: PhaseQuiescing, Drain: DrainLost}))
	assert.Zero(t, apply(5*time.Minute, Change{Phase: PhaseReleasing}), "released")
	apply(6*time.Minute, Change{Phase: PhasePending})
	s.Node(x).Undrained = t0 // as an older record may hold it
	assert.Zero(t, apply(7*time.Minute, Change{Phase: PhaseQuiescing}), "taken anew")
	assert.Equal(t, t0.Add(7*time.Minute), s.Node(x).DrainRequested)
}

// A node released back to service (its drain was refused, or timed out)
// may run jobs while it is still in the upgrading group: a boot limited by
// label would reboot it, so the barrier waits for it to leave the group.
func TestPlanLabelBootWaitsForReleasedNodesToLeaveTheGroup(t *testing.T) {
	s := newTestSession(2, 2)
	s.BootLimit = LimitLabel
	x := nodes(s, 1)
	setPhase(s, PhaseQuiesced, t0, x[0])
	setPhase(s, PhaseReleasing, t0, x[1])
	s.Node(x[1]).Reason = "the workload manager refused to drain it: no"
	w := observe(t0.Add(time.Minute)).drained(ourReason, x[0]).group(x...)
	w.node(x[1], wlm.Node{Name: x[1], State: wlm.StateAllocated, Drain: true, Reason: ourReason}) // resume not in effect yet
	d := plan(t, s, w.obs)
	assert.Empty(t, actionsOf(d, ActReboot), "no label boot while a released node is in the group")
	assert.Equal(t, []string{x[1]}, actionsOf(d, ActResume)[0].Nodes)

	// Back in service and out of the group: the boot goes ahead.
	setPhase(s, PhaseDone, t0, x[1])
	s.Node(x[1]).Outcome, s.Node(x[1]).Grouped = OutcomeSkipped, false
	d = plan(t, s, observe(t0.Add(2*time.Minute)).drained(ourReason, x[0]).idle(x[1]).group(x[0]).obs)
	require.Len(t, actionsOf(d, ActReboot), 1)
	assert.Equal(t, []string{x[0]}, actionsOf(d, ActReboot)[0].Reboot.Limit)
	assert.Equal(t, s.UpgradingLabel, actionsOf(d, ActReboot)[0].Reboot.Within)
}

// A session owns a workload-manager reason only with its exact id: session
// "7" does not own "crus 71: ..." (nor "crus 7x:", nor a reason that only
// mentions it).
func TestOwnershipByExactID(t *testing.T) {
	for reason, want := range map[string]bool{
		"crus 7: rolling upgrade, step 1 of 2": true,
		"crus 7:":                              true,
		"crus 71: rolling upgrade":             false,
		"crus 7x: rolling upgrade":             false,
		"crus 7 rolling upgrade":               false,
		"admin: see crus 7: later":             false,
		"":                                     false,
	} {
		assert.Equal(t, want, ownedBy(reason, "7"), "%q", reason)
	}
	s := newTestSession(2, 2)
	s.UpgradeID = "s1"
	setPhase(s, PhaseQuiescing, t0, nodes(s, 1)...)
	x := nodes(s, 1)[0]
	// Drained by session s10: someone else's drain for s1.
	d := plan(t, s, observe(t0).drained("crus s10: rolling upgrade, step 1 of 1", x).obs)
	c, _ := changeOf(d, x)
	assert.Equal(t, OutcomeSkipped, c.Outcome)
	assert.Contains(t, c.Reason, "drained by someone else")
}
