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
}

func TestJobsFromTrace(t *testing.T) {
	tr := &swf.Trace{
		Header: swf.Header{MaxNodes: 4, MaxProcs: 16},
		Jobs: []swf.Job{
			{ID: 1, Submit: time.Hour, Run: 2 * time.Hour, Procs: 5, ReqTime: 3 * time.Hour, Partition: 1},
			{ID: 2, Submit: 2 * time.Hour, Run: 30 * time.Hour, Procs: 4, ReqTime: -1, Partition: 1},
			{ID: 3, Submit: 3 * time.Hour, Run: time.Hour, Procs: 4, ReqTime: -1, Partition: 1},
			{ID: 4, Submit: 4 * time.Hour, Run: time.Hour, Procs: 20, ReqTime: time.Hour, Partition: 2},
			{ID: 5, Submit: 5 * time.Hour, Run: 0, Procs: 4, Partition: 1},
			{ID: 6, Submit: 0, Run: time.Hour, Procs: 4, Partition: 1},
			{ID: 7, Submit: 6 * time.Hour, Run: 2 * time.Hour, Procs: 4, ReqTime: time.Hour, Partition: 1},
		},
	}
	cfg, err := Config{Trace: tr, Start: 2*time.Hour + 30*time.Minute, Warmup: 2 * time.Hour}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, 4, cfg.ProcsPerNode)
	assert.Equal(t, []job{
		{submit: 30 * time.Minute, width: 2, run: 2 * time.Hour, limit: 3 * time.Hour},
		{submit: 90 * time.Minute, width: 1, run: 30 * time.Hour, limit: 30 * time.Hour}, // partition default: its longest run
		{submit: 150 * time.Minute, width: 1, run: time.Hour, limit: 30 * time.Hour},     // idem: the limit says nothing
		{submit: 330 * time.Minute, width: 1, run: 2 * time.Hour, limit: 2 * time.Hour},  // a limit below the run time
	}, cfg.jobs(), "jobs before the warm-up, wider than the cluster or without a run time are left out")

	cfg.Nodes = 8 // twice the traced machine: every job twice as wide
	assert.Equal(t, 4, cfg.jobs()[0].width)
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

func TestRunErrors(t *testing.T) {
	_, err := Run(context.Background(), Config{}, classic)
	assert.Error(t, err)
	cfg := small(t)
	cfg.MaxDuration = time.Hour
	_, err = Run(context.Background(), cfg, classic)
	assert.ErrorIs(t, err, ErrTooLong)
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
