package crustest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/wlm"
)

// newMini returns a mini workload manager of w's nodes, each up and idle.
func newMini(w *crustest.World) *mini {
	m := &mini{clock: w, nodes: map[string]*miniNode{}}
	for _, name := range w.Names() {
		m.nodes[name] = &miniNode{up: true, booted: w.Now().Add(-time.Hour)}
	}
	return m
}

// panics returns what f panicked with, or "no panic".
func panics(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return "no panic"
}

// UseManager refuses a nil manager or a nil power: with no power, it used
// to take the manager as the kit's own (the kit's StartJob went on
// starting jobs that m did not know), and nodes were never powered off in
// m, so Check blamed their reboots on jobs m never ran.
func TestUseManagerRefusesNil(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 2})
	m := newMini(w)
	for name, tc := range map[string]struct {
		use  func()
		want string
	}{
		"manager": {func() { w.UseManager(nil, m) }, "crustest: World.UseManager: nil wlm.Manager"},
		"power":   {func() { w.UseManager(m, nil) }, "crustest: World.UseManager: nil power: the kit's boot orchestrator reboots the manager's nodes through it"},
	} {
		if got := panics(tc.use); !strings.HasPrefix(got, tc.want) {
			t.Errorf("UseManager with a nil %s: %s\nwant a panic saying %q", name, got, tc.want)
		}
	}
}

// UseManager after WLM panics: an executor made before with WLM's
// answer drove the kit's own manager, never m, and Check passed though m
// was never called.
func TestUseManagerAfterWLMPanics(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 2})
	_ = w.WLM()
	m := newMini(w)
	want := "crustest: World.UseManager after World.WLM"
	if got := panics(func() { w.UseManager(m, m) }); !strings.HasPrefix(got, want) {
		t.Errorf("UseManager after WLM: %s\nwant a panic saying %q", got, want)
	}
}

// Check fails when sessions rebooted nodes but the manager given to
// UseManager was never called through WLM: crus was given that manager
// itself, so the kit saw none of its drains and resumes and Check had
// nothing to check them by.
func TestCheckFailsWhenTheManagerWasNotCalled(t *testing.T) {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 4, WorkloadManagerType: "mini"})
	m := newMini(w)
	w.UseManager(m, m)
	ex, err := crus.NewExecutor(w.HSM(), m, w.BOS(), w.Config()) // not w.WLM()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ex.Create(ctx, w.Spec(2))
	if err != nil {
		t.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		t.Fatal(err)
	}
	want := "4 nodes were rebooted, but the workload manager given to UseManager received no call through WLM"
	if err := w.Check(ctx, final); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Check: %v\nwant it to say %q", err, want)
	}
}

// Failures injected into the workload manager before UseManager are
// injected into the manager it gives: they used to be dropped with the
// kit's manager.
func TestUseManagerKeepsInjectedFailures(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 2})
	boom := errors.New("boom")
	w.FailNext("wlm.Drain", 1, boom)
	w.Outage("wlm.Resume", w.Now(), w.Now().Add(time.Hour), boom)
	m := newMini(w)
	w.UseManager(m, m)
	var mgr wlm.Manager = w.WLM()
	if err := mgr.Drain(t.Context(), w.Names()[:1], "crus s1: step 1"); !errors.Is(err, boom) {
		t.Errorf("Drain after FailNext and UseManager: %v, want %v", err, boom)
	}
	if err := mgr.Resume(t.Context(), w.Names()[:1]); !errors.Is(err, boom) {
		t.Errorf("Resume during an Outage begun before UseManager: %v, want %v", err, boom)
	}
}

// twice is a manager that answers every node twice to Nodes.
type twice struct{ *mini }

func (m twice) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	nodes, err := m.mini.Nodes(ctx, names)
	var out []wlm.Node
	for _, n := range nodes {
		out = append(out, n, n)
	}
	return out, err
}

// runOn runs a session in steps of step over every node of w, through
// its WLM, and returns its record.
func runOn(t *testing.T, w *crustest.World, step int) *crus.Session {
	t.Helper()
	ctx := context.Background()
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ex.Create(ctx, w.Spec(step))
	if err != nil {
		t.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		t.Fatal(err)
	}
	return final
}

// A manager that answers a node twice is counted once in the nodes out of
// service (Check reported a breach of the step size, each node named
// twice), and Check says the manager breaks its contract.
func TestCheckCountsANodeAnsweredTwiceOnce(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 4, WorkloadManagerType: "mini"})
	m := twice{newMini(w)}
	w.UseManager(m, m)
	err := w.Check(context.Background(), runOn(t, w, 2))
	if err == nil {
		t.Fatal("Check found nothing wrong with a manager that answers every node twice")
	}
	want := "the workload manager breaks the wlm.Manager contract: the manager answered nid000001 twice in one answer of Nodes"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Check: %v\nwant it to say %q", err, want)
	}
	if strings.Contains(err.Error(), "out of service because of crus") {
		t.Errorf("Check: %v\nwant no breach of the step size: each node is out of service once", err)
	}
}

// reading is a manager that reads reasons back through read.
type reading struct {
	*mini
	read func(string) string
}

func (m reading) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	nodes, err := m.mini.Nodes(ctx, names)
	for i := range nodes {
		if nodes[i].Reason != "" {
			nodes[i].Reason = m.read(nodes[i].Reason)
		}
	}
	return nodes, err
}

// A manager whose reasons do not read back as crus set them makes crus
// leave every node it drained drained, each "skipped: drained by someone
// else". Check said nothing (a reason with a prefix) or blamed crus for a
// breach of the step size (a reason cut to 40 bytes, still beginning
// "crus "); it now names the nodes, says the reasons do not read back as
// set, and that the nodes were left drained.
func TestCheckReasonsNotReadBackAsSet(t *testing.T) {
	for name, read := range map[string]func(string) string{
		"prefixed":        func(r string) string { return "root: " + r },
		"cut to 40 bytes": func(r string) string { return r[:min(40, len(r))] },
	} {
		t.Run(name, func(t *testing.T) {
			w := crustest.New(crustest.Options{Nodes: 6, WorkloadManagerType: "mini"})
			m := reading{newMini(w), read}
			w.UseManager(m, m)
			final := runOn(t, w, 2)
			if c := final.Counts(); c.Skipped != 6 {
				t.Fatalf("a session on a manager whose reasons %s: %+v; want every node skipped, as drained by someone else", name, c)
			}
			err := w.Check(context.Background(), final)
			if err == nil {
				t.Fatal("Check found nothing wrong")
			}
			all := strings.Join(w.Names(), " ")
			for _, want := range []string{
				"the workload manager's reasons do not read back as set, on 6 nodes (" + all + "): crus called Drain on nid000001 with reason \"crus " + final.UpgradeID + ": rolling upgrade, step 1 of 3\" and it reads back " + fmt.Sprintf("%q", read("crus "+final.UpgradeID+": rolling upgrade, step 1 of 3")),
				"Node.Reason must read back beginning with the reason given, unchanged, up to wlm.MaxReason (1024) bytes",
				"6 nodes left drained: crus drained them and never resumed them, since their reasons do not read back as crus set them: " + crustest.XName(0) + " (nid000001, reason ",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Check: %v\nwant it to say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "out of service because of crus") {
				t.Errorf("Check: %v\nwant no breach of the step size: the reasons are the manager's fault", err)
			}
		})
	}
}
