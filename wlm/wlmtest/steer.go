package wlmtest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
)

// SteererHarness is a Harness whose Manager implements wlm.Steerer, and
// which can queue a job without naming its node and tell where it runs:
// what the tests of RunSteererTests need.
type SteererHarness interface {
	Harness
	// SubmitAny queues a one-node job with this time limit that names no
	// node: the workload manager's scheduler picks it one among Nodes(),
	// and may pick no other node (the harness's cluster or partition
	// holds no other). Once started it runs until stopped.
	SubmitAny(ctx context.Context, limit time.Duration) (PlacedJob, error)
}

// PlacedJob is a job queued by SteererHarness.SubmitAny.
type PlacedJob interface {
	Job
	// Node returns the node the job runs on, or "" while it has not
	// started.
	Node(ctx context.Context) (string, error)
}

// SteererHarnessMaker makes a new SteererHarness for one subtest.
type SteererHarnessMaker func(ctx context.Context, t *testing.T) (SteererHarness, error)

// RunSteererTests checks the optional wlm.Steerer capability through
// where the workload manager's scheduler puts a job that names no node:
// with every node but one steered last, on the one left; once every node
// has its place back, where it went before any steering; with every node
// steered alike, there too (the site's order stands). Steering twice and
// giving back the place of a node never steered change nothing, and an
// unknown node in a batch is reported as the error contract says while
// the known ones are steered. It skips when the harness's Manager does
// not implement wlm.Steerer.
//
// The scheduler must place a job the same way each time the suite's
// nodes are all idle and steered alike (Slurm: on the first node of
// lowest weight). Every subtest gives every node its place back at its
// end, whatever happened.
func RunSteererTests(t *testing.T, newHarness SteererHarnessMaker, opts Options) {
	t.Helper()
	runCapability(t, opts, newHarness, []capabilityCase[*steerSuite]{
		{"LastChoice", (*steerSuite).lastChoice},
		{"PlaceGivenBack", (*steerSuite).placeGivenBack},
		{"SiteOrderStands", (*steerSuite).siteOrderStands},
		{"SteerIdempotent", (*steerSuite).steerIdempotent},
		{"SteerUnknownInBatch", (*steerSuite).steerUnknownInBatch},
	}, "the Manager cannot steer jobs away from nodes (wlm.Steerer)", func(base suite, h SteererHarness) (*steerSuite, bool) {
		st, ok := h.Manager().(wlm.Steerer)
		return &steerSuite{suite: base, sh: h, st: st}, ok
	})
}

type steerSuite struct {
	suite
	sh   SteererHarness
	st   wlm.Steerer
	jobs []PlacedJob // not stopped yet
}

// cleanup stops the suite's jobs and gives every node its place back.
func (s *steerSuite) cleanup(ctx context.Context) {
	for _, j := range s.jobs {
		if err := j.Stop(ctx); err != nil {
			s.t.Errorf("stopping a job: %v", err)
		}
	}
	if err := s.st.Steer(ctx, s.nodes, false); err != nil {
		s.t.Errorf("giving every node its place back: %v", err)
	}
}

func (s *steerSuite) steer(what string, names []string, last bool) {
	s.t.Helper()
	s.must(what, s.st.Steer(s.ctx, names, last))
}

// place runs a job that names no node, once every node of the suite is
// idle, and returns the node it started on; the job is stopped before
// place returns.
func (s *steerSuite) place(what string) string {
	s.t.Helper()
	for _, n := range s.nodes {
		s.eventually(n, "idle, for a new job", func(n wlm.Node) bool { return n.InService() && !n.Busy() })
	}
	j, err := s.sh.SubmitAny(s.ctx, time.Hour)
	s.must("SubmitAny", err)
	s.jobs = append(s.jobs, j)
	defer func() {
		if err := j.Stop(s.ctx); err != nil {
			s.t.Errorf("stopping a job: %v", err) // cleanup tries again
			return
		}
		s.jobs = slices.DeleteFunc(s.jobs, func(o PlacedJob) bool { return o == j })
	}()
	for waited := time.Duration(0); ; waited += s.opts.Poll {
		node, err := j.Node(s.ctx)
		s.must("Node", err)
		if node != "" {
			if !slices.Contains(s.nodes, node) {
				s.t.Fatalf("%s: the job runs on %s, not one of the harness's nodes %v", what, node, s.nodes)
			}
			s.t.Logf("%s: a job that names no node runs on %s", what, node)
			return node
		}
		if waited >= s.opts.Settle {
			s.t.Fatalf("%s: a job that names no node not started after %s", what, s.opts.Settle)
		}
		s.must("Sleep", s.h.Sleep(s.ctx, s.opts.Poll))
	}
}

// baseline returns where a job goes before any steering, and another
// node of the suite to leave unsteered: one the scheduler would not pick
// by itself.
func (s *steerSuite) baseline() (first, other string) {
	s.t.Helper()
	first = s.place("before any steering")
	for _, n := range slices.Backward(s.nodes) {
		if n != first {
			return first, n
		}
	}
	panic("unreachable: the suite has at least 3 nodes")
}

// allBut returns the suite's nodes without keep.
func (s *steerSuite) allBut(keep string) []string {
	return slices.DeleteFunc(slices.Clone(s.nodes), func(n string) bool { return n == keep })
}

// checkPlaces checks the places the node reads report (wlm.Node.Steering):
// the nodes last steered last, the others not; an adapter that cannot
// tell says SteeringUnknown (unless Options.ReadsSteering).
func (s *steerSuite) checkPlaces(what string, last []string) {
	s.t.Helper()
	for _, n := range s.get(s.nodes...) {
		want := wlm.SteeringNone
		if slices.Contains(last, n.Name) {
			want = wlm.SteeringLast
		}
		if n.Steering == wlm.SteeringUnknown && s.opts.ReadsSteering {
			s.t.Errorf("%s: node %s reads as steered %s, want %s: the adapter is said to read steering (Options.ReadsSteering)", what, n.Name, n.Steering, want)
		}
		if n.Steering != wlm.SteeringUnknown && n.Steering != want {
			s.t.Errorf("%s: node %s reads as steered %s, want %s (or %s, for an adapter that cannot tell)", what, n.Name, n.Steering, want, wlm.SteeringUnknown)
		}
	}
}

func (s *steerSuite) lastChoice() {
	first, free := s.baseline()
	s.checkPlaces("before any steering", nil)
	s.steer("Steer every node but one last", s.allBut(free), true)
	s.checkPlaces("every node but "+free+" steered last", s.allBut(free))
	if got := s.place("every node but " + free + " steered last"); got != free {
		s.t.Errorf("with every node but %s steered last, a job went to %s (and to %s before any steering); want %s", free, got, first, free)
	}
}

func (s *steerSuite) placeGivenBack() {
	first, free := s.baseline()
	s.steer("Steer every node but one last", s.allBut(free), true)
	s.steer("give every node its place back", s.nodes, false)
	s.checkPlaces("every node given its place back", nil)
	if got := s.place("every node given its place back"); got != first {
		s.t.Errorf("with every node given its place back, a job went to %s; want %s, where it went before any steering", got, first)
	}
}

func (s *steerSuite) siteOrderStands() {
	first, _ := s.baseline()
	s.steer("Steer every node last", s.nodes, true)
	if got := s.place("every node steered last"); got != first {
		s.t.Errorf("with every node steered last, a job went to %s; want %s, where it went before any steering: among nodes steered alike the site's order stands", got, first)
	}
}

func (s *steerSuite) steerIdempotent() {
	first, free := s.baseline()
	s.must("Steer with no nodes", s.st.Steer(s.ctx, nil, true))
	s.steer("Steer every node but one last", s.allBut(free), true)
	s.steer("Steer them last again", s.allBut(free), true)
	s.steer("give its place back to the node never steered", []string{free}, false)
	if got := s.place("every node but " + free + " steered last twice, " + free + " given back a place it had"); got != free {
		s.t.Errorf("with every node but %s steered last twice and %s given back the place it had, a job went to %s; want %s", free, free, got, free)
	}
	// Once is enough to give the places back.
	s.steer("give every node its place back", s.nodes, false)
	if got := s.place("every node steered twice, then given its place back once"); got != first {
		s.t.Errorf("with every node steered twice then given its place back once, a job went to %s; want %s, where it went before any steering", got, first)
	}
	s.steer("give every node its place back again", s.nodes, false)
}

func (s *steerSuite) steerUnknownInBatch() {
	first, free := s.baseline()
	s.checkUnknown("Steer", s.st.Steer(s.ctx, append(s.allBut(free), unknownNode), true))
	if got := s.place("every node but " + free + " steered last, in a batch with an unknown node"); got != free {
		s.t.Errorf("with every node but %s steered last in a batch with an unknown node, a job went to %s; want %s: the known nodes must be steered", free, got, free)
	}
	s.checkUnknown("Steer (places given back)", s.st.Steer(s.ctx, append(slices.Clone(s.nodes), unknownNode), false))
	if got := s.place("every node given its place back, in a batch with an unknown node"); got != first {
		s.t.Errorf("with every node given its place back in a batch with an unknown node, a job went to %s; want %s: the known nodes must be given their place back", got, first)
	}
}
