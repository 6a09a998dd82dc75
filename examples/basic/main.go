// Command basic runs a rolling upgrade of a simulated 500-node cluster in
// steps of 50, on crus's in-memory backends and in virtual time: hours of
// draining and rebooting take a fraction of a second.
//
//	go run ./examples/basic
//	go run ./examples/basic -nodes 2000 -step 100 -seed 7
//	go run ./examples/basic -json > session.json
//
// It prints one line per step and a summary; with -json it prints the
// final session record instead (the original CRUS fields plus per-node
// outcomes). -v logs what the executor does to stderr.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

func main() {
	nodes := flag.Int("nodes", 500, "compute nodes in the simulated cluster")
	step := flag.Int("step", 50, "upgrade step size: most nodes out of service at once")
	seed := flag.Uint64("seed", 1, "random seed (jobs, faults, reboot times)")
	asJSON := flag.Bool("json", false, "print the final session record as JSON instead of the summary")
	verbose := flag.Bool("v", false, "log the executor's work to stderr")
	flag.Parse()
	log.SetFlags(0)
	if err := run(os.Stdout, *nodes, *step, *seed, *asJSON, *verbose); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer, nodes, step int, seed uint64, asJSON, verbose bool) error {
	if nodes < 1 {
		return fmt.Errorf("-nodes must be at least 1, got %d", nodes)
	}
	wall := time.Now()
	world := fake.NewCluster(fake.ClusterOptions{
		Options: fake.Options{Seed: seed},
		Nodes:   nodes,
		Busy:    0.8,
		MaxJob:  6 * time.Hour,
	})
	world.KeepBusy(0.8, 6*time.Hour, 10*time.Minute, time.Time{})
	faults := injectFaults(world, nodes, seed)

	logger := slog.New(slog.DiscardHandler)
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	start := world.Now()
	ids := rand.New(rand.NewPCG(seed, seed))
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{
		Clock:  world,
		Logger: logger,
		NewID: func() string {
			id, _ := uuid.NewRandomFromReader(readerFunc(func(p []byte) (int, error) {
				for i := range p {
					p[i] = byte(ids.Uint32())
				}
				return len(p), nil
			}))
			return id.String()
		},
		OnEvent: func(ev crus.Event) {
			if asJSON || ev.Kind != crus.EventStepStarted {
				return
			}
			fmt.Fprintf(out, "[%s] step %2d of %d: %d nodes\n", elapsed(ev.Time.Sub(start)), ev.Step, ev.Steps, ev.Nodes)
		},
	})
	if err != nil {
		return err
	}
	ctx := context.Background()
	sess, err := ex.Create(ctx, crus.Spec{
		StartingLabel:       fake.StartingLabel,
		UpgradingLabel:      fake.UpgradingLabel,
		FailedLabel:         fake.FailedLabel,
		StepSize:            step,
		TemplateID:          fake.Template,
		WorkloadManagerType: "slurm",
	})
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintf(out, "crus: rolling upgrade of %d nodes in steps of %d, in-memory backends, virtual time (seed %d)\n", nodes, step, seed)
		fmt.Fprintf(out, "injected: %s\n", faults)
		fmt.Fprintf(out, "session %s: %s\n", sess.UpgradeID, sess.Messages[0])
	}
	final, err := ex.Run(ctx, sess.UpgradeID)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(final)
	}
	summary(out, final, world, final.Progress.EndedAt.Sub(start), time.Since(wall))
	return nil
}

// injectFaults makes about 1% of nodes fail to boot and 0.4% never come
// back, and takes three nodes out of service before the session (two
// drained by an admin, one down).
func injectFaults(w *fake.World, nodes int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed^0x5eed, seed))
	pick := rng.Perm(nodes)
	take := func(n int) []string {
		n = min(n, len(pick))
		out := make([]string, n)
		for i := range n {
			out[i] = fake.XName(pick[i])
		}
		pick = pick[n:]
		return out
	}
	bootFails := take(max(1, nodes/100))
	never := take(max(1, nodes*4/1000))
	for _, x := range bootFails {
		w.SetFaults(x, fake.NodeFaults{BootFails: true, BootError: "kernel panic - not syncing: VFS: unable to mount root fs"})
	}
	for _, x := range never {
		w.SetFaults(x, fake.NodeFaults{NeverReturns: true})
	}
	for i, x := range take(2) {
		w.AdminDrain(x, fmt.Sprintf("hardware ticket HW-%d: DIMM errors", 4711+i))
	}
	for _, x := range take(1) {
		w.SetDown(x, true)
	}
	return fmt.Sprintf("%d nodes fail to boot, %d never return, 2 admin-drained, 1 down", len(bootFails), len(never))
}

func summary(out io.Writer, s *crus.Session, w *fake.World, simulated, wall time.Duration) {
	c := s.Counts()
	fmt.Fprintf(out, "\nsession %s: %s\n", s.UpgradeID, s.Progress.Result)
	fmt.Fprintf(out, "  upgraded   %5d\n", c.Upgraded)
	fmt.Fprintf(out, "  failed     %5d\n", c.Failed)
	listNodes(out, s, crus.OutcomeFailed)
	fmt.Fprintf(out, "  skipped    %5d\n", c.Skipped)
	listNodes(out, s, crus.OutcomeSkipped)
	fmt.Fprintf(out, "  untouched  %5d\n", c.Untouched)
	fmt.Fprintf(out, "  simulated  %s (%d steps)\n", elapsed(simulated), s.Progress.Steps)
	fmt.Fprintf(out, "  wall time  %s\n", wall.Round(time.Millisecond))
	fmt.Fprintf(out, "  max out    %d nodes at once (step size %d)\n", w.MaxOut(), s.StepSize)
	calls := w.Calls()
	for _, backend := range []string{"wlm", "hsm", "bos"} {
		var parts []string
		for _, op := range sortedKeys(calls) {
			if name, ok := strings.CutPrefix(op, backend+"."); ok {
				parts = append(parts, fmt.Sprintf("%s %d", name, calls[op]))
			}
		}
		total := w.CallsTo(backend)
		fmt.Fprintf(out, "  %s calls  %5d (%.2f per node: %s)\n", backend, total, float64(total)/float64(c.Nodes), strings.Join(parts, ", "))
	}
}

func listNodes(out io.Writer, s *crus.Session, o crus.Outcome) {
	for _, n := range s.Progress.Nodes {
		if n.Outcome == o {
			fmt.Fprintf(out, "      %-16s %-10s %s\n", n.XName, n.Name, n.Reason)
		}
	}
}

func elapsed(d time.Duration) string {
	d = d.Round(time.Minute)
	return fmt.Sprintf("%3dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
