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
