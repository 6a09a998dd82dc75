package pbs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/examples/pbs"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// harness runs the conformance suite on the adapter over an in-memory
// server, on the kit's virtual clock. It can reboot nodes.
type harness struct {
	w *crustest.World
	*server
}

var _ wlmtest.Rebooter = harness{}

func (h harness) Manager() wlm.Manager { return pbs.New(h.server) }
func (h harness) Nodes() []string      { return h.w.Names() }

func (h harness) StartJob(_ context.Context, node string) (func(context.Context) error, error) {
	id, err := h.run(node, 1000*time.Hour)
	if err != nil {
		return nil, err
	}
	return func(context.Context) error { h.end(node, id); return nil }, nil
}

func (h harness) Sleep(_ context.Context, d time.Duration) error { h.w.Advance(d); return nil }
func (h harness) Close(context.Context) error                    { return nil }

func TestConformance(t *testing.T) {
	wlmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
		w := crustest.New(crustest.Options{Nodes: 4})
		return harness{w, newServer(w, w.Names())}, nil
	})
}

// TestSession upgrades twelve PBS nodes in steps of four with the kit's
// HSM and boot orchestrator: half of them run jobs of up to six hours, one
// fails to boot, one never comes back, one was offline before the session.
// crus's promises are checked by the kit, and the jobs by the server.
func TestSession(t *testing.T) {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 12, WorkloadManagerType: "pbs", Seed: 1})
	srv := newServer(w, w.Names())
	w.UseManager(pbs.New(srv), srv)
	names, xnames := w.Names(), w.XNames()
	for i := 0; i < len(names); i += 2 {
		if _, err := srv.run(names[i], time.Duration(i+1)*30*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	w.SetFaults(xnames[5], crustest.NodeFaults{BootFails: true, BootError: "kernel panic"})
	w.SetFaults(xnames[9], crustest.NodeFaults{NeverReturns: true})
	srv.setOffline(names[3], "admin: bad DIMM")

	final := upgrade(t, w, srv, w.Spec(4))

	want := map[string]crus.Outcome{xnames[3]: crus.OutcomeSkipped, xnames[5]: crus.OutcomeFailed, xnames[9]: crus.OutcomeFailed}
	for _, n := range final.Progress.Nodes {
		o, ok := want[n.XName]
		if !ok {
			o = crus.OutcomeUpgraded
		}
		if n.Outcome != o {
			t.Errorf("%s (%s): %s (%s), want %s", n.XName, n.Name, n.Outcome, n.Reason, o)
		}
	}
	// The failed nodes are offline with crus's reason, as PBS shows it.
	got, err := pbs.New(srv).Nodes(ctx, []string{names[5], names[9], names[3]})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range got[:2] {
		if !n.Fail || n.InService() {
			t.Errorf("failed node %s: %s (%s)", n.Name, wlm.DescriberOf(w.WLM()).Describe(n), n.Reason)
		}
	}
	if n := got[2]; !n.Drain || n.Reason != "admin: bad DIMM" {
		t.Errorf("node %s, offline before the session: %+v; crus must leave it alone", n.Name, n)
	}
	// crus words the reasons it records in the adapter's own words.
	if r := final.Node(xnames[3]).Reason; !strings.Contains(r, "free,offline (admin: bad DIMM)") {
		t.Errorf("the reason of %s is not in PBS's words: %s", xnames[3], r)
	}
	if d := wlm.DescriberOf(w.WLM()).Describe(got[2]); d != "free,offline" {
		t.Errorf("the kit's WLM describes %s as %q, want the adapter's own words", got[2].Name, d)
	}
	t.Logf("%d nodes, %s of virtual time, %d boot sessions", len(names), final.Progress.EndedAt.Sub(final.Progress.CreatedAt), w.Calls()["bos.Reboot"])
}

// upgrade creates and runs a session of spec on the kit's world, whose
// workload manager is srv's, and checks it as the kit does (Check: the
// cap, no busy node rebooted, one outcome each, no reservation left) and
// that srv lost no job to a reboot.
func upgrade(t *testing.T, w *crustest.World, srv *server, spec crus.Spec) *crus.Session {
	t.Helper()
	ctx := context.Background()
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ex.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Check(ctx, final); err != nil {
		t.Fatal(err)
	}
	if lost := srv.lostJobs(); len(lost) > 0 {
		t.Errorf("jobs lost to reboots: %v", lost)
	}
	return final
}
