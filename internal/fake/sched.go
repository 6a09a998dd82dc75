package fake

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/crus-go/crus/wlm"
)

// This file gives the World what a workload simulation needs: whole-node
// jobs placed on free nodes (for a trace-driven scheduler) in a chosen
// order, what a backfill scheduler may plan with, a hook that runs the
// scheduler whenever nodes may have been freed, the capacity lost because
// of crus (by cause), and the workload manager's own reboot
// (wlm.Rebooter, Slurm's "scontrol reboot ASAP nextstate=RESUME"), the
// uncapped reference crus is compared with.

var _ wlm.Rebooter = (*WLM)(nil)

// simWorld is the World's workload-simulation state.
type simWorld struct {
	placement     Placement
	jobs          map[int]*runJob // running jobs started by StartJobOnFree
	loss          Loss            // closed intervals
	rebootTimeout time.Duration   // see SetRebootTimeout
	scratch       []int
	resv          reservationState // reserve.go
	done          []wlm.Job        // StartJobOnFree jobs that ended, in order (jobs.go)
	steered       int              // nodes steered last (steer.go)
	ignoreSteer   bool             // pick ignores steering (steer.go)
	upgradeFrom   time.Time        // since MarkUpgrade (oldwork.go)
	old           OldWork          // oldwork.go
	demand        demand           // demand.go
}

// simNode is a node's workload-simulation state.
type simNode struct {
	run  *runJob // the StartJobOnFree job it runs, if any
	back bool    // counted in run.back: it returns to service when run ends

	cause       LostCause // of the loss since lostSince
	drainSince  time.Time // out of service because of crus while computing, since
	inReboot    bool      // mirrors node.rebooting, to see a reboot start
	rebootStart time.Time // when its last reboot started
	rebooted    bool      // it rebooted since it went out of service
	asapIssued  time.Time // when its workload-manager reboot was issued

	resv    []*reservation // reservations holding it (reserve.go)
	blocked bool           // one of them is active: it takes no new job
	held    bool           // one of crus's is active: out of service because of crus
	pending bool           // one of crus's will start: idle, it waits for crus
	last    bool           // steered last (steer.go)
}

// runJob is a running job started by StartJobOnFree.
type runJob struct {
	id    int
	user  string
	start time.Time
	limit time.Time // start + time limit: all a scheduler knows of its end
	nodes []*node
	names []string // of nodes, named when first listed (Jobs)
	back  int      // nodes that return to service when it ends
}

// Placement is the order in which StartJobOnFree picks free nodes.
type Placement int

// Placements.
const (
	PlaceLowest  Placement = iota // the first nodes added first (Slurm's default, and the order the original algorithm sweeps in)
	PlaceHighest                  // the last nodes added first
	PlaceRandom                   // uniformly at random, drawn from the seed and the job
)

var placementNames = []string{"lowest", "highest", "random"}

func (p Placement) String() string {
	if p >= 0 && int(p) < len(placementNames) {
		return placementNames[p]
	}
	return fmt.Sprintf("Placement(%d)", int(p))
}

// ParsePlacement reads "lowest", "highest" or "random".
func ParsePlacement(s string) (Placement, error) {
	if i := slices.Index(placementNames, s); i >= 0 {
		return Placement(i), nil
	}
	return 0, fmt.Errorf("fake: placement %q: want lowest, highest or random", s)
}

// SetPlacement chooses the order in which StartJobOnFree picks free nodes;
// the default is PlaceLowest.
func (w *World) SetPlacement(p Placement) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sim.placement = p
}

// SetScheduler installs fn, called (without the World's lock, so it may
// call the World's methods) before virtual time moves on whenever nodes
// may have become free since it last ran: a job ended, a node was resumed
// or came back from a reboot. A trace-driven scheduler uses it to start
// queued jobs at once. It runs as the functions of Schedule do, one of
// them at a time, and not within a wait made from inside one (see
// RunUntil), which runs the World's own events alone. nil removes it.
func (w *World) SetScheduler(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hook, w.kick = fn, fn != nil
}

// FreeCount returns how many nodes are idle and in service: up, responding,
// not drained, failed, rebooting or waiting for a reboot, and done
// completing their last job.
func (w *World) FreeCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.freeCount
}

// FreeNodes says which nodes are free now: Open of them for any job, and
// one more for each time of Until (sorted), for a job whose time limit
// ends by then (the start of the node's next reservation).
type FreeNodes struct {
	Open  int
	Until []time.Time
}

// For returns how many of the free nodes a job ending at end could use.
func (f FreeNodes) For(end time.Time) int {
	i, _ := slices.BinarySearchFunc(f.Until, end, time.Time.Compare)
	return f.Open + len(f.Until) - i
}

// Free returns the free nodes (see FreeCount) and the reservations that
// bound what may run on them.
func (w *World) Free() FreeNodes {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := FreeNodes{Open: w.freeCount}
	for n := range w.sim.resv.reserved {
		if !n.free {
			continue
		}
		if s, _ := nextBlock(n, w.now); !s.IsZero() {
			f.Open--
			f.Until = append(f.Until, s)
		}
	}
	slices.SortFunc(f.Until, time.Time.Compare)
	return f
}

// BusyCount returns how many nodes run at least one job.
func (w *World) BusyCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	busy := 0
	for _, n := range w.order {
		if len(n.jobs) > 0 {
			busy++
		}
	}
	return busy
}

// StartJobOnFree starts one job of user on k free nodes whose
// reservations leave room for its time limit, picked in the order
// SetPlacement chose (deterministic for a given seed). The job really runs
// for runFor; the workload manager knows only its time limit, which may be
// shorter (a job that overran its request within the site's grace time).
// ended, if not nil, is called (without the lock) when the job ends. It
// returns false, starting nothing, if fewer than k nodes are free for it.
func (w *World) StartJobOnFree(k int, user string, runFor, limit time.Duration, ended func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if k < 1 || k > w.freeCount {
		return false
	}
	w.jobID++
	nodes := w.pick(k, w.jobID, w.now.Add(limit))
	if nodes == nil {
		return false
	}
	j := job{id: w.jobID, end: w.now.Add(runFor), limit: w.now.Add(limit)}
	rj := &runJob{id: j.id, user: user, start: w.now, limit: j.limit, nodes: nodes}
	if w.sim.jobs == nil {
		w.sim.jobs = map[int]*runJob{}
	}
	w.sim.jobs[j.id] = rj
	w.countOld(nodes, runFor)
	for _, n := range nodes {
		n.jobs = append(n.jobs, j)
		n.sim.run, n.sim.back = rj, false
		w.update(n)
	}
	w.schedule(j.end, func() {
		w.locked(func() {
			delete(w.sim.jobs, j.id)
			w.ended(rj)
			// One event for the job's end and one for the end of its
			// nodes' completing time, however wide it is.
			until := w.now.Add(w.opts.CompletingTime)
			for _, n := range nodes {
				if n.sim.run == rj {
					n.sim.run, n.sim.back = nil, false
				}
				if i := slices.IndexFunc(n.jobs, func(x job) bool { return x.id == j.id }); i >= 0 {
					n.jobs = slices.Delete(n.jobs, i, i+1)
					if len(n.jobs) == 0 {
						n.completingUntil = until
					}
					w.update(n)
				}
			}
			w.schedule(until, func() {
				w.locked(func() {
					for _, n := range nodes {
						w.completed(n)
					}
				})
			})
		})
	})
	if ended != nil {
		// Not in the event: the caller's code runs as a function of
		// Schedule (see RunUntil), just after the job has ended.
		w.scheduleFn(j.end, ended)
	}
	return true
}

// pick returns k free nodes, clear of reservations until end, in the
// placement order, the nodes steered last only if the others do not
// suffice; nil if there are fewer. Callers hold the lock.
func (w *World) pick(k int, jobID int, end time.Time) []*node {
	nodes := make([]*node, 0, k)
	ok := func(i int) bool { n := w.order[i]; return len(n.sim.resv) == 0 || w.fits(n, end) }
	if w.sim.steered == 0 || w.sim.ignoreSteer {
		nodes = w.pickFrom(nodes, k, jobID, ok)
	} else {
		nodes = w.pickFrom(nodes, k, jobID, func(i int) bool { return !w.order[i].sim.last && ok(i) })
		nodes = w.pickFrom(nodes, k, jobID, func(i int) bool { return w.order[i].sim.last && ok(i) })
	}
	if len(nodes) < k {
		return nil
	}
	return nodes
}

// pickFrom appends to nodes, up to k of them, the free nodes i for which
// ok(i), in the placement order. Callers hold the lock.
func (w *World) pickFrom(nodes []*node, k int, jobID int, ok func(i int) bool) []*node {
	switch w.sim.placement {
	case PlaceHighest:
		for wi := len(w.freeBits) - 1; wi >= 0 && len(nodes) < k; wi-- {
			for word := w.freeBits[wi]; word != 0 && len(nodes) < k; {
				b := 63 - bits.LeadingZeros64(word)
				word &^= 1 << b
				if ok(wi*64 + b) {
					nodes = append(nodes, w.order[wi*64+b])
				}
			}
		}
	case PlaceRandom:
		if len(nodes) >= k {
			return nodes
		}
		free := w.sim.scratch[:0]
		for wi, word := range w.freeBits {
			for ; word != 0; word &= word - 1 {
				if i := wi*64 + bits.TrailingZeros64(word); ok(i) {
					free = append(free, i)
				}
			}
		}
		w.sim.scratch = free
		if len(free) < k-len(nodes) && (w.sim.steered == 0 || w.sim.ignoreSteer) {
			return nodes // too few, and no other nodes to add (the shuffle is not needed)
		}
		rng := rand.New(rand.NewPCG(w.opts.Seed^0x6a09e667f3bcc909, uint64(jobID)))
		for i := range min(k-len(nodes), len(free)) { // the first of a Fisher-Yates shuffle
			j := i + rng.IntN(len(free)-i)
			free[i], free[j] = free[j], free[i]
			nodes = append(nodes, w.order[free[i]])
		}
	default:
		for wi := 0; wi < len(w.freeBits) && len(nodes) < k; wi++ {
			for word := w.freeBits[wi]; word != 0 && len(nodes) < k; word &= word - 1 {
				if i := wi*64 + bits.TrailingZeros64(word); ok(i) {
					nodes = append(nodes, w.order[i])
				}
			}
		}
	}
	return nodes
}

// Avail says that Nodes nodes are expected free from From on (by the time
// limits of the jobs they run) until Until (zero: for good).
type Avail struct {
	From, Until time.Time
	Nodes       int
}

// Outlook returns what a backfill scheduler plans with, sorted by From
// then Until (zero last), one entry for each (From, Until): the nodes free
// now, and for each running job started by StartJobOnFree those of its
// nodes that return to service when it ends, from the end of its time
// limit (now, for a job past it). Nodes drained, failed, rebooting, down or
// waiting for a reboot are not expected back: Slurm's backfill does not
// plan on them. A reserved node is available only between its
// reservations: it counts in one entry for each stretch.
func (w *World) Outlook() []Avail {
	w.mu.Lock()
	defer w.mu.Unlock()
	// The entries are summed by their span as they come: thousands of
	// reserved nodes share a handful of spans (those of their booking and
	// of their job's limit), and sorting them one by one was most of the
	// simulated scheduler's time at 100,000 nodes.
	var out []Avail
	at := map[[2]int64]int{} // span: its entry in out
	add := func(a Avail) {
		k := [2]int64{a.From.UnixNano(), 0}
		if !a.Until.IsZero() {
			k[1] = a.Until.UnixNano()
		}
		if i, ok := at[k]; ok {
			out[i].Nodes += a.Nodes
			return
		}
		at[k] = len(out)
		out = append(out, a)
	}
	open := w.freeCount
	var spans []Avail
	for n := range w.sim.resv.reserved {
		spans = spans[:0]
		switch {
		case n.free:
			open--
			spans = windows(n, w.now, spans)
		case inService(n) && len(n.jobs) == 0:
			spans = windows(n, later(n.completingUntil, w.now), spans) // blocked, or completing
		case inService(n) && n.sim.run != nil:
			spans = windows(n, later(n.sim.run.limit, w.now), spans)
		}
		for _, a := range spans {
			add(a)
		}
	}
	if open > 0 {
		add(Avail{From: w.now, Nodes: open})
	}
	for _, rj := range w.sim.jobs {
		if rj.back > 0 {
			add(Avail{From: later(rj.limit, w.now), Nodes: rj.back})
		}
	}
	slices.SortFunc(out, func(a, b Avail) int {
		return cmp.Or(a.From.Compare(b.From), cmpUntil(a.Until, b.Until))
	})
	return out
}

// cmpUntil orders ends of availability, zero (for good) last.
func cmpUntil(a, b time.Time) int {
	switch {
	case a.IsZero() && b.IsZero():
		return 0
	case a.IsZero():
		return 1
	case b.IsZero():
		return -1
	}
	return a.Compare(b)
}

// inService reports whether the node may take work but for its jobs and
// reservations. Callers hold the lock.
func inService(n *node) bool { return n.up && !n.drain && !n.fail && !n.rebooting && !n.asap }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// LostCause says why a node out of service because of crus computes
// nothing.
type LostCause int

// Causes of lost capacity.
const (
	// LostWaiting: drained (or held) and idle, before its reboot: waiting
	// for the other nodes of its step, for a free slot or for crus to
	// notice.
	LostWaiting LostCause = iota
	// LostRebooting: from the start of its reboot until it booted.
	LostRebooting
	// LostReturning: booted, until it is back in service (its agent
	// registers, crus sees it and resumes it).
	LostReturning
	// LostFailed: its reboot failed (it did not boot, or booted and never
	// came back), until it is marked failed.
	LostFailed
)

// Loss is the capacity lost because of crus, by cause, and the time nodes
// spent out of service because of crus while still computing (drained,
// their jobs running: not lost, but counted against the cap).
type Loss struct {
	Waiting, Rebooting, Returning, Failed NodeHours
	Draining                              NodeHours
	// Unwanted is the part of Waiting during which no waiting job could
	// have used the waiting nodes (SetDemand, demand.go): capacity lost
	// to crus only in the count.
	Unwanted NodeHours
}

// NodeHours is node-time in hours, summed in floating point: a
// time.Duration holds at most 2.56 million node-hours (2^63 ns), which
// the capacity lost on a 160,000-node machine can approach.
type NodeHours float64

// Hours returns h in hours, as a time.Duration's Hours does.
func (h NodeHours) Hours() float64 { return float64(h) }

// Seconds returns h in seconds, as a time.Duration's Seconds does.
func (h NodeHours) Seconds() float64 { return float64(h) * 3600 }

// nodeHours converts the node-time of one node.
func nodeHours(d time.Duration) NodeHours { return NodeHours(d.Hours()) }

// Total is the capacity lost: every cause but Draining.
func (l Loss) Total() NodeHours { return l.Waiting + l.Rebooting + l.Returning + l.Failed }

func (l *Loss) add(c LostCause, dur time.Duration) {
	d := nodeHours(dur)
	switch c {
	case LostWaiting:
		l.Waiting += d
	case LostRebooting:
		l.Rebooting += d
	case LostReturning:
		l.Returning += d
	case LostFailed:
		l.Failed += d
	}
}

// Lost returns the node-time lost because of crus so far: for every node,
// the time it was out of service because of crus (drained or failed with
// a crus reason but not failed yet, rebooting, or waiting for a workload
// manager reboot) while running no job.
func (w *World) Lost() NodeHours { return w.Loss().Total() }

// Loss returns the capacity lost because of crus so far, by cause.
func (w *World) Loss() Loss {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.sim.loss
	for _, n := range w.order {
		if !n.lostSince.IsZero() {
			l.add(n.sim.cause, w.now.Sub(n.lostSince))
		}
		if !n.sim.drainSince.IsZero() {
			l.Draining += nodeHours(w.now.Sub(n.sim.drainSince))
		}
	}
	l.Unwanted = w.sim.demand.unwantedAt(w.now)
	return l
}

// account keeps the node's share of what the simulation measures: the
// capacity lost because of crus (by cause), the draining time, and whether
// the job it runs will give it back to the scheduler. update calls it with
// the node's out-of-service state. Callers hold the lock.
func (w *World) account(n *node, out bool) {
	if n.rebooting && !n.sim.inReboot {
		n.sim.rebootStart = w.now.Truncate(time.Second) // as boot times are
		n.sim.rebooted = n.sim.rebooted || out
	}
	n.sim.inReboot = n.rebooting
	if !out {
		n.sim.rebooted = false
	}
	if r := n.sim.run; r != nil {
		back := inService(n) && len(n.sim.resv) == 0 // reserved nodes: see Outlook
		if back != n.sim.back {
			n.sim.back = back
			if back {
				r.back++
			} else {
				r.back--
			}
		}
	}

	busy := len(n.jobs) > 0
	switch draining := out && busy; {
	case draining && n.sim.drainSince.IsZero():
		n.sim.drainSince = w.now
	case !draining && !n.sim.drainSince.IsZero():
		w.sim.loss.Draining += nodeHours(w.now.Sub(n.sim.drainSince))
		n.sim.drainSince = time.Time{}
	}
	lost := (out || n.sim.pending && inService(n)) && !busy
	cause := w.cause(n)
	if !n.lostSince.IsZero() && (!lost || cause != n.sim.cause) {
		w.sim.loss.add(n.sim.cause, w.now.Sub(n.lostSince))
		if n.sim.cause == LostWaiting {
			w.sim.demand.waiting(w.now, -1)
		}
		n.lostSince = time.Time{}
	}
	if lost && n.lostSince.IsZero() {
		n.lostSince, n.sim.cause = w.now, cause
		if cause == LostWaiting {
			w.sim.demand.waiting(w.now, +1)
		}
	}
}

// cause tells why a node out of service and idle computes nothing.
// Callers hold the lock.
func (w *World) cause(n *node) LostCause {
	switch {
	case n.rebooting && n.bootTime.Before(n.sim.rebootStart):
		return LostRebooting
	case n.rebooting:
		return LostReturning
	case n.sim.rebooted && !n.up:
		return LostFailed
	case n.sim.rebooted:
		return LostReturning
	}
	return LostWaiting
}

// RebootsPending returns how many nodes asked to reboot through
// wlm.Rebooter have not finished (rebooted and returned, or given up).
func (w *World) RebootsPending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.asapLeft
}

// SetRebootTimeout makes the workload manager give up on a node it
// rebooted (wlm.Rebooter) only d after it issued the reboot, when the node
// has not come back by then: the node is left down, "reboot timed out"
// (Slurm's ResumeTimeout). Until then the node counts as out of service.
// 0 (the default): it gives up as soon as the boot fails.
func (w *World) SetRebootTimeout(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sim.rebootTimeout = d
}

// Reboot implements wlm.Rebooter: each node takes no new job, reboots as
// soon as its jobs have ended (not through BOS), and returns to service
// afterwards. A node that fails to boot or never returns stays down.
func (m *WLM) Reboot(ctx context.Context, names []string, reason string) error {
	w := m.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.call("wlm.Reboot"); err != nil {
		return err
	}
	if reason == "" {
		return fmt.Errorf("%w: reboot needs a reason", wlm.ErrInvalidArgument)
	}
	return w.each(names, func(n *node) error {
		if n.asap {
			return nil
		}
		n.asap, n.reason, n.reasonTime = true, reason, w.now
		w.asapLeft++
		if n.up && !n.rebooting && len(n.jobs) == 0 && !w.now.Before(n.completingUntil) {
			w.rebootASAP(n)
		}
		return nil
	})
}

// rebootASAP reboots a node whose workload-manager reboot is due. Callers
// hold the lock.
func (w *World) rebootASAP(n *node) {
	n.sim.asapIssued = w.now
	w.reboot(n, 0, func(bool, string) {})
}

// asapDone ends a node's workload-manager reboot: at once when the node
// is back, at the reboot timeout when its boot failed. Callers hold the
// lock.
func (w *World) asapDone(n *node) {
	if !n.asap {
		return
	}
	if !n.up && w.sim.rebootTimeout > 0 {
		issued := n.sim.asapIssued
		if at := issued.Add(w.sim.rebootTimeout); at.After(w.now) {
			w.schedule(at, func() {
				w.locked(func() {
					if n.asap && !n.up && n.sim.asapIssued.Equal(issued) {
						n.asap, n.reason, n.reasonTime = false, "reboot timed out", w.now
						w.asapLeft--
						w.update(n)
					}
				})
			})
			return
		}
	}
	n.asap = false
	w.asapLeft--
}
