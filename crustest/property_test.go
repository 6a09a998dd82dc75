package crustest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/wlm"
)

var errPermanent = batch.NewPermanent("crustest: injected permanent failure")

var ops = []string{
	"hsm.Members", "hsm.AddMembers", "hsm.RemoveMembers",
	"wlm.Nodes", "wlm.Drain", "wlm.Resume", "wlm.Fail", "wlm.JobEnds",
	"bos.Reboot", "bos.Status",
}

// TestCheckUnderFaults runs sessions through the kit's public fault model
// (failing calls, outages of any length, nodes that fail to boot or never
// return, operators acting on session nodes and putting an outsider in the
// upgrading group, jobs starting) with either strategy, and checks each
// with World.Check: crus keeps its promises, and the checker raises no
// false alarm. A failure prints the rapid seed to replay.
func TestCheckUnderFaults(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 16).Draw(t, "nodes")
		w := crustest.New(crustest.Options{
			Nodes: n + 2, // two outsiders
			Busy:  rapid.Float64Range(0, 1).Draw(t, "busy"),
			Seed:  rapid.Uint64().Draw(t, "seed"),
		})
		xs := w.XNames()
		w.AddGroup(crustest.StartingLabel, xs[:n]...)
		for i := range n {
			switch rapid.IntRange(0, 11).Draw(t, fmt.Sprintf("fault%d", i)) {
			case 0:
				w.SetFaults(xs[i], crustest.NodeFaults{BootFails: true})
			case 1:
				w.SetFaults(xs[i], crustest.NodeFaults{NeverReturns: true})
			case 2:
				w.SetFaults(xs[i], crustest.NodeFaults{RefuseDrain: true})
			case 3:
				w.SetFaults(xs[i], crustest.NodeFaults{SlowDrain: 20 * time.Minute})
			}
		}
		start := w.Now()
		at := func(label string) time.Time {
			return start.Add(time.Duration(rapid.IntRange(0, 600).Draw(t, label)) * time.Minute)
		}
		for i := range rapid.IntRange(0, 4).Draw(t, "faults") {
			op := rapid.SampledFrom(ops).Draw(t, fmt.Sprintf("op%d", i))
			var err error
			if rapid.Bool().Draw(t, fmt.Sprintf("permanent%d", i)) {
				err = errPermanent
			}
			if rapid.Bool().Draw(t, fmt.Sprintf("outage%d", i)) {
				// Outages fail with transient errors, as in crus's own
				// property tests: a permanent error from wlm.Nodes for a
				// while makes Run poll without waiting (reported).
				from := at(fmt.Sprintf("from%d", i))
				w.Outage(op, from, from.Add(time.Duration(rapid.IntRange(1, 180).Draw(t, fmt.Sprintf("span%d", i)))*time.Minute), nil)
			} else {
				count := rapid.IntRange(1, 30).Draw(t, fmt.Sprintf("count%d", i))
				w.Schedule(at(fmt.Sprintf("at%d", i)), func() { w.FailNext(op, count, err) })
			}
		}
		for i := range rapid.IntRange(0, 4).Draw(t, "operator") {
			x := xs[rapid.IntRange(0, n-1).Draw(t, fmt.Sprintf("node%d", i))]
			kind := rapid.SampledFrom([]string{"drain", "fail", "resume", "job", "outsider"}).Draw(t, fmt.Sprintf("act%d", i))
			w.Schedule(at(fmt.Sprintf("actAt%d", i)), func() {
				switch kind {
				case "drain":
					_ = w.AdminDrain(x, "admin: drained during the session")
				case "fail":
					_ = w.AdminFail(x, "admin: failed during the session")
				case "resume":
					_ = w.AdminResume(x)
				case "job":
					_ = w.StartJob(x, 3*time.Hour, 4*time.Hour) // only if in service
				case "outsider":
					w.AddMember(crustest.UpgradingLabel, xs[n])
				}
			})
		}
		spec := w.Spec(rapid.IntRange(1, 5).Draw(t, "step"))
		spec.BootLimit = rapid.SampledFrom([]crus.BootLimit{crus.LimitNodes, crus.LimitLabel}).Draw(t, "limit")
		spec.Rollout.Strategy = rapid.SampledFrom([]crus.Strategy{crus.StrategyClassic, crus.StrategyRolling}).Draw(t, "strategy")
		if spec.Rollout.Strategy == crus.StrategyRolling {
			spec.BootLimit = crus.LimitNodes
		}

		ctx := context.Background()
		// A session that has not completed after 30 days of virtual time,
		// or after a million calls to the workload manager (a loop that
		// does not wait), never will: stop it and say so.
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		w.Schedule(w.Now().Add(30*24*time.Hour), cancel)
		manager := &callGuard{Manager: w.WLM(), left: 1_000_000, cancel: cancel}
		ex, err := crus.NewExecutor(w.HSM(), manager, w.BOS(), w.Config())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ex.Create(ctx, spec)
		if err != nil {
			t.Skipf("refused at creation (every node out of service, or a fault): %v", err)
		}
		final, err := ex.Run(runCtx, s.UpgradeID)
		if err != nil {
			got, _ := ex.Get(ctx, s.UpgradeID)
			if got != nil {
				t.Logf("stage %s step %d/%d paused %v; messages:", got.Progress.Stage, got.Progress.Step, got.Progress.Steps, got.Progress.Paused)
				for _, m := range got.Messages[max(0, len(got.Messages)-15):] {
					t.Logf("  %s", m)
				}
				for _, n := range got.Progress.Nodes {
					t.Logf("%s %s %s: %s (last error %s)", n.XName, n.Phase, n.Outcome, n.Reason, n.LastError)
				}
			}
			t.Logf("calls: %v", w.Calls())
			t.Fatalf("Run: %v (after %s of virtual time)", err, w.Now().Sub(start))
		}
		if err := w.Check(ctx, final); err != nil {
			for _, n := range final.Progress.Nodes {
				t.Logf("%s %s %s: %s", n.XName, n.Phase, n.Outcome, n.Reason)
			}
			t.Fatal(err)
		}
	})
}

// callGuard cancels a session's Run once the workload manager has been
// called too often. It keeps the capabilities crus looks for.
type callGuard struct {
	wlm.Manager
	mu     sync.Mutex
	left   int
	cancel func()
}

func (g *callGuard) count() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.left--; g.left == 0 {
		g.cancel()
	}
}

func (g *callGuard) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	g.count()
	return g.Manager.Nodes(ctx, names)
}

func (g *callGuard) ReportsBootTime() bool { return g.Manager.(wlm.BootTimeReporter).ReportsBootTime() }

func (g *callGuard) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	g.count()
	return g.Manager.(wlm.JobEnder).JobEnds(ctx, names)
}

func (g *callGuard) Describe(n wlm.Node) string { return wlm.DescriberOf(g.Manager).Describe(n) }
