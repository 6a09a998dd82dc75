package crus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/fake"
)

// The property tests draw a cluster, a session with any rollout (the
// original algorithm included), and a fault model: backend outages of any
// length, operators acting on any node at any moment, lifecycle commands
// (Delete, Pause, Resume, Approve) from another executor on the same
// store, and controller restarts. They check the invariants of DESIGN.md
// after every write of the record (that is, after every decision) and at
// the end. A failure prints the seed to replay: go test -run NAME
// -rapid.seed=N (and -rapid.checks=N for more cases; CI runs many).

var errPermanentInjected = batch.NewPermanent("fake: injected permanent failure")

// faultOps are the backend calls faults and outages are drawn on.
var faultOps = []string{
	"hsm.Members", "hsm.AddMembers", "hsm.RemoveMembers",
	"wlm.Nodes", "wlm.Drain", "wlm.Resume", "wlm.Fail", "wlm.JobEnds", "wlm.Reservations", "wlm.Reserve",
	"bos.Reboot", "bos.Status",
}

// scenario is a randomly drawn cluster, fault plan and session.
type scenario struct {
	nodes, step  int
	seed         uint64
	busy         float64
	keepBusy     bool
	noBootTimes  bool
	rebootTime   time.Duration // 0: the fake's default (10 min)
	limit        crus.BootLimit
	nodeFaults   map[int]int // node index -> fault kind
	callFaults   []callFault
	outages      []outageAt
	operator     []operatorAct
	commands     []commandAt // from another executor on the same store
	crashAtEvent int         // 0: never
	// latency: calls that take their time (fake.World.SetLatency; ""
	// for every call).
	latency map[string]time.Duration
	// storeFaults: windows in which the executor's store fails (the
	// other executor's commands reach it).
	storeFaults []storeFaultAt

	rollout crus.Rollout
}

type callFault struct {
	op        string
	n         int
	permanent bool
	// lost: the calls (writes) are carried out and their answers lost
	// (fake.World.LoseNextAnswers), instead of failing.
	lost bool
	at   time.Duration
}

// outageAt is a backend operation failing for a while: from a minute to
// longer than boot_timeout (1h) and return_timeout (30m).
type outageAt struct {
	op        string
	at, span  time.Duration
	permanent bool // the calls fail with an error that says retrying is pointless
	// lost: the calls (writes) are carried out and their answers lost
	// (fake.World.LoseAnswers), instead of failing.
	lost bool
}

// storeFaultAt is a window in which the store fails (see storeFault).
type storeFaultAt struct {
	kind     string
	at, span time.Duration
}

// operatorAct is an administrator acting on a node behind crus's back.
type operatorAct struct {
	kind string // resume, drain, fail, job, add_upgrading, remove_upgrading, add_failed
	node int
	at   time.Duration
}

var operatorKinds = []string{"resume", "drain", "fail", "job", "add_upgrading", "remove_upgrading", "add_failed"}

// commandAt is a lifecycle command sent by another executor.
type commandAt struct {
	kind string // delete, pause, resume, approve
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
	if rapid.Float64Range(0, 1).Draw(t, "shortReboots") < 0.3 {
		// Reboots shorter than a round of retries: a boot request whose
		// answer is lost, sent again, is accepted after its nodes are
		// back.
		sc.rebootTime = time.Duration(rapid.IntRange(20, 180).Draw(t, "rebootSeconds")) * time.Second
	}
	for i := range sc.nodes {
		// 0 boot fails, 1 never returns, 2 refuses drain, 3 admin-drained
		// before, 4 down before; anything else: healthy.
		if k := rapid.IntRange(0, 14).Draw(t, fmt.Sprintf("fault%d", i)); k <= 4 {
			sc.nodeFaults[i] = k
		}
	}
	drawFaults(t, &sc, faultPlan{
		ops: faultOps, callFaults: 5, outages: [2]int{0, 3}, from: 600, span: [2]int{1, 240},
		operatorKinds: operatorKinds, operator: 4,
		commandKinds: []string{"delete", "pause", "pause", "resume", "approve"}, commands: 3, commandsFrom: 900,
		storeFaults: 3,
	})
	if rapid.Float64Range(0, 1).Draw(t, "crash") < 0.25 {
		sc.crashAtEvent = rapid.IntRange(1, 60).Draw(t, "crashAt")
	}
	// Half the runs use the original algorithm; the others any valid
	// combination of rollout options.
	if rapid.Bool().Draw(t, "options") {
		sc.rollout = drawRollout(t, sc.step)
		if sc.rollout.Strategy != crus.StrategyClassic {
			sc.limit = crus.LimitNodes
		}
	}
	return sc
}

// faultPlan bounds what drawFaults draws. Times are minutes from the
// session's start.
type faultPlan struct {
	ops           []string // the backend calls that faults and outages fall on
	callFaults    int      // at most this many bursts of failing calls
	outages       [2]int   // between this many outages
	from          int      // the latest a fault, outage or operator act begins
	span          [2]int   // how long an outage lasts
	operatorKinds []string
	operator      int // at most this many operator acts
	commandKinds  []string
	commands      int // at most this many commands
	commandsFrom  int // the latest a command comes
	storeFaults   int // at most this many windows of store faults
}

// drawFaults draws faults, outages, operators' acts and commands into sc.
func drawFaults(t *rapid.T, sc *scenario, p faultPlan) {
	minutes := func(lo, hi int, label string) time.Duration {
		return time.Duration(rapid.IntRange(lo, hi).Draw(t, label)) * time.Minute
	}
	for i := range rapid.IntRange(0, p.callFaults).Draw(t, "callFaults") {
		f := callFault{
			op:        rapid.SampledFrom(p.ops).Draw(t, fmt.Sprintf("op%d", i)),
			n:         rapid.IntRange(1, 40).Draw(t, fmt.Sprintf("n%d", i)),
			permanent: rapid.Float64Range(0, 1).Draw(t, fmt.Sprintf("perm%d", i)) < 0.3,
			at:        minutes(0, p.from, fmt.Sprintf("at%d", i)),
		}
		if !f.permanent && fake.IsWrite(f.op) {
			f.lost = rapid.Float64Range(0, 1).Draw(t, fmt.Sprintf("lost%d", i)) < 0.4
		}
		sc.callFaults = append(sc.callFaults, f)
	}
	for i := range rapid.IntRange(p.outages[0], p.outages[1]).Draw(t, "outages") {
		o := outageAt{
			op:        rapid.SampledFrom(p.ops).Draw(t, fmt.Sprintf("outageOp%d", i)),
			at:        minutes(0, p.from, fmt.Sprintf("outageAt%d", i)),
			span:      minutes(p.span[0], p.span[1], fmt.Sprintf("outageSpan%d", i)),
			permanent: rapid.Float64Range(0, 1).Draw(t, fmt.Sprintf("outagePerm%d", i)) < 0.3,
		}
		if !o.permanent && fake.IsWrite(o.op) {
			o.lost = rapid.Float64Range(0, 1).Draw(t, fmt.Sprintf("outageLost%d", i)) < 0.4
		}
		sc.outages = append(sc.outages, o)
	}
	for i := range rapid.IntRange(0, p.operator).Draw(t, "operator") {
		sc.operator = append(sc.operator, operatorAct{
			kind: rapid.SampledFrom(p.operatorKinds).Draw(t, fmt.Sprintf("opKind%d", i)),
			node: rapid.IntRange(0, sc.nodes-1).Draw(t, fmt.Sprintf("opNode%d", i)),
			at:   minutes(0, p.from, fmt.Sprintf("opAt%d", i)),
		})
	}
	for i := range rapid.IntRange(0, p.commands).Draw(t, "commands") {
		sc.commands = append(sc.commands, commandAt{
			kind: rapid.SampledFrom(p.commandKinds).Draw(t, fmt.Sprintf("cmd%d", i)),
			at:   minutes(0, p.commandsFrom, fmt.Sprintf("cmdAt%d", i)),
		})
	}
	if p.storeFaults > 0 && rapid.Float64Range(0, 1).Draw(t, "storeFaulty") < 0.25 {
		// Shorter and longer than a retry timeout: a run that cannot
		// record for that long stops, and is run again.
		for i := range rapid.IntRange(1, p.storeFaults).Draw(t, "storeFaults") {
			sc.storeFaults = append(sc.storeFaults, storeFaultAt{
				kind: rapid.SampledFrom([]string{"write", "read", "down", "lost"}).Draw(t, fmt.Sprintf("storeFault%d", i)),
				at:   minutes(1, p.from, fmt.Sprintf("storeFaultAt%d", i)),
				span: minutes(1, 180, fmt.Sprintf("storeFaultSpan%d", i)),
			})
		}
	}
}

// drawRollout draws any valid combination of rollout options.
func drawRollout(t *rapid.T, step int) crus.Rollout {
	r := crus.Rollout{
		Strategy:  rapid.SampledFrom([]crus.Strategy{crus.StrategyClassic, crus.StrategyRolling, crus.StrategyScheduled}).Draw(t, "strategy"),
		Order:     rapid.SampledFrom([]crus.Order{crus.OrderListed, crus.OrderIdleFirst, crus.OrderJobEnd}).Draw(t, "order"),
		Lookahead: rapid.IntRange(0, 6).Draw(t, "lookahead"),
	}
	if r.Strategy != crus.StrategyClassic {
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

// outcome is what play saw happen besides the final record.
type outcome struct {
	final    *crus.Session
	e        *env
	operated map[string]bool // nodes an operator acted on
	refused  bool            // a boot request was refused for good
	broken   []string        // invariants broken after some decision
}

// play runs the scenario to the end.
func (sc scenario) play(t tb, sequential bool) outcome {
	e := newEnv(t, fake.ClusterOptions{
		Nodes: sc.nodes, Busy: sc.busy, MaxJob: 5 * time.Hour,
		Options: fake.Options{Seed: sc.seed, NoBootTimes: sc.noBootTimes, RebootTime: sc.rebootTime},
	}, sc.step)
	watch := &watchedStore{inner: e.store, w: e.w}
	e.cfg.Store = watch
	if sequential {
		e.cfg.MaxConcurrentCalls = 1
	}
	otherCfg := e.cfg
	start := e.w.Now()
	var faulty *faultyStore
	if len(sc.storeFaults) > 0 {
		faulty = newFaultyStore(watch, e.w)
		e.cfg.Store = faulty
	}
	e.ex = e.executor()
	e.spec.BootLimit = sc.limit
	e.spec.Rollout = sc.rollout
	out := outcome{e: e, operated: map[string]bool{}}
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
	for op, d := range sc.latency {
		e.w.SetLatency(op, d)
	}
	s, err := e.ex.Create(context.Background(), e.spec)
	if err != nil {
		// Only a cluster with no node in service may be refused.
		require.ErrorIs(t, err, crus.ErrNoNodes)
		return out
	}
	watch.start(t, s, sc.step)
	if faulty != nil {
		// From the session's creation on (with slow backends, Create
		// takes its time).
		created := e.w.Now()
		for _, f := range sc.storeFaults {
			faulty.add(storeFault{kind: f.kind, from: created.Add(f.at), until: created.Add(f.at + f.span)})
		}
	}
	for _, f := range sc.callFaults {
		err := fake.ErrInjected
		if f.permanent {
			err = errPermanentInjected
			out.refused = out.refused || f.op == "bos.Reboot"
		}
		if f.lost {
			e.w.Schedule(start.Add(f.at), func() { e.w.LoseNextAnswers(f.op, f.n) })
			continue
		}
		e.w.Schedule(start.Add(f.at), func() { e.w.FailNext(f.op, f.n, err) })
	}
	for _, o := range sc.outages {
		if o.lost {
			e.w.LoseAnswers(o.op, start.Add(o.at), start.Add(o.at+o.span))
			continue
		}
		var err error
		if o.permanent {
			err = errPermanentInjected
			out.refused = out.refused || o.op == "bos.Reboot"
		}
		e.w.Outage(o.op, start.Add(o.at), start.Add(o.at+o.span), err)
	}
	for _, a := range sc.operator {
		x := xs[a.node]
		e.w.Schedule(start.Add(a.at), func() {
			out.operated[x] = true
			switch a.kind {
			case "resume":
				e.w.AdminResume(x)
			case "drain":
				e.w.AdminDrain(x, "admin: during the session")
			case "fail":
				e.w.AdminFail(x, "admin: failed during the session")
			case "job":
				_ = e.w.StartJob(x, 3*time.Hour, 4*time.Hour) // only if in service
			case "add_upgrading":
				e.w.AddMember(fake.UpgradingLabel, x)
			case "remove_upgrading":
				e.w.RemoveMember(fake.UpgradingLabel, x)
			case "add_failed":
				e.w.AddMember(fake.FailedLabel, x)
			}
		})
	}
	// Another controller on the same store (which it reaches while this
	// one cannot).
	other, err := crus.NewExecutor(e.w.HSM(), e.w.WLM(), e.w.BOS(), otherCfg)
	require.NoError(t, err)
	for _, c := range sc.commands {
		e.w.Schedule(start.Add(c.at), func() {
			var err error
			switch c.kind {
			case "delete":
				_, err = other.Delete(context.Background(), s.UpgradeID)
			case "pause":
				_, err = other.Pause(context.Background(), s.UpgradeID)
			case "resume":
				_, err = other.Resume(context.Background(), s.UpgradeID)
			case "approve":
				_, err = other.Approve(context.Background(), s.UpgradeID)
			}
			if err != nil {
				require.ErrorIs(t, err, crus.ErrSessionDone)
			}
		})
	}
	// Liveness: whatever the commands, the session is resumed and approved
	// in the end, or it would wait for ever (as it should).
	last := time.Duration(0)
	for _, c := range sc.commands {
		last = max(last, c.at)
	}
	e.w.Schedule(start.Add(last+time.Hour), func() {
		for _, f := range []func(context.Context, string) (*crus.Session, error){other.Resume, other.Approve} {
			if _, err := f(context.Background(), s.UpgradeID); err != nil {
				require.ErrorIs(t, err, crus.ErrSessionDone)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Events come from the executor's goroutines (an observation part
	// failing) and from the other executor's commands.
	var events atomic.Int64
	if sc.crashAtEvent > 0 {
		e.onEvent = func(crus.Event) {
			if events.Add(1) == int64(sc.crashAtEvent) {
				cancel()
			}
		}
	}
	// A watchdog: a loop of calls that never lets virtual time move on
	// (a spin) fails the case instead of hanging the test.
	spun := make(chan struct{})
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if e.w.CallsTo("wlm")+e.w.CallsTo("hsm")+e.w.CallsTo("bos") > 1_000_000 {
				close(spun)
				cancel()
				return
			}
		}
	}()
	// The runs, as a Driver makes them: one that stops on the store is
	// run again 30 seconds later; after the crash, a new executor runs
	// the session.
	ex, runCtx := e.ex, ctx
	var final *crus.Session
	for runs := 0; ; runs++ {
		require.Less(t, runs, 10_000, "the session never completes")
		final, err = ex.Run(runCtx, s.UpgradeID)
		select {
		case <-spun:
			t.Fatalf("a million backend calls at virtual time %s: Run spins", e.w.Now().Sub(start))
		default:
		}
		if err == nil {
			break
		}
		if runCtx.Err() != nil {
			// The crash (the run may have been stopping on the store).
			e.mu.Lock()
			e.onEvent = nil
			e.mu.Unlock()
			ex, runCtx = e.executor(), context.Background()
			continue
		}
		require.True(t, errors.Is(err, errStoreDown) || errors.Is(err, errStoreAnswerLost), "a run stops only on the store: %v", err)
		<-e.w.After(30 * time.Second)
	}
	out.final = final
	out.broken = watch.broken()
	return out
}

// checkEnd asserts the invariants on the finished session, as env.check
// does, leaving out what an operator may legitimately have changed on the
// nodes they acted on.
func (o outcome) checkEnd(t tb, sc scenario) {
	t.Helper()
	e, s := o.e, o.final
	assert.Empty(t, o.broken, "invariants broken after some decision")
	if len(o.operated) == 0 {
		e.check(s)
	} else {
		e.checkCommon(s)
		for _, n := range s.Progress.Nodes {
			if !o.operated[n.XName] {
				e.checkNode(s, n)
			}
		}
	}
	assert.Empty(t, e.w.Reservations("crus-"), "the session's reservations went with it")
	index := map[string]int{}
	for i, x := range e.w.XNames() {
		index[x] = i
	}
	for _, n := range s.Progress.Nodes {
		ws, _ := e.w.Node(n.XName)
		assert.LessOrEqual(t, ws.Reboots, 1, "%s rebooted more than once", n.XName)
		if _, faulty := sc.nodeFaults[index[n.XName]]; n.Outcome == crus.OutcomeFailed && ws.Reboots == 1 && !faulty && !o.operated[n.XName] {
			// A healthy node rebooted is back in service with its boot
			// time: it is failed only when the boot orchestrator says
			// its boot session failed as a whole, or a backend refuses
			// for good what it needs (a resume).
			assert.Regexp(t, `^boot session \S+ failed: |injected permanent failure`, n.Reason, "%s, healthy and rebooted, failed", n.XName)
		}
		if n.Outcome == crus.OutcomeFailed && ws.Reboots == 0 {
			// A node never rebooted is never failed for a backend's
			// outage: only for its own drain timeout, for leaving the
			// workload manager, or when the boot orchestrator says its
			// boot session failed as a whole (the original contract).
			assert.True(t, strings.Contains(n.Reason, "drain_timeout") || strings.Contains(n.Reason, "disappeared") ||
				regexp.MustCompile(`^boot session \S+ failed: `).MatchString(n.Reason),
				"%s failed without a reboot: %s", n.XName, n.Reason)
		}
	}
	budget := sc.rollout.MaxFailures > 0 || sc.rollout.MaxFailurePercent > 0
	cancelled := slices.ContainsFunc(sc.commands, func(c commandAt) bool { return c.kind == "delete" })
	switch r := s.Progress.Result; {
	case r == crus.ResultCancelled:
		assert.True(t, cancelled, "cancelled without a Delete")
	case r == crus.ResultAborted:
		assert.True(t, budget || o.refused, "aborted without a failure budget or a refused boot request: %s", s.Progress.Abort)
		assert.NotEmpty(t, s.Progress.Abort)
	default:
		assert.Equal(t, crus.ResultComplete, r)
		assert.Zero(t, s.Counts().Untouched, "untouched only after a cancel or an abort")
	}
	// Nodes are put back only by a drain timeout that releases, or a boot
	// request the orchestrator did not accept within boot_timeout (it
	// failed; a crash came between recording it and sending it; or it
	// was not sent, its nodes' read just before failing, and not sent
	// again in time: that read failing for as long, or the boot
	// sessions' status unreadable meanwhile, which makes the request's
	// fate unknown).
	release := sc.rollout.DrainTimeout > 0 && sc.rollout.DrainTimeoutAction != crus.DrainFail
	troubled := func(op string) bool {
		return slices.ContainsFunc(sc.callFaults, func(f callFault) bool { return f.op == op }) ||
			slices.ContainsFunc(sc.outages, func(o outageAt) bool { return o.op == op })
	}
	rebootTrouble := sc.crashAtEvent > 0 || troubled("bos.Reboot") || troubled("wlm.Nodes")
	if !release && !rebootTrouble {
		for _, n := range s.Progress.Nodes {
			assert.Zero(t, n.Retries, "%s put back without a reason to", n.XName)
		}
	}
}

// TestInvariantsUnderRandomFaults draws clusters, fault plans, outages,
// operators, lifecycle commands from another executor and controller
// restarts, for every strategy, and checks the invariants of DESIGN.md
// after every decision and at the end: the cap is never exceeded, no node
// is rebooted while it runs a job, a node never rebooted is never failed,
// every node ends with exactly one outcome (never changed once given), the
// upgrading group ends empty of the session's nodes, nodes outside the
// session are never touched, and pause, cancel and abort hold new work.
func TestInvariantsUnderRandomFaults(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		o := sc.play(t, false)
		if o.final == nil {
			return
		}
		require.True(t, o.final.Completed)
		o.checkEnd(t, sc)
		stored, err := o.e.store.Get(context.Background(), o.final.UpgradeID)
		require.NoError(t, err)
		js, err := json.Marshal(stored)
		require.NoError(t, err)
		jf, err := json.Marshal(o.final)
		require.NoError(t, err)
		require.JSONEq(t, string(jf), string(js), "the store holds the record the executor ended with")
	})
}

// TestScheduledInvariantsUnderBookingFaults is TestInvariantsUnderRandomFaults
// for the scheduled strategy where its bookings matter: a busy cluster,
// its jobs' ends known, and the faults and outages drawn mostly on the
// calls that read and change reservations and job ends, with pauses,
// deletes and restarts. The general test draws such cases too seldom to
// catch a broken cap: it passed 3,000 cases with the executor no longer
// planning from its memory of the reservations while they cannot be read,
// a defect this one finds in a few hundred.
func TestScheduledInvariantsUnderBookingFaults(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawBookingScenario(t)
		o := sc.play(t, false)
		if o.final == nil {
			return
		}
		require.True(t, o.final.Completed)
		o.checkEnd(t, sc)
	})
}

// drawBookingScenario draws a scenario for the scheduled strategy's
// bookings. It leaves out the two cases the README's outage table states,
// where a reservation crus can neither move on nor delete begins and
// holds its idle nodes for at most its length: the workload manager
// refusing both to change and to delete reservations, and a restart while
// it refuses both to list and to delete them. So in one scenario it
// refuses either changes or deletions, and if deletions, the executor
// restarts only when reservations can be listed. In some, the backends
// are slow (see TestSlowBackendsKeepTheCap): the operators' actions and
// the commands then run as functions of the World's Schedule, whose calls
// take no time of their own (fake.World.SetLatency).
func drawBookingScenario(t *rapid.T) scenario {
	sc := scenario{
		nodes:      rapid.IntRange(4, 24).Draw(t, "nodes"),
		step:       rapid.IntRange(1, 5).Draw(t, "step"),
		seed:       rapid.Uint64().Draw(t, "seed"),
		busy:       rapid.Float64Range(0.5, 1).Draw(t, "busy"),
		keepBusy:   rapid.Bool().Draw(t, "keepBusy"),
		limit:      crus.LimitNodes,
		nodeFaults: map[int]int{},
	}
	for i := range sc.nodes {
		if k := rapid.IntRange(0, 29).Draw(t, fmt.Sprintf("fault%d", i)); k <= 4 {
			sc.nodeFaults[i] = k
		}
	}
	refused := rapid.SampledFrom([]string{"wlm.Reserve", "wlm.Unreserve"}).Draw(t, "refused")
	if rapid.Float64Range(0, 1).Draw(t, "crash") < 0.2 {
		sc.crashAtEvent = rapid.IntRange(1, 60).Draw(t, "crashAt")
	}
	ops := []string{"wlm.Reservations", "wlm.Reservations", refused, refused, "wlm.JobEnds", "wlm.Nodes", "bos.Status", "wlm.Steer"}
	if refused == "wlm.Unreserve" && sc.crashAtEvent > 0 {
		ops = ops[2:]
	}
	// The store fails only while the workload manager takes deletions:
	// a run that stops on the store deletes its reservations (nothing
	// else would move them on), and one that cannot is the README's
	// third case.
	storeFaults := 2
	if refused == "wlm.Unreserve" {
		storeFaults = 0
	}
	drawFaults(t, &sc, faultPlan{
		ops: ops, callFaults: 4, outages: [2]int{1, 3}, from: 300, span: [2]int{5, 240},
		operatorKinds: []string{"job", "job", "resume", "drain"}, operator: 3,
		commandKinds: []string{"pause", "pause", "resume", "delete"}, commands: 2, commandsFrom: 400,
		storeFaults: storeFaults,
	})
	if refused == "wlm.Reserve" && rapid.Float64Range(0, 1).Draw(t, "slow") < 0.5 {
		// Slow backends: every call takes up to 3 minutes, and one of
		// the reads of every observation up to 10. Left out, as the
		// README states: a call made only now and then, first slow after
		// the bookings are made and slower than half their lead; and
		// deletions refused, where reservations due at once can only be
		// moved on one call after the other.
		sc.latency = map[string]time.Duration{"": time.Duration(rapid.IntRange(5, 180).Draw(t, "latencySeconds")) * time.Second}
		if rapid.Bool().Draw(t, "slowRead") {
			op := rapid.SampledFrom([]string{"wlm.Nodes", "wlm.JobEnds", "wlm.Reservations"}).Draw(t, "slowReadOp")
			sc.latency[op] = time.Duration(rapid.IntRange(1, 10).Draw(t, "slowReadMinutes")) * time.Minute
		}
	}
	sc.rollout = drawRollout(t, sc.step)
	sc.rollout.Strategy = crus.StrategyScheduled
	return sc
}

// TestDeterminism checks the same inputs give the same session, run after
// run (observation calls made one at a time, so that retries advance the
// virtual clock in the same order).
func TestDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		sc.crashAtEvent = 0
		a, b := sc.play(t, true).final, sc.play(t, true).final
		ja, err := json.Marshal(a)
		require.NoError(t, err)
		jb, err := json.Marshal(b)
		require.NoError(t, err)
		require.JSONEq(t, string(ja), string(jb))
	})
}

// watchedStore is a MemoryStore that checks the invariants that must hold
// after every decision, at each write of the session record. It forwards
// only the public interfaces, so the executor writes through Update.
type watchedStore struct {
	inner *crus.MemoryStore
	w     *fake.World

	mu   sync.Mutex
	id   string
	step int
	errs []string
}

var (
	_ crus.Store          = (*watchedStore)(nil)
	_ crus.Reserver       = (*watchedStore)(nil)
	_ crus.RevisionReader = (*watchedStore)(nil)
)

func (ws *watchedStore) start(_ tb, s *crus.Session, step int) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.id, ws.step = s.UpgradeID, step
}

func (ws *watchedStore) broken() []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.errs)
}

func (ws *watchedStore) Create(ctx context.Context, s *crus.Session) error {
	return ws.inner.Create(ctx, s)
}
func (ws *watchedStore) Get(ctx context.Context, id string) (*crus.Session, error) {
	return ws.inner.Get(ctx, id)
}
func (ws *watchedStore) List(ctx context.Context) ([]*crus.Session, error) { return ws.inner.List(ctx) }
func (ws *watchedStore) Delete(ctx context.Context, id string) error       { return ws.inner.Delete(ctx, id) }
func (ws *watchedStore) Revision(ctx context.Context, id string) (int64, error) {
	return ws.inner.Revision(ctx, id)
}
func (ws *watchedStore) Reservations(ctx context.Context) ([]crus.Reservation, error) {
	return ws.inner.Reservations(ctx)
}
func (ws *watchedStore) CreateReserved(ctx context.Context, s *crus.Session) error {
	return ws.inner.CreateReserved(ctx, s)
}

// Update checks the new record against the one it replaces.
func (ws *watchedStore) Update(ctx context.Context, s *crus.Session) error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	old, err := ws.inner.Get(ctx, s.UpgradeID)
	if err != nil {
		return err
	}
	if err := ws.inner.Update(ctx, s); err != nil {
		return err
	}
	if s.UpgradeID == ws.id {
		ws.check(old, s)
	}
	return nil
}

// check is called with the lock held.
func (ws *watchedStore) check(old, s *crus.Session) {
	bad := func(format string, args ...any) {
		ws.errs = append(ws.errs, fmt.Sprintf("rev %d: ", s.Revision)+fmt.Sprintf(format, args...))
	}
	if c := s.Counts(); c.InFlight > ws.step {
		bad("%d nodes in flight, more than the step size %d", c.InFlight, ws.step)
	}
	if out := ws.w.MaxOut(); out > ws.step+stuckByWLM(s) {
		bad("%d nodes were out of service at once, step size %d", out, ws.step)
	}
	if v := ws.w.Violations(); len(v) > 0 {
		bad("rebooted while running jobs: %v", v)
	}
	for x := range ws.w.Touched() {
		if s.Node(x) == nil {
			bad("node %s outside the session was touched", x)
		}
	}
	// Every reservation of the session is listed in its record (a run
	// that cannot read them deletes the listed ones).
	prefix := "crus-" + s.UpgradeID + "-"
	for _, r := range ws.w.Reservations(prefix) {
		k, err := strconv.ParseInt(strings.TrimPrefix(r.Name, prefix), 10, 64)
		if err != nil {
			continue // another session's
		}
		if _, listed := slices.BinarySearch(s.Progress.Booked, k); !listed && k >= s.Progress.BookedUpTo {
			bad("reservation %s exists, not listed in the record (booked %v)", r.Name, s.Progress.Booked)
		}
	}
	holding := old.Progress.Paused && s.Progress.Paused || old.Progress.Cancel || old.Progress.Abort != ""
	for i := range s.Progress.Nodes {
		before, now := &old.Progress.Nodes[i], &s.Progress.Nodes[i]
		if before.Phase == crus.PhaseDone && (now.Phase != crus.PhaseDone || now.Outcome != before.Outcome) {
			bad("node %s had outcome %s, now %s/%s", now.XName, before.Outcome, now.Phase, now.Outcome)
		}
		if holding && before.Phase == crus.PhasePending && now.Phase.InFlight() {
			bad("node %s taken while the session was paused, cancelled or aborted", now.XName)
		}
	}
}
