package filestore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/filestore"
)

// Example runs a session on a file store, stops the executor in the
// middle (as a restart would), and carries on with a new executor on the
// store opened again.
func Example() {
	dir, err := os.MkdirTemp("", "crus-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 6, Busy: 0.5})
	spec := crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 2, TemplateID: fake.Template, WorkloadManagerType: "slurm",
	}
	ctx, stop := context.WithCancel(context.Background())

	st, err := filestore.Open(dir, filestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{
		Store: st, Clock: world, NewID: func() string { return "example" },
		OnEvent: func(ev crus.Event) {
			if ev.Kind == crus.EventStepStarted && ev.Step == 2 {
				stop() // the controller goes down during step 2
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	s, err := ex.Create(ctx, spec)
	if err != nil {
		log.Fatal(err)
	}
	_, err = ex.Run(ctx, s.UpgradeID)
	fmt.Println("first run:", err)
	st.Close()

	// A new process: open the store again, take the session up by its id.
	st, err = filestore.Open(dir, filestore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ex, err = crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Store: st, Clock: world})
	if err != nil {
		log.Fatal(err)
	}
	final, err := ex.Run(context.Background(), "example")
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range final.Messages {
		fmt.Println(m)
	}
	// Output:
	// first run: context canceled
	// Session created: 6 nodes to upgrade in 3 steps of at most 2
	// Session started
	// Step 1 of 3: quiescing 2 nodes
	// Step 1: all 2 nodes quiesced; boot session crus-example-1 created
	// Step 1: boot session complete: 2 booted, 0 failed; waiting for the workload manager
	// Step 1 of 3 complete: 2 upgraded, 0 failed, 0 skipped, 0 untouched
	// Step 2 of 3: quiescing 2 nodes
	// Session taken up by an executor: observing the world again
	// Step 2: all 2 nodes quiesced; boot session crus-example-2 created
	// Step 2: boot session complete: 2 booted, 0 failed; waiting for the workload manager
	// Step 2 of 3 complete: 2 upgraded, 0 failed, 0 skipped, 0 untouched
	// Step 3 of 3: quiescing 2 nodes
	// Step 3: all 2 nodes quiesced; boot session crus-example-3 created
	// Step 3: boot session complete: 2 booted, 0 failed; waiting for the workload manager
	// Step 3 of 3 complete: 2 upgraded, 0 failed, 0 skipped, 0 untouched
	// Upgrade session completed: 6 upgraded, 0 failed, 0 skipped, 0 untouched
}
