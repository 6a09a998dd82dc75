package crus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/fake"
)

var errPermanentInjected = batch.NewPermanent("fake: injected permanent failure")

var faultOps = []string{
	"hsm.Members", "hsm.AddMembers", "hsm.RemoveMembers",
	"wlm.Nodes", "wlm.Drain", "wlm.Resume", "wlm.Fail",
	"bos.Reboot", "bos.Status",
}

// scenario is a randomly drawn cluster, fault plan and session.
type scenario struct {
	nodes, step  int
	seed         uint64
	busy         float64
	keepBusy     bool
	noBootTimes  bool
	limit        crus.BootLimit
	nodeFaults   map[int]int // node index -> fault kind
	callFaults   []callFault
	adminDrains  []adminDrain
	cancelAt     time.Duration // 0: never
	crashAtEvent int           // 0: never

	rollout     crus.Rollout
	pauseAt     time.Duration // 0: never
	pauseFor    time.Duration
	approveAt   time.Duration // when the canary is approved, if it must be
	pausedStage bool
}

type callFault struct {
	op        string
	n         int
	permanent bool
	at        time.Duration
}

type adminDrain struct {
	node int
	at   time.Duration
}

func drawScenario(t *rapid.T) scenario {
	sc := scenario{
		nodes:       rapid.IntRange(1, 24).Draw(t, "nodes"),
		step:        rapid.IntRange(1, 7).Draw(t, "step"),
		seed:        rapid.Uint64().Draw(t, "seed"),
		busy:        rapid.Float64Range(0, 1).Draw(t, "busy"),
		keepBusy:    rapid.Bool().Draw(t, "keepBusy"),
		noBootTimes: rapid.Float64Range(0, 1).Draw(t, "noBootTimes") < 0.2,
		limit:       rapid.SampledFrom([]crus.BootLimit{crus.LimitNodes, crus.LimitLabel}).Draw(t, "limit"),
		nodeFaults:  map[int]int{},
	}
	for i := range sc.nodes {
		// 0 boot fails, 1 never returns, 2 refuses drain, 3 admin-drained
		// before, 4 down before; anything else: healthy.
		if k := rapid.IntRange(0, 14).Draw(t, fmt.Sprintf("fault%d", i)); k <= 4 {
			sc.nodeFaults[i] = k
		}
	}
	for i := range rapid.IntRange(0, 5).Draw(t, "callFaults") {
		sc.callFaults = append(sc.callFaults, callFault{
			op:        rapid.SampledFrom(faultOps).Draw(t, fmt.Sprintf("op%d", i)),
			n:         rapid.IntRange(1, 40).Draw(t, fmt.Sprintf("n%d", i)),
			permanent: rapid.Float64Range(0, 1).Draw(t, fmt.Sprintf("perm%d", i)) < 0.3,
			at:        time.Duration(rapid.IntRange(0, 600).Draw(t, fmt.Sprintf("at%d", i))) * time.Minute,
		})
	}
	for i := range rapid.IntRange(0, 3).Draw(t, "adminDrains") {
		sc.adminDrains = append(sc.adminDrains, adminDrain{
			node: rapid.IntRange(0, sc.nodes-1).Draw(t, fmt.Sprintf("drainNode%d", i)),
			at:   time.Duration(rapid.IntRange(0, 600).Draw(t, fmt.Sprintf("drainAt%d", i))) * time.Minute,
		})
	}
	if rapid.Float64Range(0, 1).Draw(t, "cancel") < 0.2 {
		sc.cancelAt = time.Duration(rapid.IntRange(1, 900).Draw(t, "cancelAt")) * time.Minute
	}
	if rapid.Float64Range(0, 1).Draw(t, "crash") < 0.25 {
		sc.crashAtEvent = rapid.IntRange(1, 60).Draw(t, "crashAt")
	}
	// Half the runs use the original algorithm; the others any valid
	// combination of rollout options.
	if rapid.Bool().Draw(t, "options") {
		sc.rollout = drawRollout(t, sc.step)
		if sc.rollout.Strategy == crus.StrategyRolling {
			sc.limit = crus.LimitNodes
		}
		if sc.rollout.CanaryApproval {
			sc.approveAt = time.Duration(rapid.IntRange(1, 900).Draw(t, "approveAt")) * time.Minute
		}
	}
	if rapid.Float64Range(0, 1).Draw(t, "pause") < 0.2 {
		sc.pauseAt = time.Duration(rapid.IntRange(1, 600).Draw(t, "pauseAt")) * time.Minute
		sc.pauseFor = time.Duration(rapid.IntRange(1, 600).Draw(t, "pauseFor")) * time.Minute
	}
	return sc
}

// drawRollout draws any valid combination of rollout options.
func drawRollout(t *rapid.T, step int) crus.Rollout {
	r := crus.Rollout{
		Strategy:  rapid.SampledFrom([]crus.Strategy{crus.StrategyClassic, crus.StrategyRolling}).Draw(t, "strategy"),
		Order:     rapid.SampledFrom([]crus.Order{crus.OrderListed, crus.OrderIdleFirst, crus.OrderJobEnd}).Draw(t, "order"),
		Lookahead: rapid.IntRange(0, 6).Draw(t, "lookahead"),
	}
	if r.Strategy == crus.StrategyRolling {
		r.BootBatchSize = rapid.IntRange(0, 3).Draw(t, "bootBatch")
	}
	switch rapid.IntRange(0, 2).Draw(t, "budget") {
	case 1:
		r.MaxFailures = rapid.IntRange(1, 3).Draw(t, "maxFailures")
	case 2:
		r.MaxFailurePercent = rapid.Float64Range(1, 50).Draw(t, "maxFailurePercent")
	}
	if rapid.Bool().Draw(t, "drainTimeout") {
		r.DrainTimeout = crus.Duration(time.Duration(rapid.IntRange(5, 180).Draw(t, "drainTimeoutMin")) * time.Minute)
		r.DrainTimeoutAction = rapid.SampledFrom([]crus.DrainTimeoutAction{crus.DrainRelease, crus.DrainFail}).Draw(t, "drainTimeoutAction")
	}
	if rapid.Float64Range(0, 1).Draw(t, "canary") < 0.3 {
		r.Canary = []int{1, min(step, rapid.IntRange(1, 3).Draw(t, "canary2"))}
		r.CanaryApproval = rapid.Bool().Draw(t, "canaryApproval")
	}
	if rapid.Float64Range(0, 1).Draw(t, "window") < 0.2 {
		r.MaintenanceWindows = []crus.Window{{Start: "20:00", End: "08:00", TimeZone: "Europe/Zurich"}}
	}
	return r
}

// play runs the scenario to the end and returns the final session and the
// world.
func (sc scenario) play(t tb, sequential bool) (*crus.Session, *env) {
	e := newEnv(t, fake.ClusterOptions{
		Nodes: sc.nodes, Busy: sc.busy, MaxJob: 5 * time.Hour,
		Options: fake.Options{Seed: sc.seed, NoBootTimes: sc.noBootTimes},
	}, sc.step)
	if sequential {
		e.cfg.MaxConcurrentCalls = 1
		e.ex = e.executor()
	}
	e.spec.BootLimit = sc.limit
	e.spec.Rollout = sc.rollout
	start := e.w.Now()
	if sc.keepBusy {
		e.w.KeepBusy(sc.busy, 5*time.Hour, 15*time.Minute, start.Add(48*time.Hour))
	}
	xs := e.w.XNames()
	for i, k := range sc.nodeFaults {
		switch k {
		case 0:
			e.w.SetFaults(xs[i], fake.NodeFaults{BootFails: true})
		case 1:
			e.w.SetFaults(xs[i], fake.NodeFaults{NeverReturns: true})
		case 2:
			e.w.SetFaults(xs[i], fake.NodeFaults{RefuseDrain: true})
		case 3:
			e.w.AdminDrain(xs[i], "admin: before the session")
		case 4:
			e.w.SetDown(xs[i], true)
		}
	}
	s, err := e.ex.Create(context.Background(), e.spec)
	if err != nil {
		// Only a cluster with no node in service may be refused.
		require.ErrorIs(t, err, crus.ErrNoNodes)
		return nil, e
	}
	for _, f := range sc.callFaults {
		err := fake.ErrInjected
		if f.permanent {
			err = errPermanentInjected
		}
		e.w.Schedule(start.Add(f.at), func() { e.w.FailNext(f.op, f.n, err) })
	}
	for _, d := range sc.adminDrains {
		e.w.Schedule(start.Add(d.at), func() { e.w.AdminDrain(xs[d.node], "admin: during the session") })
	}
	if sc.cancelAt > 0 {
		e.w.Schedule(start.Add(sc.cancelAt), func() {
			_, err := e.ex.Delete(context.Background(), s.UpgradeID)
			require.NoError(t, err)
		})
	}
	flag := func(at time.Duration, f func(context.Context, string) (*crus.Session, error)) {
		e.w.Schedule(start.Add(at), func() {
			if _, err := f(context.Background(), s.UpgradeID); err != nil {
				require.ErrorIs(t, err, crus.ErrSessionDone)
			}
		})
	}
	if sc.pauseAt > 0 {
		flag(sc.pauseAt, e.ex.Pause)
		flag(sc.pauseAt+sc.pauseFor, e.ex.Resume)
	}
	if sc.approveAt > 0 {
		flag(sc.approveAt, e.ex.Approve)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := 0
	if sc.crashAtEvent > 0 {
		e.onEvent = func(crus.Event) {
			if events++; events == sc.crashAtEvent {
				cancel()
			}
		}
	}
	final, err := e.ex.Run(ctx, s.UpgradeID)
	if err != nil {
		require.ErrorIs(t, err, context.Canceled)
		e.onEvent = nil
		final, err = e.executor().Run(context.Background(), s.UpgradeID)
		require.NoError(t, err)
	}
	return final, e
}

// TestInvariantsUnderRandomFaults draws clusters, fault plans, admin
// interference, cancellations and controller restarts, and checks the
// invariants of DESIGN.md on every run: the cap is never exceeded, no node
// is rebooted while it runs a job, every node ends with exactly one
// consistent outcome, the upgrading group ends empty of the session's
// nodes, and nodes outside the session are never touched.
func TestInvariantsUnderRandomFaults(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		final, e := sc.play(t, false)
		if final == nil {
			return
		}
		require.True(t, final.Completed)
		e.check(final)
		stored, err := e.store.Get(context.Background(), final.UpgradeID)
		require.NoError(t, err)
		js, err := json.Marshal(stored)
		require.NoError(t, err)
		jf, err := json.Marshal(final)
		require.NoError(t, err)
		require.JSONEq(t, string(jf), string(js), "the store holds the record the executor ended with")
		budget := sc.rollout.MaxFailures > 0 || sc.rollout.MaxFailurePercent > 0
		switch {
		case sc.cancelAt > 0:
		case budget && final.Progress.Result == crus.ResultAborted:
			assert.NotEmpty(t, final.Progress.Abort)
			assert.Positive(t, final.Counts().Failed, "aborted only after failures")
		default:
			assert.Equal(t, crus.ResultComplete, final.Progress.Result)
			assert.Zero(t, final.Counts().Untouched, "untouched only after a cancel or an abort")
		}
		if sc.rollout.DrainTimeout == 0 || sc.rollout.DrainTimeoutAction == crus.DrainFail {
			for _, n := range final.Progress.Nodes {
				assert.Zero(t, n.Retries, "%s retried without a drain timeout that releases", n.XName)
			}
		}
		for _, n := range final.Progress.Nodes {
			ws, _ := e.w.Node(n.XName)
			assert.LessOrEqual(t, ws.Reboots, 1, "%s rebooted more than once", n.XName)
		}
	})
}

// TestDeterminism checks the same inputs give the same session, run after
// run (observation calls made one at a time, so that retries advance the
// virtual clock in the same order).
func TestDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		sc.crashAtEvent = 0
		a, _ := sc.play(t, true)
		b, _ := sc.play(t, true)
		ja, err := json.Marshal(a)
		require.NoError(t, err)
		jb, err := json.Marshal(b)
		require.NoError(t, err)
		require.JSONEq(t, string(ja), string(jb))
	})
}
