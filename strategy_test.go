package crus

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/wlm"
)

// rollingSession is a session of n nodes with the given rollout, as Create
// records it (rolling sessions number their batches as they take them).
func rollingSession(n, step int, r Rollout) *Session {
	s := newTestSession(n, step)
	s.Rollout = r
	if r.rolling() {
		s.Progress.Steps = 0
		for i := range s.Progress.Nodes {
			s.Progress.Nodes[i].Step = 0
		}
	}
	return s
}

func busy(w *world, end time.Time, xs ...string) *world {
	for _, x := range xs {
		w.node(x, wlm.Node{Name: x, State: wlm.StateAllocated, BootTime: t0.Add(-24 * time.Hour)})
		if w.obs.JobEnds == nil {
			w.obs.JobEnds = map[string]time.Time{}
		}
		w.obs.JobEnds[x] = end
	}
	return w
}

func xnames(s *Session, idx ...int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = s.Progress.Nodes[j].XName
	}
	return out
}

func TestRollingAdmitsUpToTheWindowInJobEndOrder(t *testing.T) {
	s := rollingSession(8, 3, Rollout{Strategy: StrategyRolling, Order: OrderJobEnd})
	x := xnames(s, 0, 1, 2, 3, 4, 5, 6, 7)
	w := observe(t0)
	busy(w, t0.Add(5*time.Hour), x[0], x[1])
	busy(w, t0.Add(time.Hour), x[2])
	busy(w, t0.Add(3*time.Hour), x[3], x[4])
	busy(w, t0.Add(30*time.Minute), x[5])
	w.idle(x[6])
	w.drained("admin: broken", x[7])
	d := plan(t, s, w.obs)
	adds := actionsOf(d, ActAddMembers)
	require.Len(t, adds, 1)
	// idle first, then soonest expected end; the admin-drained one is
	// passed over (not skipped) while others can be taken.
	assert.Equal(t, sorted(x[6], x[5], x[2]), adds[0].Nodes)
	assert.Equal(t, 1, d.Step)
	_, ok := changeOf(d, x[7])
	assert.False(t, ok, "a node out of service is passed over, not skipped, while others can be taken")

	// Two in flight: room for one more.
	s.Apply(d, t0)
	setPhase(s, PhaseDone, t0, x[6])
	s.Node(x[6]).Outcome, s.Node(x[6]).Grouped = OutcomeUpgraded, false
	w2 := observe(t0.Add(time.Minute))
	busy(w2, t0.Add(time.Hour), x[2])
	busy(w2, t0.Add(30*time.Minute), x[5])
	busy(w2, t0.Add(3*time.Hour), x[3], x[4])
	busy(w2, t0.Add(5*time.Hour), x[0], x[1])
	w2.drained("admin: broken", x[7])
	for _, xx := range []string{x[2], x[5]} {
		n := w2.obs.Nodes[xx]
		n.Drain, n.Reason = true, ourReason
		w2.obs.Nodes[xx] = n
	}
	d = plan(t, s, w2.obs)
	adds = actionsOf(d, ActAddMembers)
	require.Len(t, adds, 1)
	assert.Equal(t, []string{x[3]}, adds[0].Nodes, "x3 and x4 end at the same time: list order")
	assert.Equal(t, 2, d.Step)
}

func sorted(xs ...string) []string {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs
}

func TestRollingBootsDrainedNodesWithoutBarrier(t *testing.T) {
	s := rollingSession(6, 4, Rollout{Strategy: StrategyRolling, BootBatchSize: 2})
	x := xnames(s, 0, 1, 2, 3, 4, 5)
	setPhase(s, PhaseQuiescing, t0, x[0], x[1], x[2], x[3])
	w := observe(t0.Add(time.Minute)).drained(ourReason, x[0], x[1], x[2]).group(x[0], x[1], x[2], x[3])
	w.node(x[3], wlm.Node{Name: x[3], State: wlm.StateAllocated, Drain: true, Reason: ourReason})
	d := plan(t, s, w.obs)
	reboots := actionsOf(d, ActReboot)
	require.Len(t, reboots, 2, "three drained nodes in boot sessions of at most two")
	assert.Equal(t, []string{x[0], x[1]}, reboots[0].Nodes)
	assert.Equal(t, []string{x[2]}, reboots[1].Nodes)
	assert.Equal(t, []string{x[2]}, reboots[1].Reboot.Limit)
	assert.Equal(t, 2, d.Boots)
	c, _ := changeOf(d, x[3])
	assert.NotEqual(t, PhaseBooting, c.Phase, "a node still running jobs is not booted")
}

func TestRollingWaitsForGroupMembershipBeforeBooting(t *testing.T) {
	s := rollingSession(2, 2, Rollout{Strategy: StrategyRolling})
	x := xnames(s, 0, 1)
	setPhase(s, PhaseQuiesced, t0, x[0], x[1])
	assert.True(t, ScopeFor(s).Upgrading, "rolling checks the group whenever a node is about to boot")
	d := plan(t, s, observe(t0).drained(ourReason, x[0], x[1]).group(x[0]).obs)
	require.Len(t, actionsOf(d, ActReboot), 1)
	assert.Equal(t, []string{x[0]}, actionsOf(d, ActReboot)[0].Nodes)
	assert.Equal(t, []string{x[1]}, actionsOf(d, ActAddMembers)[0].Nodes, "the missing one is added again, booted later")
}

func TestDrainTimeoutReleasesAndRetriesLater(t *testing.T) {
	s := rollingSession(3, 1, Rollout{Strategy: StrategyRolling, DrainTimeout: Duration(time.Hour)}.withDefaults())
	x := xnames(s, 0, 1, 2)
	setPhase(s, PhaseQuiescing, t0, x[0])
	busyDrained := wlm.Node{Name: x[0], State: wlm.StateAllocated, Drain: true, Reason: ourReason}

	d := plan(t, s, observe(t0.Add(30*time.Minute)).node(x[0], busyDrained).obs)
	assert.Empty(t, d.Changes)
	assert.Equal(t, t0.Add(time.Hour), d.Wake, "plan again when the timeout falls due")

	d = plan(t, s, observe(t0.Add(61*time.Minute)).node(x[0], busyDrained).obs)
	c, _ := changeOf(d, x[0])
	assert.Equal(t, PhaseReleasing, c.Phase)
	assert.Equal(t, []string{x[0]}, actionsOf(d, ActResume)[0].Nodes)
	s.Apply(d, t0.Add(61*time.Minute))

	w := observe(t0.Add(62 * time.Minute))
	w.node(x[0], wlm.Node{Name: x[0], State: wlm.StateAllocated})
	w.idle(x[1], x[2])
	d = plan(t, s, w.obs)
	c, _ = changeOf(d, x[0])
	assert.Equal(t, Change{XName: x[0], Phase: PhasePending, Retry: true}, c, "back in service: pending again, to be retried")
	s.Apply(d, t0.Add(62*time.Minute))
	assert.Equal(t, 1, s.Node(x[0]).Retries)

	// The next turn goes to a node not tried yet, though x0 comes first in
	// the list.
	d = plan(t, s, w.obs)
	require.Len(t, actionsOf(d, ActDrain), 1)
	assert.Equal(t, []string{x[1]}, actionsOf(d, ActDrain)[0].Nodes)
}

func TestDrainTimeoutCanFail(t *testing.T) {
	s := rollingSession(2, 1, Rollout{Strategy: StrategyRolling, DrainTimeout: Duration(time.Hour), DrainTimeoutAction: DrainFail})
	x := xnames(s, 0, 1)
	setPhase(s, PhaseQuiescing, t0, x[0])
	d := plan(t, s, observe(t0.Add(2*time.Hour)).node(x[0], wlm.Node{Name: x[0], State: wlm.StateAllocated, Drain: true, Reason: ourReason}).obs)
	c, _ := changeOf(d, x[0])
	assert.Equal(t, PhaseFailing, c.Phase)
	assert.Contains(t, c.Reason, "drain_timeout")
	require.Len(t, actionsOf(d, ActFail), 1)
}

func TestFailureBudgetAborts(t *testing.T) {
	s := rollingSession(6, 2, Rollout{Strategy: StrategyRolling, MaxFailures: 1})
	x := xnames(s, 0, 1, 2, 3, 4, 5)
	setPhase(s, PhaseDone, t0, x[0])
	s.Node(x[0]).Outcome, s.Node(x[0]).Grouped = OutcomeFailed, false
	setPhase(s, PhaseBooting, t0, x[1], x[2])
	s.Progress.Step = 2
	w := observe(t0.Add(20*time.Minute)).boot("crus-u1-1", bos.PhaseComplete, "", map[string]bos.NodeStatus{
		x[1]: {Result: bos.ResultFailed, Reason: "kernel panic"}, x[2]: {Result: bos.ResultSucceeded},
	})
	w.idle(x[3], x[4], x[5])
	d := plan(t, s, w.obs)
	assert.Equal(t, "2 nodes failed, more than the failure budget of 1", d.Abort)
	for _, xx := range x[3:] {
		c, ok := changeOf(d, xx)
		require.True(t, ok, xx)
		assert.Equal(t, OutcomeUntouched, c.Outcome, xx)
		assert.Contains(t, c.Reason, "session aborted")
	}
	assert.Empty(t, actionsOf(d, ActDrain), "no new node is taken")
	c, _ := changeOf(d, x[2])
	assert.Equal(t, PhaseReturning, c.Phase, "nodes in flight finish")
	s.Apply(d, t0.Add(20*time.Minute))
	assert.NotEmpty(t, s.Progress.Abort)

	// Once the nodes in flight are done, the session ends aborted.
	setPhase(s, PhaseDone, t0, x[1], x[2])
	for _, xx := range x[1:3] {
		s.Node(xx).Outcome, s.Node(xx).Grouped = OutcomeUpgraded, false
	}
	d = plan(t, s, observe(t0.Add(time.Hour)).group().obs)
	assert.True(t, d.Done)
	assert.Equal(t, ResultAborted, d.Result)
}

func TestFailureBudgetPercent(t *testing.T) {
	r := Rollout{MaxFailurePercent: 10}
	assert.Equal(t, 2, r.failureBudget(25))
	assert.Equal(t, 0, r.failureBudget(5), "10% of 5 nodes: the first failure aborts")
	assert.Equal(t, 1, Rollout{MaxFailures: 1, MaxFailurePercent: 50}.failureBudget(100), "the stricter of the two")
	assert.Equal(t, -1, Rollout{}.failureBudget(100))
}

func TestCanaryBatchesThenApproval(t *testing.T) {
	for _, strategy := range []Strategy{StrategyClassic, StrategyRolling} {
		t.Run(string(strategy), func(t *testing.T) {
			s := rollingSession(10, 4, Rollout{Strategy: strategy, Canary: []int{1, 2}, CanaryApproval: true})
			s.Progress.Step = 0
			all := xnames(s, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
			w := observe(t0).idle(all...)
			d := plan(t, s, w.obs)
			assert.Equal(t, all[:1], actionsOf(d, ActDrain)[0].Nodes, "canary batch 1: one node")
			s.Apply(d, t0)
			assert.Empty(t, actionsOf(plan(t, s, w.obs), ActAddMembers), "a canary batch runs alone")

			finish := func(xs ...string) {
				setPhase(s, PhaseDone, t0, xs...)
				for _, x := range xs {
					s.Node(x).Outcome, s.Node(x).Grouped = OutcomeUpgraded, false
				}
			}
			finish(all[0])
			d = plan(t, s, observe(t0).idle(all[1:]...).obs)
			assert.Equal(t, all[1:3], actionsOf(d, ActDrain)[0].Nodes, "canary batch 2: two nodes")
			s.Apply(d, t0)
			finish(all[1:3]...)

			d = plan(t, s, observe(t0).idle(all[3:]...).obs)
			assert.Empty(t, actionsOf(d, ActDrain), "held for approval")
			assert.Equal(t, StageApproval, d.Stage)
			assert.Contains(t, d.Messages, heldMessage(StageApproval))
			s.Apply(d, t0)
			again := plan(t, s, observe(t0).idle(all[3:]...).obs)
			assert.Empty(t, again.Messages, "the hold is announced once")

			s.Progress.Approved = true
			d = plan(t, s, observe(t0).idle(all[3:]...).obs)
			assert.Equal(t, all[3:7], actionsOf(d, ActDrain)[0].Nodes, "full step size once approved")
		})
	}
}

func TestPauseHoldsNewNodes(t *testing.T) {
	s := rollingSession(4, 2, Rollout{Strategy: StrategyRolling})
	x := xnames(s, 0, 1, 2, 3)
	setPhase(s, PhaseQuiescing, t0, x[0])
	s.Progress.Paused = true
	w := observe(t0).idle(x[1], x[2], x[3])
	w.node(x[0], wlm.Node{Name: x[0], State: wlm.StateAllocated, Drain: true, Reason: ourReason})
	d := plan(t, s, w.obs)
	assert.Empty(t, actionsOf(d, ActAddMembers), "paused: nothing new")
	assert.Equal(t, StageQuiescing, d.Stage, "nodes in flight go on")
	assert.Empty(t, ScopeFor(s).JobEnds)
	assert.Equal(t, []string{x[0]}, ScopeFor(s).Nodes, "no candidates observed while paused")

	setPhase(s, PhasePending, t0, x[0])
	s.Node(x[0]).Grouped = false
	d = plan(t, s, observe(t0).idle(x...).obs)
	assert.Equal(t, StagePaused, d.Stage)
	s.Progress.Paused = false
	d = plan(t, s, observe(t0).idle(x...).obs)
	assert.Equal(t, x[:2], actionsOf(d, ActDrain)[0].Nodes)
}

func TestMaintenanceWindowGatesNewNodes(t *testing.T) {
	// t0 is Monday 2 March 2026, 09:00 UTC = 10:00 in Zurich.
	night := Window{Days: []string{"mon", "tue"}, Start: "22:00", End: "06:00", TimeZone: "Europe/Zurich"}
	s := rollingSession(2, 2, Rollout{Strategy: StrategyRolling, MaintenanceWindows: []Window{night}})
	x := xnames(s, 0, 1)
	d := plan(t, s, observe(t0).idle(x...).obs)
	assert.Empty(t, actionsOf(d, ActDrain))
	assert.Equal(t, StageOutsideWindow, d.Stage)
	assert.Equal(t, time.Date(2026, 3, 2, 21, 0, 0, 0, time.UTC), d.Wake.UTC(), "wake when the window opens (22:00 CET)")

	d = plan(t, s, observe(time.Date(2026, 3, 3, 4, 0, 0, 0, time.UTC)).idle(x...).obs)
	assert.Equal(t, x, actionsOf(d, ActDrain)[0].Nodes, "05:00 Tuesday in Zurich: inside Monday's window")
}

func TestWindowContains(t *testing.T) {
	zurich, err := time.LoadLocation("Europe/Zurich")
	require.NoError(t, err)
	at := func(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, zurich) }
	w := Window{Days: []string{"Saturday", "sun"}, Start: "22:00", End: "06:00", TimeZone: "Europe/Zurich"}
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{at(2026, 3, 7, 21, 59), false}, // Saturday before the window
		{at(2026, 3, 7, 22, 0), true},
		{at(2026, 3, 8, 5, 59), true}, // Sunday morning: Saturday's window
		{at(2026, 3, 8, 6, 0), false},
		{at(2026, 3, 8, 23, 0), true},  // Sunday's own window
		{at(2026, 3, 9, 3, 0), true},   // Monday morning: Sunday's window
		{at(2026, 3, 9, 23, 0), false}, // Monday night: no window
		{at(2026, 3, 28, 23, 30), true},
		{at(2026, 3, 29, 5, 30), true}, // the night clocks go forward
	} {
		assert.Equal(t, c.want, w.Contains(c.t), "%s", c.t)
	}
	allDay := Window{Start: "00:00", End: "00:00"}
	assert.True(t, allDay.Contains(t0))
	office := Window{Days: []string{"mon"}, Start: "09:00", End: "17:00"}
	assert.True(t, office.Contains(t0))
	assert.False(t, office.Contains(t0.Add(24*time.Hour)))
	assert.False(t, Window{Start: "bad", End: "06:00"}.Contains(t0), "a malformed window contains nothing")
}

func TestRolloutValidation(t *testing.T) {
	base := newTestSession(1, 4).Spec
	for name, c := range map[string]struct {
		r     Rollout
		limit BootLimit
		field string
	}{
		"strategy":        {r: Rollout{Strategy: "fast"}, field: "strategy"},
		"order":           {r: Rollout{Order: "random"}, field: "order"},
		"lookahead":       {r: Rollout{Lookahead: -1}, field: "lookahead"},
		"batch":           {r: Rollout{BootBatchSize: -2, Strategy: StrategyRolling}, field: "boot_batch_size"},
		"batch classic":   {r: Rollout{BootBatchSize: 2}, field: "boot_batch_size"},
		"label rolling":   {r: Rollout{Strategy: StrategyRolling}, limit: LimitLabel, field: "boot_limit"},
		"label scheduled": {r: Rollout{Strategy: StrategyScheduled}, limit: LimitLabel, field: "boot_limit"},
		"reboot time":     {r: Rollout{Strategy: StrategyScheduled, RebootTime: -1}, field: "reboot_time"},
		"reboot rolling":  {r: Rollout{Strategy: StrategyRolling, RebootTime: Duration(time.Minute)}, field: "reboot_time"},
		"slack":           {r: Rollout{Strategy: StrategyScheduled, BookingSlack: -1}, field: "booking_slack"},
		"slack classic":   {r: Rollout{BookingSlack: Duration(time.Minute)}, field: "booking_slack"},
		"max failures":    {r: Rollout{MaxFailures: -1}, field: "max_failures"},
		"percent":         {r: Rollout{MaxFailurePercent: 101}, field: "max_failure_percent"},
		"drain timeout":   {r: Rollout{DrainTimeout: -1}, field: "drain_timeout"},
		"timeout action":  {r: Rollout{DrainTimeout: Duration(time.Hour), DrainTimeoutAction: "kill"}, field: "drain_timeout_action"},
		"action alone":    {r: Rollout{DrainTimeoutAction: DrainFail}, field: "drain_timeout_action"},
		"canary size":     {r: Rollout{Canary: []int{1, 5}}, field: "canary[1]"},
		"canary zero":     {r: Rollout{Canary: []int{0}}, field: "canary[0]"},
		"approval alone":  {r: Rollout{CanaryApproval: true}, field: "canary_approval"},
		"window time":     {r: Rollout{MaintenanceWindows: []Window{{Start: "25:00", End: "06:00"}}}, field: "maintenance_windows[0]"},
		"window day":      {r: Rollout{MaintenanceWindows: []Window{{Days: []string{"funday"}, Start: "01:00", End: "06:00"}}}, field: "maintenance_windows[0]"},
		"window timezone": {r: Rollout{MaintenanceWindows: []Window{{Start: "01:00", End: "06:00", TimeZone: "Mars/Olympus"}}}, field: "maintenance_windows[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			spec := base
			spec.Rollout = c.r
			if c.limit != "" {
				spec.BootLimit = c.limit
			}
			err := spec.Validate()
			require.ErrorIs(t, err, ErrInvalidSpec)
			var fe *FieldError
			require.True(t, errors.As(err, &fe))
			var fields []string
			for _, e := range unwrapAll(err) {
				if errors.As(e, &fe) {
					fields = append(fields, fe.Field)
				}
			}
			assert.Contains(t, fields, c.field)
		})
	}
	ok := base
	ok.Rollout = Rollout{Strategy: StrategyRolling, Order: OrderJobEnd, Lookahead: 10, BootBatchSize: 2, MaxFailures: 3,
		MaxFailurePercent: 5, DrainTimeout: Duration(time.Hour), DrainTimeoutAction: DrainRelease, Canary: []int{1, 4},
		CanaryApproval: true, MaintenanceWindows: []Window{{Days: []string{"sat"}, Start: "22:00", End: "06:00", TimeZone: "UTC"}}}
	assert.NoError(t, ok.Validate())
}

func unwrapAll(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	return []error{err}
}

func TestIsClassic(t *testing.T) {
	assert.True(t, Rollout{}.IsClassic())
	assert.True(t, Rollout{Strategy: StrategyClassic, Order: OrderListed}.IsClassic())
	assert.False(t, Rollout{Strategy: StrategyRolling}.IsClassic())
	assert.False(t, Rollout{DrainTimeout: 1}.IsClassic())
}

func TestStrategyBatches(t *testing.T) {
	for s, want := range map[Strategy]bool{"": false, StrategyClassic: false, StrategyRolling: true, StrategyScheduled: true} {
		if got := s.Batches(); got != want {
			t.Errorf("%q.Batches() = %v, want %v", s, got, want)
		}
	}
}

// TestDrainTimeoutCountsFromADrainShownAgain: a drain the workload
// manager showed lost (an outage kept it from the node, or someone resumed
// it) counts drain_timeout from when it shows again, not from the first
// request: the jobs that started meanwhile get the whole timeout.
func TestDrainTimeoutCountsFromADrainShownAgain(t *testing.T) {
	s := rollingSession(2, 1, Rollout{Strategy: StrategyRolling, DrainTimeout: Duration(time.Hour), DrainTimeoutAction: DrainFail})
	x := xnames(s, 0, 1)
	setPhase(s, PhaseQuiescing, t0, x[0])
	s.Node(x[0]).DrainRequested = t0
	undrained := wlm.Node{Name: x[0], State: wlm.StateAllocated}
	busyDrained := wlm.Node{Name: x[0], State: wlm.StateAllocated, Drain: true, Reason: ourReason}

	at := func(d time.Duration) time.Time { return t0.Add(d) }
	d := plan(t, s, observe(at(time.Minute)).node(x[0], undrained).obs)
	s.Apply(d, at(time.Minute))
	require.Equal(t, at(time.Minute), s.Node(x[0]).Undrained, "seen lost")

	// Shown again three hours after the request: not failed, and the
	// timeout counts from now.
	d = plan(t, s, observe(at(3*time.Hour)).node(x[0], busyDrained).obs)
	assert.Empty(t, actionsOf(d, ActFail))
	assert.Equal(t, at(4*time.Hour), d.Wake, "plan again an hour after the drain showed")
	s.Apply(d, at(3*time.Hour))
	assert.Equal(t, at(3*time.Hour), s.Node(x[0]).DrainTaken)
	assert.Zero(t, s.Node(x[0]).Undrained)

	d = plan(t, s, observe(at(3*time.Hour+59*time.Minute)).node(x[0], busyDrained).obs)
	assert.Empty(t, actionsOf(d, ActFail))
	d = plan(t, s, observe(at(4*time.Hour)).node(x[0], busyDrained).obs)
	require.Len(t, actionsOf(d, ActFail), 1, "an hour after the drain showed again")
	s.Apply(d, at(4*time.Hour))

	// Leaving the phases of a drain clears it, as Undrained.
	assert.Zero(t, s.Node(x[0]).DrainTaken)
}
