package crustest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
)

// Example upgrades twelve nodes, half of them busy, in steps of four on
// the kit, with one node that fails to boot, and checks crus's promises.
func Example() {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 12, Busy: 0.5})
	w.SetFaults(crustest.XName(7), crustest.NodeFaults{BootFails: true, BootError: "kernel panic"})

	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
	if err != nil {
		log.Fatal(err)
	}
	s, err := ex.Create(ctx, w.Spec(4))
	if err != nil {
		log.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Check(ctx, final); err != nil {
		log.Fatal(err)
	}
	c := final.Counts()
	fmt.Printf("%s: %d upgraded, %d failed, in %d boot sessions\n", final.Progress.Result, c.Upgraded, c.Failed, w.Calls()["bos.Reboot"])
	// Output:
	// complete: 11 upgraded, 1 failed, in 3 boot sessions
}

// Example_scheduled runs the scheduled strategy on the kit: the kit's
// workload manager books nodes (wlm.Scheduler) as Slurm's maintenance
// reservations do, and Check also finds any reservation the session left.
func Example_scheduled() {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 16, Busy: 0.8, Seed: 4})
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
	if err != nil {
		log.Fatal(err)
	}
	spec := w.Spec(3)
	spec.Strategy = crus.StrategyScheduled
	s, err := ex.Create(ctx, spec)
	if err != nil {
		log.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Check(ctx, final); err != nil {
		log.Fatal(err)
	}
	c := final.Counts()
	fmt.Printf("%s: %d upgraded, %d failed; reservations made: %v\n", final.Progress.Result, c.Upgraded, c.Failed, w.Calls()["wlm.Reserve"] > 0)
	// Output:
	// complete: 16 upgraded, 0 failed; reservations made: true
}
