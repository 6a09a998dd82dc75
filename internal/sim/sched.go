package sim

import (
	"slices"
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
// expected free (by the running jobs' time limits, which is all a
// scheduler knows), and later jobs may start now if they end (by their
// limits) before it or use only nodes the reservation does not need.
// Nodes drained, rebooting or down are simply not free.
type scheduler struct {
	w    *fake.World
	jobs []job // to submit, in submit order

	mu      sync.Mutex
	base    time.Time
	next    int // next job of jobs to submit
	queue   []job
	running map[int]running
	seq     int
	started int
}

type running struct {
	end   time.Time // by its time limit
	width int
}

func newScheduler(w *fake.World, jobs []job) *scheduler {
	return &scheduler{w: w, jobs: jobs, base: w.Now(), running: map[int]running{}}
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

// start starts j on free nodes and records it as running.
func (s *scheduler) start(now time.Time, j job) bool {
	s.seq++
	id := s.seq
	ok := s.w.StartJobOnFree(j.width, j.run, j.limit, func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
	})
	if ok {
		s.running[id] = running{end: now.Add(j.limit), width: j.width}
		s.started++
	}
	return ok
}

// pass starts what can start now.
func (s *scheduler) pass() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.w.Now()
	free := s.w.FreeCount()
	for len(s.queue) > 0 && s.queue[0].width <= free {
		if !s.start(now, s.queue[0]) {
			return
		}
		free -= s.queue[0].width
		s.queue = s.queue[1:]
	}
	if len(s.queue) == 0 || free == 0 {
		return
	}
	// The reservation of the first job: when enough nodes are expected
	// free, and how many of those it leaves over.
	head := s.queue[0]
	ids := make([]int, 0, len(s.running))
	for id := range s.running {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int) int {
		if c := s.running[a].end.Compare(s.running[b].end); c != 0 {
			return c
		}
		return a - b
	})
	shadow, extra := time.Time{}, 0 // zero shadow: no reservation possible
	avail := free
	for _, id := range ids {
		avail += s.running[id].width
		if avail >= head.width {
			shadow, extra = s.running[id].end, avail-head.width
			break
		}
	}
	for i := 1; i < len(s.queue) && i <= backfillDepth && free > 0; {
		j := s.queue[i]
		if j.width <= free {
			before := shadow.IsZero() || !now.Add(j.limit).After(shadow)
			if before || j.width <= extra {
				if !s.start(now, j) {
					return
				}
				free -= j.width
				if !before {
					extra -= j.width
				}
				s.queue = slices.Delete(s.queue, i, i+1)
				continue
			}
		}
		i++
	}
}
