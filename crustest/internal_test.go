package crustest

import (
	"context"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

// TestSampledOutOfServiceMatchesTheFake checks the recorder's way of
// measuring the nodes out of service because of crus (sampling through
// the wlm.Manager interface after every drain and reboot), which is all
// an outside workload manager allows, against the kit's own manager's
// exact count, on random sessions.
func TestSampledOutOfServiceMatchesTheFake(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := New(Options{
			Nodes: rapid.IntRange(1, 16).Draw(t, "nodes"),
			Busy:  rapid.Float64Range(0, 1).Draw(t, "busy"),
			Seed:  rapid.Uint64().Draw(t, "seed"),
		})
		step := rapid.IntRange(1, 5).Draw(t, "step")
		for i, x := range w.XNames() {
			switch rapid.IntRange(0, 9).Draw(t, fmt.Sprintf("fault%d", i)) {
			case 0:
				w.SetFaults(x, NodeFaults{BootFails: true})
			case 1:
				w.SetFaults(x, NodeFaults{NeverReturns: true})
			case 2:
				w.SetFaults(x, NodeFaults{RefuseDrain: true})
			}
		}
		spec := w.Spec(step)
		spec.Rollout.Strategy = rapid.SampledFrom([]crus.Strategy{crus.StrategyClassic, crus.StrategyRolling}).Draw(t, "strategy")
		if spec.Rollout.Strategy == crus.StrategyRolling {
			spec.BootLimit = crus.LimitNodes
		}
		final := run(t, w, spec)
		r := w.recorder()
		most := 0
		for _, s := range r.samples {
			most = max(most, len(s))
		}
		if most != w.fw.MaxOut() {
			t.Fatalf("sampled %d nodes out of service at most, the fake counted %d; samples %v", most, w.fw.MaxOut(), r.samples)
		}
		if err := w.Check(context.Background(), final); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNamesAreTheFakes checks the kit's documented labels are the ones its
// World is built with.
func TestNamesAreTheFakes(t *testing.T) {
	for _, p := range [][2]string{
		{StartingLabel, fake.StartingLabel}, {UpgradingLabel, fake.UpgradingLabel},
		{FailedLabel, fake.FailedLabel}, {Template, fake.Template},
	} {
		if p[0] != p[1] {
			t.Errorf("crustest says %q, the World has %q", p[0], p[1])
		}
	}
}

func run(t interface {
	Fatal(...any)
	Helper()
}, w *World, spec crus.Spec) *crus.Session {
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
	return final
}
