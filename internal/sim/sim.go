// Package sim measures rollout strategies the way ../shared/BENCHMARK.md
// says: it replays a real job trace (Standard Workload Format) on a
// simulated cluster, with a FCFS + EASY-backfill scheduler placing jobs on
// the nodes that are up and not drained, and runs a crus session on it:
// the real crus.Executor and crus.Plan, driving the in-memory backends of
// internal/fake on their virtual clock. Every run is seeded and
// deterministic: the same Config and Strategy give the same Result.
package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/swf"
	"github.com/crus-go/crus/wlm"
)

// Config describes the simulated cluster and the trace window. The zero
// value of every field but Trace gives the default noted.
type Config struct {
	Trace *swf.Trace
	// Nodes in the cluster; default the trace's MaxNodes. With another
	// number of nodes than the trace's machine, every job's width is scaled
	// by the ratio (rounded up), so the cluster is as busy as the traced one
	// was. The traced machine is MaxNodes, else MaxProcs over
	// ProcsPerNode; a trace that gives neither is taken as the size of the
	// cluster (widths as traced).
	Nodes int
	// ProcsPerNode turns a job's processors into nodes; default the
	// trace's MaxProcs / MaxNodes (rounded down; a job's nodes are then
	// its processors times MaxNodes / MaxProcs, rounded up, so that a
	// machine of mixed nodes, whose ratio is not whole, still fits a job
	// of all its processors).
	ProcsPerNode int
	// perNode is the header's MaxNodes / MaxProcs when ProcsPerNode is
	// its default: the exact ratio.
	perNode struct{ nodes, procs int }
	// lines is what the replay makes of the trace's lines (see Survey).
	lines TraceUse
	// Step is the session's upgrade_step_size; default 50.
	Step int
	// Seed draws the reboot times (per node and reboot), the nodes that
	// fail, and the random placement.
	Seed uint64
	// Placement is the order in which the scheduler picks free nodes for a
	// job; default lowest-numbered first, as Slurm does.
	Placement fake.Placement
	// Start is the point of the trace (since its beginning) at which the
	// upgrade starts; default 50 days. Jobs are replayed from Warmup
	// before it (default 7 days), so the cluster is as busy as it was.
	Start, Warmup time.Duration
	// MinBusy, if set, moves the start on, an hour at a time and for at
	// most Seek (default 7 days), to the first point where at least this
	// fraction of the nodes run jobs: a loaded cluster (not one just back
	// from an outage). Result.Loaded says whether one was found; if none
	// was, the upgrade starts at Start + Seek.
	MinBusy float64
	Seek    time.Duration
	// RebootTime and RebootJitter: a reboot takes RebootTime ± up to
	// RebootJitter (uniform); defaults 10m and fake.DefaultJitter (3m for
	// 10m), a negative jitter none.
	// The jitter must be less than the reboot time.
	RebootTime, RebootJitter time.Duration
	// BootFailures and NeverReturn are the fractions of nodes that fail to
	// boot and that never come back; defaults 0.01 and 0.005. NoFaults
	// turns both off.
	BootFailures, NeverReturn float64
	NoFaults                  bool
	// PollInterval is the executor's (and the tick of the reboot-asap
	// reference); default 30s. A Strategy may set its own.
	PollInterval time.Duration
	// ReturnTimeout is the session's return_timeout (default crus's, 30m;
	// a Strategy may set its own). The reboot-asap reference gives up on a
	// node RebootTime + RebootJitter + ReturnTimeout after its reboot was
	// issued, as Slurm does after its ResumeTimeout.
	ReturnTimeout time.Duration
	// DefaultLimit is the time limit the workload manager knows for jobs
	// without a requested time, as a partition default would be. Default:
	// the longest run time of any job of the same partition in the trace
	// (so no job is killed, and the limit tells nothing about the job).
	DefaultLimit time.Duration
	// ExactLimits gives every job its real run time as the limit the
	// workload manager knows (rounded up to a minute, as limits are):
	// users who know exactly how long their jobs run. No site has them; it
	// measures how much of a strategy's gap to the bound is the limits'
	// want of information, not the strategy.
	ExactLimits bool
	// NoSteering has the simulated scheduler ignore steering
	// (wlm.Steerer): a workload manager that cannot steer, or a site that
	// does not let crus. It measures what steering is worth; the
	// executor still steers, as it would not know.
	NoSteering bool
	// MaxDuration bounds the simulated time of one session; default 120
	// days.
	MaxDuration time.Duration
	// OnProgress, if set, is called as nodes finish.
	OnProgress func(Progress)
}

// Progress is a progress report of one run.
type Progress struct {
	Strategy    string
	Done, Nodes int
	Simulated   time.Duration
}

// Strategy is one contender.
type Strategy struct {
	Name    string
	Rollout crus.Rollout
	// RebootASAP runs the uncapped reference instead of a crus session:
	// every node is asked to reboot through the workload manager as soon
	// as its jobs end (wlm.Rebooter, Slurm's scontrol reboot ASAP).
	RebootASAP bool
	// PollInterval and ReturnTimeout, if set, replace the Config's for
	// this strategy (the original algorithm polled every 10s and waited
	// 10m for nodes to return). InFlightPoll, if set, is the executor's
	// InFlightPollInterval (the original had no faster look: its poll).
	PollInterval, ReturnTimeout, InFlightPoll time.Duration
	// Ends chooses the job end times crus is given (wlm.JobEnder): the
	// time limits the workload manager knows (default), a wlm.Predictor's
	// predictions from the jobs it reports, or the true ends (a
	// clairvoyant reference, to show what prediction costs; name such a
	// strategy "oracle-...").
	Ends Ends
}

// Ends names where a strategy's job end times come from.
type Ends string

// Sources of job end times.
const (
	EndsLimits    Ends = ""          // start + time limit, as squeue reports
	EndsPredicted Ends = "predicted" // a wlm.Predictor
	EndsOracle    Ends = "oracle"    // the real ends, known to no workload manager
)

// predicting is the fake workload manager with its JobEnds answered by a
// wlm.Predictor (its other capabilities promoted).
type predicting struct {
	*fake.WLM
	p *wlm.Predictor
}

func (m predicting) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	return m.p.JobEnds(ctx, m.WLM, names)
}

// JobEndsInto makes predicting a wlm.JobEndsFiller, as a site's wrapper
// of its Slurm adapter would be.
func (m predicting) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	return m.p.JobEndsInto(ctx, m.WLM, names, ends)
}

// clairvoyant is the fake workload manager answering JobEnds with the
// jobs' real ends.
type clairvoyant struct {
	*fake.WLM
	w *fake.World
}

func (m clairvoyant) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	if _, err := m.WLM.JobEnds(ctx, names); err != nil { // counted, and its errors
		return nil, err
	}
	return m.w.TrueJobEnds(names), nil
}

// Result is what one run measured (see BENCHMARK.md).
type Result struct {
	Strategy string
	Nodes    int
	// Step is the cap on nodes out at once (0: no cap).
	Step     int
	Makespan time.Duration
	// FairMakespan, for the reboot-asap reference only, is its makespan
	// had it learnt of each failure as soon as a crus session does: a
	// node that fails to boot is done when its boot fails (the workload
	// manager itself waits for its reboot timeout, which Makespan
	// includes), and one that boots but never returns at its boot plus
	// ReturnTimeout (what crus waits too); and the moment the last node
	// was done, not the next tick that saw it, as Makespan is. Bound
	// uses it. Zero: not measured (Makespan stands).
	FairMakespan time.Duration
	// Lost is the capacity lost, in node-hours (Loss splits it by
	// cause); Floor is the sum over the nodes of their first reboot's
	// duration (Nodes × this run's mean reboot time), the same for every
	// strategy of a seed.
	Lost      fake.NodeHours
	Floor     time.Duration
	Loss      fake.Loss
	MaxOut    int
	Upgraded  int
	Failed    int
	Skipped   int
	Untouched int
	WLMCalls  int
	HSMCalls  int
	BOSCalls  int
	// Jobs started by the scheduler during the session.
	JobsStarted int
	// Old is the work the scheduler started during the session on nodes
	// the session had still to reboot (each such job keeps its nodes
	// from the upgrade until it ends); OldLastEnd is when the last of
	// them ended, since the session's start (zero: none).
	Old        fake.OldWork
	OldLastEnd time.Duration
	// Start is the point of the trace where the upgrade started; Loaded
	// whether it met Config.MinBusy; Busy the fraction of nodes running
	// jobs then, Queued and QueuedNodes the jobs waiting and the nodes
	// they ask for.
	Start       time.Duration
	Loaded      bool
	Busy        float64
	Queued      int
	QueuedNodes int
	Result      crus.Result
	Wall        time.Duration
	// Unfinished: the session did not finish within Config.MaxDuration
	// (Run returns ErrTooLong with this Result). Only the fields of the
	// start (Start, Loaded, Busy, Queued, Floor) are measured then.
	Unfinished bool
}

// LostOverFloor is Lost / Floor.
func (r Result) LostOverFloor() float64 {
	if r.Floor <= 0 {
		return 0
	}
	return r.Lost.Hours() / r.Floor.Hours()
}

// WantedOverFloor is the capacity lost counting a node's wait before its
// reboot only while a job left waiting would have fitted on the free
// nodes and crus's waiting ones (Lost less Loss.Unwanted), over Floor:
// still an upper bound, as backfill may not have started that job, but
// one that no longer counts capacity no waiting job could use.
func (r Result) WantedOverFloor() float64 {
	if r.Floor <= 0 {
		return 0
	}
	return (r.Lost - r.Loss.Unwanted).Hours() / r.Floor.Hours()
}

// MeanReboot is this run's mean reboot time: Floor / Nodes.
func (r Result) MeanReboot() time.Duration {
	if r.Nodes <= 0 {
		return 0
	}
	return r.Floor / time.Duration(r.Nodes)
}

// Bound is the least makespan a strategy that keeps a cap of step nodes
// and lets every job finish can reach: the uncapped reboot-asap's makespan
// (every node must wait for the job it runs now), or the nodes' reboots
// step at a time, whichever is longer. Of reboot-asap it takes
// FairMakespan: a timeout only the workload manager's reboot pays does not
// lengthen the bound. asap is the reboot-asap run of the same
// configuration and seed; r gives the cap and the floor.
//
// Every node is out of service for its whole first reboot (a boot that
// fails too), and at most step of them at once, so the reboots take at
// least the sum of their durations (Floor) over step: nodes / step mean
// reboots. Not ceil(nodes / step) of them: reboot times vary, and where
// step does not divide the nodes the last ones start as soon as the
// first reboots end, not when a whole round has (11 nodes, step 10: the
// eleventh starts some 7-13 min in, and the session ends before two mean
// reboots). Where step divides the nodes the two are the same.
func Bound(asap, r Result) time.Duration {
	b := asap.Makespan
	if asap.FairMakespan > 0 {
		b = asap.FairMakespan
	}
	if r.Step > 0 {
		b = max(b, r.Floor/time.Duration(r.Step))
	}
	return b
}

// ErrTooLong: the session did not finish within Config.MaxDuration.
var ErrTooLong = errors.New("sim: session did not finish within the simulated time allowed")

func (c Config) withDefaults() (Config, error) {
	if c.Trace == nil {
		return c, errors.New("sim: no trace")
	}
	if err := c.check(); err != nil {
		return c, err
	}
	h := c.Trace.Header
	if c.Nodes == 0 {
		c.Nodes = h.MaxNodes
	}
	if c.Nodes < 1 {
		return c, errors.New("sim: the trace gives no MaxNodes: set Config.Nodes")
	}
	if c.ProcsPerNode == 0 && h.MaxNodes > 0 && h.MaxProcs > 0 && h.MaxNodes <= maxMachine && h.MaxProcs <= maxMachine {
		c.ProcsPerNode = max(1, h.MaxProcs/h.MaxNodes)
		if h.MaxProcs >= h.MaxNodes {
			c.perNode.nodes, c.perNode.procs = h.MaxNodes, h.MaxProcs
		}
	}
	if c.ProcsPerNode == 0 {
		c.ProcsPerNode = 1
	}
	if c.Step == 0 {
		c.Step = 50
	}
	if c.Start == 0 {
		c.Start = 50 * 24 * time.Hour
	}
	if c.Warmup == 0 {
		c.Warmup = 7 * 24 * time.Hour
	}
	if c.RebootTime == 0 {
		c.RebootTime = 10 * time.Minute
	}
	if c.RebootJitter == 0 {
		c.RebootJitter = fake.DefaultJitter(c.RebootTime)
	}
	if c.BootFailures == 0 {
		c.BootFailures = 0.01
	}
	if c.NeverReturn == 0 {
		c.NeverReturn = 0.005
	}
	if err := checkJitter(c.RebootTime, c.RebootJitter); err != nil {
		return c, err
	}
	if c.NoFaults {
		c.BootFailures, c.NeverReturn = 0, 0
	}
	if c.PollInterval == 0 {
		c.PollInterval = 30 * time.Second
	}
	if c.ReturnTimeout == 0 {
		c.ReturnTimeout = crus.DefaultReturnTimeout
	}
	if c.Seek == 0 {
		c.Seek = 7 * 24 * time.Hour
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = 120 * 24 * time.Hour
	}
	if c.Warmup > c.Start {
		c.Warmup = c.Start
	}
	// A trace with no job to replay, or a window past the last one,
	// would measure an idle cluster.
	u := c.use()
	c.lines = u
	if u.Jobs == 0 {
		why := "it has no job line"
		if u.Lines > 0 {
			why = fmt.Sprintf("none of its %d job lines can be replayed (%s)", u.Lines, strings.Join(u.Notes(), "; "))
		}
		return c, fmt.Errorf("sim: the trace has no job to replay: %s", why)
	}
	if c.Start > u.LastSubmit {
		return c, fmt.Errorf("%w: the window starts on day %.1f, after the trace's last job replayed is submitted (day %.1f)", ErrPastEnd, c.Start.Hours()/24, u.LastSubmit.Hours()/24)
	}
	return c, nil
}

// ErrPastEnd: the window starts after the last job of the trace that can
// be replayed: the upgrade would run on a cluster with nothing to do.
var ErrPastEnd = errors.New("sim: window past the trace's end")

// TraceUse counts what the simulator makes of a trace's job lines, over
// the whole trace (the window takes those submitted from its warm-up on).
type TraceUse struct {
	Lines int // job lines
	Jobs  int // jobs replayed, each once
	// Partial counts the lines of partial executions (status 2, 3, 4) of
	// checkpointed or swapped jobs whose summary line is replayed;
	// PartialOnly those of jobs without one (the format gives every such
	// job a summary line), left out as well.
	Partial, PartialOnly int
	// Lines left out for a field the replay needs: no submit time, no run
	// time (or 0 s), no width (neither allocated nor requested
	// processors), or more processors than the traced machine has.
	NoSubmit, NoRun, NoWidth, TooWide int
	// LastSubmit is when the last job replayed is submitted.
	LastSubmit time.Duration
}

// Notes says, one reason a line, which lines are left out and why;
// nothing if every line is replayed.
func (u TraceUse) Notes() []string {
	var out []string
	add := func(n int, why string) {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, why))
		}
	}
	add(u.Partial, "lines of partial executions (status 2-4) of checkpointed or swapped jobs, each job replayed once by its summary line")
	add(u.PartialOnly, "lines of partial executions (status 2-4) of jobs without a summary line, left out")
	add(u.NoSubmit, "lines without a submit time")
	add(u.NoRun, "lines without a run time (or of 0 s)")
	add(u.NoWidth, "lines without a number of processors")
	add(u.TooWide, "lines of more processors than the traced machine has")
	return out
}

// Survey returns what the simulator makes of the trace of cfg (its
// defaults applied), and the error Run would return for the settings or
// the window, if any: ErrPastEnd for a window after the trace's last job.
func Survey(cfg Config) (TraceUse, error) {
	c, err := cfg.withDefaults()
	return c.lines, err // (zero if the settings were refused before the trace was looked at)
}

// lineUse is what the replay makes of one job line.
type lineUse int

const (
	replayed lineUse = iota
	partialLine
	noSubmit
	noRun
	noWidth
	tooWide
)

// traced returns the nodes job j takes on the traced machine, or why
// it is not replayed. Call it on a Config with its defaults.
func (c Config) traced(j swf.Job) (int, lineUse) {
	switch {
	case j.Partial():
		return 0, partialLine
	case j.Submit < 0:
		return 0, noSubmit
	case j.Run <= 0:
		return 0, noRun
	case j.Width() <= 0:
		return 0, noWidth
	}
	var traced int
	switch r := c.perNode; {
	case r.procs == 0:
		traced = (j.Width() + c.ProcsPerNode - 1) / c.ProcsPerNode
	case j.Width() > r.procs:
		return 0, tooWide // more processors than the machine has
	default:
		traced = (j.Width()*r.nodes + r.procs - 1) / r.procs // (≤ 2^30 × 2^30)
	}
	if traced > c.machine() {
		return 0, tooWide // never fits this cluster (nor the traced one)
	}
	return traced, replayed
}

// use counts what the replay makes of the trace's lines. Call it on a
// Config with its defaults.
func (c Config) use() TraceUse {
	u := TraceUse{Lines: len(c.Trace.Jobs)}
	var summary map[int]bool // jobs with a summary line, if any line is partial
	for _, j := range c.Trace.Jobs {
		_, why := c.traced(j)
		switch why {
		case replayed:
			u.Jobs++
			u.LastSubmit = max(u.LastSubmit, j.Submit)
		case partialLine:
			if summary == nil {
				summary = map[int]bool{}
				for _, k := range c.Trace.Jobs {
					if !k.Partial() {
						summary[k.ID] = true
					}
				}
			}
			if summary[j.ID] {
				u.Partial++
			} else {
				u.PartialOnly++
			}
		case noSubmit:
			u.NoSubmit++
		case noRun:
			u.NoRun++
		case noWidth:
			u.NoWidth++
		case tooWide:
			u.TooWide++
		}
	}
	return u
}

// check refuses values no cluster or window has, which the defaults would
// otherwise take silently (a negative start runs at day 0, a negative
// limit is no limit): all of them, in one error.
func (c Config) check() error {
	errs := negatives(
		field[time.Duration]{"Start", c.Start}, field[time.Duration]{"Warmup", c.Warmup},
		field[time.Duration]{"Seek", c.Seek}, field[time.Duration]{"RebootTime", c.RebootTime},
		field[time.Duration]{"PollInterval", c.PollInterval}, field[time.Duration]{"ReturnTimeout", c.ReturnTimeout},
		field[time.Duration]{"DefaultLimit", c.DefaultLimit}, field[time.Duration]{"MaxDuration", c.MaxDuration})
	errs = append(errs, negatives(field[int]{"Nodes", c.Nodes}, field[int]{"ProcsPerNode", c.ProcsPerNode}, field[int]{"Step", c.Step})...)
	if c.Nodes > MaxNodes {
		errs = append(errs, fmt.Errorf("Nodes %d is more than the simulator runs (at most %d, about %d GB of memory: some 9 KB a node)",
			c.Nodes, MaxNodes, MaxNodes*9/1_000_000))
	}
	for _, f := range []field[float64]{{"MinBusy", c.MinBusy}, {"BootFailures", c.BootFailures}, {"NeverReturn", c.NeverReturn}} {
		if !(f.v >= 0 && f.v <= 1) { // (NaN too)
			errs = append(errs, fmt.Errorf("%s %v is not a fraction of the nodes (0 to 1)", f.name, f.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// field is a named setting, for the checks that name every bad one.
type field[T any] struct {
	name string
	v    T
}

// negatives returns an error for each field below zero.
func negatives[T ~int | ~int64](fs ...field[T]) []error {
	var errs []error
	for _, f := range fs {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", f.name, f.v))
		}
	}
	return errs
}

// checkJitter refuses a jitter (after defaults) as long as the reboot
// time it varies: a reboot could take no time. A negative jitter is none.
func checkJitter(reboot, jitter time.Duration) error {
	if jitter >= reboot {
		return fmt.Errorf("sim: RebootJitter %v is not less than RebootTime %v: a reboot could take no time", jitter, reboot)
	}
	return nil
}

// job is a trace job ready to be replayed.
type job struct {
	submit time.Duration // since the world's start
	width  int           // nodes
	run    time.Duration
	limit  time.Duration // as the workload manager knows it
	user   string        // empty if the trace does not say
}

// jobs turns the trace into the jobs replayed from Start - Warmup on.
// A job's width is its processors over ProcsPerNode (by default, times
// the header's MaxNodes / MaxProcs), scaled by Nodes over the traced
// machine's nodes, each rounded up. Its limit is its requested
// time, or for a job without one the partition's default: DefaultLimit or
// the longest run time of the partition. A job that ran past its request
// (within the site's grace time) keeps its request as the limit the
// scheduler knows: the scheduler never knows the future. They come in
// order of submission: SWF asks for traces sorted by submit time, but a
// trace that is not (or whose unknown submit times, left out here, sit
// among the others) must not hold a job back until a later one is due.
func (c Config) jobs() []job {
	longest := map[int]time.Duration{}
	for _, j := range c.Trace.Jobs {
		longest[j.Partition] = max(longest[j.Partition], j.Run)
	}
	machine := c.machine()
	from := c.Start - c.Warmup
	var out []job
	for _, j := range c.Trace.Jobs {
		if j.Submit < from {
			continue
		}
		traced, why := c.traced(j)
		if why != replayed {
			continue
		}
		width := (traced*c.Nodes + machine - 1) / machine
		limit := j.ReqTime
		if c.ExactLimits {
			limit = (j.Run + time.Minute - 1) / time.Minute * time.Minute
		}
		if limit <= 0 {
			limit = c.DefaultLimit
			if limit <= 0 {
				limit = longest[j.Partition]
			}
		}
		user := ""
		if j.User >= 0 {
			user = "u" + strconv.Itoa(j.User)
		}
		out = append(out, job{submit: j.Submit - from, width: width, run: j.Run, limit: limit, user: user})
	}
	slices.SortStableFunc(out, func(a, b job) int { return cmp.Compare(a.submit, b.submit) })
	return out
}

// machine returns the traced machine's nodes: its MaxNodes, else its
// MaxProcs over ProcsPerNode (many traces give only processors), else the
// cluster's. Sizes past maxMachine are no machine's: the header is
// ignored.
func (c Config) machine() int {
	h := c.Trace.Header
	switch {
	case h.MaxNodes > 0 && h.MaxNodes <= maxMachine:
		return h.MaxNodes
	case h.MaxProcs > 0 && h.MaxProcs <= maxMachine:
		return (h.MaxProcs + c.ProcsPerNode - 1) / c.ProcsPerNode
	}
	return c.Nodes
}

// MaxNodes is the most nodes a simulated cluster may have: six times the
// largest machines crus is for (160,000 nodes). A run keeps some 9 KB a
// node (921 MB at 100,000), so more would fail for memory, after minutes,
// where this is refused at once.
const MaxNodes = 1_000_000

// maxMachine bounds the machine sizes a trace's header may give (widths
// are scaled by products of them).
const maxMachine = 1 << 30

// Run simulates one strategy and reports what it measured.
func Run(ctx context.Context, cfg Config, st Strategy) (Result, error) {
	wall := time.Now()
	if err := ctx.Err(); err != nil { // (the trace's survey and its jobs take a while too)
		return Result{}, fmt.Errorf("sim: %w", err)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	traceStart := cfg.Trace.Header.Start()
	if traceStart.IsZero() {
		traceStart = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	origin := traceStart.Add(cfg.Start - cfg.Warmup)
	w := fake.NewCluster(fake.ClusterOptions{
		Nodes: cfg.Nodes,
		Options: fake.Options{
			Start: origin, Seed: cfg.Seed,
			RebootTime: cfg.RebootTime, RebootJitter: cfg.RebootJitter,
		},
	})
	w.SetPlacement(cfg.Placement)
	w.IgnoreSteering(cfg.NoSteering)
	w.SetRebootTimeout(cfg.RebootTime + cfg.RebootJitter + cfg.ReturnTimeout)
	injectFaults(w, cfg)
	sch := newScheduler(w, cfg.jobs())
	w.SetScheduler(sch.pass)
	sch.replay()

	res := Result{Strategy: st.Name, Nodes: cfg.Nodes, Step: cfg.Step, Floor: w.FirstReboots()}
	start, err := replayUntil(ctx, w, origin.Add(cfg.Warmup))
	if err != nil {
		return Result{}, err
	}
	res.Loaded = cfg.MinBusy <= 0
	for !res.Loaded {
		if float64(w.BusyCount()) >= cfg.MinBusy*float64(cfg.Nodes) {
			res.Loaded = true
			break
		}
		if start.Sub(origin) >= cfg.Warmup+cfg.Seek {
			break
		}
		if start, err = replayUntil(ctx, w, start.Add(time.Hour)); err != nil {
			return Result{}, err
		}
	}
	res.Start = start.Sub(traceStart)
	res.Busy = float64(w.BusyCount()) / float64(cfg.Nodes)
	res.Queued, res.QueuedNodes = sch.queued()
	jobsBefore := sch.startedJobs()
	w.MarkUpgrade()
	if st.RebootASAP {
		res.Step = 0
		err = runASAP(ctx, w, cfg, st, start, &res)
	} else {
		err = runCrus(ctx, w, cfg, st, start, &res)
	}
	if err != nil {
		res.Unfinished = errors.Is(err, ErrTooLong)
		return res, err
	}
	res.Loss = w.Loss()
	res.Lost = res.Loss.Total()
	res.MaxOut = w.MaxOut()
	res.WLMCalls, res.HSMCalls, res.BOSCalls = w.CallsTo("wlm"), w.CallsTo("hsm"), w.CallsTo("bos")
	res.JobsStarted = sch.startedJobs() - jobsBefore
	if res.Old = w.OldWork(); res.Old.Jobs > 0 {
		res.OldLastEnd = res.Old.LastEnd.Sub(start)
	}
	if v := w.Violations(); len(v) > 0 {
		return res, fmt.Errorf("sim: %s: %d nodes rebooted while running jobs, e.g. %s", st.Name, len(v), v[0])
	}
	res.Wall = time.Since(wall)
	return res, nil
}

// replayUntil replays the trace up to t (the warm-up, the search for a
// loaded point) an hour of it at a time, and stops with ctx's error
// between two: the command's interrupt cancels ctx, and the warm-up of
// days of a loaded trace takes seconds of wall time, which Ctrl-C waited
// out before in every run not yet started (a Thunder sweep ran on for
// more than a minute after SIGINT).
// The hours change nothing: time moves only to the next event, as in
// one call.
func replayUntil(ctx context.Context, w *fake.World, t time.Time) (time.Time, error) {
	for {
		if err := ctx.Err(); err != nil {
			return w.Now(), fmt.Errorf("sim: replaying the trace: %w", err)
		}
		next := w.Now().Add(time.Hour)
		if !next.Before(t) {
			return w.RunUntil(t), nil
		}
		w.RunUntil(next)
	}
}

// injectFaults makes BootFailures of the nodes fail to boot and
// NeverReturn of them never come back, chosen by the seed.
func injectFaults(w *fake.World, cfg Config) {
	rng := rand.New(rand.NewPCG(cfg.Seed^0x5eed, cfg.Seed))
	pick := rng.Perm(cfg.Nodes)
	nFail := int(float64(cfg.Nodes)*cfg.BootFailures + 0.5)
	nNever := int(float64(cfg.Nodes)*cfg.NeverReturn + 0.5)
	for _, i := range pick[:min(nFail, len(pick))] {
		w.SetFaults(fake.XName(i), fake.NodeFaults{BootFails: true, BootError: "kernel panic - not syncing"})
	}
	for _, i := range pick[min(nFail, len(pick)):min(nFail+nNever, len(pick))] {
		w.SetFaults(fake.XName(i), fake.NodeFaults{NeverReturns: true})
	}
}

func runCrus(ctx context.Context, w *fake.World, cfg Config, st Strategy, start time.Time, res *Result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := start.Add(cfg.MaxDuration)
	done := 0
	var tooLong atomic.Bool // (set by whichever goroutine waits past the deadline)
	poll, ret := cfg.PollInterval, cfg.ReturnTimeout
	if st.PollInterval > 0 {
		poll = st.PollInterval
	}
	if st.ReturnTimeout > 0 {
		ret = st.ReturnTimeout
	}
	var manager wlm.Manager = w.WLM()
	switch st.Ends {
	case EndsPredicted:
		manager = predicting{w.WLM(), wlm.NewPredictor(wlm.PredictorConfig{Now: w.Now})}
	case EndsOracle:
		manager = clairvoyant{w.WLM(), w}
	}
	ex, err := crus.NewExecutor(w.HSM(), manager, w.BOS(), crus.Config{
		Clock: deadlineClock{World: w, deadline: deadline, over: func() {
			tooLong.Store(true)
			cancel()
		}},
		PollInterval:         poll,
		InFlightPollInterval: st.InFlightPoll,
		NewID:                func() string { return "sim" },
		OnEvent: func(ev crus.Event) {
			if ev.Kind == crus.EventNode {
				done++
				if cfg.OnProgress != nil {
					cfg.OnProgress(Progress{Strategy: st.Name, Done: done, Nodes: cfg.Nodes, Simulated: ev.Time.Sub(start)})
				}
			}
		},
	})
	if err != nil {
		return err
	}
	final, err := runSession(ctx, ex, cfg.Step, cfg.MaxDuration, st, crus.Duration(ret), &tooLong)
	if err != nil {
		return err
	}
	res.Makespan = final.Progress.EndedAt.Sub(start)
	c := final.Counts()
	res.Upgraded, res.Failed, res.Skipped, res.Untouched = c.Upgraded, c.Failed, c.Skipped, c.Untouched
	res.Result = final.Progress.Result
	return nil
}

// deadlineClock is the world's clock as the executor sees it, which
// stops the session (over) when it would wait past the deadline: every
// wait of the executor goes through After, and nothing else moves the
// simulated time on. A session waiting for a job that runs for months
// (a trace may hold one) is stopped there, after a wait of at most a poll
// interval past the deadline, not once the job ends.
type deadlineClock struct {
	*fake.World
	deadline time.Time
	over     func()
}

func (c deadlineClock) After(d time.Duration) <-chan time.Time {
	if c.Now().Add(d).After(c.deadline) {
		c.over()
	}
	return c.World.After(d)
}

// runASAP is the uncapped reference: one workload-manager reboot request
// for every node, then a look every poll interval until every node has
// rebooted and returned, or the workload manager gave up on it.
func runASAP(ctx context.Context, w *fake.World, cfg Config, st Strategy, start time.Time, res *Result) error {
	names := make([]string, cfg.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("nid%06d", i+1)
	}
	// Each node's end as a crus session would see it (FairMakespan).
	var mu sync.Mutex
	fair := make(map[string]time.Time, cfg.Nodes)
	w.SetPowerHook(fake.PowerHook{On: func(xname, _ string, back bool) {
		end := w.Now()
		if !back {
			if n, ok := w.Node(xname); ok && n.BootTime.After(start) {
				end = end.Add(cfg.ReturnTimeout) // booted, never returns
			}
		}
		mu.Lock()
		defer mu.Unlock()
		fair[xname] = end
	}})
	defer w.SetPowerHook(fake.PowerHook{})
	if err := w.WLM().Reboot(ctx, names, "reboot ASAP for the upgrade"); err != nil {
		return err
	}
	tick := cfg.PollInterval
	if st.PollInterval > 0 {
		tick = st.PollInterval
	}
	for w.RebootsPending() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := w.Advance(tick)
		if now.Sub(start) > cfg.MaxDuration {
			return fmt.Errorf("%w (%s, %s)", ErrTooLong, st.Name, cfg.MaxDuration)
		}
		if cfg.OnProgress != nil {
			cfg.OnProgress(Progress{Strategy: st.Name, Done: cfg.Nodes - w.RebootsPending(), Nodes: cfg.Nodes, Simulated: now.Sub(start)})
		}
	}
	res.Makespan = w.Now().Sub(start)
	mu.Lock()
	if len(fair) == cfg.Nodes {
		for _, end := range fair {
			res.FairMakespan = max(res.FairMakespan, end.Sub(start))
		}
		// When the last node was done, not when reboot-asap's next look
		// saw it (Makespan): a crus session looks at nodes in flight more
		// often than every tick (InFlightPollInterval, poll/2 by
		// default), so rounded up to the tick the bound was up to a tick
		// longer than a session could take (a session 15 s under it).
		res.FairMakespan = min(res.FairMakespan, res.Makespan)
	}
	mu.Unlock()
	for i := range cfg.Nodes {
		n, _ := w.Node(fake.XName(i))
		if n.Up && n.BootTime.After(start) {
			res.Upgraded++
		} else {
			res.Failed++
		}
	}
	return nil
}

// runSession creates the session of strategy st on the fakes and runs it
// to its end in steps of step. tooLong is set by the clock's guard when
// the session ran past maxDuration (Run then ends with a cancelled
// context). A zero returnTimeout is the spec's default.
func runSession(ctx context.Context, ex *crus.Executor, step int, maxDuration time.Duration, st Strategy, returnTimeout crus.Duration, tooLong *atomic.Bool) (*crus.Session, error) {
	s, err := ex.Create(ctx, crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: step, TemplateID: fake.Template, WorkloadManagerType: "slurm",
		ReturnTimeout: returnTimeout, Rollout: st.Rollout,
	})
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", st.Name, err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if tooLong.Load() {
		return nil, fmt.Errorf("%w (%s, %s)", ErrTooLong, st.Name, maxDuration)
	}
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", st.Name, err)
	}
	return final, nil
}
