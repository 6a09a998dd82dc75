// Package bostest is the conformance suite every bos.Orchestrator must
// pass: the in-memory one of crus's tests, the BOS v2 and v1 HTTP clients,
// and yours.
//
// It follows sessions from pending through running to complete (phases
// never go back; start and end times are set), and checks per-node
// outcomes (succeeded, failed with the orchestrator's reason, unknown
// nodes left out), whole-session failures (a session that finds no nodes
// completes with Status.Error), the fact the executor relies on that group
// membership is read while a session is pending, idempotency by name (the
// same request twice, or concurrently, reboots each node once; the name
// with other parameters is bos.ErrSessionExists), and the error contract
// (bos.ErrTemplateNotFound, bos.ErrSessionNotFound, bos.ErrInvalidRequest,
// all permanent; a cancelled context creates nothing).
//
// Use it from a test of your orchestrator's package:
//
//	func TestConformance(t *testing.T) {
//		bostest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (bostest.Harness, error) {
//			return newHarness(ctx, t) // your BOS, or a fake of it
//		})
//	}
package bostest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/conformance"
)

// Harness gives the suite an orchestrator, a template, nodes and a group.
type Harness interface {
	// Orchestrator returns the Orchestrator under test.
	Orchestrator() bos.Orchestrator
	// Template returns an existing session template whose boot set
	// targets the HSM group Label.
	Template() string
	// Label returns the group the template targets.
	Label() string
	// SetGroup sets the members of Label (in HSM, or the fake of it).
	SetGroup(ctx context.Context, members ...string) error
	// Nodes returns at least 4 node xnames the orchestrator can reboot.
	Nodes() []string
	// FailBoot makes the node's later boots fail with reason.
	FailBoot(xname, reason string)
	// Reboots returns how many times the node was rebooted so far.
	Reboots(xname string) int
	// Advance lets d of the orchestrator's time pass (a real sleep, or an
	// advance of a virtual clock).
	Advance(ctx context.Context, d time.Duration) error
	// Close releases the harness.
	Close(ctx context.Context) error
}

// HarnessMaker makes a new Harness for one subtest.
type HarnessMaker func(ctx context.Context, t *testing.T) (Harness, error)

// Options tune the suite for slow orchestrators.
type Options struct {
	// Settle bounds how long the suite waits for a session to complete.
	// Default 1h of the harness's time.
	Settle time.Duration
	// Poll is the interval between two Status calls while waiting.
	// Default 5s.
	Poll time.Duration
}

const missingTemplate = "crus-bostest-no-such-template"

// RunConformanceTests runs the suite with default options.
func RunConformanceTests(t *testing.T, newHarness HarnessMaker) {
	RunConformanceTestsWithOptions(t, newHarness, Options{})
}

// RunConformanceTestsWithOptions runs the suite.
func RunConformanceTestsWithOptions(t *testing.T, newHarness HarnessMaker, opts Options) {
	t.Helper()
	if opts.Settle == 0 {
		opts.Settle = time.Hour
	}
	if opts.Poll == 0 {
		opts.Poll = 5 * time.Second
	}
	tests := []struct {
		name string
		f    func(*suite)
	}{
		{"CheckTemplate", (*suite).checkTemplate},
		{"RebootXNames", (*suite).rebootXNames},
		{"RebootLabel", (*suite).rebootLabel},
		{"MembershipReadWhilePending", (*suite).membershipWhilePending},
		{"BootFailure", (*suite).bootFailure},
		{"NoNodesFound", (*suite).noNodes},
		{"Idempotent", (*suite).idempotent},
		{"IdempotentConcurrent", (*suite).concurrent},
		{"NameTakenByOtherParameters", (*suite).nameTaken},
		{"UnknownTemplate", (*suite).unknownTemplate},
		{"UnknownSession", (*suite).unknownSession},
		{"InvalidRequest", (*suite).invalid},
		{"StatusOfNodesOutsideTheSession", (*suite).outside},
		{"CanceledContext", (*suite).canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			h := conformance.Open(t, newHarness)
			nodes := h.Nodes()
			if len(nodes) < 4 {
				t.Fatalf("harness gives %d nodes, the suite needs at least 4", len(nodes))
			}
			name := strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
			tc.f(&suite{t: t, ctx: ctx, h: h, o: h.Orchestrator(), x: nodes, opts: opts, name: "crus-bostest-" + name[max(0, len(name)-60):]})
		})
	}
}

type suite struct {
	t    *testing.T
	ctx  context.Context
	h    Harness
	o    bos.Orchestrator
	x    []string
	opts Options
	name string // a session name unique to the subtest
}

func (s *suite) must(what string, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

func (s *suite) req(limit ...string) bos.Request {
	return bos.Request{Name: s.name, Template: s.h.Template(), Limit: limit}
}

var order = map[bos.Phase]int{bos.PhasePending: 0, bos.PhaseRunning: 1, bos.PhaseComplete: 2}

// follow polls the session until it completes, checking that its phase
// never goes back, and returns the final status.
func (s *suite) follow(name string, nodes []string) bos.Status {
	s.t.Helper()
	var waited time.Duration
	last := bos.PhasePending
	for {
		st, err := s.o.Status(s.ctx, name, nodes)
		s.must("Status", err)
		if _, ok := order[st.Phase]; !ok {
			s.t.Fatalf("Status: unknown phase %q", st.Phase)
		}
		if order[st.Phase] < order[last] {
			s.t.Fatalf("session %s went back from %s to %s", name, last, st.Phase)
		}
		last = st.Phase
		if st.Name != name {
			s.t.Errorf("Status.Name = %q, want %q", st.Name, name)
		}
		if st.StartTime.IsZero() {
			s.t.Errorf("session %s (%s) has no start time", name, st.Phase)
		}
		for x := range st.Nodes {
			if !slices.Contains(nodes, x) {
				s.t.Errorf("Status reports node %s, which was not asked about", x)
			}
		}
		if st.Phase == bos.PhaseComplete {
			if st.EndTime.IsZero() || st.EndTime.Before(st.StartTime) {
				s.t.Errorf("complete session %s: end time %v, start time %v", name, st.EndTime, st.StartTime)
			}
			return st
		}
		if st.Error != "" {
			s.t.Errorf("session %s is %s with an error %q; a whole-session error comes with complete", name, st.Phase, st.Error)
		}
		if waited >= s.opts.Settle {
			s.t.Fatalf("session %s not complete after %s: %+v", name, s.opts.Settle, st)
		}
		s.must("Advance", s.h.Advance(s.ctx, s.opts.Poll))
		waited += s.opts.Poll
	}
}

func (s *suite) want(st bos.Status, node string, r bos.Result) {
	s.t.Helper()
	got, ok := st.Nodes[node]
	switch {
	case r == bos.ResultInProgress && ok:
		s.t.Errorf("node %s: %+v, want it left out", node, got)
	case r != bos.ResultInProgress && got.Result != r:
		s.t.Errorf("node %s: %+v (reported %v), want %s", node, got, ok, r)
	}
}

func (s *suite) checkTemplate() {
	s.must("CheckTemplate", s.o.CheckTemplate(s.ctx, s.h.Template()))
	err := s.o.CheckTemplate(s.ctx, missingTemplate)
	if !errors.Is(err, bos.ErrTemplateNotFound) || !errors.Is(err, batch.ErrPermanent) {
		s.t.Errorf("CheckTemplate(%q): %v, want bos.ErrTemplateNotFound (permanent)", missingTemplate, err)
	}
	if err != nil && !strings.Contains(err.Error(), missingTemplate) {
		s.t.Errorf("error %q does not name the template", err)
	}
}

func (s *suite) rebootXNames() {
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0], s.x[1], s.x[2]))
	s.must("Reboot", s.o.Reboot(s.ctx, s.req(s.x[0], s.x[1])))
	st := s.follow(s.name, s.x[:3])
	if st.Error != "" {
		s.t.Errorf("session error %q", st.Error)
	}
	s.want(st, s.x[0], bos.ResultSucceeded)
	s.want(st, s.x[1], bos.ResultSucceeded)
	s.want(st, s.x[2], bos.ResultInProgress)
	for i, n := range []int{1, 1, 0} {
		if got := s.h.Reboots(s.x[i]); got != n {
			s.t.Errorf("node %s rebooted %d times, want %d", s.x[i], got, n)
		}
	}
}

func (s *suite) rebootLabel() {
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0], s.x[1]))
	s.must("Reboot", s.o.Reboot(s.ctx, s.req(s.h.Label())))
	st := s.follow(s.name, s.x[:3])
	s.want(st, s.x[0], bos.ResultSucceeded)
	s.want(st, s.x[1], bos.ResultSucceeded)
	s.want(st, s.x[2], bos.ResultInProgress)
	if got := s.h.Reboots(s.x[2]); got != 0 {
		s.t.Errorf("node %s outside the group rebooted %d times", s.x[2], got)
	}
}

// membershipWhilePending checks what crus's executor must respect: a
// session reads group membership while it is pending, so a change made
// then is what it boots.
func (s *suite) membershipWhilePending() {
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0]))
	s.must("Reboot", s.o.Reboot(s.ctx, s.req(s.h.Label())))
	st, err := s.o.Status(s.ctx, s.name, s.x[:2])
	s.must("Status", err)
	if st.Phase != bos.PhasePending {
		s.t.Skipf("the session is %s at once; pending cannot be observed", st.Phase)
	}
	s.must("SetGroup while pending", s.h.SetGroup(s.ctx, s.x[0], s.x[1]))
	st = s.follow(s.name, s.x[:2])
	s.want(st, s.x[0], bos.ResultSucceeded)
	s.want(st, s.x[1], bos.ResultSucceeded)
}

func (s *suite) bootFailure() {
	const reason = "kernel panic - not syncing: VFS: unable to mount root fs"
	s.h.FailBoot(s.x[1], reason)
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0], s.x[1]))
	s.must("Reboot", s.o.Reboot(s.ctx, s.req(s.h.Label())))
	st := s.follow(s.name, s.x[:2])
	s.want(st, s.x[0], bos.ResultSucceeded)
	s.want(st, s.x[1], bos.ResultFailed)
	if r := st.Nodes[s.x[1]].Reason; !strings.Contains(r, "kernel panic") {
		s.t.Errorf("failed node's reason %q does not carry the orchestrator's %q", r, reason)
	}
	if st.Error != "" {
		s.t.Errorf("one node failing is not a whole-session error: %q", st.Error)
	}
}

func (s *suite) noNodes() {
	s.must("SetGroup", s.h.SetGroup(s.ctx))
	s.must("Reboot", s.o.Reboot(s.ctx, s.req(s.h.Label())))
	st := s.follow(s.name, s.x[:2])
	if st.Error == "" {
		s.t.Errorf("a session that found no nodes completed without an error: %+v", st)
	}
	for _, x := range s.x[:2] {
		if st.Nodes[x].Result == bos.ResultSucceeded {
			s.t.Errorf("node %s reported booted by a session that found no nodes", x)
		}
		if n := s.h.Reboots(x); n != 0 {
			s.t.Errorf("node %s rebooted %d times", x, n)
		}
	}
}

func (s *suite) idempotent() {
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0], s.x[1]))
	req := s.req(s.x[0], s.x[1])
	s.must("Reboot", s.o.Reboot(s.ctx, req))
	s.must("Reboot again while pending", s.o.Reboot(s.ctx, req))
	s.follow(s.name, req.Limit)
	s.must("Reboot again once complete", s.o.Reboot(s.ctx, req))
	st := s.follow(s.name, req.Limit)
	s.want(st, s.x[0], bos.ResultSucceeded)
	for _, x := range req.Limit {
		if n := s.h.Reboots(x); n != 1 {
			s.t.Errorf("node %s rebooted %d times by three identical requests, want 1", x, n)
		}
	}
}

func (s *suite) concurrent() {
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0], s.x[1]))
	req := s.req(s.x[0], s.x[1])
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.o.Reboot(s.ctx, req) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			s.t.Errorf("concurrent Reboot #%d: %v", i, err)
		}
	}
	s.follow(s.name, req.Limit)
	for _, x := range req.Limit {
		if n := s.h.Reboots(x); n != 1 {
			s.t.Errorf("node %s rebooted %d times by concurrent identical requests, want 1", x, n)
		}
	}
}

func (s *suite) nameTaken() {
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0], s.x[1]))
	s.must("Reboot", s.o.Reboot(s.ctx, s.req(s.x[0])))
	err := s.o.Reboot(s.ctx, s.req(s.x[0], s.x[1]))
	if !errors.Is(err, bos.ErrSessionExists) || !errors.Is(err, batch.ErrPermanent) {
		s.t.Errorf("Reboot of a taken name with another limit: %v, want bos.ErrSessionExists (permanent)", err)
	}
	if err != nil && !strings.Contains(err.Error(), s.name) {
		s.t.Errorf("error %q does not name the session", err)
	}
	s.follow(s.name, s.x[:2])
	if n := s.h.Reboots(s.x[1]); n != 0 {
		s.t.Errorf("refused request rebooted %s %d times", s.x[1], n)
	}
}

func (s *suite) unknownTemplate() {
	req := s.req(s.x[0])
	req.Template = missingTemplate
	err := s.o.Reboot(s.ctx, req)
	if !errors.Is(err, bos.ErrTemplateNotFound) || !errors.Is(err, batch.ErrPermanent) {
		s.t.Errorf("Reboot with an unknown template: %v, want bos.ErrTemplateNotFound (permanent)", err)
	}
	if _, err := s.o.Status(s.ctx, s.name, nil); !errors.Is(err, bos.ErrSessionNotFound) {
		s.t.Errorf("after a refused Reboot, Status: %v; want bos.ErrSessionNotFound", err)
	}
}

func (s *suite) unknownSession() {
	_, err := s.o.Status(s.ctx, s.name, s.x[:1])
	if !errors.Is(err, bos.ErrSessionNotFound) || !errors.Is(err, batch.ErrPermanent) {
		s.t.Errorf("Status of an unknown session: %v, want bos.ErrSessionNotFound (permanent)", err)
	}
	if err != nil && !strings.Contains(err.Error(), s.name) {
		s.t.Errorf("error %q does not name the session", err)
	}
}

func (s *suite) invalid() {
	for what, req := range map[string]bos.Request{
		"a name with a space": {Name: "crus bostest", Template: s.h.Template(), Limit: s.x[:1]},
		"an empty name":       {Name: "", Template: s.h.Template(), Limit: s.x[:1]},
		"no limit":            {Name: s.name, Template: s.h.Template()},
	} {
		if err := s.o.Reboot(s.ctx, req); !errors.Is(err, bos.ErrInvalidRequest) || !errors.Is(err, batch.ErrPermanent) {
			s.t.Errorf("Reboot with %s: %v, want bos.ErrInvalidRequest (permanent)", what, err)
		}
	}
	if _, err := s.o.Status(s.ctx, s.name, nil); !errors.Is(err, bos.ErrSessionNotFound) {
		s.t.Errorf("after refused Reboots, Status: %v; want bos.ErrSessionNotFound", err)
	}
}

func (s *suite) outside() {
	s.must("SetGroup", s.h.SetGroup(s.ctx, s.x[0], s.x[3]))
	s.must("Reboot", s.o.Reboot(s.ctx, s.req(s.x[0])))
	st := s.follow(s.name, []string{s.x[0], s.x[3], "x9999c7s31b1n1"})
	s.want(st, s.x[0], bos.ResultSucceeded)
	s.want(st, s.x[3], bos.ResultInProgress)
	s.want(st, "x9999c7s31b1n1", bos.ResultInProgress)
}

func (s *suite) canceled() {
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	if err := s.o.Reboot(ctx, s.req(s.x[0])); !errors.Is(err, context.Canceled) {
		s.t.Errorf("Reboot with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := s.o.Status(ctx, s.name, nil); !errors.Is(err, context.Canceled) {
		s.t.Errorf("Status with a canceled context: %v, want context.Canceled", err)
	}
	if err := s.o.CheckTemplate(ctx, s.h.Template()); !errors.Is(err, context.Canceled) {
		s.t.Errorf("CheckTemplate with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := s.o.Status(s.ctx, s.name, nil); !errors.Is(err, bos.ErrSessionNotFound) {
		s.t.Errorf("after a canceled Reboot, Status: %v; want bos.ErrSessionNotFound", err)
	}
	if n := s.h.Reboots(s.x[0]); n != 0 {
		s.t.Errorf("canceled Reboot rebooted %s %d times", s.x[0], n)
	}
}

// String is for debugging.
func (o Options) String() string { return fmt.Sprintf("settle %s, poll %s", o.Settle, o.Poll) }
