package crus

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/wlm"
)

// scheduledSession is a session of n nodes, step step, with the scheduled
// strategy.
func scheduledSession(n, step int) *Session {
	s := newTestSession(n, step)
	s.Rollout = Rollout{Strategy: StrategyScheduled}
	s.Spec = s.Spec.WithDefaults()
	for i := range s.Progress.Nodes {
		s.Progress.Nodes[i].Step = 0
	}
	s.Progress.Steps = 0
	return s
}

// scheduling makes the observation one of a workload manager that can
// book nodes, with these bookings held.
func (w *world) scheduling(held ...Booking) *world {
	w.obs.Scheduling, w.obs.BookingsObserved = true, true
	w.obs.Bookings = map[string]Booking{}
	for _, b := range held {
		w.obs.Bookings[b.Name] = b
	}
	w.obs.Horizon = 2 * time.Minute
	return w
}

func (w *world) busy(end time.Time, xs ...string) *world {
	if w.obs.JobEnds == nil {
		w.obs.JobEnds = map[string]time.Time{}
	}
	for _, x := range xs {
		w.node(x, wlm.Node{Name: x, State: wlm.StateAllocated, BootTime: t0.Add(-24 * time.Hour)})
		w.obs.JobEnds[x] = end
	}
	return w
}

func bookingNames(as []Action) []string {
	var out []string
	for _, a := range as {
		if a.Kind == ActUnbook {
			out = append(out, a.Unbook...)
			continue
		}
		out = append(out, a.Booking.Name)
	}
	return out
}

// TestPlanScheduled: idle nodes are taken within the cap; a busy node
// whose slot comes soon after its jobs end is booked from its slot; one
// that would wait long for its turn is left to work; bookings no longer
// wanted are deleted.
func TestPlanScheduled(t *testing.T) {
	s := scheduledSession(6, 2)
	x := nodes(s, 0)
	now := t0.Add(time.Hour)
	stale := Booking{Name: "crus-u1-99", Nodes: []string{x[5]}, Start: now.Add(8 * time.Hour), End: now.Add(9 * time.Hour)}
	w := observe(now).scheduling(stale).
		idle(x[0], x[1], x[2]).              // two lanes: two of them taken, the third waits 15m (> the slack): neither
		busy(now.Add(40*time.Minute), x[3]). // lanes free at 15m: booked at its end
		busy(now.Add(5*time.Hour), x[4]).    // booked at its end
		busy(now.Add(-time.Hour), x[5])      // overdue, waits for a lane: not booked; its stale booking goes
	d := plan(t, s, w.obs)
	require.Len(t, actionsOf(d, ActDrain), 1)
	assert.Equal(t, []string{x[0], x[1]}, actionsOf(d, ActDrain)[0].Nodes)
	books := actionsOf(d, ActBook)
	require.Len(t, books, 2, "%+v", books)
	for _, b := range books {
		assert.Contains(t, b.Booking.Name, "crus-u1-")
		assert.Equal(t, b.Nodes, b.Booking.Nodes)
		assert.False(t, b.Booking.Start.Before(now.Add(2*time.Minute)), "never sooner than the horizon")
	}
	assert.Equal(t, []string{x[3]}, books[0].Nodes)
	assert.Equal(t, now.Add(40*time.Minute), books[0].Booking.Start, "its slot, in its 5-minute bucket")
	assert.Equal(t, []string{x[4]}, books[1].Nodes)
	assert.Equal(t, []string{"crus-u1-99"}, bookingNames(actionsOf(d, ActUnbook)))

	// Held as wanted: nothing to change.
	again := observe(now).scheduling(books[0].Booking, books[1].Booking).
		idle(x[0], x[1], x[2]).busy(now.Add(40*time.Minute), x[3]).busy(now.Add(5*time.Hour), x[4]).busy(now.Add(-time.Hour), x[5])
	d = plan(t, s, again.obs)
	assert.Empty(t, actionsOf(d, ActBook))
	assert.Empty(t, actionsOf(d, ActUnbook))

	// Cancelled: every booking goes, and the session ends only after.
	s.Progress.Cancel = true
	d = plan(t, s, again.group().obs)
	assert.False(t, d.Done)
	assert.ElementsMatch(t, []string{books[0].Booking.Name, books[1].Booking.Name}, bookingNames(actionsOf(d, ActUnbook)))
	assert.Empty(t, actionsOf(d, ActDrain))
}

// TestPlanScheduledBusyDue: with room and only busy nodes whose jobs are
// due, they are taken (drained) rather than waited for; without
// wlm.Scheduler the strategy is rolling by expected ends.
func TestPlanScheduledBusyDue(t *testing.T) {
	s := scheduledSession(3, 2)
	x := nodes(s, 0)
	now := t0.Add(time.Hour)
	w := observe(now).scheduling().busy(now.Add(-time.Minute), x[0]).busy(now.Add(3*time.Hour), x[1]).busy(now.Add(-2*time.Minute), x[2])
	d := plan(t, s, w.obs)
	require.Len(t, actionsOf(d, ActDrain), 1)
	assert.Equal(t, []string{x[0], x[2]}, actionsOf(d, ActDrain)[0].Nodes, "the due ones")

	w = observe(now).busy(now.Add(-time.Minute), x[0]).busy(now.Add(3*time.Hour), x[1]).busy(now.Add(-2*time.Minute), x[2])
	d = plan(t, s, w.obs)
	require.Len(t, actionsOf(d, ActDrain), 1)
	assert.Equal(t, []string{x[0], x[2]}, actionsOf(d, ActDrain)[0].Nodes, "rolling, job_end: the two that end first")
	assert.Empty(t, actionsOf(d, ActBook), "no wlm.Scheduler: nothing booked")
}

// TestPlanScheduledCleanup: a session ends only once its bookings are
// gone.
func TestPlanScheduledCleanup(t *testing.T) {
	s := scheduledSession(1, 1)
	x := nodes(s, 0)
	setPhase(s, PhaseDone, t0, x...)
	s.Progress.Nodes[0].Outcome, s.Progress.Nodes[0].Grouped = OutcomeUpgraded, false
	left := Booking{Name: "crus-u1-3", Nodes: x, Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
	d := plan(t, s, observe(t0).group().scheduling(left).obs)
	assert.False(t, d.Done)
	assert.Equal(t, []string{"crus-u1-3"}, bookingNames(actionsOf(d, ActUnbook)))
	w := observe(t0).group().scheduling()
	w.obs.BookingsObserved = false
	d = plan(t, s, w.obs)
	assert.False(t, d.Done, "the bookings must be read first")
	d = plan(t, s, observe(t0).group().scheduling().obs)
	assert.True(t, d.Done)
}

// TestPlanScheduledKeepsBookings: a node whose jobs are cleaning up, or
// whose end is not known for a moment, keeps its booking (a long job
// would otherwise start on it the moment it is free).
func TestPlanScheduledKeepsBookings(t *testing.T) {
	s := scheduledSession(3, 1)
	x := nodes(s, 0)
	now := t0.Add(time.Hour)
	held := Booking{Name: "crus-u1-20", Nodes: []string{x[1], x[2]}, Start: now.Add(40 * time.Minute), End: now.Add(65 * time.Minute)}
	w := observe(now).scheduling(held).busy(now.Add(time.Hour), x[0])
	w.node(x[1], wlm.Node{Name: x[1], State: wlm.StateIdle, Completing: true}) // its job just ended
	w.node(x[2], wlm.Node{Name: x[2], State: wlm.StateAllocated})              // no end known
	setPhase(s, PhaseBooting, now.Add(-5*time.Minute), x[0])                   // the one lane is taken
	s.Node(x[0]).Phase = PhaseBooting
	d := plan(t, s, w.obs)
	assert.Empty(t, actionsOf(d, ActUnbook), "nothing dropped")
	for _, a := range actionsOf(d, ActBook) {
		assert.Contains(t, a.Nodes, x[2], "the node without a known end stays in its booking")
	}
}

// TestPlanScheduledWithinWindow: a booking that would begin once the
// maintenance windows have closed is not made (it would keep long jobs off
// its nodes for a slot at which no node can be taken); one that begins
// before they close is.
func TestPlanScheduledWithinWindow(t *testing.T) {
	s := scheduledSession(6, 2)
	// Monday 22:00 to Tuesday 06:00, then Tuesday 06:00 to 07:00: one
	// stretch, open until 07:00.
	s.Rollout.MaintenanceWindows = []Window{
		{Days: []string{"mon"}, Start: "22:00", End: "06:00"},
		{Days: []string{"tue"}, Start: "06:00", End: "07:00"},
	}
	x := nodes(s, 0)
	now := time.Date(2026, 3, 3, 5, 0, 0, 0, time.UTC) // Tuesday 05:00
	w := observe(now).scheduling().
		busy(now.Add(40*time.Minute), x[3]). // slot before 07:00: booked
		busy(now.Add(5*time.Hour), x[4])     // slot at 10:00: not booked
	d := plan(t, s, w.obs)
	books := actionsOf(d, ActBook)
	require.Len(t, books, 1, "%+v", books)
	assert.Equal(t, []string{x[3]}, books[0].Nodes)

	// Without the windows, both are booked.
	s.Rollout.MaintenanceWindows = nil
	d = plan(t, s, observe(now).scheduling().busy(now.Add(40*time.Minute), x[3]).busy(now.Add(5*time.Hour), x[4]).obs)
	assert.Len(t, actionsOf(d, ActBook), 2)
}

func TestWindowsCloses(t *testing.T) {
	night := Window{Days: []string{"mon", "tue"}, Start: "22:00", End: "06:00"}
	ws := Rollout{MaintenanceWindows: []Window{night}}.windows()
	tue := func(h int) time.Time { return time.Date(2026, 3, 3, h, 0, 0, 0, time.UTC) }
	assert.Equal(t, tue(6), ws.closes(tue(5)), "inside Monday's night")
	assert.True(t, ws.closes(tue(12)).IsZero(), "closed at noon")
	assert.Equal(t, tue(24+6), ws.closes(tue(23)), "inside Tuesday's night")
	assert.True(t, Rollout{}.windows().closes(tue(5)).IsZero(), "no windows: never closes")
	always := Rollout{MaintenanceWindows: []Window{{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Start: "00:00", End: "00:00"}}}.windows()
	assert.True(t, always.closes(tue(5)).After(tue(5).Add(7*24*time.Hour)), "open every day: not within a week")
}

func TestBookWhy(t *testing.T) {
	start := time.Date(2026, 12, 1, 15, 4, 5, 0, time.FixedZone("CET", 3600))
	for n, nodes := range map[int]string{0: "0 nodes", 1: "1 node", 2: "2 nodes", 1000: "1000 nodes"} {
		want := "book " + nodes + " from 2026-12-01T14:04:05Z, their expected slot, so that only jobs that end by then start there"
		if got := string(bookWhy([]byte("junk"), n, start)[4:]); got != want {
			t.Errorf("bookWhy(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		n    int
		noun string
		want string
	}{{0, "node", "0 nodes"}, {1, "node", "1 node"}, {2, "node", "2 nodes"}, {1, "batch", "1 batch"},
		{3, "batch", "3 batches"}, {2, "bus", "2 buses"}, {4, "push", "4 pushes"}, {-1, "node", "-1 nodes"}} {
		if got := plural(tc.n, tc.noun); got != tc.want {
			t.Errorf("plural(%d, %q) = %q, want %q", tc.n, tc.noun, got, tc.want)
		}
	}
}
