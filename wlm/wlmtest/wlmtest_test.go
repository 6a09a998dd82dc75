package wlmtest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// These tests check the suite itself: that it passes an adapter that keeps
// the contract, and fails, saying why, one that breaks it. A failing run
// of the suite would fail the test that makes it, so each broken adapter
// runs in a child process of the test binary (TestHelperSuite), whose
// output and exit status the parent reads.

// adapter is the kit's in-memory workload manager behind a wlm.Manager of
// its own that can misbehave. It has only the optional capabilities a
// plain adapter has (wlm.BootTimeReporter); the suite skips the others.
type adapter struct {
	inner wlm.Manager
	// read, if set, is how the adapter reads a reason back (a prefix of
	// its own, a cap on its length).
	read func(string) string
	// drainIsNoop makes Drain succeed without draining.
	drainIsNoop bool
}

func (a *adapter) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	nodes, err := a.inner.Nodes(ctx, names)
	if a.read != nil {
		for i := range nodes {
			if nodes[i].Reason != "" {
				nodes[i].Reason = a.read(nodes[i].Reason)
			}
		}
	}
	return nodes, err
}

func (a *adapter) Drain(ctx context.Context, names []string, reason string) error {
	if a.drainIsNoop {
		return ctx.Err()
	}
	return a.inner.Drain(ctx, names, reason)
}

func (a *adapter) Resume(ctx context.Context, names []string) error {
	return a.inner.Resume(ctx, names)
}

func (a *adapter) Fail(ctx context.Context, names []string, reason string) error {
	return a.inner.Fail(ctx, names, reason)
}

func (a *adapter) ReportsBootTime() bool { return true }

// harness runs the suite on an adapter over a fake cluster of 4 nodes.
type harness struct {
	w *fake.World
	a *adapter
}

var _ wlmtest.Rebooter = (*harness)(nil)

func newHarness(a adapter) wlmtest.HarnessMaker {
	return func(context.Context, *testing.T) (wlmtest.Harness, error) {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
		a.inner = w.WLM()
		return &harness{w: w, a: &a}, nil
	}
}

func (h *harness) Manager() wlm.Manager { return h.a }

func (h *harness) Nodes() []string {
	var names []string
	for _, x := range h.w.XNames() {
		n, _ := h.w.Node(x)
		names = append(names, n.Name)
	}
	return names
}

func (h *harness) xname(name string) string {
	for _, x := range h.w.XNames() {
		if n, _ := h.w.Node(x); n.Name == name {
			return x
		}
	}
	return ""
}

func (h *harness) StartJob(_ context.Context, name string) (func(context.Context) error, error) {
	x := h.xname(name)
	if err := h.w.StartJob(x, 1000*time.Hour, 1000*time.Hour); err != nil {
		return nil, err
	}
	return func(context.Context) error { h.w.EndJobs(x); return nil }, nil
}

func (h *harness) PowerOff(_ context.Context, name string) error {
	h.w.PowerOff(h.xname(name))
	return nil
}

func (h *harness) PowerOn(_ context.Context, name string) error {
	h.w.PowerOn(h.xname(name))
	return nil
}

func (h *harness) Sleep(_ context.Context, d time.Duration) error { h.w.Advance(d); return nil }
func (h *harness) Close(context.Context) error                    { return nil }

// helperCases are the runs of the suite TestHelperSuite makes in a child
// process, by the name in the environment variable helperEnv.
var helperCases = map[string]func(t *testing.T){
	"negative poll": func(t *testing.T) {
		// A broken adapter makes the suite wait, which a negative Poll
		// made endless.
		wlmtest.RunConformanceTestsWithOptions(t, newHarness(adapter{drainIsNoop: true}), wlmtest.Options{Poll: -time.Second})
	},
	"negative settle": func(t *testing.T) {
		wlmtest.RunConformanceTestsWithOptions(t, newHarness(adapter{}), wlmtest.Options{Settle: -time.Second})
	},
	"prefixed reasons": func(t *testing.T) {
		wlmtest.RunConformanceTests(t, newHarness(adapter{read: func(r string) string { return "root: " + r }}))
	},
	"reasons cut to 40 bytes": func(t *testing.T) {
		wlmtest.RunConformanceTests(t, newHarness(adapter{read: cut(40)}))
	},
	"reasons cut to 1000 bytes": func(t *testing.T) {
		wlmtest.RunConformanceTests(t, newHarness(adapter{read: cut(1000)})) // crus's short reasons survive
	},
}

// cut returns a reader of reasons that keeps n bytes of each.
func cut(n int) func(string) string {
	return func(r string) string { return r[:min(n, len(r))] }
}

const helperEnv = "CRUS_WLMTEST_HELPER"

// TestHelperSuite is the child process of suiteFails: it runs the case
// named in helperEnv, and nothing outside one.
func TestHelperSuite(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		t.Skip("runs only as the child process of another test")
	}
	helperCases[name](t)
}

// suiteFails runs the helper case in a child process and returns its
// output, failing t unless the suite failed there.
func suiteFails(t *testing.T, name string) string {
	t.Helper()
	if helperCases[name] == nil {
		t.Fatalf("no helper case %q", name)
	}
	// The timeout only ends a suite that never would (the bug of a
	// negative Poll); a correct one ends at once.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSuite$", "-test.v", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the suite on %s: %v, want it to fail\n%s", name, err, out)
	}
	return string(out)
}

// A negative duration in Options fails the suite at once, naming the
// option, instead of waiting forever (Poll) or failing every wait
// (Settle) with a message that does not say why.
func TestNegativeDurationsFailFast(t *testing.T) {
	for name, want := range map[string]string{
		"negative poll":   "wlmtest: Options.Poll -1s is negative",
		"negative settle": "wlmtest: Options.Settle -1s is negative",
	} {
		t.Run(name, func(t *testing.T) {
			out := suiteFails(t, name)
			if !strings.Contains(out, want) {
				t.Errorf("the suite with a %s: want it to say %q; it said\n%s", name, want, out)
			}
			if strings.Contains(out, "=== RUN   TestHelperSuite/") {
				t.Errorf("the suite with a %s ran its cases; want it to stop before\n%s", name, out)
			}
		})
	}
}

// The suite passes an adapter that reads reasons back as they were set,
// or with more after them (Slurm's "[user@time]", if an adapter kept it):
// crus recognises its reasons by how they begin.
func TestSuitePassesReasonsReadBackAsSet(t *testing.T) {
	for name, read := range map[string]func(string) string{
		"as set":           nil,
		"with a suffix":    func(r string) string { return r + " [root@2026-01-05T08:00:00]" },
		"cut to MaxReason": cut(wlm.MaxReason),
	} {
		t.Run(name, func(t *testing.T) {
			wlmtest.RunConformanceTests(t, newHarness(adapter{read: read}))
		})
	}
}

// An adapter whose reasons do not read back beginning with the reason set
// fails the suite, which says how they differ and what crus needs: crus
// recognises its own drains by their reason alone, and such an adapter
// made every session leave its nodes drained, each "skipped: drained by
// someone else". The suite used to set short reasons of its own shape and
// look for them anywhere in the reason read back.
func TestSuiteFailsReasonsNotReadBackAsSet(t *testing.T) {
	const needs = "Node.Reason must read back beginning with the reason given, unchanged, up to wlm.MaxReason (1024) bytes"
	for name, want := range map[string][]string{
		"prefixed reasons": {
			"--- FAIL: TestHelperSuite/DrainIdle", "--- FAIL: TestHelperSuite/Fail ", "--- FAIL: TestHelperSuite/LongReason",
			`reads back reason "root: crus 5f0c2a7e-8d3b-4e61-9a24-c1b7e3d90f58: rolling upgrade, step 1 of 3": the reason with "root: " put before it`,
			needs, `crus recognises its own drains and fails only by a reason that begins "crus <upgrade-id>:"`,
		},
		"reasons cut to 40 bytes": {
			"--- FAIL: TestHelperSuite/DrainIdle", "--- FAIL: TestHelperSuite/Fail ",
			`reads back reason "crus 5f0c2a7e-8d3b-4e61-9a24-c1b7e3d90f5": the reason cut to 40 of its 71 bytes`,
			needs,
		},
		"reasons cut to 1000 bytes": {
			"--- PASS: TestHelperSuite/DrainIdle", "--- FAIL: TestHelperSuite/LongReason",
			"the reason cut to 1000 of its 1024 bytes", needs,
		},
	} {
		t.Run(name, func(t *testing.T) {
			out := suiteFails(t, name)
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("the suite on an adapter with %s: want it to say %q; it said\n%s", name, w, out)
				}
			}
		})
	}
}
