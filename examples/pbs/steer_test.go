package pbs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/examples/pbs"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// The in-memory server's vnode priorities: a job that names no node goes
// to the free node of highest priority, then of least name, as PBS's
// scheduler sorts vnodes by priority (sort_priority HIGH).

var _ pbs.Prioritizer = (*server)(nil)

func (s *server) SetPriority(ctx context.Context, prios map[string]int) error {
	unlock, err := s.manager(ctx, "qmgr")
	if err != nil {
		return err
	}
	defer unlock()
	for name, p := range prios {
		n, ok := s.nodes[name]
		if !ok {
			return fmt.Errorf("qmgr: Unknown node %s", name)
		}
		if p < -1024 || p > 1023 {
			return fmt.Errorf("qmgr: priority %d of %s out of -1024..1023", p, name)
		}
		n.priority = p
	}
	s.prioritySets++
	return nil
}

// pick returns the node a job that names no node starts on now: free, up,
// online and clear of reservations for its walltime, of highest priority,
// then of least name; "" if none. Callers hold the lock.
func (s *server) pick(now time.Time, limit time.Duration) string {
	best := ""
	for _, name := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[name]
		s.expire(n)
		if !n.up || n.offline || len(n.jobs) > 0 || !s.clear(name, now, now.Add(limit)) {
			continue
		}
		if best == "" || n.priority > s.nodes[best].priority {
			best = name
		}
	}
	return best
}

// priorities returns every node's priority.
func (s *server) priorities() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for name, n := range s.nodes {
		out[name] = n.priority
	}
	return out
}

// steerHarness runs the steering part of the conformance suite.
type steerHarness struct{ schedHarness }

var _ wlmtest.SteererHarness = steerHarness{}

// SubmitAny queues a job that names no node (qsub -l walltime=limit).
func (h steerHarness) SubmitAny(_ context.Context, limit time.Duration) (wlmtest.PlacedJob, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := &queued{limit: limit}
	h.queue = append(h.queue, q)
	h.dispatch()
	return job{h.server, q}, nil
}

// Node is where the job runs, "" until it starts.
func (j job) Node(context.Context) (string, error) {
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	j.s.dispatch()
	if !j.q.started {
		return "", nil
	}
	return j.q.node, nil
}

// TestSteererConformance: the adapter over a server with vnode priorities
// passes the suite's steering cases. The site gives its nodes distinct
// priorities (the last node first), so that steering must keep the
// site's order among the nodes it steers alike.
func TestSteererConformance(t *testing.T) {
	wlmtest.RunSteererTests(t, func(ctx context.Context, t *testing.T) (wlmtest.SteererHarness, error) {
		w := crustest.New(crustest.Options{Nodes: 4})
		srv := newServer(w, w.Names())
		for i, name := range w.Names() {
			srv.nodes[name].priority = 10 * i
		}
		return steerHarness{schedHarness{harness{w, srv}}}, nil
	}, wlmtest.Options{Settle: 10 * time.Minute, Poll: 30 * time.Second, ReadsSteering: true})
}

// TestSteerWithoutPriorities: over a server that sets no priorities the
// adapter says steering is unsupported, and crus does without it.
func TestSteerWithoutPriorities(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 2})
	srv := newServer(w, w.Names())
	m := pbs.NewScheduling(struct {
		pbs.Server
		pbs.Reserver
	}{srv, srv})
	err := m.Steer(context.Background(), w.Names(), true)
	if !errors.Is(err, wlm.ErrUnsupported) {
		t.Fatalf("Steer over a server without priorities: %v, want wlm.ErrUnsupported", err)
	}
	for name, p := range srv.priorities() {
		if p != 0 {
			t.Errorf("%s: priority %d changed", name, p)
		}
	}
}

// TestSteerRefused: a user who is not a PBS manager cannot set priorities:
// wlm.ErrPermissionDenied, nothing changed.
func TestSteerRefused(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 2})
	srv := newServer(w, w.Names())
	srv.notAdmin = true
	err := pbs.NewScheduling(srv).Steer(context.Background(), w.Names(), true)
	if !errors.Is(err, wlm.ErrPermissionDenied) {
		t.Fatalf("Steer as a plain user: %v, want wlm.ErrPermissionDenied", err)
	}
	for name, p := range srv.priorities() {
		if p != 0 {
			t.Errorf("%s: priority %d changed", name, p)
		}
	}
}
