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
