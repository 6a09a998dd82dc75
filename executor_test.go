package crus_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

// tb is what env needs of a test: *testing.T and *rapid.T both serve.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	FailNow()
	Logf(format string, args ...any)
}

// logWriter sends each write to t.Logf, so the log shows with the failure.
type logWriter struct{ t tb }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// env is a cluster of fakes with an executor driving it in virtual time.
type env struct {
	t     tb
	w     *fake.World
	store *crus.MemoryStore
	ex    *crus.Executor
	spec  crus.Spec
	cfg   crus.Config

	mu      sync.Mutex
	events  []crus.Event
	onEvent func(crus.Event)
}

func newEnv(t tb, opts fake.ClusterOptions, step int) *env {
	t.Helper()
	e := &env{t: t, w: fake.NewCluster(opts), store: crus.NewMemoryStore()}
	e.spec = crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: step, TemplateID: fake.Template, WorkloadManagerType: "slurm",
	}
	var logger *slog.Logger
	if tt, ok := t.(*testing.T); ok {
		logger = slog.New(slog.NewTextHandler(tt.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		logger = slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ids := 0
	e.cfg = crus.Config{
		Store: e.store, Clock: e.w, Logger: logger,
		NewID: func() string { ids++; return fmt.Sprintf("s%d", ids) },
		OnEvent: func(ev crus.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			f := e.onEvent
			e.mu.Unlock()
			if f != nil {
				f(ev)
			}
		},
	}
	e.ex = e.executor()
	return e
}

func (e *env) executor() *crus.Executor {
	e.t.Helper()
	ex, err := crus.NewExecutor(e.w.HSM(), e.w.WLM(), e.w.BOS(), e.cfg)
	require.NoError(e.t, err)
	return ex
}

func (e *env) create() *crus.Session {
	e.t.Helper()
	s, err := e.ex.Create(context.Background(), e.spec)
	require.NoError(e.t, err)
	return s
}

// run creates a session and runs it to completion.
func (e *env) run() *crus.Session {
	e.t.Helper()
	s := e.create()
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(e.t, err)
	require.True(e.t, final.Completed)
	e.check(final)
	return final
}

func (e *env) eventsOf(kind crus.EventKind) []crus.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []crus.Event
	for _, ev := range e.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// check asserts the invariants of DESIGN.md on a finished session.
func (e *env) check(s *crus.Session) {
	e.t.Helper()
	e.checkCommon(s)
	for _, n := range s.Progress.Nodes {
		e.checkNode(s, n)
	}
}

// checkCommon asserts the invariants that hold whatever anyone else did to
// the nodes: no reboot with jobs, the cap, one outcome per node, the
// upgrading group empty of the session's nodes, nodes outside the session
// and nodes out of service at its start untouched.
func (e *env) checkCommon(s *crus.Session) {
	t := e.t
	t.Helper()
	assert.Empty(t, e.w.Violations(), "no node rebooted while running jobs")
	if !slices.ContainsFunc(s.Messages, func(m string) bool { return strings.Contains(m, "may stay its last choice") }) {
		// (A session that could not give places back for 30 minutes
		// ends anyway, and says so.)
		assert.Empty(t, e.w.Steered(), "every node has its place back in the scheduler's choice")
	}
	assert.LessOrEqual(t, e.w.MaxOut(), s.StepSize+stuckByWLM(s), "never more than step size nodes out of service")
	upgrading := e.w.Members(s.UpgradingLabel)
	for _, n := range s.Progress.Nodes {
		assert.Equal(t, crus.PhaseDone, n.Phase, "node %s has no outcome", n.XName)
		if !n.DrainRequested.IsZero() { // a node never taken is never touched, even there
			assert.NotContains(t, upgrading, n.XName, "node %s left in the upgrading group", n.XName)
		}
		assert.NotEmpty(t, n.Reason, "node %s has no reason for its outcome", n.XName)
	}
	for x := range e.w.Touched() {
		n := s.Node(x)
		if n == nil {
			t.Errorf("node %s is outside the session but was touched", x)
		} else if n.Outcome == crus.OutcomeSkipped && strings.HasPrefix(n.Reason, "not in service at session start") {
			t.Errorf("node %s was out of service at session start but was touched", x)
		}
	}
}

// checkNode asserts that a node's state in the world matches its outcome,
// for a node nobody else acted on.
func (e *env) checkNode(s *crus.Session, n crus.NodeRecord) {
	t := e.t
	t.Helper()
	prefix := "crus " + s.UpgradeID + ":"
	failedGroup := e.w.Members(s.FailedLabel)
	ws, ok := e.w.Node(n.XName)
	require.True(t, ok)
	switch n.Outcome {
	case crus.OutcomeUpgraded:
		assert.True(t, ws.Up && !ws.Fail, "upgraded node %s: %+v", n.XName, ws)
		assert.True(t, !ws.Drain || !strings.HasPrefix(ws.Reason, prefix), "upgraded node %s left drained by crus", n.XName)
		assert.True(t, ws.BootTime.After(n.RebootRequested.Add(-time.Second)), "upgraded node %s did not reboot after its step began", n.XName)
		assert.GreaterOrEqual(t, ws.Reboots, 1)
	case crus.OutcomeFailed:
		if !strings.Contains(n.Reason, "failed group") {
			assert.Contains(t, failedGroup, n.XName, "failed node %s not in the failed group", n.XName)
		}
		if strings.Contains(n.Reason, "workload manager:") {
			assert.True(t, ws.Drain || ws.Fail, "failed node %s (FAIL refused) is in service: %+v", n.XName, ws)
			break
		}
		assert.True(t, ws.Fail, "failed node %s not failed in the WLM: %+v", n.XName, ws)
		if !strings.HasPrefix(ws.Reason, "admin:") { // an admin may drain it since
			assert.True(t, strings.HasPrefix(ws.Reason, prefix), "failed node %s: WLM reason %q", n.XName, ws.Reason)
		}
	case crus.OutcomeSkipped, crus.OutcomeUntouched:
		assert.Zero(t, ws.Reboots, "%s node %s was rebooted", n.Outcome, n.XName)
		if !strings.Contains(n.Reason, "could not be returned to service") { // the workload manager refused to resume it: said so
			assert.False(t, ws.Drain && strings.HasPrefix(ws.Reason, prefix), "%s node %s left drained by crus", n.Outcome, n.XName)
		}
		if n.Outcome == crus.OutcomeUntouched && !strings.HasPrefix(ws.Reason, "admin:") {
			assert.True(t, ws.Up && !ws.Drain && !ws.Fail, "untouched node %s not in service: %+v", n.XName, ws)
		}
	default:
		t.Errorf("node %s: outcome %q", n.XName, n.Outcome)
	}
}

func TestRunHappyPath(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 20, Busy: 0.6}, 5)
	s := e.run()
	c := s.Counts()
	assert.Equal(t, crus.Counts{Nodes: 20, Upgraded: 20}, c)
	assert.Equal(t, crus.StateReady, s.State)
	assert.Equal(t, crus.ResultComplete, s.Progress.Result)
	assert.Equal(t, crus.StageDone, s.Progress.Stage)
	assert.Equal(t, 4, s.Progress.Steps)
	assert.Equal(t, 4, s.Progress.Boots)
	assert.Equal(t, 5, e.w.MaxOut())
	steps := e.eventsOf(crus.EventStepStarted)
	require.Len(t, steps, 4)
	for i, ev := range steps {
		assert.Equal(t, i+1, ev.Step)
		assert.Equal(t, 5, ev.Nodes)
	}
	calls := e.w.Calls()
	assert.Equal(t, 4, calls["wlm.Drain"], "one drain call per step")
	assert.Equal(t, 4, calls["bos.Reboot"], "one boot session per step")
	assert.Equal(t, 1, calls["hsm.NIDs"], "names mapped once")
	assert.Zero(t, calls["wlm.Fail"])
	assert.Contains(t, s.Messages, "Upgrade session completed: 20 upgraded, 0 failed, 0 skipped, 0 untouched")
	assert.Len(t, e.w.Sessions(), 4)
}

func TestRunNodesAreTakenInSortedSlices(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 12}, 4)
	s := e.run()
	sorted := slices.Clone(e.w.XNames())
	for i, x := range sorted {
		assert.Equal(t, i/4+1, s.Node(x).Step, x)
	}
}

func TestRunWholeStepBootFailure(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 9, Busy: 0.5}, 3)
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted {
			if ev.Step == 2 {
				e.w.BreakTemplate(fake.Template, "boot set image not found in S3")
			} else {
				e.w.RepairTemplate(fake.Template)
			}
		}
	}
	s := e.run()
	for _, n := range s.Progress.Nodes {
		if n.Step == 2 {
			assert.Equal(t, crus.OutcomeFailed, n.Outcome, n.XName)
			assert.Contains(t, n.Reason, "boot set image not found in S3")
		} else {
			assert.Equal(t, crus.OutcomeUpgraded, n.Outcome, n.XName)
		}
	}
	assert.Equal(t, 3, s.Counts().Failed)
	assert.Equal(t, 1, e.w.Calls()["wlm.Fail"], "one fail call for the step, with its reason")
}

func TestRunPerNodeBootFailure(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 10, Busy: 0.5}, 4)
	xs := e.w.XNames()
	e.w.SetFaults(xs[1], fake.NodeFaults{BootFails: true, BootError: "kernel panic"})
	e.w.SetFaults(xs[6], fake.NodeFaults{BootFails: true, BootError: "no network"})
	s := e.run()
	assert.Equal(t, 8, s.Counts().Upgraded)
	assert.Equal(t, crus.OutcomeFailed, s.Node(xs[1]).Outcome)
	assert.Contains(t, s.Node(xs[1]).Reason, "kernel panic")
	assert.Contains(t, s.Node(xs[6]).Reason, "no network")
	ws, _ := e.w.Node(xs[6])
	assert.Contains(t, ws.Reason, "no network", "the WLM reason says why")
}

func TestRunNodeNeverReturns(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6}, 3)
	e.spec.ReturnTimeout = crus.Duration(20 * time.Minute)
	x := e.w.XNames()[4]
	e.w.SetFaults(x, fake.NodeFaults{NeverReturns: true})
	s := e.run()
	n := s.Node(x)
	assert.Equal(t, crus.OutcomeFailed, n.Outcome)
	assert.Contains(t, n.Reason, "did not return to the workload manager within 20m0s")
	assert.GreaterOrEqual(t, n.Finished.Sub(n.Booted), 20*time.Minute)
	assert.Less(t, n.Finished.Sub(n.Booted), 21*time.Minute, "failed promptly at the timeout")
	assert.Equal(t, 5, s.Counts().Upgraded)
}

func TestRunWaitsForJobsBeforeRebooting(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 4)
	xs := e.w.XNames()
	require.NoError(t, e.w.StartJob(xs[2], 5*time.Hour, 6*time.Hour))
	start := e.w.Now()
	s := e.run()
	for _, n := range s.Progress.Nodes {
		assert.False(t, n.RebootRequested.Before(start.Add(5*time.Hour)), "%s rebooted before the job on %s ended", n.XName, xs[2])
	}
	assert.Empty(t, e.w.Violations())
}

func TestRunTransientErrors(t *testing.T) {
	ops := []string{
		"hsm.Members", "hsm.AddMembers", "hsm.RemoveMembers", "hsm.NIDs",
		"wlm.Nodes", "wlm.Drain", "wlm.Resume", "wlm.Fail",
		"bos.CheckTemplate", "bos.Template", "bos.Reboot", "bos.Status",
	}
	for _, op := range ops {
		for _, n := range []int{3, 40} { // retried within a call; an outage past the retry timeout
			t.Run(fmt.Sprintf("%s/%d", op, n), func(t *testing.T) {
				e := newEnv(t, fake.ClusterOptions{Nodes: 8, Busy: 0.5}, 4)
				e.w.SetFaults(e.w.XNames()[5], fake.NodeFaults{BootFails: true})
				e.w.FailNext(op, n, fake.ErrInjected)
				s, err := e.ex.Create(context.Background(), e.spec)
				if err != nil {
					// Pre-flight reads give up after the retry timeout: a
					// clear error, nothing changed.
					require.Equal(t, 40, n, "a few transient errors must be retried: %v", err)
					assert.ErrorIs(t, err, fake.ErrInjected)
					assert.Empty(t, e.w.Touched())
					return
				}
				final, err := e.ex.Run(context.Background(), s.UpgradeID)
				require.NoError(t, err)
				e.check(final)
				c := final.Counts()
				assert.Equal(t, 7, c.Upgraded, "transient errors cost no node")
				assert.Equal(t, 1, c.Failed)
			})
		}
	}
}

func TestRunPermanentPerNodeErrors(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6}, 3)
	xs := e.w.XNames()
	e.w.SetFaults(xs[1], fake.NodeFaults{RefuseDrain: true})
	s := e.run()
	n := s.Node(xs[1])
	assert.Equal(t, crus.OutcomeSkipped, n.Outcome)
	assert.Contains(t, n.Reason, "refused to drain")
	assert.Equal(t, 5, s.Counts().Upgraded)
}

func TestRunWithoutBootTimes(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6, Options: fake.Options{NoBootTimes: true}}, 3)
	s := e.run()
	assert.Equal(t, 6, s.Counts().Upgraded)
}

func TestRunLabelLimit(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6, Busy: 0.5}, 2)
	e.spec.BootLimit = crus.LimitLabel
	s := e.run()
	assert.Equal(t, 6, s.Counts().Upgraded)
}

func TestRunStrangerInUpgradingGroupIsNotRebooted(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6}, 2)
	e.w.AddNode("x3000c0s0b0n0", 900)
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted && ev.Step == 2 {
			e.w.AddGroup(fake.UpgradingLabel, append(e.w.Members(fake.UpgradingLabel), "x3000c0s0b0n0")...)
		}
	}
	s := e.run()
	ws, _ := e.w.Node("x3000c0s0b0n0")
	assert.Zero(t, ws.Reboots, "a stranger in the upgrading group is never rebooted")
	assert.Equal(t, []string{"x3000c0s0b0n0"}, e.w.Members(fake.UpgradingLabel), "and left where it was")
	assert.Contains(t, s.Messages[len(s.Messages)-2], "not part of this session")
}

func TestRunAdminInterference(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 9}, 3)
	xs := e.w.XNames()
	require.NoError(t, e.w.StartJob(xs[0], 2*time.Hour, 3*time.Hour))
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted && ev.Step == 1 {
			e.w.AdminDrain(xs[4], "admin: replace PSU") // a node of step 2, before its step
			// A node of step 1, while it drains (after crus drained it).
			e.w.Schedule(ev.Time.Add(time.Minute), func() { e.w.AdminDrain(xs[0], "admin: take it, it's mine") })
		}
	}
	s := e.run()
	for _, x := range []string{xs[0], xs[4]} {
		n := s.Node(x)
		assert.Equal(t, crus.OutcomeSkipped, n.Outcome, x)
		ws, _ := e.w.Node(x)
		assert.True(t, ws.Drain && strings.HasPrefix(ws.Reason, "admin:"), "%s: the admin's drain is kept: %+v", x, ws)
		assert.Zero(t, ws.Reboots)
	}
	assert.Contains(t, s.Node(xs[0]).Reason, "drained by someone else during the session")
	assert.Contains(t, s.Node(xs[4]).Reason, "not in service at the start of its step")
	assert.Equal(t, 7, s.Counts().Upgraded)
}

func TestPreflightSkipsNodesOutOfService(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6, Busy: 0.5}, 2)
	xs := e.w.XNames()
	e.w.AdminDrain(xs[1], "hardware ticket 42")
	e.w.SetDown(xs[3], true)
	s := e.create()
	assert.Equal(t, crus.OutcomeSkipped, s.Node(xs[1]).Outcome)
	assert.Contains(t, s.Node(xs[1]).Reason, "hardware ticket 42")
	assert.Contains(t, s.Node(xs[3]).Reason, "down, not responding")
	assert.Equal(t, 2, s.Progress.Steps, "4 nodes taken, steps of 2")
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	ws, _ := e.w.Node(xs[1])
	assert.True(t, ws.Drain, "never silently resumed")
	assert.Equal(t, "hardware ticket 42", ws.Reason)
	assert.Equal(t, 4, final.Counts().Upgraded)
}

func TestPreflightBadInput(t *testing.T) {
	mutating := []string{"hsm.AddMembers", "hsm.RemoveMembers", "hsm.CreateGroup", "wlm.Drain", "wlm.Resume", "wlm.Fail", "bos.Reboot"}
	tests := []struct {
		name  string
		setup func(e *env)
		want  []error
		has   []string
		// times: texts the error says exactly so many times (a node's
		// cause once per node, not once more for the list).
		times map[string]int
	}{
		{name: "step size zero", setup: func(e *env) { e.spec.StepSize = 0 },
			want: []error{crus.ErrInvalidSpec}, has: []string{"upgrade_step_size must be at least 1"}},
		{name: "labels not distinct", setup: func(e *env) { e.spec.FailedLabel = e.spec.UpgradingLabel },
			want: []error{crus.ErrInvalidSpec}, has: []string{"must be distinct"}},
		{name: "bad label", setup: func(e *env) { e.spec.StartingLabel = "Nodes To Upgrade" },
			want: []error{crus.ErrInvalidSpec}, has: []string{`"Nodes To Upgrade" is not a valid HSM group label`}},
		{name: "unknown workload manager", setup: func(e *env) { e.spec.WorkloadManagerType = "pbs" },
			want: []error{crus.ErrInvalidSpec}, has: []string{`"pbs" is not known here`}},
		{name: "missing template", setup: func(e *env) { e.spec.TemplateID = "nope" },
			want: []error{crus.ErrPreflight, bos.ErrTemplateNotFound}, has: []string{`boot session template: `, `"nope"`}},
		{name: "missing starting group", setup: func(e *env) { e.w.DeleteGroup(fake.StartingLabel) },
			want: []error{crus.ErrPreflight, hsm.ErrGroupNotFound}, has: []string{`starting group: hsm: group not found: "crus-starting"`}},
		{name: "missing upgrading group", setup: func(e *env) { e.w.DeleteGroup(fake.UpgradingLabel) },
			want: []error{crus.ErrPreflight, hsm.ErrGroupNotFound}, has: []string{`upgrading group: hsm: group not found: "crus-upgrading"`}},
		{name: "missing failed group", setup: func(e *env) { e.w.DeleteGroup(fake.FailedLabel) },
			want: []error{crus.ErrPreflight, hsm.ErrGroupNotFound}, has: []string{`failed group: hsm: group not found: "crus-failed"`}},
		{name: "upgrading group not empty", setup: func(e *env) { e.w.AddGroup(fake.UpgradingLabel, fake.XName(2)) },
			want: []error{crus.ErrPreflight, crus.ErrGroupNotEmpty}, has: []string{"must be empty", fake.XName(2)}},
		{name: "failed group not empty", setup: func(e *env) { e.w.AddGroup(fake.FailedLabel, fake.XName(3)) },
			want: []error{crus.ErrPreflight, crus.ErrGroupNotEmpty}, has: []string{"clear_failed", fake.XName(3)}},
		{name: "starting group empty", setup: func(e *env) { e.w.AddGroup(fake.StartingLabel) },
			want: []error{crus.ErrPreflight, crus.ErrNoNodes}, has: []string{"is empty"}},
		{name: "every node out of service", setup: func(e *env) {
			for _, x := range e.w.XNames() {
				e.w.AdminDrain(x, "maintenance")
			}
		}, want: []error{crus.ErrPreflight, crus.ErrNoNodes}, has: []string{"none of the 4 nodes"}},
		{name: "node unknown to the WLM", setup: func(e *env) { e.w.RemoveNode(fake.XName(1)); e.w.RemoveNode(fake.XName(2)) },
			want: []error{crus.ErrPreflight, wlm.ErrNodeNotFound}, has: []string{"does not know 2 nodes of the starting group", "nid000002", "nid000003"},
			times: map[string]int{"node not found": 2}},
		{name: "a node unknown to the WLM", setup: func(e *env) { e.w.RemoveNode(fake.XName(1)) },
			want: []error{crus.ErrPreflight, wlm.ErrNodeNotFound}, has: []string{"does not know 1 node of the starting group", "nid000002"},
			times: map[string]int{"node not found": 1}},
		{name: "node unknown to HSM", setup: func(e *env) { e.w.AddGroup(fake.StartingLabel, fake.XName(0), "x9000c0s0b0n0") },
			want: []error{crus.ErrPreflight, hsm.ErrComponentNotFound}, has: []string{"HSM does not know 1 node of the starting group", "x9000c0s0b0n0"}},
		{name: "a member with a terminal's escapes", setup: func(e *env) { e.w.AddGroup(fake.UpgradingLabel, "x1c0s0b0n0\n\x1b]0;owned\x07\x1b[2J") },
			want: []error{crus.ErrPreflight, crus.ErrGroupNotEmpty}, has: []string{"must be empty", "x1c0s0b0n0 ]0;owned [2J"}},
		{name: "several problems at once", setup: func(e *env) {
			e.spec.TemplateID = "nope"
			e.w.AddGroup(fake.UpgradingLabel, fake.XName(2))
		}, want: []error{crus.ErrPreflight, bos.ErrTemplateNotFound, crus.ErrGroupNotEmpty}, has: []string{"nope", "must be empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 4, Busy: 0.5}, 2)
			tc.setup(e)
			groups := map[string][]string{}
			for _, l := range []string{fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel} {
				groups[l] = e.w.Members(l)
			}
			s, err := e.ex.Create(context.Background(), e.spec)
			require.Error(t, err)
			assert.Nil(t, s)
			for _, want := range tc.want {
				assert.ErrorIs(t, err, want)
			}
			for _, has := range tc.has {
				assert.Contains(t, err.Error(), has)
			}
			for text, n := range tc.times {
				assert.Equal(t, n, strings.Count(err.Error(), text), "how many times the error says %q: %s", text, err)
			}
			// A backend's text reaches the error without control
			// characters (it is shown to admins and logged); the only
			// newlines are the list's of several problems.
			assert.NotRegexp(t, `[\x00-\x09\x0b-\x1f\x7f]`, err.Error())
			// Nothing changed anywhere.
			calls := e.w.Calls()
			for _, op := range mutating {
				assert.Zero(t, calls[op], "pre-flight failure called %s", op)
			}
			assert.Empty(t, e.w.Touched())
			for l, m := range groups {
				assert.Equal(t, m, e.w.Members(l), "group %s changed", l)
			}
			list, _ := e.ex.List(context.Background())
			assert.Empty(t, list, "no session recorded")
		})
	}
}

func TestPreflightFieldErrors(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 2}, 1)
	_, err := e.ex.Create(context.Background(), crus.Spec{})
	var fe *crus.FieldError
	require.ErrorAs(t, err, &fe)
	for _, field := range []string{"starting_label", "upgrading_label", "failed_label", "upgrade_step_size", "upgrade_template_id", "workload_manager_type"} {
		assert.Contains(t, err.Error(), field)
	}
	assert.Zero(t, e.w.CallsTo("hsm")+e.w.CallsTo("wlm")+e.w.CallsTo("bos"), "an invalid spec makes no call")
}

func TestRunClearsFailedGroupWhenAsked(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	e.w.AddNode("x3000c0s0b0n0", 900)
	e.w.AddGroup(fake.FailedLabel, "x3000c0s0b0n0")
	e.spec.ClearFailed = true
	s := e.create()
	assert.Equal(t, []string{"x3000c0s0b0n0"}, s.Progress.FailedToClear)
	assert.Equal(t, []string{"x3000c0s0b0n0"}, e.w.Members(fake.FailedLabel), "nothing changed at creation")
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	assert.Empty(t, e.w.Members(fake.FailedLabel))
	assert.Empty(t, final.Progress.FailedToClear)
	assert.Contains(t, final.Messages, `Cleared 1 node from the failed group "crus-failed"`)
	assert.Equal(t, 4, final.Counts().Upgraded)
}

// TestCancelAtEveryStage deletes the session when step 2 reaches each
// stage, and checks DESIGN.md's cancel semantics.
func TestCancelAtEveryStage(t *testing.T) {
	stages := []crus.Stage{crus.StageStarting, crus.StageQuiescing, crus.StageQuiesced, crus.StageBooting, crus.StageBooted, crus.StageWLMWaiting}
	for _, stage := range stages {
		t.Run(string(stage), func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 9, Busy: 0.7}, 3)
			e.w.SetFaults(e.w.XNames()[4], fake.NodeFaults{BootFails: true}) // step 2 has a failure
			var deletedAt crus.Stage
			e.onEvent = func(ev crus.Event) {
				if deletedAt == "" && ev.Kind == crus.EventStage && ev.Stage == stage && (ev.Step == 2 || stage == crus.StageStarting && ev.Step == 1) {
					deletedAt = stage
					_, err := e.ex.Delete(context.Background(), ev.Session)
					require.NoError(t, err)
				}
			}
			s := e.create()
			final, err := e.ex.Run(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			require.Equal(t, stage, deletedAt, "the stage was reached")
			e.check(final)
			assert.True(t, final.Completed)
			assert.Equal(t, crus.StateDeleting, final.State)
			assert.Equal(t, crus.ResultCancelled, final.Progress.Result)
			for _, n := range final.Progress.Nodes {
				switch {
				case n.Step == 1:
					assert.Equal(t, crus.OutcomeUpgraded, n.Outcome, "step 1 finished before the cancel: %s", n.XName)
				case n.Step == 3:
					assert.Equal(t, crus.OutcomeUntouched, n.Outcome, "%s never touched", n.XName)
					assert.Zero(t, e.w.Touched()[n.XName], "%s never touched", n.XName)
				case stage == crus.StageStarting || stage == crus.StageQuiescing || stage == crus.StageQuiesced:
					assert.Equal(t, crus.OutcomeUntouched, n.Outcome, "%s drained, not rebooted: resumed", n.XName)
				default: // booting or later: seen through
					assert.Contains(t, []crus.Outcome{crus.OutcomeUpgraded, crus.OutcomeFailed}, n.Outcome, n.XName)
				}
			}
			assert.Empty(t, e.w.Members(fake.UpgradingLabel))
			// Deleting the finished session removes its record.
			_, err = e.ex.Delete(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			_, err = e.ex.Get(context.Background(), s.UpgradeID)
			assert.ErrorIs(t, err, crus.ErrSessionNotFound)
		})
	}
}

func TestDeleteBeforeRun(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	s := e.create()
	d, err := e.ex.Delete(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	assert.True(t, d.Completed)
	assert.Equal(t, crus.ResultCancelled, d.Progress.Result)
	assert.Equal(t, 4, d.Counts().Untouched)
	assert.Empty(t, e.w.Touched())
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err, "running a finished session returns it")
	assert.Equal(t, d.Progress.Result, final.Progress.Result)
}

func TestDeleteUnknownSession(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 1}, 1)
	_, err := e.ex.Delete(context.Background(), "nope")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	_, err = e.ex.Run(context.Background(), "nope")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
}

// TestRunStopsOnContextAndResumes stops the executor in the middle of each
// stage, then lets a new executor take the session up from the store.
func TestRunStopsOnContextAndResumes(t *testing.T) {
	for _, stage := range []crus.Stage{crus.StageQuiescing, crus.StageBooting, crus.StageWLMWaiting} {
		t.Run(string(stage), func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 9, Busy: 0.7}, 3)
			ctx, cancel := context.WithCancel(context.Background())
			e.onEvent = func(ev crus.Event) {
				if ev.Kind == crus.EventStage && ev.Stage == stage && ev.Step == 2 {
					cancel()
				}
			}
			s := e.create()
			_, err := e.ex.Run(ctx, s.UpgradeID)
			require.ErrorIs(t, err, context.Canceled)
			e.onEvent = nil
			stored, err := e.store.Get(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			assert.False(t, stored.Completed)
			assert.Equal(t, 2, stored.Progress.Step)

			// Time passes while no executor runs.
			e.w.Advance(20 * time.Minute)
			final, err := e.executor().Run(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			e.check(final)
			assert.Equal(t, 9, final.Counts().Upgraded)
			assert.Contains(t, final.Messages, "Session taken up by an executor: observing the world again")
			for _, x := range e.w.XNames() {
				ws, _ := e.w.Node(x)
				assert.Equal(t, 1, ws.Reboots, "%s rebooted once", x)
			}
		})
	}
}

func TestRunIsExclusivePerExecutor(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4, Busy: 1}, 2)
	s := e.create()
	var inner error
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStarted {
			_, inner = e.ex.Run(context.Background(), s.UpgradeID)
		}
	}
	_, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	assert.ErrorIs(t, inner, crus.ErrSessionBusy)
}

// TestRunRefusesCorruptRecord: a record that cannot be right is refused
// before anything is done for it. A reservation bound of 10^12 would have
// had a run that cannot read the reservations delete 10^12 names.
func TestRunRefusesCorruptRecord(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		corrupt    func(p *crus.Progress)
	}{
		{"phase", "unknown phase", func(p *crus.Progress) { p.Nodes[0].Phase = "exploding" }},
		{"booked_up_to", "booked_up_to 1000000000000 out of range", func(p *crus.Progress) { p.BookedUpTo = 1e12 }},
		{"booked_up_to negative", "booked_up_to -1 out of range", func(p *crus.Progress) { p.BookedUpTo = -1 }},
		{"booked", "booked: 1000000000000 out of range", func(p *crus.Progress) { p.Booked = []int64{3, 1e12} }},
		{"booked negative", "booked: -4 out of range", func(p *crus.Progress) { p.Booked = []int64{-4} }},
		{"booked unordered", "booked: 3 out of range or order", func(p *crus.Progress) { p.Booked = []int64{5, 3} }},
		{"booked twice", "booked: 5 out of range or order", func(p *crus.Progress) { p.Booked = []int64{5, 5} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 2}, 1)
			s := e.create()
			tc.corrupt(&s.Progress)
			require.NoError(t, e.store.Update(context.Background(), s))
			_, err := e.ex.Run(context.Background(), s.UpgradeID)
			assert.ErrorIs(t, err, crus.ErrCorruptSession)
			assert.ErrorContains(t, err, tc.want)
			assert.Empty(t, e.w.Touched())
		})
	}
}

func TestRunKeepsCapUnderLoad(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 64, Busy: 0.9, MaxJob: 8 * time.Hour}, 7)
	e.w.KeepBusy(0.9, 8*time.Hour, 10*time.Minute, time.Time{})
	s := e.run()
	assert.Equal(t, 64, s.Counts().Upgraded)
	assert.Equal(t, 7, e.w.MaxOut())
}

func TestNewExecutorNeedsAMapper(t *testing.T) {
	w := fake.New(fake.Options{})
	_, err := crus.NewExecutor(groupsOnly{w.HSM()}, w.WLM(), w.BOS(), crus.Config{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Mapper")
	_, err = crus.NewExecutor(groupsOnly{w.HSM()}, w.WLM(), w.BOS(), crus.Config{Mapper: crus.MapperFunc(func(x string) (string, error) { return x, nil })})
	require.NoError(t, err)
	_, err = crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), crus.Config{PollInterval: -time.Second})
	assert.ErrorContains(t, err, "PollInterval")
	_, err = crus.NewExecutor(nil, w.WLM(), w.BOS(), crus.Config{})
	assert.Error(t, err)
}

// groupsOnly hides every capability but hsm.GroupStore.
type groupsOnly struct{ hsm.GroupStore }

// TestDeleteFromAnotherExecutor cancels through a second executor on the
// same store (another process, in real life): the running one notices at
// its next poll, not only when it next writes.
func TestDeleteFromAnotherExecutor(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6}, 3)
	for _, x := range e.w.XNames() {
		require.NoError(t, e.w.StartJob(x, 10*time.Hour, 12*time.Hour))
	}
	other := e.executor()
	s := e.create()
	e.w.Schedule(e.w.Now().Add(time.Hour), func() {
		_, err := other.Delete(context.Background(), s.UpgradeID)
		require.NoError(t, err)
	})
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	assert.Equal(t, crus.ResultCancelled, final.Progress.Result)
	assert.Equal(t, 6, final.Counts().Untouched)
	assert.Less(t, final.Progress.EndedAt.Sub(final.Progress.CancelledAt), 2*time.Minute, "noticed at the next poll")
}

func TestRunWaitsForASlowDrain(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 4)
	x := e.w.XNames()[1]
	e.w.SetFaults(x, fake.NodeFaults{SlowDrain: 3 * time.Hour})
	require.NoError(t, e.w.StartJob(x, time.Hour, 2*time.Hour))
	start := e.w.Now()
	s := e.run()
	assert.Equal(t, 4, s.Counts().Upgraded)
	n := s.Node(x)
	assert.False(t, n.RebootRequested.Before(start.Add(4*time.Hour)), "rebooted while its job was still completing")
	assert.Equal(t, crus.StageDone, s.Progress.Stage)
}

// stuckByWLM counts the nodes the workload manager would not let go: a
// failed node it refused to FAIL, and a node it refused to resume, stay
// drained by crus, and the fake counts them out of service for good. crus
// reports each (its reason says so) and no longer counts it in flight: a
// refusal is not an outage, and holding the node's place for ever would
// stall the session.
func stuckByWLM(s *crus.Session) int {
	n := 0
	for _, r := range s.Progress.Nodes {
		switch {
		case r.Outcome == crus.OutcomeFailed && strings.Contains(r.Reason, "workload manager:"):
			n++
		case (r.Outcome == crus.OutcomeSkipped || r.Outcome == crus.OutcomeUntouched) && strings.Contains(r.Reason, "resume refused:"):
			n++
		}
	}
	return n
}
