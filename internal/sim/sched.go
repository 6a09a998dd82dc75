package sim

import (
	"sync"
	"time"

	"github.com/crus-go/crus/internal/fake"
)

// backfillDepth bounds how many queued jobs behind the first one a
// scheduling pass tries to backfill (Slurm's bf_max_job_test is of this
// order).
const backfillDepth = 200

// scheduler is a FCFS scheduler with EASY backfill: jobs start in submit
// order while they fit on the free nodes; when the first waiting job does
// not fit, it gets a reservation at the earliest time enough nodes are
// expected free for its whole time limit (by the running jobs' time
// limits, which is all a scheduler knows, counting only the nodes that
// will return to service: Slurm does not plan on drained nodes), and later
// jobs may start now if they end (by their limits) before it or use only
// nodes the reservation does not need.
type scheduler struct {
	w    *fake.World
	jobs []job // to submit, in submit order

	mu      sync.Mutex
	base    time.Time
	next    int // next job of jobs to submit
	queue   []job
	started int
}

func newScheduler(w *fake.World, jobs []job) *scheduler {
	return &scheduler{w: w, jobs: jobs, base: w.Now()}
}

// replay schedules the submission of each job at its submit time, one
// event at a time.
func (s *scheduler) replay() {
	if len(s.jobs) == 0 {
		return
	}
	s.w.Schedule(s.base.Add(s.jobs[0].submit), s.submit)
}

// submit queues the jobs due now, schedules the next submission and runs a
// scheduling pass.
func (s *scheduler) submit() {
	now := s.w.Now()
	s.mu.Lock()
	for s.next < len(s.jobs) && !s.base.Add(s.jobs[s.next].submit).After(now) {
		s.queue = append(s.queue, s.jobs[s.next])
		s.next++
	}
	if s.next < len(s.jobs) {
		s.w.Schedule(s.base.Add(s.jobs[s.next].submit), s.submit)
	}
	s.mu.Unlock()
	s.pass()
}

func (s *scheduler) startedJobs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// queued returns the jobs waiting and the nodes they ask for.
func (s *scheduler) queued() (jobs, nodes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.queue {
		nodes += j.width
	}
	return len(s.queue), nodes
}

// start starts j on free nodes.
func (s *scheduler) start(j job) bool {
	if !s.w.StartJobOnFree(j.width, j.user, j.run, j.limit, nil) {
		return false
	}
	s.started++
	return true
}

// pass starts what can start now.
func (s *scheduler) pass() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.w.Now()
	free := s.w.Free()
	defer func() { s.demand(now, free) }() // (whichever way it returns, free is the nodes free then)
	for len(s.queue) > 0 && s.queue[0].width <= free.For(now.Add(s.queue[0].limit)) {
		if !s.start(s.queue[0]) {
			return
		}
		s.queue = s.queue[1:]
		free = s.w.Free()
	}
	if len(s.queue) < 2 || free.Open+len(free.Until) == 0 {
		return
	}
	// The head's reservation, made when a job first fits: the outlook
	// sorts every node's windows, and in a loaded cluster most passes
	// find no job to backfill.
	var shadow time.Time
	extra, planned := 0, false
	for i := 1; i < len(s.queue) && i <= backfillDepth; {
		j := s.queue[i]
		if j.width <= free.For(now.Add(j.limit)) {
			if !planned {
				shadow, extra = shadowOf(s.queue[0], now, s.w.Outlook())
				planned = true
			}
			before := shadow.IsZero() || !now.Add(j.limit).After(shadow)
			if before || j.width <= extra {
				if !s.start(j) {
					return
				}
				if !before {
					extra -= j.width
				}
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				if free = s.w.Free(); free.Open+len(free.Until) == 0 {
					return
				}
				continue
			}
		}
		i++
	}
}

// demand tells the world whether a job the pass left waiting could start
// on the nodes crus keeps waiting, were they free: one of the jobs the
// pass looks at (the first and backfillDepth behind it) would fit on the
// free nodes and those. Callers hold s.mu; free is what is free now.
func (s *scheduler) demand(now time.Time, free fake.FreeNodes) {
	extra := s.w.Waiting()
	if extra == 0 || len(s.queue) == 0 {
		s.w.SetDemand(extra == 0 && len(s.queue) > 0) // (with no node waiting, nothing to count either way)
		return
	}
	wants := false
	for _, j := range s.queue[:min(len(s.queue), backfillDepth+1)] {
		if j.width <= free.For(now.Add(j.limit))+extra {
			wants = true
			break
		}
	}
	s.w.SetDemand(wants)
}

// shadowOf returns the reservation EASY backfill makes for the first
// waiting job: the earliest time enough nodes are expected free for its
// whole time limit (zero: never, by what the outlook says), and how many
// nodes expected free then it leaves over.
func shadowOf(head job, now time.Time, outlook []fake.Avail) (time.Time, int) {
	open := 0                // nodes of the entries so far that stay available for good
	var bounded []fake.Avail // entries so far available only until a reservation
	for i, a := range outlook {
		if a.Until.IsZero() {
			open += a.Nodes
		} else {
			bounded = append(bounded, a)
		}
		if i+1 < len(outlook) && outlook[i+1].From.Equal(a.From) {
			continue // take every entry of this time in
		}
		t := a.From
		if t.Before(now) {
			t = now
		}
		avail := open
		for _, b := range bounded {
			if !b.Until.Before(t.Add(head.limit)) {
				avail += b.Nodes
			}
		}
		if avail >= head.width {
			return t, avail - head.width
		}
	}
	return time.Time{}, 0
}
