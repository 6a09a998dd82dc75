package crus_test

import (
	"context"
	"fmt"
	"log"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

// Example upgrades a 12-node simulated cluster in steps of 4, on the
// in-memory backends in virtual time.
func Example() {
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 12, Busy: 0.5})
	world.SetFaults(fake.XName(7), fake.NodeFaults{BootFails: true, BootError: "kernel panic"})

	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{
		Clock: world, // virtual time: hours of draining take no wall time
		NewID: func() string { return "example" },
		OnEvent: func(ev crus.Event) {
			if ev.Kind == crus.EventStepStarted {
				fmt.Printf("step %d of %d: %d nodes\n", ev.Step, ev.Steps, ev.Nodes)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	s, err := ex.Create(ctx, crus.Spec{
		StartingLabel:       fake.StartingLabel,
		UpgradingLabel:      fake.UpgradingLabel,
		FailedLabel:         fake.FailedLabel,
		StepSize:            4,
		TemplateID:          fake.Template,
		WorkloadManagerType: "slurm",
	})
	if err != nil {
		log.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		log.Fatal(err)
	}
	c := final.Counts()
	fmt.Printf("%s: %d upgraded, %d failed\n", final.State, c.Upgraded, c.Failed)
	for _, n := range final.Progress.Nodes {
		if n.Outcome == crus.OutcomeFailed {
			fmt.Printf("%s (%s): %s\n", n.XName, n.Name, n.Reason)
		}
	}
	// Output:
	// step 1 of 3: 4 nodes
	// step 2 of 3: 4 nodes
	// step 3 of 3: 4 nodes
	// READY: 11 upgraded, 1 failed
	// x1000c0s1b1n1 (nid000008): boot failed in boot session crus-example-2: kernel panic
}

// ExampleExecutor_Create shows a pre-flight refusal: every problem is
// listed, and nothing is changed.
func ExampleExecutor_Create() {
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
	world.AddGroup(fake.UpgradingLabel, fake.XName(0)) // left over from an earlier run
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world})
	if err != nil {
		log.Fatal(err)
	}
	_, err = ex.Create(context.Background(), crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 2, TemplateID: "no-such-template", WorkloadManagerType: "slurm",
	})
	fmt.Println(err)
	// Output:
	// crus: pre-flight check failed: 2 problems:
	//   - boot session template: bos: session template not found: "no-such-template"
	//   - crus: group is not empty: upgrading group "crus-upgrading" must be empty, it has 1 member: x1000c0s0b0n0
}
