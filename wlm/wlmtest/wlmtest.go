// Package wlmtest is the conformance suite every wlm.Manager must pass: the
// in-memory one of crus's tests, the Slurm adapters, and yours.
//
// It checks the state model (idle, busy, draining, drained, failed), the
// error contract (unknown nodes reported per node with
// wlm.ErrNodeNotFound and named in the message, refused arguments with
// wlm.ErrInvalidArgument, the other nodes of a batch still acted on) and
// idempotency (drain, resume and fail twice). An adapter that passes it
// needs no further unit tests of these semantics.
//
// Reasons: the suite drains and fails with reasons shaped like crus's
// ("crus <upgrade-id>: rolling upgrade, step 1 of 3"), one of them exactly
// wlm.MaxReason bytes long, and requires Node.Reason to read back
// beginning with the reason given, unchanged: the reason set, or the
// reason set with more after it, but never cut, nor with anything before
// it. crus recognises its own drains and fails by their reason alone, and
// leaves a node whose reason it does not recognise drained, as drained by
// someone else.
//
// A harness that can also reboot a node ([Rebooter]) has the suite check
// what crus relies on through a reboot: while the node is down the
// adapter reads it not in service and not responding; once it is back it
// reports a newer boot time (with wlm.BootTimeReporter), a drain or a
// fail set before the reboot is still there with its reason, and Resume
// puts the node back in service even when the workload manager takes it
// out once more as its agent registers (Slurm: "Node unexpectedly
// rebooted"), as crus does: it resumes until the node stays in service.
//
// Use it from a test of your adapter's package:
//
//	func TestConformance(t *testing.T) {
//		wlmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
//			return newHarness(ctx, t) // your cluster, or a fake of it
//		})
//	}
package wlmtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/conformance"
	"github.com/crus-go/crus/wlm"
)

// Harness gives the suite a workload manager and a few nodes to play with.
type Harness interface {
	// Manager returns the Manager under test.
	Manager() wlm.Manager
	// Nodes returns the names of at least 3 nodes the suite may drain,
	// fail and resume: each up, in service and idle.
	Nodes() []string
	// StartJob starts a job on the node (in service, idle) that runs until
	// the returned stop function is called. The suite waits (with Sleep)
	// until the job shows.
	StartJob(ctx context.Context, node string) (stop func(context.Context) error, err error)
	// Sleep lets d of the workload manager's time pass (a real sleep, or
	// an advance of a virtual clock).
	Sleep(ctx context.Context, d time.Duration) error
	// Close releases the harness: the suite's nodes must be left in
	// service and idle for the next harness.
	Close(ctx context.Context) error
}

// Rebooter is an optional capability of a Harness: it reboots nodes
// behind the workload manager's back, in two halves, as a boot
// orchestrator does (package bos). With it the suite runs its Reboot
// test; without it that test is skipped.
//
// The same two methods let the boot orchestrator of package crustest
// reboot the nodes of your workload manager in an end-to-end test
// (crustest.World.UseManager): implement them once on your harness.
type Rebooter interface {
	// PowerOff stops the node as a reboot does: its agent stops answering
	// and any jobs on it are lost. It returns at once; the workload
	// manager notices in its own time (Slurm: when its next ping fails)
	// and the suite waits for that, up to Options.Settle.
	PowerOff(ctx context.Context, node string) error
	// PowerOn boots the node again: its agent starts and registers with
	// the workload manager, reporting that the node booted now.
	PowerOn(ctx context.Context, node string) error
}

// HarnessMaker makes a new Harness for one subtest.
type HarnessMaker func(ctx context.Context, t *testing.T) (Harness, error)

// Options tune the suite for slow workload managers. A negative duration
// fails the suite at once, naming the option: a negative Poll would make
// every wait endless, a negative Settle every wait fail.
type Options struct {
	// Settle bounds how long the suite waits for a state change to show
	// (a job to start or end, a drain to complete). Default (zero) 30s of
	// the harness's time.
	Settle time.Duration
	// Poll is the interval between two reads while waiting. Default
	// (zero) 250ms.
	Poll time.Duration
	// ReadsSteering says the adapter's node reads tell a node's place in
	// the scheduler's choice (wlm.Node.Steering): the Steerer suite then
	// fails a read of wlm.SteeringUnknown. Without it, an adapter may
	// report SteeringUnknown, and otherwise what it reports is checked
	// all the same.
	ReadsSteering bool
}

const unknownNode = "crus-wlmtest-no-such-node"

// RunConformanceTests runs the suite with default options.
func RunConformanceTests(t *testing.T, newHarness HarnessMaker) {
	RunConformanceTestsWithOptions(t, newHarness, Options{})
}

// RunConformanceTestsWithOptions runs the suite.
func RunConformanceTestsWithOptions(t *testing.T, newHarness HarnessMaker, opts Options) {
	t.Helper()
	runCapability(t, opts, newHarness, []capabilityCase[*suite]{
		{"NodesInService", (*suite).nodesInService},
		{"NodesEmpty", (*suite).nodesEmpty},
		{"NodesUnknown", (*suite).nodesUnknown},
		{"NodesInto", (*suite).nodesInto},
		{"DrainIdle", (*suite).drainIdle},
		{"DrainBusy", (*suite).drainBusy},
		{"DrainIdempotent", (*suite).drainIdempotent},
		{"DrainNeedsReason", (*suite).drainNeedsReason},
		{"DrainUnknownInBatch", (*suite).drainUnknownInBatch},
		{"LongReason", (*suite).longReason},
		{"ResumeIdempotent", (*suite).resumeIdempotent},
		{"ResumeUnknownInBatch", (*suite).resumeUnknownInBatch},
		{"Fail", (*suite).fail},
		{"FailIdempotent", (*suite).failIdempotent},
		{"FailNeedsReason", (*suite).failNeedsReason},
		{"FailUnknownInBatch", (*suite).failUnknownInBatch},
		{"BootTime", (*suite).bootTime},
		{"JobEnds", (*suite).jobEnds},
		{"CanceledContext", (*suite).canceledContext},
		{"Describe", (*suite).describe},
		{"Reboot", (*suite).reboot},
	}, "", func(base suite, _ Harness) (*suite, bool) { return &base, true })
}

type suite struct {
	t     *testing.T
	ctx   context.Context
	h     Harness
	m     wlm.Manager
	nodes []string
	opts  Options
}

func (s *suite) get(names ...string) []wlm.Node {
	s.t.Helper()
	nodes, err := s.m.Nodes(s.ctx, names)
	if err != nil {
		s.t.Fatalf("Nodes(%v): %v", names, err)
	}
	if len(nodes) != len(names) {
		s.t.Fatalf("Nodes(%v) returned %d nodes, want %d", names, len(nodes), len(names))
	}
	for i, n := range nodes {
		if n.Name != names[i] {
			s.t.Fatalf("Nodes(%v)[%d] is %q, want %q (the order asked)", names, i, n.Name, names[i])
		}
	}
	return nodes
}

func (s *suite) one(name string) wlm.Node { s.t.Helper(); return s.get(name)[0] }

// eventually waits until cond holds for the node, failing the test after
// opts.Settle.
func (s *suite) eventually(name, what string, cond func(wlm.Node) bool) wlm.Node {
	s.t.Helper()
	n, ok := s.waitFor(name, cond)
	if !ok {
		s.t.Fatalf("node %s: not %s after %s; state %s reason %q", name, what, s.opts.Settle, s.words(n), n.Reason)
	}
	return n
}

// waitFor reads the node until cond holds for it or opts.Settle has
// passed, and returns its last state and whether cond held.
func (s *suite) waitFor(name string, cond func(wlm.Node) bool) (wlm.Node, bool) {
	s.t.Helper()
	var waited time.Duration
	for {
		n := s.one(name)
		if cond(n) {
			return n, true
		}
		if waited >= s.opts.Settle {
			return n, false
		}
		if err := s.h.Sleep(s.ctx, s.opts.Poll); err != nil {
			s.t.Fatalf("sleep: %v", err)
		}
		waited += s.opts.Poll
	}
}

// eventuallyWith waits until cond holds for the node and its reason reads
// back as the one op (Drain, Fail) set. It fails the test after
// opts.Settle: saying what crus needs of reasons if cond holds but the
// reason is not the one set (and going on, so that the case can put the
// node back in service), else as eventually does.
func (s *suite) eventuallyWith(name, what string, cond func(wlm.Node) bool, op, reason string) wlm.Node {
	s.t.Helper()
	n, ok := s.waitFor(name, func(n wlm.Node) bool { return cond(n) && readsBack(n.Reason, reason) })
	switch {
	case ok:
	case cond(n):
		s.t.Error(reasonProblem(name, op, reason, n.Reason))
	default:
		s.t.Fatalf("node %s: not %s after %s; state %s reason %q", name, what, s.opts.Settle, s.words(n), n.Reason)
	}
	return n
}

func (s *suite) must(what string, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

// checkUnknown checks err reports exactly the unknown node, per node.
func (s *suite) checkUnknown(call string, err error) {
	s.t.Helper()
	if !errors.Is(err, wlm.ErrNodeNotFound) {
		s.t.Fatalf("%s with an unknown node: error %v, want one matching wlm.ErrNodeNotFound", call, err)
	}
	if !strings.Contains(err.Error(), unknownNode) {
		s.t.Errorf("%s: error %q does not name the unknown node %q", call, err, unknownNode)
	}
	perNode, rest := batch.Split(err)
	if _, ok := perNode[unknownNode]; !ok || rest != nil {
		s.t.Errorf("%s: error %v is not a *batch.NodeError for %q alone (per node %v, rest %v)", call, err, unknownNode, perNode, rest)
	}
	for name := range perNode {
		if name != unknownNode {
			s.t.Errorf("%s: known node %s reported failed: %v", call, name, perNode[name])
		}
	}
}

// Reasons. crus recognises its own drains and fails by their reason alone:
// a node drained or failed by a session has a reason that begins
// "crus <upgrade-id>:", and a node whose reason does not is someone
// else's, which crus leaves as it is (skipped: drained by someone else).
// So the suite drains and fails with reasons of crus's shape, among them
// one of exactly wlm.MaxReason bytes, and requires Node.Reason to read
// back beginning with the reason given, unchanged: an adapter that reads
// it back with a prefix of its own ("root: ...") or cut short makes every
// session leave its nodes drained.

// reasonID stands for the upgrade ID of a session in the suite's reasons.
const reasonID = "5f0c2a7e-8d3b-4e61-9a24-c1b7e3d90f58"

// crusReason returns a reason shaped like those crus sets.
func crusReason(what string) string { return "crus " + reasonID + ": " + what }

// longReason is a reason of crus's shape exactly wlm.MaxReason bytes long:
// printable ASCII on one line, without runs of blanks, as crus cleans the
// text it builds its reasons from.
var longReason = func() string {
	b := []byte(crusReason("boot failed in boot session crus-5f0c2a7e-3: the boot orchestrator says"))
	for i := 1; len(b) < wlm.MaxReason; i++ {
		b = fmt.Appendf(b, " attempt %d: the node did not answer.", i)
	}
	b = b[:wlm.MaxReason]
	b[len(b)-1] = '.' // never a blank at the end
	return string(b)
}()

// readsBack reports whether a reason read back (got) is the reason set as
// crus needs it: it begins with the reason set, unchanged.
func readsBack(got, set string) bool { return strings.HasPrefix(got, set) }

// reasonProblem says how a node's reason read back (got) differs from the
// one op set, and what crus needs of it.
func reasonProblem(node, op, set, got string) string {
	var how string
	switch {
	case got == "":
		how = "no reason at all"
	case strings.HasPrefix(set, got):
		how = fmt.Sprintf("the reason cut to %d of its %d bytes", len(got), len(set))
	case strings.Contains(got, set):
		how = fmt.Sprintf("the reason with %q put before it", got[:strings.Index(got, set)])
	default:
		how = "another reason"
	}
	return fmt.Sprintf("node %s: %s with reason %s (%d bytes) reads back reason %s: %s. "+
		"Node.Reason must read back beginning with the reason given, unchanged, up to wlm.MaxReason (%d) bytes: "+
		"crus recognises its own drains and fails only by a reason that begins \"crus <upgrade-id>:\", "+
		"and leaves a node whose reason it does not recognise drained, as drained by someone else",
		node, op, shorten(set), len(set), shorten(got), how, wlm.MaxReason)
}

// shorten quotes s, keeping only its ends if it is long.
func shorten(s string) string {
	if len(s) <= 100 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...%q", s[:60], s[len(s)-30:])
}

// words describes a node as crus would in its messages.
func (s *suite) words(n wlm.Node) string { return wlm.DescriberOf(s.m).Describe(n) }

func (s *suite) nodesInService() {
	nodes := s.get(s.nodes...)
	for _, n := range nodes {
		if !n.InService() || n.Busy() || n.Drain || n.Fail || !n.Responding() {
			s.t.Errorf("node %s: state %s; a harness node must be idle and in service", n.Name, s.words(n))
		}
		if n.State != wlm.StateIdle {
			s.t.Errorf("node %s: base state %q, want %q", n.Name, n.State, wlm.StateIdle)
		}
	}
}

func (s *suite) nodesEmpty() {
	nodes, err := s.m.Nodes(s.ctx, nil)
	if err != nil || len(nodes) != 0 {
		s.t.Errorf("Nodes(nil) = %v, %v; want nothing and no error", nodes, err)
	}
}

func (s *suite) nodesUnknown() {
	a := s.nodes[0]
	nodes, err := s.m.Nodes(s.ctx, []string{a, unknownNode})
	s.checkUnknown("Nodes", err)
	if len(nodes) != 1 || nodes[0].Name != a {
		s.t.Errorf("Nodes([%s %s]) returned %v; want the known node alone", a, unknownNode, nodes)
	}
}

// nodesInto: a wlm.NodesFiller answers by position what Nodes answers,
// the zero Node for an unknown one whatever the slice held, which it
// names in its error.
func (s *suite) nodesInto() {
	f, ok := s.m.(wlm.NodesFiller)
	if !ok {
		s.t.Skip("the Manager does not answer by position (wlm.NodesFiller)")
	}
	a, b := s.nodes[0], s.nodes[1]
	s.must("Drain", s.m.Drain(s.ctx, []string{b}, crusReason("wlmtest nodes into")))
	defer func() { s.must("Resume", s.m.Resume(context.WithoutCancel(s.ctx), []string{b})) }()
	s.eventually(b, "drained", func(n wlm.Node) bool { return n.Drain })
	names := []string{b, unknownNode, a}
	out := []wlm.Node{{}, {Name: unknownNode, Drain: true}, {Name: "stale"}}
	err := f.NodesInto(s.ctx, names, out)
	s.checkUnknown("NodesInto", err)
	want := s.get(b, a)
	if out[1] != (wlm.Node{}) {
		s.t.Errorf("NodesInto(%v)[1] is %+v; want the zero Node for an unknown node", names, out[1])
	}
	for k, w := range map[int]wlm.Node{0: want[0], 2: want[1]} {
		if out[k].Name != w.Name || out[k].Drain != w.Drain || out[k].State != w.State || out[k].Reason != w.Reason {
			s.t.Errorf("NodesInto(%v)[%d] is %s %q; Nodes says %s %q", names, k, s.words(out[k]), out[k].Name, s.words(w), w.Name)
		}
	}
}

func (s *suite) drainIdle() {
	a, b := s.nodes[0], s.nodes[1]
	reason := crusReason("rolling upgrade, step 1 of 3")
	s.must("Drain", s.m.Drain(s.ctx, []string{a, b}, reason))
	for _, name := range []string{a, b} {
		n := s.eventuallyWith(name, "drained", wlm.Node.Drained, "Drain", reason)
		if n.Draining() || n.InService() {
			s.t.Errorf("drained idle node %s: state %s", name, s.words(n))
		}
	}
	if c := s.one(s.nodes[2]); !c.InService() {
		s.t.Errorf("node %s was not named but is %s", c.Name, s.words(c))
	}
	s.must("Resume", s.m.Resume(s.ctx, []string{a, b}))
	for _, name := range []string{a, b} {
		s.eventually(name, "back in service", wlm.Node.InService)
	}
}

func (s *suite) drainBusy() {
	a := s.nodes[0]
	stop, err := s.h.StartJob(s.ctx, a)
	s.must("StartJob", err)
	stopped := false
	defer func() {
		if !stopped {
			_ = stop(context.WithoutCancel(s.ctx))
		}
	}()
	s.eventually(a, "busy", wlm.Node.Busy)
	reason := crusReason("rolling upgrade, step 2 of 3")
	s.must("Drain", s.m.Drain(s.ctx, []string{a}, reason))
	n := s.one(a)
	if !n.Draining() || n.Drained() || n.InService() {
		s.t.Fatalf("busy node %s after drain: state %s; want draining (not drained)", a, s.words(n))
	}
	s.must("stop job", stop(s.ctx))
	stopped = true
	s.eventuallyWith(a, "drained after its job ended", wlm.Node.Drained, "Drain", reason)
	s.must("Resume", s.m.Resume(s.ctx, []string{a}))
	s.eventually(a, "back in service", wlm.Node.InService)
}

func (s *suite) drainIdempotent() {
	a := s.nodes[0]
	first, second := crusReason("rolling upgrade, step 1 of 3"), crusReason("rolling upgrade, step 3 of 3")
	s.must("Drain", s.m.Drain(s.ctx, []string{a}, first))
	s.eventuallyWith(a, "drained", wlm.Node.Drained, "Drain", first)
	s.must("Drain again", s.m.Drain(s.ctx, []string{a}, second))
	s.eventuallyWith(a, "drained with the new reason", wlm.Node.Drained, "Drain again", second)
	s.must("Resume", s.m.Resume(s.ctx, []string{a}))
	s.eventually(a, "back in service", wlm.Node.InService)
}

func (s *suite) drainNeedsReason() {
	a := s.nodes[0]
	err := s.m.Drain(s.ctx, []string{a}, "")
	if !errors.Is(err, wlm.ErrInvalidArgument) {
		s.t.Errorf("Drain without a reason: error %v, want wlm.ErrInvalidArgument", err)
	}
	if n := s.one(a); !n.InService() {
		s.t.Errorf("refused drain changed node %s: %s", a, s.words(n))
	}
}

func (s *suite) drainUnknownInBatch() {
	a := s.nodes[0]
	s.checkUnknown("Drain", s.m.Drain(s.ctx, []string{a, unknownNode}, crusReason("wlmtest batch")))
	s.eventually(a, "drained despite an unknown node in the batch", wlm.Node.Drained)
	s.must("Resume", s.m.Resume(s.ctx, []string{a}))
	s.eventually(a, "back in service", wlm.Node.InService)
}

// longReason drains a node and fails another with a reason of exactly
// wlm.MaxReason bytes, which each must read back unchanged: crus never
// sets a longer one, and may set one as long (a failure's reason holds a
// backend's words).
func (s *suite) longReason() {
	a, b := s.nodes[0], s.nodes[1]
	s.must("Drain", s.m.Drain(s.ctx, []string{a}, longReason))
	s.must("Fail", s.m.Fail(s.ctx, []string{b}, longReason))
	s.eventuallyWith(a, "drained", wlm.Node.Drained, "Drain", longReason)
	s.eventuallyWith(b, "failed", func(n wlm.Node) bool { return n.Fail }, "Fail", longReason)
	s.must("Resume", s.m.Resume(s.ctx, []string{a, b}))
	for _, name := range []string{a, b} {
		s.eventually(name, "back in service", wlm.Node.InService)
	}
}

func (s *suite) resumeIdempotent() {
	a, b := s.nodes[0], s.nodes[1]
	s.must("Resume of nodes in service", s.m.Resume(s.ctx, []string{a, b}))
	for _, n := range s.get(a, b) {
		if !n.InService() {
			s.t.Errorf("node %s after a needless resume: %s", n.Name, s.words(n))
		}
	}
	s.must("Drain", s.m.Drain(s.ctx, []string{a}, crusReason("wlmtest resume")))
	s.eventually(a, "drained", wlm.Node.Drained)
	// One node drained, one in service, in one call.
	s.must("Resume of a mixed batch", s.m.Resume(s.ctx, []string{a, b}))
	s.eventually(a, "back in service", wlm.Node.InService)
	s.must("Resume again", s.m.Resume(s.ctx, []string{a}))
	if n := s.one(a); !n.InService() || n.Reason != "" && n.Drain {
		s.t.Errorf("node %s after resuming twice: %s (%q)", a, s.words(n), n.Reason)
	}
}

func (s *suite) resumeUnknownInBatch() {
	a := s.nodes[0]
	s.must("Drain", s.m.Drain(s.ctx, []string{a}, crusReason("wlmtest resume batch")))
	s.eventually(a, "drained", wlm.Node.Drained)
	s.checkUnknown("Resume", s.m.Resume(s.ctx, []string{a, unknownNode}))
	s.eventually(a, "resumed despite an unknown node in the batch", wlm.Node.InService)
}

func (s *suite) fail() {
	a := s.nodes[0]
	reason := crusReason("did not return within 30m0s of its boot")
	s.must("Fail", s.m.Fail(s.ctx, []string{a}, reason))
	n := s.eventuallyWith(a, "failed", func(n wlm.Node) bool { return n.Fail }, "Fail", reason)
	if n.InService() {
		s.t.Errorf("failed node %s is in service: %s", a, s.words(n))
	}
	s.must("Resume", s.m.Resume(s.ctx, []string{a}))
	s.eventually(a, "back in service after fail", wlm.Node.InService)
}

func (s *suite) failIdempotent() {
	a := s.nodes[0]
	s.must("Drain", s.m.Drain(s.ctx, []string{a}, crusReason("rolling upgrade, step 1 of 1")))
	s.eventually(a, "drained", wlm.Node.Drained)
	s.must("Fail a drained node", s.m.Fail(s.ctx, []string{a}, crusReason("boot failed in boot session one")))
	second := crusReason("boot failed in boot session two")
	s.must("Fail again", s.m.Fail(s.ctx, []string{a}, second))
	n := s.eventuallyWith(a, "failed with the second reason", func(n wlm.Node) bool { return n.Fail }, "Fail again", second)
	if n.InService() {
		s.t.Errorf("failed node %s is in service", a)
	}
	s.must("Resume", s.m.Resume(s.ctx, []string{a}))
	s.eventually(a, "back in service after fail", wlm.Node.InService)
}

func (s *suite) failNeedsReason() {
	a := s.nodes[0]
	err := s.m.Fail(s.ctx, []string{a}, "")
	if !errors.Is(err, wlm.ErrInvalidArgument) {
		s.t.Errorf("Fail without a reason: error %v, want wlm.ErrInvalidArgument", err)
	}
	if n := s.one(a); !n.InService() {
		s.t.Errorf("refused fail changed node %s: %s", a, s.words(n))
	}
}

func (s *suite) failUnknownInBatch() {
	a := s.nodes[0]
	s.checkUnknown("Fail", s.m.Fail(s.ctx, []string{a, unknownNode}, crusReason("wlmtest fail batch")))
	s.eventually(a, "failed despite an unknown node in the batch", func(n wlm.Node) bool { return n.Fail })
	s.must("Resume", s.m.Resume(s.ctx, []string{a}))
	s.eventually(a, "back in service", wlm.Node.InService)
}

func (s *suite) bootTime() {
	r, ok := s.m.(wlm.BootTimeReporter)
	if !ok || !r.ReportsBootTime() {
		s.t.Skip("the Manager does not report boot times (wlm.BootTimeReporter)")
	}
	for _, n := range s.get(s.nodes...) {
		if n.BootTime.IsZero() {
			s.t.Errorf("node %s: zero BootTime from a Manager that reports boot times", n.Name)
		}
		if n.BootTime.After(time.Now().Add(24 * time.Hour * 365 * 10)) {
			s.t.Errorf("node %s: BootTime %s is absurd", n.Name, n.BootTime)
		}
	}
}

func (s *suite) jobEnds() {
	je, ok := s.m.(wlm.JobEnder)
	if !ok {
		s.t.Skip("the Manager does not report job end times (wlm.JobEnder)")
	}
	a, b := s.nodes[0], s.nodes[1]
	stop, err := s.h.StartJob(s.ctx, a)
	s.must("StartJob", err)
	defer func() { _ = stop(context.WithoutCancel(s.ctx)) }()
	s.eventually(a, "busy", wlm.Node.Busy)
	ends, err := je.JobEnds(s.ctx, []string{a, b})
	s.must("JobEnds", err)
	if ends[a].IsZero() {
		s.t.Errorf("JobEnds: no end time for busy node %s (%v)", a, ends)
	}
	if _, ok := ends[b]; ok {
		s.t.Errorf("JobEnds: idle node %s has an end time %v", b, ends[b])
	}
	_, err = je.JobEnds(s.ctx, []string{a, unknownNode})
	s.checkUnknown("JobEnds", err)
}

func (s *suite) canceledContext() {
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	a := s.nodes[0]
	calls := map[string]error{}
	_, calls["Nodes"] = s.m.Nodes(ctx, []string{a})
	calls["Drain"] = s.m.Drain(ctx, []string{a}, crusReason("wlmtest canceled"))
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			s.t.Errorf("%s with a canceled context: error %v, want context.Canceled", name, err)
		}
	}
	if n := s.one(a); !n.InService() {
		s.t.Errorf("a canceled drain changed node %s: %s", a, s.words(n))
	}
}

func (s *suite) describe() {
	d := wlm.DescriberOf(s.m)
	a, b := s.nodes[0], s.nodes[1]
	reason := crusReason("wlmtest describe")
	s.must("Drain", s.m.Drain(s.ctx, []string{a}, reason))
	na := s.eventually(a, "drained", wlm.Node.Drained)
	nb := s.one(b)
	wa, wb := d.Describe(na), d.Describe(nb)
	for _, w := range []string{wa, wb} {
		if w == "" || strings.ContainsAny(w, "\n\r") {
			s.t.Errorf("Describe gives %q: want a few words on one line", w)
		}
	}
	if wa == wb {
		s.t.Errorf("Describe gives %q for a drained node and for one in service alike", wa)
	}
	if strings.Contains(wa, reason) {
		s.t.Errorf("Describe gives %q: it must leave out the reason, which crus adds itself", wa)
	}
	if again := d.Describe(na); again != wa {
		s.t.Errorf("Describe of one Node gives %q, then %q", wa, again)
	}
	s.must("Resume", s.m.Resume(s.ctx, []string{a}))
	s.eventually(a, "back in service", wlm.Node.InService)
}

// reboot powers off three nodes (one drained, one failed, one in
// service) and on again, and checks what crus relies on through a
// reboot: see the package documentation.
func (s *suite) reboot() {
	r, ok := s.h.(Rebooter)
	if !ok {
		s.t.Skip("the harness cannot reboot nodes (wlmtest.Rebooter)")
	}
	bootTimes := false
	if btr, ok := s.m.(wlm.BootTimeReporter); ok && btr.ReportsBootTime() {
		bootTimes = true
	}
	drained, failed, plain := s.nodes[0], s.nodes[1], s.nodes[2]
	names := []string{drained, failed, plain}
	before := s.get(names...)
	drainReason, failReason := crusReason("rolling upgrade, step 2 of 2"), crusReason("boot failed in boot session reboot")
	s.must("Drain", s.m.Drain(s.ctx, []string{drained}, drainReason))
	s.must("Fail", s.m.Fail(s.ctx, []string{failed}, failReason))
	s.eventually(drained, "drained", wlm.Node.Drained)
	s.eventually(failed, "failed", func(n wlm.Node) bool { return n.Fail })

	// Whatever happens, power the nodes on again so that Close finds them.
	off := map[string]bool{}
	defer func() {
		for _, name := range names {
			if off[name] {
				_ = r.PowerOn(context.WithoutCancel(s.ctx), name)
			}
		}
	}()
	for _, name := range names {
		s.must("PowerOff "+name, r.PowerOff(s.ctx, name))
		off[name] = true
	}
	marks := func(what string) {
		s.t.Helper()
		n := s.one(drained)
		if !n.Drain || !readsBack(n.Reason, drainReason) {
			s.t.Errorf("node %s drained before its reboot, %s: %s reason %q; the drain and its reason must survive a reboot", drained, what, s.words(n), n.Reason)
		}
		if n := s.one(failed); !n.Fail || !readsBack(n.Reason, failReason) {
			s.t.Errorf("node %s failed before its reboot, %s: %s reason %q; the fail and its reason must survive a reboot", failed, what, s.words(n), n.Reason)
		}
	}
	for _, name := range names {
		n := s.eventually(name, "seen down while it reboots (not responding)", func(n wlm.Node) bool { return !n.Responding() })
		if n.InService() {
			s.t.Errorf("node %s while it reboots: %s, in service", name, s.words(n))
		}
	}
	marks("while it reboots")
	// Boot times have whole seconds in some workload managers.
	if err := s.h.Sleep(s.ctx, 1100*time.Millisecond); err != nil {
		s.t.Fatalf("sleep: %v", err)
	}
	for _, name := range names {
		s.must("PowerOn "+name, r.PowerOn(s.ctx, name))
		off[name] = false
	}
	for i, name := range names {
		old := before[i].BootTime
		n := s.eventually(name, "back from its reboot (responding, with a newer boot time)", func(n wlm.Node) bool {
			return n.Responding() && (!bootTimes || n.BootTime.After(old))
		})
		if bootTimes && n.BootTime.After(time.Now().Add(24*time.Hour*365*10)) {
			s.t.Errorf("node %s: boot time %s after its reboot is absurd", name, n.BootTime)
		}
		s.t.Logf("node %s back from its reboot: %s (%q), boot time %s", name, s.words(n), n.Reason, n.BootTime.Format(time.RFC3339))
	}
	marks("after its reboot")
	if n := s.one(drained); n.InService() {
		s.t.Errorf("node %s, drained before its reboot, is in service after it: %s", drained, s.words(n))
	}
	if n := s.one(failed); n.InService() {
		s.t.Errorf("node %s, failed before its reboot, is in service after it: %s", failed, s.words(n))
	}
	s.backInService(names...)
}

// backInService resumes the nodes until each reads in service on three
// reads in a row, as crus does after a reboot: a workload manager may
// take a node out of service once more as its agent registers again
// (Slurm: "Node unexpectedly rebooted"), and Resume must bring it back
// every time.
func (s *suite) backInService(names ...string) {
	s.t.Helper()
	streak := map[string]int{}
	var waited time.Duration
	for resumes := 1; ; {
		s.must("Resume", s.m.Resume(s.ctx, names))
		var again []string
		for _, n := range s.get(names...) {
			if n.InService() {
				streak[n.Name]++
			} else {
				streak[n.Name] = 0
			}
			if streak[n.Name] < 3 {
				again = append(again, n.Name)
			}
		}
		if len(again) == 0 {
			return
		}
		if waited >= s.opts.Settle {
			var states []string
			for _, n := range s.get(again...) {
				states = append(states, fmt.Sprintf("%s %s (%q)", n.Name, s.words(n), n.Reason))
			}
			s.t.Fatalf("not back in service to stay after %s and %d resumes: %s", s.opts.Settle, resumes, strings.Join(states, "; "))
		}
		if err := s.h.Sleep(s.ctx, s.opts.Poll); err != nil {
			s.t.Fatalf("sleep: %v", err)
		}
		waited += s.opts.Poll
		names, resumes = again, resumes+1
	}
}

// cleanup is the base suite's: nothing to undo but what its cases undo.
func (s *suite) cleanup(context.Context) {}

// check says what is wrong with o, or "".
func (o Options) check() string {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Settle", o.Settle}, {"Poll", o.Poll}} {
		if d.v < 0 {
			return fmt.Sprintf("Options.%s %v is negative: give a positive duration, or zero for the default", d.name, d.v)
		}
	}
	return ""
}

// withDefaults returns o with its zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Settle == 0 {
		o.Settle = 30 * time.Second
	}
	if o.Poll == 0 {
		o.Poll = 250 * time.Millisecond
	}
	return o
}

// capabilityCase is one subtest of the suite of an optional capability.
type capabilityCase[S any] struct {
	name string
	f    func(S)
}

// runCapability runs each case in a subtest of its own, on a fresh
// harness closed at its end (the base suite is a capability every
// Manager has). capability makes the case's suite from the
// base one, or reports that the harness's Manager lacks the capability
// (the subtest skips, saying skip); the suite needs 3 nodes, and its
// cleanup runs at the end of the case, whatever happened.
func runCapability[H Harness, S interface{ cleanup(context.Context) }](t *testing.T, opts Options, newHarness func(context.Context, *testing.T) (H, error), cases []capabilityCase[S], skip string, capability func(base suite, h H) (S, bool)) {
	t.Helper()
	if msg := opts.check(); msg != "" {
		t.Fatalf("wlmtest: %s", msg)
	}
	opts = opts.withDefaults()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			h := conformance.Open(t, newHarness)
			nodes := h.Nodes()
			s, ok := capability(suite{t: t, ctx: ctx, h: h, m: h.Manager(), nodes: nodes, opts: opts}, h)
			if !ok {
				t.Skip(skip)
			}
			if len(nodes) < 3 {
				t.Fatalf("harness gives %d nodes, the suite needs at least 3", len(nodes))
			}
			t.Cleanup(func() { s.cleanup(context.WithoutCancel(ctx)) })
			tc.f(s)
		})
	}
}
