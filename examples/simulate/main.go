// Command simulate measures crus's rollout strategies on a real job trace,
// side by side with the original CRUS algorithm and with Slurm's uncapped
// "scontrol reboot ASAP" (a reference, not a contender), as
// ../shared/BENCHMARK.md describes: same cluster, same trace window, same
// seed, one process. It drives the real crus Planner and Executor through
// the in-memory backends, in virtual time.
//
//	go run ./examples/simulate -trace testdata/traces/LLNL-Thunder-2007-1.1-cln.swf.gz -nodes 1000 -step 50
//	go run ./examples/simulate -trace testdata/traces/KTH-SP2-1996-2.1-cln.swf.gz -nodes 100 -step 10 -format csv
//	go run ./examples/simulate -nodes 100000 -step 1000 -strategies rolling-job_end-timeout
//
// It prints one row per strategy (-format table, csv or markdown) and a
// progress line on stderr while it runs (-q to silence it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/sim"
	"github.com/crus-go/crus/internal/swf"
)

func main() {
	log.SetFlags(0)
	// A large simulation keeps a few hundred MB live and allocates an
	// observation per poll: collect less often, within a 1.5 GiB soft
	// limit (the 100k-node budget is 2 GB), unless GOGC or GOMEMLIMIT say
	// otherwise.
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(3 << 29)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		log.Fatal(err)
	}
}

// strategies are the contenders, in the order of the report. drain is the
// drain timeout of the strategies that use one.
func strategies(drain time.Duration) []sim.Strategy {
	rolling := crus.Rollout{Strategy: crus.StrategyRolling}
	with := func(r crus.Rollout, f func(*crus.Rollout)) crus.Rollout { f(&r); return r }
	return []sim.Strategy{
		{Name: "classic"}, // the original CRUS algorithm
		{Name: "reboot-asap", RebootASAP: true},
		{Name: "classic-job_end-timeout", Rollout: crus.Rollout{Order: crus.OrderJobEnd, DrainTimeout: crus.Duration(drain)}},
		{Name: "rolling", Rollout: rolling},
		{Name: "rolling-idle_first", Rollout: with(rolling, func(r *crus.Rollout) { r.Order = crus.OrderIdleFirst })},
		{Name: "rolling-job_end", Rollout: with(rolling, func(r *crus.Rollout) { r.Order = crus.OrderJobEnd })},
		{Name: "rolling-job_end-timeout", Rollout: with(rolling, func(r *crus.Rollout) {
			r.Order, r.DrainTimeout = crus.OrderJobEnd, crus.Duration(drain)
		})},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trace := fs.String("trace", "testdata/traces/LLNL-Thunder-2007-1.1-cln.swf.gz", "job trace in Standard Workload Format (gzip or plain)")
	nodes := fs.Int("nodes", 1000, "nodes in the simulated cluster (more than the traced machine widens every job in proportion)")
	step := fs.Int("step", 50, "upgrade step size: most nodes out of service at once")
	seed := fs.Uint64("seed", 1, "random seed (reboot times, faulty nodes)")
	start := fs.Duration("start", 50*24*time.Hour, "point of the trace where the upgrade starts (LLNL Thunder has an outage on days 28-30)")
	warmup := fs.Duration("warmup", 7*24*time.Hour, "trace replayed before the upgrade starts")
	drain := fs.Duration("drain-timeout", 2*time.Hour, "drain timeout of the strategies that use one")
	lookahead := fs.Int("lookahead", 0, "pending nodes ranked at once by the crus strategies (0: the default, max(4 x step, 1000))")
	poll := fs.Duration("poll", 30*time.Second, "executor poll interval")
	defaultLimit := fs.Duration("default-limit", 0, "time limit known for jobs without a requested time (0: the longest run time of their partition)")
	noFaults := fs.Bool("no-faults", false, "no node fails to boot or never returns (default: 1% and 0.5%)")
	only := fs.String("strategies", "", "comma-separated strategies to run (default: all)")
	format := fs.String("format", "table", "output: table, csv or markdown")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "strategies simulated at once")
	quiet := fs.Bool("q", false, "no progress on stderr")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile to this file when done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		defer func() {
			if f, err := os.Create(*memprofile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	switch *format {
	case "table", "csv", "markdown":
	default:
		return fmt.Errorf("-format %q: want table, csv or markdown", *format)
	}
	if *nodes < 1 || *step < 1 || *parallel < 1 {
		return errors.New("-nodes, -step and -parallel must be at least 1")
	}
	all := strategies(*drain)
	for i := range all {
		all[i].Rollout.Lookahead = *lookahead
	}
	chosen := all
	if *only != "" {
		chosen = nil
		for _, name := range strings.Split(*only, ",") {
			i := slices.IndexFunc(all, func(s sim.Strategy) bool { return s.Name == strings.TrimSpace(name) })
			if i < 0 {
				names := make([]string, len(all))
				for j, s := range all {
					names[j] = s.Name
				}
				return fmt.Errorf("-strategies: unknown %q (known: %s)", name, strings.Join(names, ", "))
			}
			chosen = append(chosen, all[i])
		}
	}
	tr, err := swf.ReadFile(*trace)
	if err != nil {
		return err
	}
	prog := newProgress(stderr, *quiet, len(chosen))
	defer prog.stop()
	cfg := sim.Config{
		Trace: tr, Nodes: *nodes, Step: *step, Seed: *seed, Start: *start, Warmup: *warmup,
		PollInterval: *poll, DefaultLimit: *defaultLimit, NoFaults: *noFaults,
		OnProgress: prog.update,
	}
	results := make([]sim.Result, len(chosen))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*parallel)
	for i, st := range chosen {
		g.Go(func() error {
			r, err := sim.Run(gctx, cfg, st)
			if err != nil {
				return err
			}
			results[i] = r
			prog.finish(r)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	prog.stop()
	if *format == "table" {
		fmt.Fprintf(stdout, "trace %s (%s), %d nodes, step %d, seed %d, upgrade at %s after %s of warm-up\n",
			*trace, tr.Header.Computer, *nodes, *step, *seed, *start, *warmup)
		fmt.Fprintf(stdout, "floor = %d nodes × 10m mean reboot = %.1f node-h\n\n", *nodes, results[0].Floor.Hours())
	}
	return report(stdout, *format, results)
}

// report prints the results in the given format.
func report(w io.Writer, format string, rs []sim.Result) error {
	switch format {
	case "csv":
		fmt.Fprintln(w, "strategy,makespan_h,lost_node_h,lost_over_floor,max_out,step,upgraded,failed,untouched,wlm_calls,hsm_calls,bos_calls")
		for _, r := range rs {
			fmt.Fprintf(w, "%s,%.2f,%.1f,%.2f,%d,%d,%d,%d,%d,%d,%d,%d\n", r.Strategy, r.Makespan.Hours(), r.Lost.Hours(),
				r.LostOverFloor(), r.MaxOut, r.Step, r.Upgraded, r.Failed, r.Untouched, r.WLMCalls, r.HSMCalls, r.BOSCalls)
		}
		return nil
	case "markdown":
		fmt.Fprintln(w, "| strategy | makespan (h) | vs classic | lost node-h | lost / floor | max out | step | upgraded | failed | untouched | WLM calls (/node) | HSM calls (/node) | BOS calls (/node) |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range rs {
			fmt.Fprintf(w, "| %s | %.1f | %s | %.1f | %.2f | %d | %s | %d | %d | %d | %d (%.1f) | %d (%.2f) | %d (%.2f) |\n",
				r.Strategy, r.Makespan.Hours(), vsClassic(r, rs), r.Lost.Hours(), r.LostOverFloor(), r.MaxOut, stepOf(r),
				r.Upgraded, r.Failed, r.Untouched, r.WLMCalls, perNode(r.WLMCalls, r), r.HSMCalls, perNode(r.HSMCalls, r), r.BOSCalls, perNode(r.BOSCalls, r))
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tmakespan h\tvs classic\tlost node-h\tlost/floor\tmax out\tstep\tupgraded\tfailed\tuntouched\twlm calls\thsm calls\tbos calls\twall\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%.1f\t%.2f\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.Strategy, r.Makespan.Hours(), vsClassic(r, rs),
			r.Lost.Hours(), r.LostOverFloor(), r.MaxOut, stepOf(r), r.Upgraded, r.Failed, r.Untouched, r.WLMCalls, r.HSMCalls, r.BOSCalls,
			r.Wall.Round(10*time.Millisecond))
	}
	return tw.Flush()
}

func stepOf(r sim.Result) string {
	if r.Step == 0 {
		return "none"
	}
	return fmt.Sprint(r.Step)
}

func perNode(calls int, r sim.Result) float64 { return float64(calls) / float64(max(r.Nodes, 1)) }

// vsClassic is the makespan as a multiple of the original algorithm's.
func vsClassic(r sim.Result, rs []sim.Result) string {
	i := slices.IndexFunc(rs, func(c sim.Result) bool { return c.Strategy == "classic" })
	if i < 0 || rs[i].Makespan <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(r.Makespan)/float64(rs[i].Makespan))
}

// progress prints a progress line on stderr, at most a few times a second.
type progress struct {
	w     io.Writer
	quiet bool
	total int

	mu       sync.Mutex
	state    map[string]sim.Progress
	finished int
	last     time.Time
	shown    bool
}

func newProgress(w io.Writer, quiet bool, total int) *progress {
	return &progress{w: w, quiet: quiet, total: total, state: map[string]sim.Progress{}}
}

func (p *progress) update(pr sim.Progress) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state[pr.Strategy] = pr
	if time.Since(p.last) < 250*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.printLocked()
}

func (p *progress) printLocked() {
	names := make([]string, 0, len(p.state))
	for n := range p.state {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "\r[%d/%d done]", p.finished, p.total)
	for _, n := range names {
		s := p.state[n]
		fmt.Fprintf(&b, " %s %d/%d %.0fh", n, s.Done, s.Nodes, s.Simulated.Hours())
	}
	line := b.String()
	if len(line) > 200 {
		line = line[:200]
	}
	fmt.Fprintf(p.w, "%s\033[K", line)
	p.shown = true
}

func (p *progress) finish(r sim.Result) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.state, r.Strategy)
	p.finished++
	fmt.Fprintf(p.w, "\r\033[K%s: done in %s (%.1f simulated hours)\n", r.Strategy, r.Wall.Round(10*time.Millisecond), r.Makespan.Hours())
	p.printLocked()
}

func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
