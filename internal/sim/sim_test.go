package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/swf"
	"github.com/crus-go/crus/wlm"
)

var (
	traceOnce sync.Once
	kth       *swf.Trace
	thunder   *swf.Trace
	traceErr  error
)

func traces(t testing.TB) (*swf.Trace, *swf.Trace) {
	t.Helper()
	traceOnce.Do(func() {
		kth, traceErr = swf.ReadFile("../../testdata/traces/KTH-SP2-1996-2.1-cln.swf.gz")
		if traceErr == nil {
			thunder, traceErr = swf.ReadFile("../../testdata/traces/LLNL-Thunder-2007-1.1-cln.swf.gz")
		}
	})
	require.NoError(t, traceErr)
	return kth, thunder
}

var (
	classic = Strategy{Name: "classic"}
	asap    = Strategy{Name: "reboot-asap", RebootASAP: true}
	jobEnd  = Strategy{Name: "rolling-job_end", Rollout: crus.Rollout{Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd}}
)

// small is a KTH SP2 cluster cut to 40 nodes, quick enough for -race.
func small(t testing.TB) Config {
	k, _ := traces(t)
	return Config{Trace: k, Nodes: 40, Step: 5, Seed: 3, Start: 65 * 24 * time.Hour, Warmup: 2 * 24 * time.Hour, BootFailures: 0.05}
}

func TestRunIsDeterministic(t *testing.T) {
	cfg := small(t)
	a, err := Run(context.Background(), cfg, jobEnd)
	require.NoError(t, err)
	b, err := Run(context.Background(), cfg, jobEnd)
	require.NoError(t, err)
	a.Wall, b.Wall = 0, 0
	assert.Equal(t, a, b)
	assert.Positive(t, a.JobsStarted, "the trace kept the cluster busy during the session")
}

// TestStrategiesSideBySide checks what the benchmark promises on a small
// real trace: every crus strategy keeps the cap, the rolling job-end
// strategy loses far less capacity than the original algorithm and is not
// slower, and reboot ASAP has no cap.
func TestStrategiesSideBySide(t *testing.T) {
	cfg := small(t)
	res := map[string]Result{}
	for _, st := range []Strategy{classic, asap, jobEnd} {
		r, err := Run(context.Background(), cfg, st)
		require.NoError(t, err, st.Name)
		res[st.Name] = r
		assert.Equal(t, 40, r.Upgraded+r.Failed+r.Skipped+r.Untouched, st.Name)
		assert.Positive(t, r.Failed, "%s: the injected faults show (5%% + 0.5%% of 40 nodes)", st.Name)
	}
	c, a, j := res["classic"], res["reboot-asap"], res["rolling-job_end"]
	assert.LessOrEqual(t, c.MaxOut, 5)
	assert.LessOrEqual(t, j.MaxOut, 5)
	assert.Greater(t, a.MaxOut, 5, "reboot ASAP takes every node out")
	assert.Equal(t, 0, a.Step)
	assert.Less(t, j.Lost, c.Lost/2, "rolling job_end loses less than half the capacity of classic")
	assert.Less(t, j.LostOverFloor(), 1.6)
	assert.LessOrEqual(t, j.Makespan, c.Makespan)
	assert.GreaterOrEqual(t, j.Makespan, a.Makespan-time.Minute, "no capped strategy beats rebooting everything at once")
	assert.Equal(t, 1, a.WLMCalls, "one reboot request")
	assert.Zero(t, a.BOSCalls)
	assert.Positive(t, j.BOSCalls)

	// Work started on nodes still to reboot: none under reboot-asap
	// (every node is marked at once); the rolling strategy leaves nodes
	// in service until it takes them, so jobs start there, and the
	// session cannot end before the last of them.
	assert.Zero(t, a.Old, "reboot-asap: no job starts on a node marked for reboot")
	assert.Zero(t, a.OldLastEnd)
	assert.Positive(t, j.Old.Jobs, "rolling: jobs start on nodes it has not taken yet")
	assert.Positive(t, j.Old.NodeHours)
	assert.Positive(t, j.OldLastEnd)
	assert.LessOrEqual(t, j.OldLastEnd, j.Makespan, "the session waits for the last job on a node it has still to reboot")

	for name, r := range res {
		assert.LessOrEqual(t, r.Loss.Unwanted, r.Loss.Waiting, "%s: the unwanted wait is part of the wait", name)
		assert.LessOrEqual(t, r.WantedOverFloor(), r.LostOverFloor(), name)
	}
	assert.Positive(t, c.Loss.Unwanted, "classic keeps nodes drained while no waiting job could use them")
}

func TestJobsFromTrace(t *testing.T) {
	tr := &swf.Trace{
		Header: swf.Header{MaxNodes: 4, MaxProcs: 16},
		Jobs: []swf.Job{
			{ID: 1, Submit: time.Hour, Run: 2 * time.Hour, Procs: 5, ReqTime: 3 * time.Hour, Partition: 1, User: 7},
			{ID: 2, Submit: 2 * time.Hour, Run: 30 * time.Hour, Procs: 4, ReqTime: -1, Partition: 1, User: -1},
			{ID: 3, Submit: 3 * time.Hour, Run: time.Hour, Procs: 4, ReqTime: -1, Partition: 1, User: 7},
			{ID: 4, Submit: 4 * time.Hour, Run: time.Hour, Procs: 20, ReqTime: time.Hour, Partition: 2},
			{ID: 5, Submit: 5 * time.Hour, Run: 0, Procs: 4, Partition: 1},
			{ID: 6, Submit: 0, Run: time.Hour, Procs: 4, Partition: 1},
			{ID: 7, Submit: 6 * time.Hour, Run: 2 * time.Hour, Procs: 4, ReqTime: time.Hour, Partition: 1, User: -1},
		},
	}
	cfg, err := Config{Trace: tr, Start: 2*time.Hour + 30*time.Minute, Warmup: 2 * time.Hour}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 4, cfg.ProcsPerNode)
	assert.Equal(t, []job{
		{submit: 30 * time.Minute, width: 2, run: 2 * time.Hour, limit: 3 * time.Hour, user: "u7"},
		{submit: 90 * time.Minute, width: 1, run: 30 * time.Hour, limit: 30 * time.Hour},         // partition default: its longest run
		{submit: 150 * time.Minute, width: 1, run: time.Hour, limit: 30 * time.Hour, user: "u7"}, // idem: the limit says nothing
		{submit: 330 * time.Minute, width: 1, run: 2 * time.Hour, limit: time.Hour},              // overran its request: the scheduler knows the request
	}, cfg.jobs(), "jobs before the warm-up, wider than the cluster or without a run time are left out")

	exact := cfg
	exact.ExactLimits = true
	assert.Equal(t, []time.Duration{2 * time.Hour, 30 * time.Hour, time.Hour, 2 * time.Hour}, limits(exact.jobs()), "the run times as limits")

	cfg.Nodes = 8 // twice the traced machine: every job twice as wide
	assert.Equal(t, 4, cfg.jobs()[0].width)
	assert.Equal(t, 2, cfg.jobs()[1].width)
	cfg.Nodes = 3 // three quarters of it: widths scaled by 3/4, rounded up
	assert.Equal(t, 2, cfg.jobs()[0].width)
	assert.Equal(t, 1, cfg.jobs()[1].width)
	cfg.Nodes = 6 // 6/4: a 1-node job takes 2 nodes, a 2-node job 3
	assert.Equal(t, []int{3, 2, 2, 2}, widths(cfg.jobs()))

	// A machine of mixed nodes: 10 processors on 3 nodes. A job of all
	// 10 fits it (3 nodes: by the ratio, not by 10 / 3 rounded down to 3
	// processors a node, which made it 4 nodes and left it out); 4
	// processors are 2 nodes, 1 is 1.
	mixed := &swf.Trace{Header: swf.Header{MaxNodes: 3, MaxProcs: 10}, Jobs: []swf.Job{
		{ID: 1, Submit: time.Hour, Run: time.Hour, Procs: 10, ReqTime: time.Hour},
		{ID: 2, Submit: time.Hour, Run: time.Hour, Procs: 4, ReqTime: time.Hour},
		{ID: 3, Submit: time.Hour, Run: time.Hour, Procs: 1, ReqTime: time.Hour},
		{ID: 4, Submit: time.Hour, Run: time.Hour, Procs: 11, ReqTime: time.Hour},
	}}
	cfg, err = Config{Trace: mixed, Start: time.Hour, Warmup: time.Hour}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, []int{3, 2, 1}, widths(cfg.jobs()), "11 processors do not fit")
	// A ProcsPerNode given is taken as given: 5 a node.
	cfg, err = Config{Trace: mixed, Start: time.Hour, Warmup: time.Hour, ProcsPerNode: 5}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, []int{2, 1, 1, 3}, widths(cfg.jobs()))

	// A header with processors alone (as many traces have): the machine
	// is MaxProcs processors, one a node.
	tr.Header = swf.Header{MaxProcs: 16}
	cfg, err = Config{Trace: tr, Nodes: 8, Start: 2*time.Hour + 30*time.Minute, Warmup: 2 * time.Hour}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 1, cfg.ProcsPerNode)
	assert.Equal(t, []int{3, 2, 2, 2}, widths(cfg.jobs()), "5 and 4 processors of 16, on 8 nodes")
	assert.Len(t, cfg.jobs(), 4, "20 processors do not fit a 16-processor machine")
	// Neither (or sizes no machine has): widths as traced, each processor
	// a node.
	for _, h := range []swf.Header{{}, {MaxNodes: 1 << 40, MaxProcs: 1 << 40}} {
		tr.Header = h
		cfg, err = Config{Trace: tr, Nodes: 8, Start: 2*time.Hour + 30*time.Minute, Warmup: 2 * time.Hour}.withDefaults()
		require.NoError(t, err)
		assert.Equal(t, []int{5, 4, 4, 4}, widths(cfg.jobs()), "%+v", h)
	}
}

// TestJobsOutOfOrder: a trace not sorted by submit time (SWF asks for
// it, not every trace is) is replayed in the order of submission, as the
// same trace sorted.
func TestJobsOutOfOrder(t *testing.T) {
	sorted := &swf.Trace{Header: swf.Header{MaxNodes: 4}, Jobs: []swf.Job{
		{ID: 1, Submit: time.Hour, Run: time.Hour, Procs: 1, ReqTime: time.Hour},
		{ID: 2, Submit: 2 * time.Hour, Run: time.Hour, Procs: 2, ReqTime: time.Hour},
		{ID: 3, Submit: 2 * time.Hour, Run: 3 * time.Hour, Procs: 1, ReqTime: time.Hour},
		{ID: 4, Submit: 5 * time.Hour, Run: time.Hour, Procs: 3, ReqTime: time.Hour},
	}}
	shuffled := &swf.Trace{Header: sorted.Header, Jobs: []swf.Job{
		sorted.Jobs[3], sorted.Jobs[1], {ID: 5, Submit: -1, Run: time.Hour, Procs: 1}, sorted.Jobs[0], sorted.Jobs[2],
	}}
	cfg := Config{Trace: sorted, Start: 3 * time.Hour, Warmup: 3 * time.Hour}.withDefaultsMust(t)
	want := cfg.jobs()
	require.Len(t, want, 4)
	cfg.Trace = shuffled
	assert.Equal(t, want, cfg.jobs(), "by submit time; equal times in trace order; unknown ones left out")
}

func limits(js []job) []time.Duration {
	out := make([]time.Duration, len(js))
	for i, j := range js {
		out[i] = j.limit
	}
	return out
}

func widths(js []job) []int {
	out := make([]int, len(js))
	for i, j := range js {
		out[i] = j.width
	}
	return out
}

// TestSchedulerDemand: crus's waiting nodes count as wanted only while a
// job the scheduler left waiting would fit on them and the free nodes.
func TestSchedulerDemand(t *testing.T) {
	ctx := context.Background()
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 6})
	s := newScheduler(w, []job{
		{submit: 0, width: 4, run: 10 * time.Hour, limit: 10 * time.Hour},
		{submit: time.Minute, width: 4, run: time.Hour, limit: time.Hour}, // waits for the first
	})
	w.SetScheduler(s.pass)
	s.replay()
	w.Advance(2 * time.Minute)
	require.Equal(t, 1, s.startedJobs())
	require.Equal(t, 2, w.FreeCount())

	// One of the two free nodes drained by crus: 1 free + 1 waiting < 4.
	require.NoError(t, w.WLM().Drain(ctx, []string{"nid000005"}, "crus test"))
	s.pass()
	w.Advance(time.Hour)
	assert.InDelta(t, 1.0, w.Loss().Unwanted.Hours(), 1e-9, "no waiting job fits on 2 nodes")

	// A 2-node job arrives: it would fit on the free node and crus's.
	s.mu.Lock()
	s.queue = append(s.queue, job{width: 2, run: time.Hour, limit: time.Hour})
	s.mu.Unlock()
	s.pass()
	w.Advance(time.Hour)
	assert.InDelta(t, 1.0, w.Loss().Unwanted.Hours(), 1e-9, "wanted while the 2-node job waits")
	assert.InDelta(t, 2.0, w.Loss().Waiting.Hours(), 1e-9)
}

// TestSchedulerBackfills checks FCFS with EASY backfill on a 4-node world:
// the first waiting job gets a reservation; a short job that ends before
// it is backfilled, a long one is not.
func TestSchedulerBackfills(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
	s := newScheduler(w, []job{
		{submit: 0, width: 3, run: 10 * time.Hour, limit: 10 * time.Hour},
		{submit: time.Minute, width: 4, run: time.Hour, limit: time.Hour},               // waits: reservation at 10h
		{submit: 2 * time.Minute, width: 1, run: 20 * time.Hour, limit: 20 * time.Hour}, // would delay it: no
		{submit: 3 * time.Minute, width: 1, run: time.Hour, limit: 2 * time.Hour},       // ends before 10h: backfilled
	})
	w.SetScheduler(s.pass)
	s.replay()
	w.Advance(10 * time.Minute)
	assert.Equal(t, 2, s.startedJobs())
	assert.Zero(t, w.FreeCount())
	w.Advance(3 * time.Hour)
	assert.Equal(t, 2, s.startedJobs(), "the long job still waits")
	assert.Equal(t, 1, w.FreeCount())
	w.Advance(7 * time.Hour) // 10h10m
	assert.Equal(t, 3, s.startedJobs(), "the wide job runs from 10h, after the first one")
	assert.Zero(t, w.FreeCount())
	w.Advance(2 * time.Hour)
	assert.Equal(t, 4, s.startedJobs())
}

// TestSchedulerDoesNotPlanOnDrainedNodes: EASY backfill reserves the
// first waiting job's nodes among those expected back in service; nodes
// drained for the upgrade are not, so a job that would otherwise delay the
// reservation may be backfilled.
func TestSchedulerDoesNotPlanOnDrainedNodes(t *testing.T) {
	for _, drained := range []bool{false, true} {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 5})
		require.True(t, w.StartJobOnFree(2, "", 5*time.Hour, 2*time.Hour, nil))   // nid 1-2, limit 2h
		require.True(t, w.StartJobOnFree(2, "", 10*time.Hour, 10*time.Hour, nil)) // nid 3-4, limit 10h
		if drained {
			require.NoError(t, w.WLM().Drain(context.Background(), []string{"nid000001", "nid000002"}, "crus s: upgrade"))
		}
		s := newScheduler(w, []job{
			{submit: 0, width: 3, run: time.Hour, limit: time.Hour},         // waits
			{submit: 0, width: 1, run: 5 * time.Hour, limit: 5 * time.Hour}, // backfill candidate
		})
		w.SetScheduler(s.pass)
		s.replay()
		w.Advance(time.Minute)
		if drained {
			// The first job can only run once nid 3-4 are back, at 10h by
			// their limit: a 5h job on the free node ends before.
			assert.Equal(t, 1, s.startedJobs(), "backfilled")
		} else {
			// At 2h nid 1-2 and the free node make 3: the reservation
			// needs the free node, and a 5h job would delay it.
			assert.Equal(t, 0, s.startedJobs(), "not backfilled")
		}
	}
}

// TestSchedulerHonoursReservations: a job goes to a reserved node only if
// its limit ends before the reservation, and the first waiting job's
// reservation does not count a reserved node it would cross.
func TestSchedulerHonoursReservations(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 3})
	t0 := w.Now()
	require.NoError(t, w.WLM().Reserve(context.Background(), wlm.Reservation{
		Name: "crus-s-1", Nodes: []string{"nid000001"}, Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}))
	s := newScheduler(w, []job{
		{submit: 0, width: 1, run: 5 * time.Hour, limit: 5 * time.Hour},                 // not on nid1: nid2
		{submit: time.Minute, width: 1, run: 30 * time.Minute, limit: 50 * time.Minute}, // fits before: nid1
		{submit: 2 * time.Minute, width: 2, run: time.Hour, limit: time.Hour},           // waits for nid1 and nid3: ...
		{submit: 2 * time.Minute, width: 1, run: 3 * time.Hour, limit: 3 * time.Hour},
	})
	w.SetScheduler(s.pass)
	s.replay()
	w.Advance(90 * time.Second)
	busy := func() []int {
		var out []int
		for _, x := range w.XNames() {
			if n, _ := w.Node(x); n.Jobs > 0 {
				out = append(out, n.NID)
			}
		}
		return out
	}
	assert.Equal(t, []int{1, 2}, busy())
	w.Advance(2 * time.Minute)
	// The 2-wide job: nid3 is free; nid1 is free from 51m by its job's
	// limit, but reserved 1h-2h, so the job cannot run there before 2h:
	// its EASY reservation is at 2h, and the 3h job on nid3 would cross
	// it.
	assert.Equal(t, []int{1, 2}, busy(), "nothing backfilled onto nid3 past the 2-wide job's reservation")
	assert.Equal(t, 2, s.startedJobs())
	w.Advance(2 * time.Hour) // 2h03
	assert.Equal(t, []int{1, 2, 3}, busy(), "the 2-wide job runs on nid1 and nid3 once nid1's reservation is over")
	assert.Equal(t, 3, s.startedJobs())
	w.Advance(time.Hour) // 3h03
	assert.Equal(t, 4, s.startedJobs(), "then the 3h job")
}

func TestShadowOf(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return now.Add(time.Duration(h) * time.Hour) }
	for _, c := range []struct {
		name    string
		head    job
		outlook []fake.Avail
		shadow  time.Time
		extra   int
	}{
		{"fits now", job{width: 2, limit: time.Hour}, []fake.Avail{{From: now, Nodes: 3}}, now, 1},
		{"after the second job", job{width: 4, limit: time.Hour},
			[]fake.Avail{{From: now, Nodes: 1}, {From: at(1), Nodes: 2}, {From: at(2), Nodes: 2}, {From: at(3), Nodes: 5}}, at(2), 1},
		{"never", job{width: 9, limit: time.Hour}, []fake.Avail{{From: now, Nodes: 1}, {From: at(1), Nodes: 2}}, time.Time{}, 0},
		{"entries of one time together", job{width: 3, limit: time.Hour},
			[]fake.Avail{{From: at(1), Nodes: 1}, {From: at(1), Nodes: 2}}, at(1), 0},
		{"a job past its limit counts from now", job{width: 2, limit: time.Hour},
			[]fake.Avail{{From: at(-1), Nodes: 2}}, now, 0},
		{"reserved nodes count only if the job ends before the reservation", job{width: 3, limit: 2 * time.Hour},
			[]fake.Avail{{From: now, Nodes: 2}, {From: now, Until: at(1), Nodes: 5}, {From: at(1), Until: at(4), Nodes: 1}}, at(1), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			shadow, extra := shadowOf(c.head, now, c.outlook)
			assert.Equal(t, c.shadow, shadow)
			assert.Equal(t, c.extra, extra)
		})
	}
}

// TestLoadedStart: with MinBusy the upgrade starts at the first point where
// the cluster is that busy and a job waits, and the result says so.
func TestLoadedStart(t *testing.T) {
	k, _ := traces(t)
	cfg := Config{Trace: k, Nodes: 40, Step: 5, Seed: 1, Start: 65 * 24 * time.Hour, Warmup: 2 * 24 * time.Hour}
	plain, err := Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	assert.Equal(t, cfg.Start, plain.Start)
	assert.True(t, plain.Loaded, "no MinBusy: any start is taken")

	cfg.MinBusy = 0.95
	r, err := Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	require.True(t, r.Loaded)
	assert.GreaterOrEqual(t, r.Busy, 0.95)
	assert.GreaterOrEqual(t, r.QueuedNodes, r.Queued)
	assert.Greater(t, r.Start, cfg.Start, "day 65 of KTH is not that busy: moved on")
	assert.Zero(t, (r.Start-cfg.Start)%time.Hour, "an hour at a time")
	// Day 50 follows an outage of the real machine: 18 of 100 nodes busy,
	// nothing queued, and not 99 % busy 3 hours later.
	cfg.Start, cfg.MinBusy, cfg.Seek = 50*24*time.Hour, 0.99, 3*time.Hour
	r, err = Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	assert.False(t, r.Loaded)
}

// TestFloorAndBound: the floor is the seed's, not the strategy's; the bound
// is the uncapped makespan or the reboots step at a time.
func TestFloorAndBound(t *testing.T) {
	cfg := small(t)
	a, err := Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	j, err := Run(context.Background(), cfg, jobEnd)
	require.NoError(t, err)
	assert.Equal(t, a.Floor, j.Floor)
	assert.NotEqual(t, 40*10*time.Minute, j.Floor, "the run's reboot times, not the nominal 10m")
	cfg.Seed++
	other, err := Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	assert.NotEqual(t, a.Floor, other.Floor)

	assert.Equal(t, a.FairMakespan, Bound(a, j), "a job longer than 8 reboots bounds it")
	assert.LessOrEqual(t, a.FairMakespan, a.Makespan)
	assert.Equal(t, j.Floor/5, Bound(Result{Makespan: time.Minute}, j), "40 reboots, 5 at a time")
	assert.Zero(t, a.Makespan%cfg.withDefaultsMust(t).PollInterval, "reboot-asap looks every poll interval")
}

// The bound counts no wait that only the workload manager's reboot makes:
// Slurm holds a node that failed to boot until its reboot timeout, where
// a crus session learns of the failure from the boot orchestrator at once.
// Without faults the two makespans are one.
func TestFairBound(t *testing.T) {
	cfg := small(t)
	cfg.BootFailures = 1
	a, err := Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	assert.Positive(t, a.FairMakespan)
	assert.GreaterOrEqual(t, a.Makespan-a.FairMakespan, crus.DefaultReturnTimeout-cfg.withDefaultsMust(t).PollInterval,
		"every node fails to boot: the reboot timeout (reboot time, jitter and return timeout) is not the bound's")
	assert.Equal(t, a.FairMakespan, Bound(a, Result{Nodes: 40, Step: 40, Floor: a.Floor}))

	cfg.BootFailures, cfg.NoFaults = 0, true
	a, err = Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	assert.LessOrEqual(t, a.FairMakespan, a.Makespan)
	assert.Less(t, a.Makespan-a.FairMakespan, cfg.withDefaultsMust(t).PollInterval, "without faults, the two differ by the look that saw the last node")
}

// TestBoundNotRoundedToTheTick: reboot-asap looks every poll interval, a
// crus session at nodes in flight every half of one, so the bound takes
// when reboot-asap's last node was back, not the look that saw it. A
// 6-node cluster whose one job runs 2h31m (the fuzzer's find): the bound
// rounded up to reboot-asap's 30 s tick was 2h43m30s, and the rolling
// session ended at 2h43m15s.
func TestBoundNotRoundedToTheTick(t *testing.T) {
	tr := &swf.Trace{Jobs: []swf.Job{{ID: 1, Submit: 20 * time.Second, Wait: 81 * time.Second, Run: 9088 * time.Second, Procs: 1, ReqTime: -1}}}
	cfg := Config{Trace: tr, Nodes: 6, Step: 2, Seed: 1, Start: 20 * time.Second, Warmup: 20 * time.Second, MaxDuration: 3 * 24 * time.Hour}
	a, err := Run(context.Background(), cfg, asap)
	require.NoError(t, err)
	r, err := Run(context.Background(), cfg, jobEnd)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, r.Makespan, Bound(a, r), "a capped session under the bound")
}

func (c Config) withDefaultsMust(t *testing.T) Config {
	c, err := c.withDefaults()
	require.NoError(t, err)
	return c
}

func TestRunErrors(t *testing.T) {
	_, err := Run(context.Background(), Config{}, classic)
	assert.Error(t, err)
	cfg := small(t)
	cfg.MaxDuration = time.Hour
	r, err := Run(context.Background(), cfg, classic)
	assert.ErrorIs(t, err, ErrTooLong)
	assert.True(t, r.Unfinished, "the result says so, for the report to show the run")
	assert.Equal(t, cfg.Start, r.Start, "and where it started")

	// A session that waits for a job of months, and so does nothing the
	// deadline could be checked on, is stopped at the deadline too.
	long := &swf.Trace{Jobs: []swf.Job{{ID: 1, Submit: time.Hour, Run: 1000 * 24 * time.Hour, Procs: 4, ReqTime: time.Hour}}}
	waits := 0
	clock := deadlineClock{World: fake.New(fake.Options{}), over: func() { waits++ }}
	clock.deadline = clock.Now().Add(time.Minute)
	<-clock.After(time.Minute)
	assert.Zero(t, waits, "up to the deadline")
	<-clock.After(time.Second)
	assert.Equal(t, 1, waits, "past it")
	for _, st := range []Strategy{classic, jobEnd} {
		_, err = Run(context.Background(), Config{Trace: long, Nodes: 4, Step: 2, Start: time.Hour, Warmup: time.Hour, MaxDuration: 24 * time.Hour}, st)
		assert.ErrorIs(t, err, ErrTooLong, st.Name)
	}

	// Values no cluster or window has are refused, all at once, before
	// anything runs.
	bad := small(t)
	bad.Start, bad.Warmup, bad.DefaultLimit, bad.Step, bad.BootFailures = -time.Hour, -time.Minute, -time.Second, -1, 2
	_, err = Run(context.Background(), bad, classic)
	for _, want := range []string{"Start -1h0m0s is negative", "Warmup -1m0s is negative", "DefaultLimit -1s is negative", "Step -1 is negative", "BootFailures 2 is not a fraction"} {
		assert.ErrorContains(t, err, want)
	}
	bad = small(t)
	bad.RebootTime, bad.RebootJitter = 2*time.Minute, 3*time.Minute
	_, err = Run(context.Background(), bad, classic)
	assert.ErrorContains(t, err, "RebootJitter 3m0s is not less than RebootTime 2m0s")
	bad.RebootJitter = 0 // the default: 3/10 of a short reboot time
	c, err := bad.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 36*time.Second, c.RebootJitter)
	bad.RebootJitter = -1 // none
	_, err = bad.withDefaults()
	assert.NoError(t, err)

	cfg = small(t)
	cfg.Nodes = MaxNodes + 1
	_, err = Run(context.Background(), cfg, classic)
	assert.ErrorContains(t, err, "Nodes 1000001 is more than the simulator runs (at most 1000000")

	cfg = small(t)
	cfg.MinBusy = 1.5
	_, err = Run(context.Background(), cfg, classic)
	assert.ErrorContains(t, err, "MinBusy 1.5 is not a fraction")
	cfg = small(t)
	cfg.Start = 10_000 * 24 * time.Hour
	_, err = Run(context.Background(), cfg, classic)
	assert.ErrorContains(t, err, "window starts on day 10000.0, after the trace's last job")
}

// BenchmarkSimulate runs whole simulated upgrades: LLNL Thunder widened to
// 10k nodes (every job 10x wider), step 100, with the rolling job-end
// strategy. Run with -benchtime=1x.
func BenchmarkSimulate(b *testing.B) {
	_, th := traces(b)
	for _, c := range []struct {
		name  string
		nodes int
		step  int
	}{{"10k", 10_000, 100}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var r Result
			for b.Loop() {
				var err error
				r, err = Run(context.Background(), Config{Trace: th, Nodes: c.nodes, Step: c.step, Seed: 1}, jobEnd)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.Makespan.Hours(), "simulated-h")
			b.ReportMetric(r.LostOverFloor(), "lost/floor")
			b.ReportMetric(float64(r.MaxOut), "max-out")
		})
	}
}

// TestEndSources: crus ranks nodes by the ends it is given; predicted and
// true ends give other rankings than limits, and every run keeps the cap.
func TestEndSources(t *testing.T) {
	_, th := traces(t)
	cfg := Config{Trace: th, Nodes: 100, Step: 10, Seed: 2, Start: 80 * 24 * time.Hour, Warmup: 3 * 24 * time.Hour}
	res := map[Ends]Result{}
	for _, e := range []Ends{EndsLimits, EndsPredicted, EndsOracle} {
		st := jobEnd
		st.Ends = e
		r, err := Run(context.Background(), cfg, st)
		require.NoError(t, err, e)
		assert.LessOrEqual(t, r.MaxOut, 10)
		assert.Equal(t, 100, r.Upgraded+r.Failed)
		res[e] = r
	}
	assert.NotEqual(t, res[EndsLimits].Makespan, res[EndsPredicted].Makespan, "predictions change the order")
	assert.Less(t, res[EndsOracle].Makespan, res[EndsLimits].Makespan, "on Thunder, limits say nothing: knowing the ends helps")
}

// TestScheduledOnATrace: the scheduled strategy on a real trace keeps the
// cap, takes every node, and loses little more than the reboots.
func TestScheduledOnATrace(t *testing.T) {
	cfg := small(t)
	st := Strategy{Name: "scheduled", Rollout: crus.Rollout{Strategy: crus.StrategyScheduled}}
	r, err := Run(context.Background(), cfg, st)
	require.NoError(t, err)
	assert.LessOrEqual(t, r.MaxOut, cfg.Step)
	assert.Equal(t, 40, r.Upgraded+r.Failed)
	assert.Less(t, r.LostOverFloor(), 1.3)
	j, err := Run(context.Background(), cfg, jobEnd)
	require.NoError(t, err)
	t.Logf("scheduled %.1fh lost %.2f; rolling job_end %.1fh lost %.2f", r.Makespan.Hours(), r.LostOverFloor(), j.Makespan.Hours(), j.LostOverFloor())
	assert.LessOrEqual(t, r.Makespan, j.Makespan, "on KTH, whose limits are real, booking slots is no slower")
}

// TestPartialExecutionsReplayedOnce: a checkpointed job's partial
// executions (status 2, 3, 4) are not replayed beside its summary line
// (status 0, 1 or 5), which stands for the whole job; partial lines of a
// job without a summary line are left out too, and counted apart.
func TestPartialExecutionsReplayedOnce(t *testing.T) {
	tr := &swf.Trace{Header: swf.Header{MaxNodes: 4, MaxProcs: 4}, Jobs: []swf.Job{
		{ID: 1, Submit: time.Hour, Run: 3 * time.Hour, Procs: 2, ReqTime: 4 * time.Hour, Status: 1},
		{ID: 1, Submit: time.Hour, Run: time.Hour, Procs: 2, ReqTime: 4 * time.Hour, Status: 2},
		{ID: 1, Submit: time.Hour, Run: 2 * time.Hour, Procs: 2, ReqTime: 4 * time.Hour, Status: 3},
		{ID: 2, Submit: 2 * time.Hour, Run: time.Hour, Procs: 1, ReqTime: time.Hour, Status: 2},
		{ID: 2, Submit: 2 * time.Hour, Run: time.Hour, Procs: 1, ReqTime: time.Hour, Status: 4},
		{ID: 3, Submit: 3 * time.Hour, Run: time.Hour, Procs: 1, ReqTime: time.Hour, Status: 5},
		{ID: 4, Submit: 4 * time.Hour, Run: time.Hour, Procs: 1, ReqTime: time.Hour, Status: 0},
	}}
	cfg := Config{Trace: tr, Start: 4 * time.Hour, Warmup: 4 * time.Hour}.withDefaultsMust(t)
	assert.Equal(t, []job{
		{submit: time.Hour, width: 2, run: 3 * time.Hour, limit: 4 * time.Hour, user: "u0"},
		{submit: 3 * time.Hour, width: 1, run: time.Hour, limit: time.Hour, user: "u0"},
		{submit: 4 * time.Hour, width: 1, run: time.Hour, limit: time.Hour, user: "u0"},
	}, cfg.jobs(), "job 1 once, by its summary line; job 2's partial lines alone: left out")
}

// TestSurvey: what the simulator makes of a trace's lines, counted by
// reason, for the command to report.
func TestSurvey(t *testing.T) {
	tr := &swf.Trace{Header: swf.Header{MaxNodes: 4, MaxProcs: 4}, Jobs: []swf.Job{
		{ID: 1, Submit: time.Hour, Run: 3 * time.Hour, Procs: 2, Status: 1},
		{ID: 1, Submit: time.Hour, Run: time.Hour, Procs: 2, Status: 2},
		{ID: 1, Submit: time.Hour, Run: 2 * time.Hour, Procs: 2, Status: 3},
		{ID: 2, Submit: 2 * time.Hour, Run: time.Hour, Procs: 1, Status: 4},
		{ID: 3, Submit: -1, Run: time.Hour, Procs: 1},
		{ID: 4, Submit: 3 * time.Hour, Run: 0, Procs: 1, Status: 5},
		{ID: 5, Submit: 3 * time.Hour, Run: time.Hour, Procs: -1, ReqProcs: -1},
		{ID: 6, Submit: 3 * time.Hour, Run: time.Hour, Procs: 5},
		{ID: 7, Submit: 5 * time.Hour, Run: time.Hour, Procs: 4},
	}}
	u, err := Survey(Config{Trace: tr, Start: 4 * time.Hour, Warmup: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, TraceUse{Lines: 9, Jobs: 2, Partial: 2, PartialOnly: 1, NoSubmit: 1, NoRun: 1, NoWidth: 1, TooWide: 1, LastSubmit: 5 * time.Hour}, u)
	assert.Len(t, u.Notes(), 6)
	assert.Contains(t, u.Notes()[0], "2 lines of partial executions (status 2-4)")
	_, err = Survey(Config{Trace: tr, Start: 6 * time.Hour})
	assert.ErrorIs(t, err, ErrPastEnd)
	assert.ErrorContains(t, err, "after the trace's last job replayed is submitted (day 0.2)")
}

// TestNoJobToReplay: a trace with no job the simulator can replay is an
// error that says so, not an upgrade of an idle cluster.
func TestNoJobToReplay(t *testing.T) {
	noWidth := &swf.Trace{Header: swf.Header{MaxNodes: 4}, Jobs: []swf.Job{
		{ID: 1, Submit: time.Hour, Run: time.Hour, Procs: -1, ReqProcs: -1, ReqTime: time.Hour},
		{ID: 2, Submit: 2 * time.Hour, Run: time.Hour, Procs: 0, ReqProcs: 0, ReqTime: time.Hour},
	}}
	for name, c := range map[string]struct {
		tr   *swf.Trace
		want string
	}{
		"no width":    {noWidth, "sim: the trace has no job to replay: none of its 2 job lines can be replayed (2 lines without a number of processors)"},
		"no job line": {&swf.Trace{Header: swf.Header{MaxNodes: 4}}, "sim: the trace has no job to replay: it has no job line"},
	} {
		_, err := Run(context.Background(), Config{Trace: c.tr, Nodes: 4, Step: 2, Start: 2 * time.Hour, Warmup: time.Hour}, jobEnd)
		assert.EqualError(t, err, c.want, name)
	}
}

// TestBoundWhenStepDoesNotDivideNodes: the bound is a lower bound of every
// capped strategy's makespan, also where the step does not divide the
// nodes. On an idle cluster of 11 nodes with a step of 10 the eleventh
// reboot starts as soon as the first of the ten returns, some 7-13 min
// in: ceil(11/10) whole rounds of the mean reboot, which the bound was,
// is longer than the session takes. What every strategy must spend is
// each node's reboot, step at a time: their sum over step.
func TestBoundWhenStepDoesNotDivideNodes(t *testing.T) {
	idle := &swf.Trace{Header: swf.Header{MaxNodes: 11}, Jobs: []swf.Job{
		{ID: 1, Submit: 0, Run: time.Minute, Procs: 1, ReqTime: 2 * time.Minute, Partition: -1},
		{ID: 2, Submit: 48 * time.Hour, Run: time.Minute, Procs: 1, ReqTime: 2 * time.Minute, Partition: -1},
	}}
	for seed := uint64(1); seed <= 5; seed++ {
		cfg := Config{Trace: idle, Nodes: 11, Step: 10, Seed: seed, NoFaults: true,
			Start: 48*time.Hour - time.Second, Warmup: 24 * time.Hour}
		a, err := Run(context.Background(), cfg, asap)
		require.NoError(t, err)
		r, err := Run(context.Background(), cfg, jobEnd)
		require.NoError(t, err)
		require.Zero(t, r.Busy, "an idle cluster: the bound is the reboots'")
		assert.GreaterOrEqual(t, r.Makespan, Bound(a, r), "seed %d: a capped session finished under the bound", seed)
		assert.GreaterOrEqual(t, Bound(a, r), r.Floor/10, "seed %d: no less than the reboots' sum over the step", seed)
	}
}

// cancelAfter is a context that reports itself cancelled from its n-th
// look on: cancelled in the middle of a run, whatever the wall clock.
type cancelAfter struct {
	context.Context
	n, looks int
	mu       sync.Mutex
}

func (c *cancelAfter) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.looks++; c.looks >= c.n {
		return context.Canceled
	}
	return nil
}

// TestCancelStopsTheReplay: a cancelled context (the command's Ctrl-C)
// stops a run in its warm-up, not once the days of trace before the
// upgrade have been replayed: on a loaded cluster of thousands of nodes
// that took minutes, which an interrupt waited out, and then the warm-up
// of every run not yet started. Cancelled from the start a run replays
// nothing; cancelled after a few hours of its warm-up it stops there.
func TestCancelStopsTheReplay(t *testing.T) {
	cfg := small(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := Run(ctx, cfg, jobEnd)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, r.Start, "nothing replayed")
	// Nor is the trace surveyed (a second or so on LLNL Thunder, for each
	// of the runs not yet started when Ctrl-C came): a trace it would
	// refuse is not looked at.
	_, err = Run(ctx, Config{Trace: &swf.Trace{Header: swf.Header{MaxNodes: 4}}}, jobEnd)
	require.ErrorIs(t, err, context.Canceled)

	for _, st := range []Strategy{jobEnd, asap} {
		c := &cancelAfter{Context: context.Background(), n: 3}
		r, err := Run(c, cfg, st)
		require.ErrorIs(t, err, context.Canceled, st.Name)
		assert.Zero(t, r.Start, "%s: stopped in the warm-up (%d looks at the context)", st.Name, c.looks)
		assert.Equal(t, 3, c.looks, "%s: stopped at the third look, three hours into the warm-up", st.Name)
	}
}
