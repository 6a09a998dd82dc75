package wlmtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
)

// SchedulerHarness is a Harness whose Manager implements wlm.Scheduler, and
// which can queue a job that may have to wait: what the tests of
// RunSchedulerTests need.
type SchedulerHarness interface {
	Harness
	// Submit queues a job for the node with this time limit; once started
	// it runs until stopped. It returns at once: the job may wait, as the
	// workload manager's own scheduler decides.
	Submit(ctx context.Context, node string, limit time.Duration) (Job, error)
}

// Job is a job queued by SchedulerHarness.Submit.
type Job interface {
	// Running reports whether the job has started.
	Running(ctx context.Context) (bool, error)
	// Stop cancels the job, started or not.
	Stop(ctx context.Context) error
}

// SchedulerHarnessMaker makes a new SchedulerHarness for one subtest.
type SchedulerHarnessMaker func(ctx context.Context, t *testing.T) (SchedulerHarness, error)

// resvPrefix names the suite's reservations; each subtest removes its own.
const resvPrefix = "wlmtest-"

// RunSchedulerTests checks the optional wlm.Scheduler capability:
// reservations made, listed by prefix, moved and deleted, idempotently;
// the error contract; and what reservations are for: a job whose time
// limit would cross a node's reservation does not start there, one that
// ends before it does, and nothing starts on a node whose reservation has
// begun. It skips when the harness's Manager does not implement
// wlm.Scheduler.
func RunSchedulerTests(t *testing.T, newHarness SchedulerHarnessMaker, opts Options) {
	t.Helper()
	runCapability(t, opts, newHarness, []capabilityCase[*schedSuite]{
		{"ReserveListUnreserve", (*schedSuite).reserveListUnreserve},
		{"ReserveMoves", (*schedSuite).reserveMoves},
		{"ReserveRefuses", (*schedSuite).reserveRefuses},
		{"ReserveUnknownInBatch", (*schedSuite).reserveUnknownInBatch},
		{"JobsHonourReservations", (*schedSuite).jobsHonourReservations},
		{"ActiveReservation", (*schedSuite).activeReservation},
	}, "the Manager cannot book nodes (wlm.Scheduler)", func(base suite, h SchedulerHarness) (*schedSuite, bool) {
		sch, ok := h.Manager().(wlm.Scheduler)
		return &schedSuite{suite: base, sh: h, sch: sch}, ok
	})
}

type schedSuite struct {
	suite
	sh   SchedulerHarness
	sch  wlm.Scheduler
	made []string
	jobs []Job
}

func (s *schedSuite) cleanup(ctx context.Context) {
	for _, j := range s.jobs {
		if err := j.Stop(ctx); err != nil {
			s.t.Errorf("stopping a job: %v", err)
		}
	}
	if len(s.made) > 0 {
		if err := s.sch.Unreserve(ctx, s.made); err != nil {
			s.t.Errorf("removing the suite's reservations %v: %v", s.made, err)
		}
	}
}

// reserve makes a reservation the suite removes at the end.
func (s *schedSuite) reserve(r wlm.Reservation) error {
	if !slices.Contains(s.made, r.Name) {
		s.made = append(s.made, r.Name)
	}
	return s.sch.Reserve(s.ctx, r)
}

// now returns the workload manager's time (real, or a harness's virtual
// clock), read from a reservation that starts now (a start in the past)
// and ends in 2100.
func (s *schedSuite) now() time.Time {
	s.t.Helper()
	name := resvPrefix + "clock"
	r := wlm.Reservation{Name: name, Nodes: s.nodes[:1], Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.must("Reserve", s.reserve(r))
	got := s.list(name)
	s.must("Unreserve", s.sch.Unreserve(s.ctx, []string{name}))
	if len(got) != 1 {
		s.t.Fatalf("Reservations(%q): %v, want the one just made", name, got)
	}
	return got[0].Start
}

func (s *schedSuite) list(prefix string) []wlm.Reservation {
	s.t.Helper()
	got, err := s.sch.Reservations(s.ctx, prefix)
	s.must("Reservations", err)
	return got
}

// same reports whether got is r, times to the second (Slurm's resolution).
func same(got, r wlm.Reservation) bool {
	nodes := slices.Clone(r.Nodes)
	slices.Sort(nodes)
	near := func(a, b time.Time) bool { d := a.Sub(b); return d > -time.Second && d < time.Second }
	return got.Name == r.Name && slices.Equal(got.Nodes, nodes) && near(got.Start, r.Start) && near(got.End, r.End)
}

func (s *schedSuite) reserveListUnreserve() {
	now := s.now()
	a := wlm.Reservation{Name: resvPrefix + "a-1", Nodes: []string{s.nodes[1], s.nodes[0]}, Start: now.Add(2 * time.Hour), End: now.Add(3 * time.Hour)}
	b := wlm.Reservation{Name: resvPrefix + "b-1", Nodes: []string{s.nodes[2]}, Start: now.Add(4 * time.Hour), End: now.Add(5 * time.Hour)}
	s.must("Reserve a", s.reserve(a))
	s.must("Reserve b", s.reserve(b))
	s.must("Reserve a again", s.reserve(a))
	got := s.list(resvPrefix + "a-")
	if len(got) != 1 || !same(got[0], a) {
		s.t.Fatalf("Reservations(%q) = %+v, want exactly %+v (nodes sorted)", resvPrefix+"a-", got, a)
	}
	got = s.list(resvPrefix)
	if len(got) != 2 || !same(got[0], a) || !same(got[1], b) {
		s.t.Fatalf("Reservations(%q) = %+v, want a then b", resvPrefix, got)
	}
	s.must("Unreserve", s.sch.Unreserve(s.ctx, []string{a.Name, b.Name}))
	if got := s.list(resvPrefix); len(got) != 0 {
		s.t.Fatalf("after Unreserve: %+v", got)
	}
	s.must("Unreserve again (gone already)", s.sch.Unreserve(s.ctx, []string{a.Name, b.Name}))
}

func (s *schedSuite) reserveMoves() {
	now := s.now()
	r := wlm.Reservation{Name: resvPrefix + "move-1", Nodes: s.nodes[:2], Start: now.Add(2 * time.Hour), End: now.Add(3 * time.Hour)}
	s.must("Reserve", s.reserve(r))
	r.Nodes, r.Start, r.End = s.nodes[1:3], now.Add(time.Hour), now.Add(4*time.Hour)
	s.must("Reserve (moved earlier, other nodes)", s.reserve(r))
	if got := s.list(r.Name); len(got) != 1 || !same(got[0], r) {
		s.t.Fatalf("after the move: %+v, want %+v", got, r)
	}
	r.Start, r.End = now.Add(6*time.Hour), now.Add(7*time.Hour)
	s.must("Reserve (moved later)", s.reserve(r))
	if got := s.list(r.Name); len(got) != 1 || !same(got[0], r) {
		s.t.Fatalf("after the move: %+v, want %+v", got, r)
	}
}

func (s *schedSuite) reserveRefuses() {
	now := s.now()
	for what, r := range map[string]wlm.Reservation{
		"a name with a blank":  {Name: "wlmtest bad Nodes=x", Nodes: s.nodes[:1], Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)},
		"no nodes":             {Name: resvPrefix + "empty", Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)},
		"an end before start":  {Name: resvPrefix + "backwards", Nodes: s.nodes[:1], Start: now.Add(2 * time.Hour), End: now.Add(time.Hour)},
		"an option for a name": {Name: "-h", Nodes: s.nodes[:1], Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)},
	} {
		if err := s.sch.Reserve(s.ctx, r); !errors.Is(err, wlm.ErrInvalidArgument) {
			s.t.Errorf("Reserve with %s: error %v, want wlm.ErrInvalidArgument", what, err)
		}
	}
	if _, err := s.sch.Reservations(s.ctx, ""); !errors.Is(err, wlm.ErrInvalidArgument) {
		s.t.Errorf("Reservations with no prefix: error %v, want wlm.ErrInvalidArgument", err)
	}
	if got := s.list(resvPrefix); len(got) != 0 {
		s.t.Errorf("refused reservations were made: %+v", got)
	}
}

func (s *schedSuite) reserveUnknownInBatch() {
	now := s.now()
	r := wlm.Reservation{Name: resvPrefix + "unknown-1", Nodes: []string{s.nodes[0], unknownNode}, Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}
	s.checkUnknown("Reserve", s.reserve(r))
	r.Nodes = s.nodes[:1]
	if got := s.list(r.Name); len(got) != 1 || !same(got[0], r) {
		s.t.Fatalf("Reserve with an unknown node: %+v, want the reservation of the known node %+v", got, r)
	}
}

// submit queues a job the suite stops at the end.
func (s *schedSuite) submit(node string, limit time.Duration) Job {
	s.t.Helper()
	j, err := s.sh.Submit(s.ctx, node, limit)
	s.must("Submit", err)
	s.jobs = append(s.jobs, j)
	return j
}

// running waits for the job to start, failing after Settle.
func (s *schedSuite) running(j Job, what string) {
	s.t.Helper()
	for waited := time.Duration(0); ; waited += s.opts.Poll {
		ok, err := j.Running(s.ctx)
		s.must("Running", err)
		if ok {
			return
		}
		if waited >= s.opts.Settle {
			s.t.Fatalf("%s: not started after %s", what, s.opts.Settle)
		}
		s.must("Sleep", s.h.Sleep(s.ctx, s.opts.Poll))
	}
}

// waiting checks the job does not start for a sixth of Settle.
func (s *schedSuite) waiting(j Job, what string) {
	s.t.Helper()
	for waited := time.Duration(0); waited < s.opts.Settle/6; waited += s.opts.Poll {
		ok, err := j.Running(s.ctx)
		s.must("Running", err)
		if ok {
			s.t.Fatalf("%s: started", what)
		}
		s.must("Sleep", s.h.Sleep(s.ctx, s.opts.Poll))
	}
}

func (s *schedSuite) jobsHonourReservations() {
	now := s.now()
	a, b := s.nodes[0], s.nodes[1]
	r := wlm.Reservation{Name: resvPrefix + "slot-1", Nodes: []string{a, b}, Start: now.Add(30 * time.Minute), End: now.Add(90 * time.Minute)}
	s.must("Reserve", s.reserve(r))
	long := s.submit(a, time.Hour)
	short := s.submit(b, 10*time.Minute)
	s.running(short, "a 10-minute job on a node reserved in 30 minutes")
	s.waiting(long, "a 1-hour job on a node reserved in 30 minutes")
	r.Start, r.End = now.Add(2*time.Hour), now.Add(3*time.Hour)
	s.must("Reserve (moved 2 hours on)", s.reserve(r))
	s.running(long, "a 1-hour job once the reservation moved 2 hours on")
}

func (s *schedSuite) activeReservation() {
	now := s.now()
	c := s.nodes[2]
	r := wlm.Reservation{Name: resvPrefix + "now-1", Nodes: []string{c}, Start: now.Add(-time.Minute), End: now.Add(time.Hour)}
	s.must("Reserve from now", s.reserve(r))
	j := s.submit(c, time.Minute)
	s.waiting(j, "a 1-minute job on a node whose reservation has begun")
	if n := s.one(c); !n.InService() || n.Busy() {
		s.t.Errorf("a reservation changed the node's state: %s (a node takes no new job while reserved, but is not drained)", n.Condition())
	}
	r.Start, r.End = now.Add(2*time.Hour), now.Add(3*time.Hour)
	s.must("Reserve (a begun reservation moved 2 hours on)", s.reserve(r))
	if got := s.list(r.Name); len(got) != 1 || !same(got[0], r) {
		s.t.Fatalf("after moving a begun reservation: %+v, want %+v", got, r)
	}
	s.running(j, "a 1-minute job once the reservation moved 2 hours on")
	s.must("Unreserve", s.sch.Unreserve(s.ctx, []string{r.Name}))
	if got := s.list(resvPrefix); len(got) != 0 {
		s.t.Errorf("after Unreserve: %+v", got)
	}
}
