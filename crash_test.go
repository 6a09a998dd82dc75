package crus_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/etcdstore"
	"github.com/crus-go/crus/store/filestore"
	"github.com/crus-go/crus/wlm"
)

// The crash-injection suite kills the executor after the n-th call it
// makes to a backend or to the store, for many n and many clusters, then
// lets a new executor take the session up from the same store and
// backends, and compares the outcome with a run that never crashed.
//
// A crash is one of:
//   - abandon, before: the call is never made and never returns (the
//     process died as it was about to make it);
//   - abandon, after: the call is made, but its result never reaches the
//     executor (the process died before reading the reply);
//   - cancel, before or after: the executor's context is cancelled at
//     that call (a controlled shutdown), the call not made or made.
//
// Every call counts: observations (wlm.Nodes, bos.Status, hsm.Members),
// actions (drain, resume, fail, group edits, reboot) and store reads and
// writes, so the points fall on both sides of every action and of every
// record of an intent or of a result.
var (
	crashSeeds      = flag.Int("crash.seeds", 12, "crash suite: clusters drawn per store")
	crashPointsFlag = flag.Int("crash.points", 6, "crash suite: crash points drawn per cluster, besides one per kind of call and side (0: every call, both sides)")
)

var errAbandoned = errors.New("crash test: the executor died during this call")

// crasher intercepts every call of one executor incarnation.
type crasher struct {
	at     int  // crash at this call (from 1); 0: never
	after  bool // make the call first
	cancel context.CancelFunc

	release chan struct{} // closed at the end of the test: abandoned calls return
	crashed chan struct{} // closed when the crash happens

	mu          sync.Mutex
	n           int
	ops         []string
	dead        bool
	first, last time.Time   // wall time of the first and last call made
	began       []time.Time // wall time each call began
}

// firstAfter returns when the first call that began after t began (zero
// if none did).
func (c *crasher) firstAfter(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.began {
		if b.After(t) {
			return b
		}
	}
	return time.Time{}
}

// kill makes the process dead from now on: no more calls are made.
func (c *crasher) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dead {
		c.dead = true
		close(c.crashed)
	}
}

// span returns the wall times of the first and last calls made.
func (c *crasher) span() (first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.last
}

func newCrasher(at int, after bool, cancel context.CancelFunc) *crasher {
	return &crasher{at: at, after: after, cancel: cancel, release: make(chan struct{}), crashed: make(chan struct{})}
}

func (c *crasher) do(op string, f func() error) error {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		if c.cancel != nil {
			return context.Canceled
		}
		<-c.release // a dead process makes no call
		return errAbandoned
	}
	c.n++
	c.ops = append(c.ops, op)
	if c.first.IsZero() {
		c.first = time.Now()
	}
	c.began = append(c.began, time.Now())
	crash := c.n == c.at
	if crash {
		c.dead = true // no other call gets through from now on
	}
	c.mu.Unlock()
	if !crash {
		err := f()
		c.mu.Lock()
		c.last = time.Now() // when the call returned
		c.mu.Unlock()
		return err
	}
	var err error = context.Canceled
	if c.after {
		err = f()
	}
	close(c.crashed) // once the call is over: the next process starts after
	if c.cancel != nil {
		c.cancel()
		return err
	}
	<-c.release
	return errAbandoned
}

func (c *crasher) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ops)
}

// The backends and the store, seen through a crasher.
type (
	crashHSM struct {
		c *crasher
		h *fake.HSM
	}
	crashWLM struct {
		c *crasher
		m *fake.WLM
	}
	crashBOS struct {
		c *crasher
		b *fake.BOS
	}
	crashStore struct {
		c  *crasher
		st durableStore
	}
)

// durableStore is what the suite needs of a store.
type durableStore interface {
	crus.Store
	crus.RevisionReader
	crus.Reserver
	crus.NodeUpdater
}

func (h crashHSM) Members(ctx context.Context, label string) (m []string, err error) {
	err = h.c.do("hsm.Members", func() (e error) { m, e = h.h.Members(ctx, label); return })
	return
}
func (h crashHSM) AddMembers(ctx context.Context, label string, xs []string) error {
	return h.c.do("hsm.AddMembers:"+label, func() error { return h.h.AddMembers(ctx, label, xs) })
}
func (h crashHSM) RemoveMembers(ctx context.Context, label string, xs []string) error {
	return h.c.do("hsm.RemoveMembers:"+label, func() error { return h.h.RemoveMembers(ctx, label, xs) })
}
func (h crashHSM) NIDs(ctx context.Context, xs []string) (m map[string]int, err error) {
	err = h.c.do("hsm.NIDs", func() (e error) { m, e = h.h.NIDs(ctx, xs); return })
	return
}
func (m crashWLM) Nodes(ctx context.Context, names []string) (ns []wlm.Node, err error) {
	err = m.c.do("wlm.Nodes", func() (e error) { ns, e = m.m.Nodes(ctx, names); return })
	return
}
func (m crashWLM) Drain(ctx context.Context, names []string, reason string) error {
	return m.c.do("wlm.Drain", func() error { return m.m.Drain(ctx, names, reason) })
}
func (m crashWLM) Resume(ctx context.Context, names []string) error {
	return m.c.do("wlm.Resume", func() error { return m.m.Resume(ctx, names) })
}
func (m crashWLM) Fail(ctx context.Context, names []string, reason string) error {
	return m.c.do("wlm.Fail", func() error { return m.m.Fail(ctx, names, reason) })
}
func (m crashWLM) ReportsBootTime() bool { return m.m.ReportsBootTime() }
func (b crashBOS) CheckTemplate(ctx context.Context, name string) error {
	return b.c.do("bos.CheckTemplate", func() error { return b.b.CheckTemplate(ctx, name) })
}
func (b crashBOS) Reboot(ctx context.Context, req bos.Request) error {
	return b.c.do("bos.Reboot", func() error { return b.b.Reboot(ctx, req) })
}
func (b crashBOS) Status(ctx context.Context, name string, nodes []string) (st bos.Status, err error) {
	err = b.c.do("bos.Status", func() (e error) { st, e = b.b.Status(ctx, name, nodes); return })
	return
}
func (s crashStore) Create(ctx context.Context, x *crus.Session) error {
	return s.c.do("store.Create", func() error { return s.st.Create(ctx, x) })
}
func (s crashStore) Get(ctx context.Context, id string) (x *crus.Session, err error) {
	err = s.c.do("store.Get", func() (e error) { x, e = s.st.Get(ctx, id); return })
	return
}
func (s crashStore) Update(ctx context.Context, x *crus.Session) error {
	return s.c.do("store.Update", func() error { return s.st.Update(ctx, x) })
}
func (s crashStore) UpdateNodes(ctx context.Context, x *crus.Session, changed []int) error {
	return s.c.do("store.UpdateNodes", func() error { return s.st.UpdateNodes(ctx, x, changed) })
}
func (s crashStore) List(ctx context.Context) (l []*crus.Session, err error) {
	err = s.c.do("store.List", func() (e error) { l, e = s.st.List(ctx); return })
	return
}
func (s crashStore) Delete(ctx context.Context, id string) error {
	return s.c.do("store.Delete", func() error { return s.st.Delete(ctx, id) })
}
func (s crashStore) Revision(ctx context.Context, id string) (r int64, err error) {
	err = s.c.do("store.Revision", func() (e error) { r, e = s.st.Revision(ctx, id); return })
	return
}
func (s crashStore) Reservations(ctx context.Context) (r []crus.Reservation, err error) {
	err = s.c.do("store.Reservations", func() (e error) { r, e = s.st.Reservations(ctx); return })
	return
}
func (s crashStore) CreateReserved(ctx context.Context, x *crus.Session) error {
	return s.c.do("store.CreateReserved", func() error { return s.st.CreateReserved(ctx, x) })
}

// storeKind opens the store of one test: open is called once per
// executor incarnation (a restarted process opens its store again) and
// must release what the previous incarnation held.
type storeKind struct {
	name string
	open func(t *testing.T) func() durableStore
}

func fileStoreKind() storeKind {
	return storeKind{name: "file", open: func(t *testing.T) func() durableStore {
		dir := t.TempDir()
		var cur *filestore.Store
		t.Cleanup(func() {
			if cur != nil {
				cur.Close()
			}
		})
		return func() durableStore {
			if cur != nil {
				require.NoError(t, cur.Close()) // the dead process's lock goes with it
			}
			st, err := filestore.Open(dir, filestore.Options{})
			require.NoError(t, err)
			cur = st
			return st
		}
	}}
}

func etcdStoreKind() storeKind {
	return storeKind{name: "etcd", open: func(t *testing.T) func() durableStore {
		c, prefix := etcdtest.Shared(t)
		return func() durableStore {
			st, err := etcdstore.New(c, etcdstore.Config{Prefix: prefix})
			require.NoError(t, err)
			return st
		}
	}}
}

// crashScenario is a cluster and a session whose outcomes do not depend
// on timing: faults are per node and set before the session starts.
type crashScenario struct {
	seed        uint64
	nodes, step int
	busy        float64
	limit       crus.BootLimit
	noBootTimes bool
	faults      map[int]int // node -> 0 boot fails, 1 never returns, 2 refuses drain, 3 admin-drained, 4 down
	cancelAt    time.Duration
	clearFailed int // the failed group holds this node of the session, to clear at the start (-1: none)
}

func drawCrashScenario(seed uint64) crashScenario {
	r := rand.New(rand.NewPCG(seed, 0xc0ffee))
	sc := crashScenario{
		seed: seed, nodes: 3 + r.IntN(8), step: 1 + r.IntN(4), busy: r.Float64() * 0.8,
		limit: crus.LimitNodes, noBootTimes: r.IntN(6) == 0, faults: map[int]int{}, clearFailed: -1,
	}
	if r.IntN(3) == 0 {
		sc.limit = crus.LimitLabel
	}
	for i := range sc.nodes {
		if k := r.IntN(12); k <= 4 {
			sc.faults[i] = k
		}
	}
	if r.IntN(5) == 0 { // a cancel, at a time: outcomes then depend on timing
		sc.cancelAt = time.Duration(10+r.IntN(120)) * time.Minute
	}
	// A node left in the failed group by an earlier session, cleared at
	// the start (clear_failed). Clearing touches it, so it must be one
	// the session takes, not one out of service (never to be touched).
	if r.IntN(4) == 0 {
		for i := sc.nodes - 1; i >= 0; i-- {
			if k, ok := sc.faults[i]; !ok || k < 3 {
				sc.clearFailed = i
				break
			}
		}
	}
	return sc
}

func (sc crashScenario) String() string {
	s := fmt.Sprintf("seed %d: %d nodes, steps of %d, busy %.2f, limit %s, faults %v", sc.seed, sc.nodes, sc.step, sc.busy, sc.limit, sc.faults)
	if sc.noBootTimes {
		s += ", no boot times"
	}
	if sc.cancelAt > 0 {
		s += fmt.Sprintf(", cancelled at %s", sc.cancelAt)
	}
	if sc.clearFailed >= 0 {
		s += fmt.Sprintf(", node %d in the failed group to clear", sc.clearFailed)
	}
	return s
}

// crashPoint is where an incarnation dies.
type crashPoint struct {
	at     int
	after  bool
	cancel bool
	op     string // the call, from the crash-free run
}

func (p crashPoint) String() string {
	side, mode := "before", "abandon"
	if p.after {
		side = "after"
	}
	if p.cancel {
		mode = "cancel"
	}
	return fmt.Sprintf("%s-%s-%d-%s", mode, side, p.at, p.op)
}

// crashRun is the result of one play of a scenario.
type crashRun struct {
	final *crus.Session
	ops   []string // calls of the first incarnation
	e     *env
	mid   *crus.Session // the record as the crashed incarnation left it
}

// play runs the scenario with the first executor crashing at p (p.at 0:
// never), then a second one taking the session up.
func (sc crashScenario) play(t *testing.T, kind storeKind, p crashPoint) crashRun {
	t.Helper()
	e := newEnv(t, fake.ClusterOptions{
		Nodes: sc.nodes, Busy: sc.busy, MaxJob: time.Hour,
		Options: fake.Options{Seed: sc.seed, NoBootTimes: sc.noBootTimes},
	}, sc.step)
	e.spec.BootLimit = sc.limit
	if sc.clearFailed >= 0 {
		e.w.AddGroup(fake.FailedLabel, fake.XName(sc.clearFailed)) // left over from an earlier session
		e.spec.ClearFailed = true
	}
	e.cfg.MaxConcurrentCalls = 1 // calls in a fixed order, so that call n is the same call in every play
	e.cfg.PollInterval = 5 * time.Minute
	e.cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	xs := e.w.XNames()
	for i, k := range sc.faults {
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
	open := kind.open(t)
	var mu sync.Mutex
	current := open()
	executor := func(st crus.Store, c *crasher) *crus.Executor {
		cfg := e.cfg
		cfg.Store = st
		ex, err := crus.NewExecutor(crashHSM{c, e.w.HSM()}, crashWLM{c, e.w.WLM()}, crashBOS{c, e.w.BOS()}, cfg)
		require.NoError(t, err)
		return ex
	}
	s, err := executor(current, newCrasher(0, false, nil)).Create(context.Background(), e.spec)
	if errors.Is(err, crus.ErrNoNodes) {
		return crashRun{e: e}
	}
	require.NoError(t, err)
	if sc.cancelAt > 0 {
		// An administrator's Delete, through the process running at the
		// time (the file store admits one process).
		e.w.Schedule(e.w.Now().Add(sc.cancelAt), func() {
			mu.Lock()
			st := current
			mu.Unlock()
			ex, err := crus.NewExecutor(e.w.HSM(), e.w.WLM(), e.w.BOS(), crus.Config{Store: st, Clock: e.w})
			require.NoError(t, err)
			_, err = ex.Delete(context.Background(), s.UpgradeID)
			require.NoError(t, err)
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cancelMode context.CancelFunc
	if p.cancel {
		cancelMode = cancel
	}
	c1 := newCrasher(p.at, p.after, cancelMode)
	type result struct {
		s   *crus.Session
		err error
	}
	var res result
	done := make(chan struct{})
	go func() {
		defer close(done)
		res.s, res.err = executor(crashStore{c1, current}, c1).Run(ctx, s.UpgradeID)
	}()
	t.Cleanup(func() {
		// The dead executor is released: every call it still makes fails
		// without being made, and its context is cancelled.
		cancel()
		close(c1.release)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the crashed executor did not return once released")
		}
	})
	select {
	case <-done:
		if p.at == 0 || !p.cancel {
			require.NoError(t, res.err)
			return crashRun{final: res.s, ops: c1.calls(), e: e}
		}
	case <-c1.crashed:
		if p.cancel {
			<-done
		}
	}
	ops := c1.calls()
	if res.s != nil && res.s.Completed && res.err == nil {
		return crashRun{final: res.s, ops: ops, e: e}
	}

	// A new process: it opens the store again and takes the session up.
	mu.Lock()
	current = open()
	st := current
	mu.Unlock()
	mid, err := st.Get(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	// A session that cannot finish (a bug) must fail the test, not hang it.
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	final, err := executor(st, newCrasher(0, false, nil)).Run(rctx, s.UpgradeID)
	require.NoError(t, err, "the new executor did not finish the session")
	require.True(t, final.Completed)
	return crashRun{final: final, ops: ops, e: e, mid: mid}
}

// crashPoints chooses where to crash a scenario whose crash-free run made
// the calls ops: each kind of call on both sides (at a random occurrence),
// and n more at random; every call on both sides if n is 0.
func crashPoints(r *rand.Rand, ops []string, n int) []crashPoint {
	var pts []crashPoint
	if n == 0 {
		for i, op := range ops {
			for _, after := range []bool{false, true} {
				pts = append(pts, crashPoint{at: i + 1, after: after, op: op, cancel: r.IntN(4) == 0})
			}
		}
		return pts
	}
	byKind := map[string][]int{}
	for i, op := range ops {
		byKind[op] = append(byKind[op], i+1)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		for _, after := range []bool{false, true} {
			at := byKind[k][r.IntN(len(byKind[k]))]
			pts = append(pts, crashPoint{at: at, after: after, op: k, cancel: r.IntN(4) == 0})
		}
	}
	for range n {
		at := 1 + r.IntN(len(ops))
		pts = append(pts, crashPoint{at: at, after: r.IntN(2) == 0, op: ops[at-1], cancel: r.IntN(4) == 0})
	}
	return pts
}

// coverage counts the crash points tried, by kind of call and side.
type coverage struct {
	mu     sync.Mutex
	seeds  int
	points int
	kinds  map[string]int
}

func (c *coverage) add(p crashPoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.points++
	side := "before"
	if p.after {
		side = "after"
	}
	op, _, _ := strings.Cut(p.op, ":")
	if strings.HasPrefix(p.op, "hsm.") && strings.Contains(p.op, ":") {
		op = p.op // group edits of each group are kinds of their own
	}
	c.kinds[op+" "+side]++
}

func TestCrashInjectionFileStore(t *testing.T) { testCrashInjection(t, fileStoreKind()) }
func TestCrashInjectionEtcdStore(t *testing.T) { testCrashInjection(t, etcdStoreKind()) }

func testCrashInjection(t *testing.T, kind storeKind) {
	cov := &coverage{kinds: map[string]int{}}
	t.Run("seeds", func(t *testing.T) {
		for seed := range uint64(*crashSeeds) {
			sc := drawCrashScenario(seed + 1)
			t.Run(fmt.Sprint(seed+1), func(t *testing.T) {
				t.Parallel()
				base := sc.play(t, kind, crashPoint{})
				if base.final == nil {
					t.Skipf("%s: no node in service, nothing to run", sc)
				}
				base.e.check(base.final)
				r := rand.New(rand.NewPCG(sc.seed, 7))
				pts := crashPoints(r, base.ops, *crashPointsFlag)
				cov.mu.Lock()
				cov.seeds++
				cov.mu.Unlock()
				for _, p := range pts {
					ok := t.Run(p.String(), func(t *testing.T) {
						got := sc.play(t, kind, p)
						cov.add(p)
						checkCrashRun(t, sc, p, base, got)
					})
					if !ok {
						t.Logf("failed: %s at %s", sc, p)
					}
				}
			})
		}
	})
	var kinds []string
	for k, n := range cov.kinds {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("crash injection with the %s store: %d seeds, %d crash points; by call and side: %s", kind.name, cov.seeds, cov.points, strings.Join(kinds, ", "))
	// Every action and every record has been crashed on, on both sides.
	for _, k := range []string{"store.Update", "store.UpdateNodes", "wlm.Drain", "wlm.Resume", "wlm.Fail", "bos.Reboot",
		"hsm.AddMembers:" + fake.UpgradingLabel, "hsm.RemoveMembers:" + fake.UpgradingLabel,
		"hsm.AddMembers:" + fake.FailedLabel, "hsm.RemoveMembers:" + fake.FailedLabel} {
		for _, side := range []string{"before", "after"} {
			if cov.kinds[k+" "+side] == 0 && !t.Failed() && cov.seeds >= 8 {
				t.Errorf("no crash %s %s", side, k)
			}
		}
	}
}

// checkCrashRun compares a run that crashed with the crash-free one.
func checkCrashRun(t *testing.T, sc crashScenario, p crashPoint, base, got crashRun) {
	t.Helper()
	require.NotNil(t, got.final)
	// The crashed incarnation made the same calls as the crash-free run up
	// to the crash: the crash hit the call it was meant to.
	if n := min(len(got.ops), p.at); n > 0 {
		require.Equal(t, base.ops[:n], got.ops[:n], "the run diverged before the crash")
	}
	got.e.check(got.final) // the invariants of DESIGN.md
	assert.Empty(t, got.e.w.Members(fake.UpgradingLabel), "the upgrading group is empty")
	prefix := "crus " + got.final.UpgradeID
	for _, n := range got.final.Progress.Nodes {
		ws, _ := got.e.w.Node(n.XName)
		if n.Outcome != crus.OutcomeFailed {
			assert.False(t, ws.Drain && strings.HasPrefix(ws.Reason, prefix), "node %s left drained by crus (%s)", n.XName, n.Outcome)
		}
		assert.LessOrEqual(t, ws.Reboots, 1, "node %s rebooted %d times for one attempt", n.XName, ws.Reboots)
		if n.Outcome == crus.OutcomeUpgraded {
			assert.Equal(t, 1, ws.Reboots, "upgraded node %s", n.XName)
		}
	}
	if sc.cancelAt == 0 {
		for i, n := range got.final.Progress.Nodes {
			want := base.final.Progress.Nodes[i]
			assert.Equal(t, want.Outcome, n.Outcome, "node %s: outcome differs from the crash-free run (%s / %s)", n.XName, want.Reason, n.Reason)
		}
		assert.Equal(t, base.final.Progress.Result, got.final.Progress.Result)
	}
	if got.mid != nil && got.mid.State != crus.StateCreated && !got.mid.Completed {
		assert.Contains(t, got.final.Messages, "Session taken up by an executor: observing the world again", "the takeover is recorded")
	}
}

// TestMain stops the etcd server the tests started, if any.
func TestMain(m *testing.M) { etcdtest.Main(m) }

// TestCrashDuringCreate: the process dies after storing a new session but
// before telling its caller. The caller, trying again, is refused with
// the id of the session it did create (which holds the nodes), and can
// run that one: nothing is lost and nothing is done twice.
func TestCrashDuringCreate(t *testing.T) {
	for _, kind := range []storeKind{fileStoreKind(), etcdStoreKind()} {
		t.Run(kind.name, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 4, Busy: 0.5}, 2)
			open := kind.open(t)
			st := open()
			probe := newCrasher(0, false, nil)
			cfg := e.cfg
			cfg.Store = crashStore{probe, st}
			ex, err := crus.NewExecutor(crashHSM{probe, e.w.HSM()}, crashWLM{probe, e.w.WLM()}, crashBOS{probe, e.w.BOS()}, cfg)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Find the store's create among Create's calls, then die just
			// after it.
			_, _ = ex.Create(ctx, e.spec)
			at := slices.Index(probe.calls(), "store.CreateReserved") + 1
			require.Positive(t, at)
			first, err := st.List(context.Background())
			require.NoError(t, err)
			require.Len(t, first, 1)
			require.NoError(t, st.Delete(context.Background(), first[0].UpgradeID))

			c := newCrasher(at, true, nil)
			cfg.Store = crashStore{c, st}
			ex, err = crus.NewExecutor(crashHSM{c, e.w.HSM()}, crashWLM{c, e.w.WLM()}, crashBOS{c, e.w.BOS()}, cfg)
			require.NoError(t, err)
			done := make(chan struct{})
			go func() {
				defer close(done)
				s, _ := ex.Create(ctx, e.spec)
				assert.Nil(t, s, "the dead process returned a session")
			}()
			<-c.crashed // stored, and the process died before it could say so
			defer func() { cancel(); close(c.release); <-done }()

			st = open()
			cfg.Store = st
			ex, err = crus.NewExecutor(e.w.HSM(), e.w.WLM(), e.w.BOS(), cfg)
			require.NoError(t, err)
			_, err = ex.Create(context.Background(), e.spec)
			var re *crus.ReservedError
			require.ErrorAs(t, err, &re, "the retry is refused")
			require.Len(t, re.Conflicts, 1)
			id := re.Conflicts[0].Session
			assert.ErrorContains(t, err, "session "+id+" holds")
			final, err := ex.Run(context.Background(), id)
			require.NoError(t, err)
			e.check(final)
			assert.Equal(t, 4, final.Counts().Upgraded)
		})
	}
}
