package crustest_test

import (
	"testing"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
)

// TestScheduledSessionOnTheKit: a session of the scheduled strategy books
// its nodes on the kit's own workload manager (the kit's recorded manager
// keeps wlm.Scheduler; it once hid it, and the session ran as a rolling
// one), keeps every promise Check checks, and leaves no reservation.
func TestScheduledSessionOnTheKit(t *testing.T) {
	ctx := t.Context()
	w := crustest.New(crustest.Options{Nodes: 16, Busy: 0.8, Seed: 4})
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
	if err != nil {
		t.Fatal(err)
	}
	spec := w.Spec(3)
	spec.Strategy = crus.StrategyScheduled
	s, err := ex.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Check(ctx, final); err != nil {
		t.Error(err)
	}
	if c := final.Counts(); c.Upgraded+c.Failed != 16 {
		t.Errorf("counts %+v", c)
	}
	calls := w.Calls()
	if calls["wlm.Reserve"] == 0 || calls["wlm.Reservations"] == 0 {
		t.Errorf("the session never booked a node: calls %v", calls)
	}
}
