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
// With one seed and one window it prints one row per strategy; with
// several (-seeds, -days) the median and the spread (min-max) over the
// seeds of every figure, per window, and which crus strategy came closest
// to the bound (-format table or markdown; csv prints one row per run). A
// progress line goes to stderr while it runs (-q to silence it).
//
//	go run ./examples/simulate -seeds 20 -days 35,50,65,80,95,110,125,140 -min-busy 0.9 -format markdown
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/sim"
	"github.com/crus-go/crus/internal/swf"
)

func main() {
	log.SetFlags(0)
	// A large simulation keeps a few hundred MB live and allocates an
	// observation per poll: collect less often, within an 896 MiB soft
	// limit (the 100k-node budget is 1 GB), unless GOGC or GOMEMLIMIT say
	// otherwise.
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(896 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var u usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // (the flag package printed the help)
	case errors.As(err, &u):
		if !u.printed {
			log.Printf("%v (-h lists the flags)", err)
		}
	default:
		log.Print(err)
	}
	if code := exitCode(err); code != 0 {
		os.Exit(code)
	}
}

// usageError is a flag the command cannot run with: it exits 2, as for a
// flag it cannot parse. printed: the flag package has told already.
type usageError struct {
	err     error
	printed bool
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// exitCode is the command's exit status for run's error: 0 without one,
// 2 for a usage error (and -h), 1 for any other.
func exitCode(err error) int {
	var u usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp), errors.As(err, &u):
		return 2
	}
	return 1
}

// strategies are the contenders, in the order of the report. drain is the
// drain timeout of the strategies that use one; lookahead, if set, is
// given to every crus strategy but the original algorithm, which has none;
// slack, if set, is the scheduled strategies' booking_slack.
func strategies(drain time.Duration, lookahead int, slack time.Duration) []sim.Strategy {
	rolling := crus.Rollout{Strategy: crus.StrategyRolling, Lookahead: lookahead}
	scheduled := crus.Rollout{Strategy: crus.StrategyScheduled, Lookahead: lookahead, BookingSlack: crus.Duration(slack)}
	with := func(r crus.Rollout, f func(*crus.Rollout)) crus.Rollout { f(&r); return r }
	return []sim.Strategy{
		// The original CRUS algorithm with the original service's own
		// settings: a look every 10 seconds, 10 minutes for nodes to return.
		{Name: "classic", PollInterval: 10 * time.Second, ReturnTimeout: 10 * time.Minute, InFlightPoll: 10 * time.Second},
		{Name: "reboot-asap", RebootASAP: true},
		{Name: "classic-job_end-timeout", Rollout: crus.Rollout{Order: crus.OrderJobEnd, DrainTimeout: crus.Duration(drain), Lookahead: lookahead}},
		{Name: "rolling", Rollout: rolling},
		{Name: "rolling-idle_first", Rollout: with(rolling, func(r *crus.Rollout) { r.Order = crus.OrderIdleFirst })},
		{Name: "rolling-job_end", Rollout: with(rolling, func(r *crus.Rollout) { r.Order = crus.OrderJobEnd })},
		{Name: "rolling-job_end-timeout", Rollout: with(rolling, func(r *crus.Rollout) {
			r.Order, r.DrainTimeout = crus.OrderJobEnd, crus.Duration(drain)
		})},
		{Name: "rolling-job_end-predicted", Rollout: with(rolling, func(r *crus.Rollout) { r.Order = crus.OrderJobEnd }), Ends: sim.EndsPredicted},
		{Name: "scheduled", Rollout: scheduled},
		{Name: "scheduled-predicted", Rollout: scheduled, Ends: sim.EndsPredicted},
		// Books every node whose slot is within 4 hours of its free time:
		// the other end of the trade-off between a short upgrade and idle
		// capacity.
		{Name: "scheduled-predicted-eager", Rollout: with(scheduled, func(r *crus.Rollout) { r.BookingSlack = crus.Duration(4 * time.Hour) }), Ends: sim.EndsPredicted},
		// What knowing the future would give: not crus strategies.
		{Name: "oracle-rolling-job_end", Rollout: with(rolling, func(r *crus.Rollout) { r.Order = crus.OrderJobEnd }), Ends: sim.EndsOracle},
		{Name: "oracle-scheduled", Rollout: scheduled, Ends: sim.EndsOracle},
	}
}

// maxRuns bounds the runs of one sweep (windows × seeds × strategies):
// some 350 bytes each are held until the report, so a million is some
// 350 MB, and at a tenth of a second a run (a small cluster) a day on a
// core.
const maxRuns = 1_000_000

// isReference reports whether a strategy is a reference row rather than a
// crus strategy: the original algorithm, the uncapped reboot ASAP, or a
// clairvoyant oracle.
func isReference(name string) bool {
	return name == "classic" || name == "reboot-asap" || strings.HasPrefix(name, "oracle-")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trace := fs.String("trace", "testdata/traces/LLNL-Thunder-2007-1.1-cln.swf.gz", "job trace in Standard Workload Format (gzip or plain)")
	nodes := fs.Int("nodes", 1000, "nodes in the simulated cluster, at most "+strconv.Itoa(sim.MaxNodes)+" (job widths are scaled by nodes / the traced machine's nodes, rounded up)")
	step := fs.Int("step", 50, "upgrade step size: most nodes out of service at once")
	seed := fs.Uint64("seed", 1, "first random seed (reboot times per node, faulty nodes, random placement)")
	seeds := fs.Int("seeds", 1, "number of seeds, from -seed on: more than one prints the median and the spread")
	start := fs.Duration("start", 50*24*time.Hour, "point of the trace where the upgrade starts (LLNL Thunder has an outage on days 28-30)")
	days := fs.String("days", "", "comma-separated days of the trace to start at, one window each (replaces -start), e.g. 35,50,65")
	warmup := fs.Duration("warmup", 7*24*time.Hour, "trace replayed before the upgrade starts")
	minBusy := fs.Float64("min-busy", 0, "start at the first hour from the window's start where at least this fraction of nodes run jobs (0: exactly at the start)")
	placement := fs.String("placement", "lowest", "where the scheduler puts jobs: lowest (numbered nodes first), highest or random")
	drain := fs.Duration("drain-timeout", 2*time.Hour, "drain timeout of the strategies that use one")
	lookahead := fs.Int("lookahead", 0, "pending nodes ranked at once by the crus strategies (0: the default, max(4 x step, 1000)); not the original algorithm's")
	slack := fs.Duration("booking-slack", 0, "booking_slack of the scheduled strategies (0: the default, a quarter of reboot_time)")
	poll := fs.Duration("poll", 30*time.Second, "executor poll interval of the crus strategies, and the tick of reboot-asap (the original algorithm keeps its 10s)")
	inflight := fs.Duration("inflight-poll", 0, "the crus strategies' InFlightPollInterval: how often nodes on their way back are looked at between polls (0: the executor's default, poll/2; poll or more: none)")
	defaultLimit := fs.Duration("default-limit", 0, "time limit known for jobs without a requested time (0: the longest run time of their partition)")
	steering := fs.Bool("steering", true, "the simulated scheduler honours steering: new jobs go to the nodes a scheduled session has still to upgrade only when no other node fits (false: it ignores it, as a workload manager that cannot steer)")
	exactLimits := fs.Bool("exact-limits", false, "every job's limit is its real run time: what perfect user estimates would tell the scheduler (an experiment, not a site)")
	noFaults := fs.Bool("no-faults", false, "no node fails to boot or never returns (default: 1% and 0.5%)")
	only := fs.String("strategies", "", "comma-separated strategies to run (default: all)")
	format := fs.String("format", "table", "output: table, markdown, or csv (one row per run)")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "runs simulated at once")
	maxDuration := fs.Duration("max-duration", 120*24*time.Hour, "simulated time a session may take: one that has not finished by then is reported unfinished (and the command exits 1)")
	quiet := fs.Bool("q", false, "no progress on stderr")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile to this file when done")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err: err, printed: true}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: every setting is a flag", fs.Arg(0))
	}
	// An explicit value is checked as given: a zero is not taken as
	// "unset" and quietly replaced by a default.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch *format {
	case "table", "csv", "markdown":
	default:
		return usagef("-format %q: want table, csv or markdown", *format)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"nodes", *nodes}, {"step", *step}, {"seeds", *seeds}, {"parallel", *parallel}} {
		if f.v < 1 {
			return usagef("-%s %d: want at least 1", f.name, f.v)
		}
	}
	if *nodes > sim.MaxNodes {
		return usagef("-nodes %d: the simulator runs at most %d (some 9 KB a node)", *nodes, sim.MaxNodes)
	}
	if set["days"] && *days == "" {
		return usagef("-days \"\": want one day or more, e.g. 35,50")
	}
	if *start <= 0 {
		return usagef("-start %v: want a point after the trace's beginning, which has no trace before it to warm up on", *start)
	}
	if *warmup <= 0 {
		return usagef("-warmup %v: want a positive warm-up (without one the upgrade starts on an empty cluster)", *warmup)
	}
	if !(*minBusy >= 0 && *minBusy <= 1) {
		return usagef("-min-busy %v: want a fraction of the nodes, 0 to 1", *minBusy)
	}
	if *drain < time.Duration(crus.MinTimeout) {
		return usagef("-drain-timeout %v: want at least %v (a session's drain_timeout may be no shorter)", *drain, time.Duration(crus.MinTimeout))
	}
	if *lookahead < 0 {
		return usagef("-lookahead %d: want 0 (the default) or more", *lookahead)
	}
	if *maxDuration <= 0 {
		return usagef("-max-duration %v: want a positive time", *maxDuration)
	}
	if *poll < crus.MinPollInterval {
		return usagef("-poll %v: want at least %v", *poll, crus.MinPollInterval)
	}
	if *inflight > 0 && *inflight < crus.MinPollInterval {
		return usagef("-inflight-poll %v: want 0 (the default) or at least %v", *inflight, crus.MinPollInterval)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"booking-slack", *slack}, {"inflight-poll", *inflight}, {"default-limit", *defaultLimit}} {
		if f.v < 0 {
			return usagef("-%s %v: want 0 (the default) or more", f.name, f.v)
		}
	}
	if *trace == "" {
		return usagef("-trace: want a trace file")
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
	place, err := fake.ParsePlacement(*placement)
	if err != nil {
		return usagef("-placement: %w", err)
	}
	starts := []time.Duration{*start}
	if *days != "" {
		starts = nil
		for _, d := range strings.Split(*days, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(d), 64)
			// (Past 100 years a day overflows a time.Duration, or nearly.)
			if err != nil || !(v > 0 && v <= 100*365) {
				return usagef("-days: %q is not a day of the trace after its beginning (which has no trace before it to warm up on)", d)
			}
			starts = append(starts, time.Duration(v*24*float64(time.Hour)))
		}
	}
	all := strategies(*drain, *lookahead, *slack)
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
				return usagef("-strategies: unknown %q (known: %s)", name, strings.Join(names, ", "))
			}
			chosen = append(chosen, all[i])
		}
	}
	// Every run's result is kept for the report, and the runs are listed
	// before the first starts: -seeds 100000000 was a runtime crash (out of
	// memory), not an error.
	if per := len(starts) * len(chosen); *seeds > maxRuns/per {
		return usagef("-seeds %d: %d windows × %d strategies × %d seeds is more than the %d runs a sweep may have (each run's result is kept for the report)",
			*seeds, len(starts), len(chosen), *seeds, maxRuns)
	}
	tr, err := swf.ReadFile(*trace)
	if err != nil {
		return err
	}
	// What the replay makes of the trace does not depend on the window:
	// one survey serves them all.
	use, err := sim.Survey(sim.Config{Trace: tr, Nodes: *nodes, Step: *step, Start: starts[0], Warmup: *warmup})
	if err != nil && !errors.Is(err, sim.ErrPastEnd) {
		return err
	}
	// A window past the last job replayed would upgrade an idle cluster:
	// it is not run, and the report says so. None left is an error.
	var pastEnd []string
	starts = slices.DeleteFunc(starts, func(st time.Duration) bool {
		if st <= use.LastSubmit {
			return false
		}
		pastEnd = append(pastEnd, fmt.Sprintf("%s: not run, past the trace's end (its last job replayed is submitted on day %.1f)", windowName(st), use.LastSubmit.Hours()/24))
		return true
	})
	if len(starts) == 0 {
		return fmt.Errorf("every window is past the trace's end: %s", strings.Join(pastEnd, "; "))
	}
	if *format == "csv" { // (not in the rows)
		for _, l := range append(useLines(use), pastEnd...) {
			fmt.Fprintln(stderr, l)
		}
	}

	type key struct{ window, seed, strategy int }
	var keys []key
	for wi := range starts {
		for si := range *seeds {
			for sti := range chosen {
				keys = append(keys, key{wi, si, sti})
			}
		}
	}
	prog := newProgress(stderr, *quiet, len(keys))
	defer prog.stop()
	results := make([]sim.Result, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*parallel)
	for i, k := range keys {
		g.Go(func() error {
			cfg := sim.Config{
				Trace: tr, Nodes: *nodes, Step: *step, Seed: *seed + uint64(k.seed), Placement: place,
				Start: starts[k.window], Warmup: *warmup, MinBusy: *minBusy,
				PollInterval: *poll, DefaultLimit: *defaultLimit, ExactLimits: *exactLimits, NoSteering: !*steering, NoFaults: *noFaults,
				MaxDuration: *maxDuration,
				OnProgress:  prog.update,
			}
			st := chosen[k.strategy]
			if st.InFlightPoll == 0 {
				st.InFlightPoll = *inflight
			}
			r, err := sim.Run(gctx, cfg, st)
			if err != nil && !r.Unfinished { // (an unfinished run is a row of the report, and the sweep goes on)
				return fmt.Errorf("%s, seed %d: %w", windowName(starts[k.window]), cfg.Seed, err)
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
	unfinished := 0
	for _, r := range results {
		if r.Unfinished {
			unfinished++
		}
	}

	// Group the runs: by window, then by seed, each with every strategy.
	ws := make([]window, len(starts))
	for i, k := range keys {
		w := &ws[k.window]
		if w.runs == nil {
			w.start = starts[k.window]
			w.runs = make([][]sim.Result, *seeds)
		}
		if w.runs[k.seed] == nil {
			w.runs[k.seed] = make([]sim.Result, len(chosen))
		}
		w.runs[k.seed][k.strategy] = results[i]
	}
	names := make([]string, len(chosen))
	for i, s := range chosen {
		names[i] = s.Name
	}
	rep := report{w: stdout, format: *format, names: names, windows: ws, minBusy: *minBusy, pastEnd: pastEnd}
	if *format == "table" {
		fmt.Fprintf(stdout, "trace %s (%s), %d nodes, step %d, placement %s, seeds %d-%d, %s\n",
			*trace, tr.Header.Computer, *nodes, *step, place, *seed, *seed+uint64(*seeds)-1, warmupText(*warmup, starts))
		for _, l := range append(useLines(use), pastEnd...) {
			fmt.Fprintln(stdout, l)
		}
		if *exactLimits {
			fmt.Fprintln(stdout, "exact limits: every job's limit is its real run time (an experiment: no site has them)")
		}
		if !*steering {
			fmt.Fprintln(stdout, "no steering: the simulated scheduler ignores the order the scheduled strategy asks for")
		}
	}
	if *format == "markdown" {
		var lines []string
		if len(use.Notes()) > 0 { // (the tables as they were when every line is replayed)
			lines = useLines(use)
		}
		for _, l := range append(lines, pastEnd...) {
			fmt.Fprintln(stdout, l+"  ") // (a line break)
		}
	}
	switch {
	case *format == "csv":
		err = rep.csv()
	case len(starts) == 1 && *seeds == 1:
		err = rep.single()
	default:
		err = rep.sweep()
	}
	if err == nil && unfinished > 0 {
		err = fmt.Errorf("%d of %d runs did not finish within %v of simulated time: reported unfinished", unfinished, len(results), *maxDuration)
	}
	return err
}

// warmupText says how much of the trace is replayed before the upgrade:
// the warm-up asked for, or less where a window starts earlier (the
// simulator replays the trace from its beginning then).
func warmupText(warmup time.Duration, starts []time.Duration) string {
	first := slices.Min(starts)
	switch {
	case first >= warmup:
		return fmt.Sprintf("%s of warm-up", warmup)
	case len(starts) == 1:
		return fmt.Sprintf("%s of warm-up (the trace's beginning: -warmup %s is longer)", first, warmup)
	}
	return fmt.Sprintf("%s of warm-up (less where a window starts earlier: from the trace's beginning)", warmup)
}

// useLines says how many of the trace's job lines are replayed, and which
// are left out and why.
func useLines(u sim.TraceUse) []string {
	out := []string{fmt.Sprintf("trace: %d job lines, %d jobs replayed", u.Lines, u.Jobs)}
	for _, n := range u.Notes() {
		out = append(out, "  left out: "+n)
	}
	return out
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
	fmt.Fprintf(&b, "\r[%d/%d runs done]", p.finished, p.total)
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
	if p.total <= 20 && r.Unfinished {
		fmt.Fprintf(p.w, "\r\033[K%s: unfinished at the simulated-time limit\n", r.Strategy)
	} else if p.total <= 20 {
		fmt.Fprintf(p.w, "\r\033[K%s: done in %s (%.1f simulated hours)\n", r.Strategy, r.Wall.Round(10*time.Millisecond), r.Makespan.Hours())
	}
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
