package fake

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options tune a World. The zero value gives the defaults noted.
type Options struct {
	Start time.Time // virtual start time; default 2026-01-05 08:00 UTC
	Seed  uint64    // seeds reboot times

	RebootTime    time.Duration // mean reboot time; default 10m
	RebootJitter  time.Duration // reboot time varies by up to ± this; default 3m
	PendingDelay  time.Duration // boot session pending → running; default 10s
	RegisterDelay time.Duration // boot → workload-manager agent registered; default 20s
	// CompletingTime is how long a node stays COMPLETING after its last
	// job ends; default 2s.
	CompletingTime time.Duration
	// NoBootTimes makes the workload manager unable to report boot times.
	NoBootTimes bool
	// ReasonPrefix marks the drains and fails that count as crus's own for
	// MaxOut; default "crus ".
	ReasonPrefix string
}

// NodeFaults are faults injected into one node.
type NodeFaults struct {
	BootFails    bool   // its boot fails: the boot session reports it failed and it stays down
	BootError    string // the failure reason BOS gives (default "failed to boot")
	NeverReturns bool   // it boots, but its workload-manager agent never registers
	RefuseDrain  bool   // the workload manager refuses to drain it (per-node error)
	// SlowDrain keeps the node COMPLETING this long after its last job
	// ends (a job stuck in its epilog), so its drain finishes late.
	SlowDrain time.Duration
}

type job struct {
	id         int
	end, limit time.Time
}

type node struct {
	xname, name string
	nid         int

	up              bool // agent responding
	drain, fail     bool
	reason          string
	reasonTime      time.Time
	bootTime        time.Time
	agentStart      time.Time
	jobs            []job
	completingUntil time.Time
	rebooting       bool
	reboots         int
	faults          NodeFaults

	out bool // counted in World.out

	idx       int       // order of AddNode, for the free-node bitset
	free      bool      // idle and in service (set in World.free)
	asap      bool      // a workload-manager reboot is pending (wlm.Rebooter)
	forgotten bool      // removed from the workload manager (RemoveNode)
	touched   int       // changing calls that named it (World.Touched)
	lostSince time.Time // out of service because of crus and running nothing, since
	// adminResumed is World.acts at the last AdminResume of the node.
	adminResumed uint64
	sim          simNode // workload-simulation state (sched.go)
}

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// World is the simulated system. All methods are safe for concurrent use.
type World struct {
	// runMu makes the runs of the events made outside any function of
	// Schedule (a RunUntil, After or Advance, or a call that takes its
	// time) take turns: the executor's concurrent calls and retries wait
	// on the clock from several goroutines, and the functions of
	// Schedule assume they run one after the other. It is held while
	// such a function runs, so a wait made from inside one cannot take
	// it: that wait runs the World's own events due itself, nested (see
	// RunUntil).
	runMu sync.Mutex
	// evMu orders the World's own events, whichever run executes them:
	// a run holds it while it takes the next event and executes it (not
	// while a function of Schedule runs), or sets the clock at its end.
	evMu  sync.Mutex
	mu    sync.Mutex
	opts  Options
	now   time.Time
	seq   uint64
	queue eventQueue // the World's own events (schedule)
	fns   eventQueue // the functions of Schedule
	// inFn is set while a run executes a function of Schedule or the
	// scheduler's hook (SetScheduler): the waits, and the calls that take
	// their time, made meanwhile are taken for the function's own.
	inFn  bool
	jobID int

	nodes     map[string]*node // by xname
	byName    map[string]*node // by workload-manager name
	groups    map[string]map[string]bool
	templates map[string]*template
	sessions  map[string]*bootSession

	calls      map[string]int
	injected   Injected                 // FailNext, Outage, LoseNextAnswers, LoseAnswers
	latency    map[string]time.Duration // by op; "" for every op without its own
	touched    map[string]int           // changing calls that named an xname no node has (see touch)
	violations []string
	raced      []string // see Raced
	acts       uint64   // counts boot requests and administrators' resumes, to order them
	out        int
	maxOut     int
	reboots    int

	order     []*node  // nodes in AddNode order
	freeBits  []uint64 // bit i: order[i] is idle and in service
	freeCount int
	kick      bool   // something may have freed nodes since the hook ran
	hook      func() // see SetScheduler
	asapLeft  int    // nodes whose wlm.Rebooter reboot has not finished
	power     powerState
	sim       simWorld // workload-simulation state (sched.go)
}

type template struct {
	nodeGroups []string
	broken     string // every session of it fails as a whole with this error
}

// DefaultJitter is the reboot jitter used when none is given: 3 minutes,
// or 3/10 of a reboot time shorter than 10 minutes. A fixed 3 minutes
// would make some reboots of a 2-minute reboot time take no time at all,
// or less.
func DefaultJitter(rebootTime time.Duration) time.Duration {
	return min(3*time.Minute, rebootTime*3/10)
}

// New returns an empty World.
func New(opts Options) *World {
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	}
	if opts.RebootTime == 0 {
		opts.RebootTime = 10 * time.Minute
	}
	if opts.RebootJitter == 0 {
		opts.RebootJitter = DefaultJitter(opts.RebootTime)
	}
	if opts.PendingDelay == 0 {
		opts.PendingDelay = 10 * time.Second
	}
	if opts.RegisterDelay == 0 {
		opts.RegisterDelay = 20 * time.Second
	}
	if opts.CompletingTime == 0 {
		opts.CompletingTime = 2 * time.Second
	}
	if opts.ReasonPrefix == "" {
		opts.ReasonPrefix = "crus "
	}
	return &World{
		opts:      opts,
		now:       opts.Start,
		nodes:     map[string]*node{},
		byName:    map[string]*node{},
		groups:    map[string]map[string]bool{},
		templates: map[string]*template{},
		sessions:  map[string]*bootSession{},
		calls:     map[string]int{},
		latency:   map[string]time.Duration{},
		touched:   map[string]int{},
	}
}

// Now returns the virtual time.
func (w *World) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

// After advances the world by d and returns a channel holding the new time:
// an Executor using the World as its Clock moves the simulation on while it
// waits.
func (w *World) After(d time.Duration) <-chan time.Time {
	c := make(chan time.Time, 1)
	c <- w.Advance(d)
	return c
}

// Advance runs every event due in the next d and returns the new time.
func (w *World) Advance(d time.Duration) time.Time {
	w.mu.Lock()
	until := w.now.Add(d)
	w.mu.Unlock()
	return w.RunUntil(until)
}

// RunUntil runs every event due up to t, in order, and sets the clock to t
// (or leaves it, if it is already later). It returns the new time.
// Callers in several goroutines take turns.
//
// RunUntil may also be called (through After and Advance too) from inside
// a function of Schedule, or from goroutines the function starts and
// waits for. It then runs the World's own events due up to t (jobs end,
// nodes reboot and return, boot sessions move on) within the function,
// and leaves the functions of Schedule due meanwhile to run once it has
// returned, in order: the functions of Schedule run one at a time, however
// many goroutines wait on the clock.
//
// A wait cannot tell the goroutines of a function of Schedule from
// others (a goroutine has no identity to ask), so any wait made while
// such a function runs is taken for the function's: one from another
// goroutine (the executor's concurrent retries) would otherwise wait for
// the function to end, and the World would hang if it were the
// function's after all. Running the World's own events is safe beside
// anything (they take the World's lock, and never wait), and they still
// run one at a time, in order; running another function of Schedule
// would not be, which is why such a wait leaves them.
func (w *World) RunUntil(t time.Time) time.Time {
	w.mu.Lock()
	nested := w.inFn
	w.mu.Unlock()
	if nested {
		return w.run(true, t)
	}
	return w.runTop(t)
}

// InScheduled reports whether a function of Schedule (or the scheduler's
// hook) runs now: a call made now is taken for one made from inside it
// (see RunUntil).
func (w *World) InScheduled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inFn
}

// runTop runs the events due up to t as a run made outside any function
// of Schedule.
func (w *World) runTop(t time.Time) time.Time {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	return w.run(false, t)
}

// run runs the events due up to t, or up to the time the clock has
// reached if that is later (a nested run moved it): the World's own
// events, and, unless nested, the functions of Schedule and the
// scheduler's hook.
func (w *World) run(nested bool, t time.Time) time.Time {
	for {
		w.evMu.Lock()
		w.mu.Lock()
		due := t
		if w.now.After(due) {
			due = w.now
		}
		q := &w.queue
		if !nested && len(w.fns) > 0 && (len(w.queue) == 0 || before(w.fns[0], w.queue[0])) {
			q = &w.fns
		}
		next := len(*q) > 0 && !(*q)[0].at.After(due)
		// Let the scheduler use what was freed before time moves on.
		if !nested && w.kick && w.hook != nil && (next && (*q)[0].at.After(w.now) || !next && t.After(w.now)) {
			w.kick = false
			w.evMu.Unlock()
			w.exec(w.hook)
			continue
		}
		if !next {
			if t.After(w.now) {
				w.now = t
			}
			now := w.now
			w.mu.Unlock()
			w.evMu.Unlock()
			return now
		}
		ev := heap.Pop(q).(event)
		if ev.at.After(w.now) {
			w.now = ev.at
		}
		if q == &w.fns {
			w.evMu.Unlock()
			w.exec(ev.fn)
			continue
		}
		w.mu.Unlock()
		w.own(ev.fn)
	}
}

// own executes one of the World's own events, holding evMu, which it
// releases.
func (w *World) own(fn func()) {
	defer w.evMu.Unlock()
	fn() // without the lock: events take it
}

// before reports whether event a comes before event b.
func before(a, b event) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.seq < b.seq
}

// exec runs fn, a function of Schedule or the scheduler's hook, without
// the lock (fn may call the World's methods), with inFn set so that the
// waits made meanwhile nest. Callers hold the lock; exec releases it.
func (w *World) exec(fn func()) {
	w.inFn = true
	w.mu.Unlock()
	defer w.locked(func() { w.inFn = false })
	fn()
}

// TakeTime lets d of virtual time pass for a call that takes its time (see
// SetLatency) and returns the time the call goes on at. A call made while
// a function of Schedule runs (see RunUntil) overlaps the run that
// executes it and takes no time of its own: it could not wait for that
// run to end. Any other call waits for the runs in progress, then moves
// the world on to d after it began, if it is not there yet: calls begun
// together end together.
func (w *World) TakeTime(d time.Duration) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.takeTime(d)
	return w.now
}

// takeTime is TakeTime for callers that hold the lock: it may release it
// while the World moves on, and takes it again before it returns.
func (w *World) takeTime(d time.Duration) {
	if d <= 0 || w.inFn {
		return
	}
	end := w.now.Add(d)
	w.mu.Unlock()
	defer w.mu.Lock()
	// Not RunUntil: a function that begins meanwhile, in another run, is
	// not the caller's.
	w.runTop(end)
}

// Schedule runs fn at virtual time at (at once, on the next advance, if at
// is past). fn runs without the World's lock and may call its methods and
// wait on its clock (see RunUntil). The functions of Schedule run one at a
// time, in order.
func (w *World) Schedule(at time.Time, fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.scheduleFn(at, fn)
}

// scheduleFn is Schedule for callers that hold the lock.
func (w *World) scheduleFn(at time.Time, fn func()) {
	w.seq++
	heap.Push(&w.fns, event{at: at, seq: w.seq, fn: fn})
}

// schedule runs fn, one of the World's own events, at virtual time at.
// fn runs without the lock, takes it, and never waits on the clock nor
// calls anything that takes its time: it may run beside a function of
// Schedule (see RunUntil). Callers hold the lock.
func (w *World) schedule(at time.Time, fn func()) {
	w.seq++
	heap.Push(&w.queue, event{at: at, seq: w.seq, fn: fn})
}

// locked runs fn under the World's lock (for events).
func (w *World) locked(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fn()
}

// AddNode adds a compute node, up and idle, with HSM component xname, node
// ID nid and workload-manager name "nid%06d". It last booted a day ago.
func (w *World) AddNode(xname string, nid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := &node{
		xname: xname, name: fmt.Sprintf("nid%06d", nid), nid: nid, up: true,
		bootTime: w.now.Add(-24 * time.Hour).Truncate(time.Second), agentStart: w.now.Add(-24 * time.Hour).Truncate(time.Second),
		idx: len(w.order),
	}
	w.nodes[xname] = n
	w.byName[n.name] = n
	w.order = append(w.order, n)
	if n.idx/64 >= len(w.freeBits) {
		w.freeBits = append(w.freeBits, 0)
	}
	w.update(n)
}

// AddGroup creates (or replaces) an HSM group with these members.
func (w *World) AddGroup(label string, members ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := map[string]bool{}
	for _, m := range members {
		g[m] = true
	}
	w.groups[label] = g
}

// DeleteGroup removes an HSM group.
func (w *World) DeleteGroup(label string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.groups, label)
}

// Members returns a group's members, sorted, without counting a call.
func (w *World) Members(label string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortedSet(w.groups[label])
}

// AddTemplate creates a boot session template whose boot set targets the
// given node groups.
func (w *World) AddTemplate(name string, nodeGroups ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.templates[name] = &template{nodeGroups: nodeGroups}
}

// BreakTemplate makes every later boot session of the template fail as a
// whole with the given error, rebooting nothing.
func (w *World) BreakTemplate(name, err string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.templates[name]; ok {
		t.broken = err
	}
}

// SetFaults sets the faults of a node.
func (w *World) SetFaults(xname string, f NodeFaults) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		n.faults = f
	}
}

// FailNext makes the next n calls of op fail with err before doing
// anything. op is a backend method such as "wlm.Drain", "hsm.AddMembers",
// "bos.Reboot" or "bos.Status" (see Calls for the names).
func (w *World) FailNext(op string, n int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.injected.FailNext(op, n, err)
}

// LoseNextAnswers makes the next n calls of op (a write: "bos.Reboot",
// "wlm.Drain", "wlm.Resume", "wlm.Fail", "wlm.Reserve", "wlm.Unreserve",
// "wlm.Steer", "hsm.AddMembers", "hsm.RemoveMembers") that succeed do
// their work and then fail with ErrAnswerLost: the request was carried
// out, its answer never came (a connection cut, a proxy's timeout). It
// panics on any other op: a lost read is a failed read (FailNext).
func (w *World) LoseNextAnswers(op string, n int) {
	if !IsWrite(op) {
		panic(fmt.Sprintf("fake: LoseNextAnswers of %q, not a write", op))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.injected.LoseNext(op, n)
}

// LoseAnswers makes every successful call of op (a write, as for
// LoseNextAnswers) from virtual time from until until carry out its work
// and then fail with ErrAnswerLost: an outage of the answers, not of the
// work.
func (w *World) LoseAnswers(op string, from, until time.Time) {
	if !IsWrite(op) {
		panic(fmt.Sprintf("fake: LoseAnswers of %q, not a write", op))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.injected.LoseIn(op, from, until)
}

// ErrAnswerLost is the error of a call whose work was done and whose
// answer was lost (LoseNextAnswers).
var ErrAnswerLost = errors.New("fake: injected lost answer (the request was carried out)")

// end finishes a write begun by begin, releasing the lock: if it
// succeeded and its answer is to be lost (LoseNextAnswers, LoseAnswers),
// its work stays done and *err becomes ErrAnswerLost.
func (w *World) end(op string, err *error) {
	defer w.mu.Unlock()
	if *err != nil {
		return
	}
	if w.injected.Lost(op, w.now) {
		*err = ErrAnswerLost
	}
}

// ErrInjected is the default transient error of injected faults.
var ErrInjected = errors.New("fake: injected transient failure")

// call counts a call of op and returns its injected failure, if any.
// Callers hold the lock.
func (w *World) call(op string) error {
	w.calls[op]++
	return w.injected.Fail(op, w.now)
}

// SetLatency makes every call of op take d of virtual time before it
// does anything, as a slow backend does: the world moves on (its events
// run) while the caller waits. Calls overlap the wait that is moving the
// world, another call's or the clock's: one made meanwhile ends with it,
// or d after it began if that is later, so calls made at the same time
// end together; one made from a function of Schedule, or while one runs,
// takes no time of its own: the wait that runs the function cannot go on
// before it returns (see TakeTime). op "" sets it for every op without
// one of its own; 0 removes it.
func (w *World) SetLatency(op string, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d <= 0 {
		delete(w.latency, op)
		return
	}
	w.latency[op] = d
}

// latencyOf returns how long a call of op takes. Callers hold the lock.
func (w *World) latencyOf(op string) time.Duration {
	if d, ok := w.latency[op]; ok {
		return d
	}
	return w.latency[""]
}

// begin starts a backend call: it takes the lock, waits out the op's
// latency (SetLatency), honours ctx, counts the call and returns its
// injected failure. On success the caller holds the lock and must
// release it.
func (w *World) begin(ctx context.Context, op string) (*World, error) {
	w.mu.Lock()
	// Calls made at the same time overlap: each ends d after it began,
	// however many run.
	w.takeTime(w.latencyOf(op))
	if err := ctx.Err(); err != nil {
		w.mu.Unlock()
		return nil, err
	}
	if err := w.call(op); err != nil {
		w.mu.Unlock()
		return nil, err
	}
	return w, nil
}

// Calls returns the number of calls made to each backend method, such as
// "wlm.Nodes" or "hsm.AddMembers".
func (w *World) Calls() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.calls))
	for k, v := range w.calls {
		out[k] = v
	}
	return out
}

// CallsTo returns the total calls made to one backend: "wlm", "hsm" or "bos".
func (w *World) CallsTo(backend string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for k, v := range w.calls {
		if strings.HasPrefix(k, backend+".") {
			total += v
		}
	}
	return total
}

// Touched returns how many changing calls named each node (by xname):
// drains, resumes, fails, group edits and reboots.
func (w *World) Touched() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.touched))
	for k, v := range w.touched {
		out[k] = v
	}
	for _, n := range w.order {
		if n.touched > 0 {
			out[n.xname] += n.touched
		}
	}
	return out
}

// touch counts a changing call that named the node of xname x: on the
// node (a map of 100,000 xnames was a tenth of a simulated upgrade's
// bookings), in the map for a name that is no node's. Callers hold the
// lock.
func (w *World) touch(x string) {
	if n, ok := w.nodes[x]; ok {
		n.touched++
		return
	}
	w.touched[x]++
}

// Violations lists every broken promise the world saw (a node rebooted
// while it still ran jobs). A node an administrator resumed (AdminResume)
// after its boot request was sent, and which got a job before the boot
// orchestrator rebooted it, is not one: see Raced.
func (w *World) Violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.violations)
}

// Raced lists the nodes rebooted while running jobs because an
// administrator put them back in service after their boot request was
// sent (while it travelled, with SetLatency, or once accepted): the boot
// orchestrator reboots what it was asked to, and no client can take a
// node out of a request it sent.
func (w *World) Raced() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.raced)
}

// MaxOut returns the most nodes that were out of service because of crus
// at one instant: drained or failed with a crus reason (ReasonPrefix) but
// not failed yet, or rebooting.
func (w *World) MaxOut() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxOut
}

// Reboots returns the number of reboots so far.
func (w *World) Reboots() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reboots
}

// update recomputes the node's contribution to the out-of-service count.
// Callers hold the lock.
func (w *World) update(n *node) {
	out := !n.fail && (n.rebooting || n.asap || n.drain && strings.HasPrefix(n.reason, w.opts.ReasonPrefix) || n.sim.held)
	if out != n.out {
		n.out = out
		if out {
			w.out++
		} else {
			w.out--
		}
	}
	w.maxOut = max(w.maxOut, w.out)
	w.account(n, out)
	free := n.up && !n.drain && !n.fail && !n.rebooting && !n.asap && len(n.jobs) == 0 && !w.now.Before(n.completingUntil) && !n.sim.blocked
	if free != n.free {
		n.free = free
		if free {
			w.freeBits[n.idx/64] |= 1 << (n.idx % 64)
			w.freeCount++
			w.kick = true
		} else {
			w.freeBits[n.idx/64] &^= 1 << (n.idx % 64)
			w.freeCount--
		}
	}
}

// StartJob starts a job on a node that is in service: it really runs for
// runFor, while the workload manager only knows its time limit (limit, at
// least runFor).
func (w *World) StartJob(xname string, runFor, limit time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.nodes[xname]
	if !ok {
		return fmt.Errorf("fake: no node %s", xname)
	}
	if !n.up || n.drain || n.fail || n.rebooting {
		return fmt.Errorf("fake: node %s is not in service", xname)
	}
	w.jobID++
	j := job{id: w.jobID, end: w.now.Add(runFor), limit: w.now.Add(max(limit, runFor))}
	n.jobs = append(n.jobs, j)
	w.update(n)
	w.schedule(j.end, func() { w.locked(func() { w.endJob(n, j.id) }) })
	return nil
}

func (w *World) endJob(n *node, id int) {
	i := slices.IndexFunc(n.jobs, func(j job) bool { return j.id == id })
	if i < 0 {
		return // killed by a reboot
	}
	n.jobs = slices.Delete(n.jobs, i, i+1)
	if len(n.jobs) == 0 {
		w.idle(n)
	}
	w.update(n)
}

// idle starts a node's completing time after its last job ended, and
// looks at it again once that is over (it may then be free, or due for a
// pending reboot). Callers hold the lock.
func (w *World) idle(n *node) {
	n.completingUntil = w.now.Add(w.opts.CompletingTime + n.faults.SlowDrain)
	w.schedule(n.completingUntil, func() { w.locked(func() { w.completed(n) }) })
}

// completed looks at a node whose completing time is over. Callers hold
// the lock.
func (w *World) completed(n *node) {
	if n.asap && len(n.jobs) == 0 && !n.rebooting && n.up && !w.now.Before(n.completingUntil) {
		w.rebootASAP(n)
	}
	w.update(n)
}

// NodeState is a snapshot of one node for tests.
type NodeState struct {
	XName, Name string
	NID         int
	Up          bool
	Drain, Fail bool
	Reason      string
	Jobs        int
	BootTime    time.Time
	Reboots     int
}

// Node returns the state of a node.
func (w *World) Node(xname string) (NodeState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.nodes[xname]
	if !ok {
		return NodeState{}, false
	}
	return NodeState{XName: n.xname, Name: n.name, NID: n.nid, Up: n.up, Drain: n.drain, Fail: n.fail,
		Reason: n.reason, Jobs: len(n.jobs), BootTime: n.bootTime, Reboots: n.reboots}, true
}

// XNames returns every node's xname, sorted.
func (w *World) XNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.nodes))
	for x := range w.nodes {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

// AdminDrain drains a node as an administrator would, with reason.
func (w *World) AdminDrain(xname, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		n.drain, n.reason, n.reasonTime = true, reason, w.now
		w.update(n)
	}
}

// AdminResume clears a node's drain and fail states as an administrator
// would.
func (w *World) AdminResume(xname string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		n.drain, n.fail, n.reason = false, false, ""
		w.acts++
		n.adminResumed = w.acts
		w.update(n)
	}
}

// SetDown makes a node's agent stop (down) or start (up) responding.
func (w *World) SetDown(xname string, down bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		n.up = !down
		if down {
			n.jobs = nil
		}
		w.update(n)
		w.kick = true
	}
}

// RemoveNode makes the workload manager forget a node (HSM keeps it).
func (w *World) RemoveNode(xname string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		delete(w.byName, n.name)
		n.forgotten = true
	}
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// EndJobs ends every job running on the node now (as if they finished).
func (w *World) EndJobs(xname string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok && len(n.jobs) > 0 {
		n.jobs = nil
		w.idle(n)
		w.update(n)
	}
}
