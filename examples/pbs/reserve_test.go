package pbs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/examples/pbs"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// The in-memory server's reservations and scheduler. A maintenance
// reservation keeps off its hosts every job whose walltime would reach
// its start, and, from its start to its end, every new job; jobs running
// go on. Finished reservations are gone, as PBS deletes them.

var _ pbs.Reserver = (*server)(nil)

// queued is a job waiting for its node (qsub -l host=...), or for any
// node ("": the scheduler picks one when it starts it).
type queued struct {
	node    string
	limit   time.Duration
	id      string // once started
	stopped bool
	started bool
}

// dispatch starts the queued jobs that can start now, in order, and
// drops finished reservations: the scheduler's cycle, run whenever the
// server is asked anything. Callers hold the lock.
func (s *server) dispatch() {
	now := s.clock.Now()
	for id, r := range s.resv {
		if !now.Before(r.End) {
			delete(s.resv, id)
		}
	}
	for _, q := range s.queue {
		if q.started || q.stopped {
			continue
		}
		if q.node == "" {
			if q.node = s.pick(now, q.limit); q.node == "" {
				continue // no node free for it yet
			}
		}
		n, ok := s.nodes[q.node]
		if !ok || !n.up || n.offline {
			continue
		}
		s.expire(n)
		if len(n.jobs) > 0 || !s.clear(q.node, now, now.Add(q.limit)) {
			continue
		}
		s.jobID++
		q.id, q.started = fmt.Sprintf("%d.pbs", s.jobID), true
		// It runs until stopped; qstat shows when its walltime runs out.
		n.jobs[q.id] = pbsJob{end: now.Add(1000 * time.Hour), walltime: now.Add(q.limit)}
	}
}

// clear reports whether a job on host from start to end keeps clear of
// its reservations. Callers hold the lock.
func (s *server) clear(host string, start, end time.Time) bool {
	for _, r := range s.resv {
		if slices.Contains(r.Hosts, host) && r.End.After(start) && end.After(r.Start) {
			return false
		}
	}
	return true
}

func (s *server) Reservations(ctx context.Context) ([]pbs.Resv, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatch()
	now := s.clock.Now()
	var out []pbs.Resv
	for _, r := range s.resv {
		c := *r
		c.Hosts = slices.Clone(r.Hosts)
		c.Running = !now.Before(r.Start)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b pbs.Resv) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// timeOf is when a reservation may begin: not in the past (pbs_rsub's -R
// of a client that sends now for a start in the past), to the second.
func (s *server) timeOf(t time.Time) time.Time {
	return later(t, s.clock.Now()).Truncate(time.Second)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// manager checks a reservation command (cmd) may run: the context is
// live and the user is a PBS manager. On success it holds the lock and
// returns its release.
func (s *server) manager(ctx context.Context, cmd string) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.notAdmin {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", cmd, pbs.ErrUnauthorized)
	}
	return s.mu.Unlock, nil
}

func (s *server) Submit(ctx context.Context, name string, hosts []string, start, end time.Time) (string, error) {
	unlock, err := s.manager(ctx, "pbs_rsub")
	if err != nil {
		return "", err
	}
	defer unlock()
	for _, h := range hosts {
		if _, ok := s.nodes[h]; !ok {
			return "", fmt.Errorf("pbs_rsub: Unknown node %s", h)
		}
	}
	start = s.timeOf(start)
	if !end.After(start) {
		return "", fmt.Errorf("pbs_rsub: Bad time specification(s)")
	}
	s.resvID++
	s.made++
	id := fmt.Sprintf("M%d.pbs", s.resvID)
	if s.resv == nil {
		s.resv = map[string]*pbs.Resv{}
	}
	s.resv[id] = &pbs.Resv{ID: id, Name: name, Hosts: slices.Clone(hosts), Start: start, End: end.Truncate(time.Second)}
	s.dispatch()
	return id, nil
}

func (s *server) Alter(ctx context.Context, id string, start, end time.Time) error {
	unlock, err := s.manager(ctx, "pbs_ralter")
	if err != nil {
		return err
	}
	defer unlock()
	r, ok := s.resv[id]
	if !ok {
		return fmt.Errorf("pbs_ralter: Unknown Reservation Id %s", id)
	}
	start = s.timeOf(start)
	if !s.clock.Now().Before(r.Start) && !start.Equal(r.Start) {
		return fmt.Errorf("pbs_ralter: cannot change the start time of a running reservation %s", id)
	}
	if !end.After(start) {
		return fmt.Errorf("pbs_ralter: Bad time specification(s)")
	}
	r.Start, r.End = start, end.Truncate(time.Second)
	s.dispatch()
	return nil
}

func (s *server) Delete(ctx context.Context, id string) error {
	unlock, err := s.manager(ctx, "pbs_rdel")
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := s.resv[id]; !ok {
		return fmt.Errorf("pbs_rdel: Unknown Reservation Id %s", id)
	}
	delete(s.resv, id)
	s.dispatch()
	return nil
}

// schedHarness runs the reservation part of the conformance suite.
type schedHarness struct{ harness }

var _ wlmtest.SchedulerHarness = schedHarness{}

func (h schedHarness) Manager() wlm.Manager { return pbs.NewScheduling(h.server) }

// Submit queues a job for the node (qsub -l host=node,walltime=limit).
func (h schedHarness) Submit(_ context.Context, node string, limit time.Duration) (wlmtest.Job, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.nodes[node]; !ok {
		return nil, fmt.Errorf("qsub: Unknown node %s", node)
	}
	q := &queued{node: node, limit: limit}
	h.queue = append(h.queue, q)
	h.dispatch()
	return job{h.server, q}, nil
}

type job struct {
	s *server
	q *queued
}

func (j job) Running(context.Context) (bool, error) {
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	j.s.dispatch()
	return j.q.started, nil
}

func (j job) Stop(context.Context) error {
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	j.q.stopped = true
	if j.q.started {
		delete(j.s.nodes[j.q.node].jobs, j.q.id)
	}
	return nil
}

func TestSchedulerConformance(t *testing.T) {
	wlmtest.RunSchedulerTests(t, func(ctx context.Context, t *testing.T) (wlmtest.SchedulerHarness, error) {
		w := crustest.New(crustest.Options{Nodes: 4})
		return schedHarness{harness{w, newServer(w, w.Names())}}, nil
	}, wlmtest.Options{Settle: 10 * time.Minute, Poll: 30 * time.Second})
}

// TestConformanceScheduling: the adapter that books is a full Manager
// too.
func TestConformanceScheduling(t *testing.T) {
	wlmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
		w := crustest.New(crustest.Options{Nodes: 4})
		return schedHarness{harness{w, newServer(w, w.Names())}}, nil
	})
}

// sessionScheduled runs a scheduled session on 24 PBS nodes in steps of
// four, most of them running jobs with walltimes of up to 8 hours, and
// returns it with the server.
func sessionScheduled(t *testing.T, notAdmin bool) (*crus.Session, *server) {
	t.Helper()
	w := crustest.New(crustest.Options{Nodes: 24, WorkloadManagerType: "pbs", Seed: 3})
	srv := newServer(w, w.Names())
	srv.notAdmin = notAdmin
	w.UseManager(pbs.NewScheduling(srv), srv)
	for i, name := range w.Names() {
		if i%6 == 5 {
			continue // idle
		}
		if _, err := srv.run(name, time.Duration(1+(i*7)%16)*30*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	spec := w.Spec(4)
	spec.Rollout = crus.Rollout{Strategy: crus.StrategyScheduled}
	final := upgrade(t, w, srv, spec) // the kit's checks: the cap, no job lost, no reservation left
	if c := final.Counts(); c.Upgraded != 24 {
		t.Errorf("upgraded %d of 24: %+v", c.Upgraded, c)
	}
	if len(srv.resv) > 0 {
		t.Errorf("reservations left on the server: %v", srv.resv)
	}
	for name, p := range srv.priorities() {
		if p != 0 {
			t.Errorf("%s left at priority %d: steered, not given its place back", name, p)
		}
	}
	return final, srv
}

// TestSessionScheduled: the scheduled strategy books the nodes' slots with
// PBS maintenance reservations through the adapter, and removes them; it
// steers the nodes still to upgrade with their priorities, and gives
// every node its priority back.
func TestSessionScheduled(t *testing.T) {
	final, srv := sessionScheduled(t, false)
	if srv.made == 0 {
		t.Error("no reservation was made: the session ran as rolling")
	}
	if srv.prioritySets == 0 {
		t.Error("no priority was set: the session did not steer")
	}
	if msgs := strings.Join(final.Messages, "\n"); strings.Contains(msgs, "cannot book") || strings.Contains(msgs, "refuses reservations") {
		t.Errorf("the session said it could not book:\n%s", msgs)
	}
	t.Logf("%d reservations made", srv.made)
}

// TestSessionScheduledNotAdmin: run as a user who is not a PBS manager,
// the session goes on as rolling by expected job ends and says why.
func TestSessionScheduledNotAdmin(t *testing.T) {
	final, srv := sessionScheduled(t, true)
	if srv.made != 0 || srv.prioritySets != 0 {
		t.Errorf("%d reservations made and %d priority changes by a refused user", srv.made, srv.prioritySets)
	}
	if !slices.ContainsFunc(final.Messages, func(m string) bool {
		return strings.Contains(m, "refuses reservations to the user crus runs as") && strings.Contains(m, "Unauthorized Request")
	}) {
		t.Errorf("no message says reservations were refused:\n%s", strings.Join(final.Messages, "\n"))
	}
}
