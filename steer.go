package crus

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// The executor's side of steering (wlm.Steerer). While a scheduled
// session takes nodes, the nodes it has still to take are the workload
// manager's last choice for new work: a job that arrives then goes to a
// node already upgraded, or to one idle anyway, rather than to one whose
// reboot it would put off by its whole run time.
//
// What is wanted follows from the record alone: the pending nodes are
// steered last while the session runs (not paused, cancelled or aborted),
// and no node is steered once it is taken or the session stops. So the
// executor keeps no state of it in the store. A run tells every node of
// the session its place once, at its first round (a run before it may
// have stopped half-way), then only the nodes whose want changed, and
// the nodes still to take again each steerReassert (weights can be reset
// behind its back). A
// session is not recorded done before every node has its place back,
// unless the workload manager refuses it to the user crus runs as, or
// fails for steerEndWait: then a message says so, rather than wait for
// good.

// steering is a run's knowledge of the nodes it steered.
type steering struct {
	known bool     // last is what the workload manager holds
	last  []uint64 // bit i: record i steered last
	want  []uint64 // scratch
	// failedAt is the last failure, which waits steerRetry before the
	// next try (refusalRetry after a refusal to the user crus runs as).
	failedAt time.Time
	err      error // of the last failure
	// toldAll: when the run last told every node its place.
	toldAll time.Time
	// endSince: when the session could first have been recorded done,
	// had every node its place back (see steerEndWait).
	endSince time.Time
	// checked: the record after the last one noticeSteering looked at.
	checked int
	// unsupported: the workload manager cannot steer after all
	// (wlm.ErrUnsupported: slurmrestd without a CLI fallback); the run
	// goes on as without wlm.Steerer.
	unsupported bool
}

// steerRetry is how long a run waits after a failure to steer before it
// tries again.
const steerRetry = time.Minute

// steerReassert is how often a run steers the nodes still to take again,
// whatever it believes the workload manager holds: Slurm
// forgets weights set by scontrol at a reconfigure, and an administrator
// may reset them.
const steerReassert = time.Hour

// steerChecks is how many nodes steered last noticeSteering looks at per
// observation.
const steerChecks = 64

// steerEndWait bounds how long a session otherwise done waits for the
// workload manager to give its nodes back their place: past it, the
// session ends, and says the nodes may stay steered.
const steerEndWait = 30 * time.Minute

// steers reports whether the executor steers the session's nodes: a
// scheduled session, with a workload manager that can book and steer.
func (e *Executor) steers(r *run) bool {
	return e.steerer != nil && !r.steer.unsupported && r.indexed().policy().scheduled
}

// steer gives each node of the session the place in the workload
// manager's choice that the record wants for it, and reports whether the
// workload manager holds it now. A failure is logged and tried again
// later (steering spares capacity; it is not worth stopping for).
func (e *Executor) steer(ctx context.Context, r *run) bool {
	if !e.steers(r) {
		return true
	}
	st, x := &r.steer, r.indexed()
	words := (len(r.s.Progress.Nodes) + 63) / 64
	if len(st.last) != words {
		st.last, st.want, st.known = make([]uint64, words), make([]uint64, words), false
	}
	now := e.clock.Now()
	// Due to tell the nodes still to take their place again (those given
	// it back stay so: a reset gives places back, it takes none).
	reassert := st.known && !now.Before(st.toldAll.Add(steerReassert))
	p := &r.s.Progress
	running := !p.Paused && !p.Cancel && p.Abort == "" && !r.s.Completed
	for w := range st.want {
		st.want[w] = 0
		if running {
			st.want[w] = x.pending[w]
		}
	}
	var on, off []int
	for w := range st.want {
		add, drop := st.want[w]&^st.last[w], st.last[w]&^st.want[w]
		switch {
		case !st.known:
			add, drop = st.want[w], ^st.want[w]
		case reassert:
			add = st.want[w]
		}
		on, off = appendBits(on, add, w, len(p.Nodes)), appendBits(off, drop, w, len(p.Nodes))
	}
	if len(on) == 0 && len(off) == 0 {
		if !st.known || reassert {
			st.known, st.toldAll = true, now
		}
		return true
	}
	if wait := steerRetry; !st.failedAt.IsZero() {
		if st.refused() {
			wait = refusalRetry
		}
		if now.Before(st.failedAt.Add(wait)) {
			return false
		}
	}
	for _, c := range []struct {
		at   []int
		last bool
	}{{off, false}, {on, true}} {
		if len(c.at) == 0 {
			continue
		}
		if err := e.steerAt(ctx, r, c.at, c.last); err != nil {
			if ctx.Err() != nil {
				return false
			}
			if errors.Is(err, wlm.ErrUnsupported) {
				st.unsupported = true
				r.log.Info("the workload manager cannot steer new jobs away from the nodes still to take; going on without", "err", err)
				return true
			}
			st.known, st.failedAt, st.err = false, now, err
			r.log.Warn("could not steer the nodes still to upgrade in the workload manager's choice for new jobs; trying again later", "last", c.last, "nodes", len(c.at), "err", err)
			return false
		}
		for _, i := range c.at {
			setBit(st.last, i, c.last)
		}
	}
	if !st.failedAt.IsZero() || !st.known {
		r.log.Debug("nodes steered as the session wants", "last", len(on), "in_place", len(off))
	}
	if !st.known || reassert {
		st.toldAll = now
	}
	st.known, st.failedAt, st.err = true, time.Time{}, nil
	return true
}

// noticeSteering looks at the places the workload manager reports for
// the nodes just observed (wlm.Node.Steering, where the adapter reads
// it). A node the run steered last that reads as not steered lost its
// place behind the run's back (Slurm forgets weights set by scontrol at
// a reconfigure; an administrator may reset them): the run tells every
// node its place again at its next steer, rather than at steerReassert,
// but not more often than every steerRetry (a workload manager that
// keeps reporting otherwise than it was told is not asked again at every
// poll). A node steered by someone else is left to them until the next
// run's first round.
func (e *Executor) noticeSteering(r *run, obs *Observation) {
	st := &r.steer
	if !e.steers(r) || !st.known || len(st.last) == 0 || e.clock.Now().Before(st.toldAll.Add(steerRetry)) {
		return
	}
	// The nodes steered last are pending, and the pending nodes observed
	// are in the view by position (the map holds the others: reading it
	// by xname at every observation cost a fifth of the time of a
	// 100,000-node session). An observation without the view (a light
	// one, of the nodes in flight) tells nothing of them.
	at := obs.at
	if at == nil || !at.nodesOK || len(at.pos) == 0 {
		return
	}
	// At most steerChecks nodes steered last are looked at per
	// observation, from where the last look stopped (st.checked, a
	// record index), round the view: a reconfigure resets them all, so
	// the first one shows it, and a single node reset is found within a
	// few polls. (Looking at every node of the view cost a tenth of the
	// time of a 100,000-node session: each is a cache line of its own.)
	nodes := r.s.Progress.Nodes
	from, _ := slices.BinarySearch(at.pos, st.checked)
	i, looked := -1, 0
	for n := range len(at.pos) {
		k := (from + n) % len(at.pos)
		j := at.pos[k]
		if !at.seen[k] || !hasBit(st.last, j) {
			continue
		}
		st.checked = j + 1
		if at.nodes[k].Steering == wlm.SteeringNone {
			i = j
			break
		}
		if looked++; looked == steerChecks {
			break
		}
	}
	if i < 0 {
		return
	}
	r.log.Info("a node still to take is no longer the workload manager's last choice for new jobs; telling every node its place again", "node", nodes[i].XName)
	st.known = false
}

// refused reports whether the last failure was a refusal to the user
// crus runs as.
func (st *steering) refused() bool { return errors.Is(st.err, wlm.ErrPermissionDenied) }

// steerBeforeEnd is steer for a decision that ends the session: it
// reports whether the session may be recorded done. It may not while a
// node has yet to get its place back, for steerEndWait at most, unless
// the workload manager refuses it to the user crus runs as: waiting on
// would hold the session for a preference. Then d says so.
func (e *Executor) steerBeforeEnd(ctx context.Context, r *run, d *Decision) bool {
	if e.steer(ctx, r) {
		return true
	}
	st, now := &r.steer, e.clock.Now()
	if st.endSince.IsZero() {
		st.endSince = now
	}
	if !st.refused() && now.Sub(st.endSince) < steerEndWait {
		return false
	}
	why := fmt.Sprintf("could not give nodes back their place in its choice for new jobs for %s", steerEndWait)
	if st.refused() {
		why = "refuses to give nodes back their place in its choice for new jobs"
	}
	d.Messages = slices.Insert(d.Messages, 0, fmt.Sprintf("The workload manager %s (%v): nodes of this session may stay its last choice until an administrator resets them (Slurm: their weights, or scontrol reconfigure)", why, st.err))
	return true
}

// steerAt steers the records at positions at. Nodes the workload manager
// does not know are no failure: they take no work anyway.
func (e *Executor) steerAt(ctx context.Context, r *run, at []int, last bool) error {
	names := make([]string, len(at))
	for k, i := range at {
		names[k] = r.names.wlm[i]
	}
	err := e.attempt(ctx, "steer", func(ctx context.Context) error { return e.steerer.Steer(ctx, names, last) })
	perNode, rest := batch.Split(err)
	for _, nerr := range perNode {
		if !errors.Is(nerr, wlm.ErrNodeNotFound) {
			return err
		}
	}
	return rest
}

// appendBits appends to out the positions (below n) of the bits set in
// word w of a bitmap.
func appendBits(out []int, word uint64, w, n int) []int {
	for ; word != 0; word &= word - 1 {
		if i := w*64 + bits.TrailingZeros64(word); i < n {
			out = append(out, i)
		}
	}
	return out
}
