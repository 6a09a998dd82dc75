package crus

import (
	"fmt"
	"slices"
	"time"

	"github.com/crus-go/crus/wlm"
)

// The scheduled strategy, as a policy of the pipeline (see slots.go for
// the slot planner itself). Admission gives every pending node in view a
// slot and takes the idle ones whose slot has come; booking keeps the
// workload manager's reservations in line with the slots of the nodes
// worth booking. Without wlm.Scheduler (Observation.Scheduling) the
// strategy is rolling with the job_end order: admitRolling.

// Constants of the slot planner.
const (
	// minBookingLead: a booking never starts sooner than this, nor than
	// Observation.Horizon: crus takes the node or moves the booking on
	// before it begins.
	minBookingLead = 2 * time.Minute
	// bookingGrain groups slots into one reservation.
	bookingGrain = 5 * time.Minute
	// maxBookingNumber bounds the numbers of the session's reservations
	// (buckets of bookingGrain since the session started, slots at most
	// farthest ahead): a larger one in a record is corrupt, and one read
	// from the workload manager is not crus's.
	maxBookingNumber = int64(2 * farthest / bookingGrain)
)

// bookingLead is the least time before a booking starts, given the
// observation's horizon.
func bookingLead(horizon time.Duration) time.Duration { return max(minBookingLead, horizon) }

// bookingLength is how long a booking lasts, given its lead.
func bookingLength(lead time.Duration) time.Duration { return 2 * lead }

// slotParams returns the slot planner's settings for this decision.
func (p *planner) slotParams() slotParams {
	s, pol := p.s, p.pol
	epoch := s.Progress.StartedAt
	if epoch.IsZero() {
		epoch = s.Progress.CreatedAt
	}
	lead := bookingLead(p.obs.Horizon)
	return slotParams{
		now: p.obs.Now, step: pol.step, reboot: pol.slot,
		slack: pol.slack,
		lead:  lead,
		grain: bookingGrain,
		// Short: a booking crus could not move in time (it stopped, or
		// the workload manager refused) holds its nodes no longer than
		// this. Any job that would run past its start is kept off all
		// the same.
		length: bookingLength(lead),
		prefix: bookingPrefix(s), epoch: epoch.Truncate(time.Second),
	}
}

// slotted is a candidate of the scheduled strategy.
type slotted struct {
	i    int       // node index
	slot time.Time // its slot
	busy bool      // running jobs
}

// planSlotsNow gives the pending nodes in view their slots, from the
// nodes in flight after this decision's changes so far. It is computed
// once per decision.
func (p *planner) planSlotsNow() *slotPlan {
	if p.slotPlan != nil {
		return p.slotPlan
	}
	s, obs := p.s, p.obs
	now := obs.Now
	out := p.bufs.out[:0]
	for _, i := range p.activeNodes() {
		n := &s.Progress.Nodes[i]
		switch p.phaseAt(i) {
		case PhaseQuiescing, PhaseQuiesced, PhaseBooting, PhaseReturning, PhaseResuming:
			anchor := n.bootClock()
			if anchor.IsZero() || p.chg[i] != 0 && p.phaseAt(i) == PhaseQuiescing {
				anchor = now
			}
			out = append(out, laterTime(anchor.Add(p.pol.slot), now))
		case PhaseFailing, PhaseReleasing:
			out = append(out, now)
		}
	}
	held := &p.bufs.held // the booking that holds each node
	held.update(s, obs.Bookings)
	cands := p.lookaheadNodes()
	bufs := p.bufs
	pending := resize(bufs.pending, len(cands))[:0]
	bufs.slotIdx, bufs.slotOut = resize(bufs.slotIdx, len(cands))[:0], bufs.slotOut[:0]
	at := p.viewFor()
	nowNs := now.UnixNano()
	for _, i := range cands {
		n := &s.Progress.Nodes[i]
		if p.chg[i] != 0 {
			continue
		}
		w, seen, k := p.nodeRef(at, i, n.XName)
		if !seen {
			continue
		}
		if !p.canTake(w) {
			bufs.slotOut = append(bufs.slotOut, i)
			continue
		}
		sn := slotNode{x: n.XName, rank: i, idle: !w.Busy(), booking: held.of(i)}
		if !sn.idle {
			end, known := p.endAt(at, k, n.XName)
			switch {
			case known:
				sn.free = unixNs(end)
			case w.State == wlm.StateIdle && w.Completing:
				sn.free = nowNs // its last job is cleaning up: free in seconds
			default:
				// Nothing known of its jobs' end (no wlm.JobEnder, or it
				// could not be read): due now, and not booked anew.
				sn.unknownEnd = true
			}
		}
		pending = append(pending, sn)
		bufs.slotIdx = append(bufs.slotIdx, i)
	}
	params := p.slotParams()
	params.room = p.admitRoom
	plan := bufs.slots.planSlots(params, out, pending)
	p.slotPlan = &plan
	bufs.pending, bufs.out = pending, out
	return p.slotPlan
}

// lookaheadNodes returns the pending nodes the scheduled strategy looks at:
// the lookahead.
func (p *planner) lookaheadNodes() []int {
	if !p.lookedAhead {
		if p.idx != nil {
			// Those pending in the record, and those this decision
			// changed (it may have put some back), by the index.
			p.bufs.lookahead = p.idx.candidates(p.bufs.lookahead[:0], p.firstPending, p.pol.lookahead, p.activeNodes(), p.chg, p.phaseAt)
		} else {
			p.bufs.lookahead = candidates(p.s.Progress.Nodes, p.phaseAt, p.pol.lookahead, p.firstPending)
		}
		p.lookedAhead = true
	}
	return p.bufs.lookahead
}

// admitScheduled takes, within room, the nodes whose slot has come: the
// idle ones first, then the busy ones (their jobs are expected to have
// ended: a lane free now is theirs). A booked node starts no new job, so
// it usually goes idle before its turn; taking the busy ones too keeps the
// session moving when it does not (a job started despite the booking, or
// a booking the workload manager refused).
func (p *planner) admitScheduled(room, inFlight int) {
	s, obs := p.s, p.obs
	for _, i := range p.lookaheadNodes() {
		n := &s.Progress.Nodes[i]
		if gone, unknown := obs.Unknown[n.XName]; unknown && p.chg[i] == 0 {
			p.done(n, OutcomeSkipped, "unknown to the workload manager when its turn came: "+gone)
		}
	}
	plan := p.planSlotsNow()
	var due []slotted
	now := obs.Now.UnixNano()
	for k, sn := range p.bufs.pending {
		if plan.slots[k] <= now {
			due = append(due, slotted{i: p.bufs.slotIdx[k], slot: plan.slot(k), busy: !sn.idle})
		}
	}
	slices.SortFunc(due, func(a, b slotted) int {
		if a.busy != b.busy {
			if b.busy {
				return -1
			}
			return 1
		}
		if c := a.slot.Compare(b.slot); c != 0 {
			return c
		}
		return a.i - b.i
	})
	var taken []string
	for _, c := range due {
		if len(taken) >= room {
			break
		}
		taken = append(taken, s.Progress.Nodes[c.i].XName)
	}
	if len(taken) == 0 && len(p.bufs.pending) == 0 && inFlight == 0 {
		// Only nodes out of service are in view, and none will return
		// from flight: skip them rather than wait for ever.
		for _, i := range p.bufs.slotOut {
			n := &s.Progress.Nodes[i]
			w, _ := p.observed(i)
			_, why := p.takeable(w)
			p.done(n, OutcomeSkipped, "not in service when its turn came: "+why)
		}
	}
	if len(taken) == 0 {
		return
	}
	slices.Sort(taken)
	batch := p.d.Step + 1
	p.d.Step, p.d.Steps = batch, max(p.d.Steps, batch)
	p.take(batch, taken, fmt.Sprintf("Batch %d: quiescing %s at their slots (%d in flight, at most %d)",
		batch, plural(len(taken), "node"), inFlight+len(taken), s.StepSize))
}

// book keeps the session's reservations in line with the slots: made or
// moved where they differ, deleted where no longer wanted — all of them
// when the session takes no more nodes (cancelled, aborted, paused, held
// by a gate). It does nothing until the reservations have been read.
func (p *planner) book() {
	s, obs := p.s, p.obs
	if !p.pol.scheduled || !obs.Scheduling || !obs.BookingsObserved {
		return
	}
	var want []Booking
	pr := &s.Progress
	stop := pr.Cancel || pr.Abort != "" || p.d.Abort != "" || pr.Paused || p.held != "" || len(p.unaccepted) > 0
	if open, _ := p.pol.windows.open(obs.Now); open && !stop {
		want = p.planSlotsNow().book
		if closes := p.pol.windows.closes(obs.Now); !closes.IsZero() {
			// A booking that begins once the maintenance windows have
			// closed would keep long jobs off its nodes for a slot at
			// which no node can be taken: none is made.
			want = slices.DeleteFunc(slices.Clone(want), func(b Booking) bool { return !b.Start.Before(closes) })
		}
	}
	held := make([]Booking, 0, len(obs.Bookings))
	for _, name := range sortedKeys(obs.Bookings) {
		held = append(held, obs.Bookings[name])
	}
	change, drop := rebook(held, want)
	// Recorded before a reservation is made (see Progress.Booked): the
	// ones read, dropped or not, and the ones to make.
	p.listBooked(obs.Bookings, change)
	acts := make([]Action, 0, len(change)+1)
	var why []byte
	for _, b := range change {
		why = bookWhy(why[:0], len(b.Nodes), b.Start)
		acts = append(acts, Action{Kind: ActBook, Nodes: b.Nodes, Booking: b, Why: string(why)})
	}
	if len(drop) > 0 {
		acts = append(acts, Action{Kind: ActUnbook, Unbook: drop, Why: fmt.Sprintf("%s no longer wanted", plural(len(drop), "booking"))})
	}
	// First: a booking is moved on as soon as possible after the
	// observation that dates it, whatever the other actions cost.
	p.d.Actions = append(acts, p.d.Actions...)
}

// unbookAll deletes every reservation of the session, before it ends; it
// reports whether there is none left (or none can be: no wlm.Scheduler).
func (p *planner) unbookAll() bool {
	obs := p.obs
	if !p.pol.scheduled || !obs.Scheduling {
		return true
	}
	if !obs.BookingsObserved {
		return false // read them first
	}
	p.listBooked(obs.Bookings, nil)
	if len(obs.Bookings) > 0 {
		p.d.Actions = append(p.d.Actions, Action{Kind: ActUnbook, Unbook: sortedKeys(obs.Bookings), Why: "cleanup: the session's reservations go with it"})
	}
	return len(obs.Bookings) == 0
}

// listBooked sets the decision's list of the reservations the session may
// hold (Progress.Booked), from those read and those it makes: the
// reservations have been read, so no other can exist.
func (p *planner) listBooked(read map[string]Booking, making []Booking) {
	params := p.slotParams()
	var nums []int64
	for name := range read {
		if k, ok := params.bucketNumber(name); ok && k <= maxBookingNumber {
			nums = append(nums, k)
		}
	}
	for _, b := range making {
		if k, ok := params.bucketNumber(b.Name); ok && k <= maxBookingNumber {
			nums = append(nums, k)
		}
	}
	slices.Sort(nums)
	p.d.Booked, p.d.BookedUpTo = slices.Compact(nums), 0
}

// bookWhy appends to buf why a booking of n nodes from start is made,
// start in time.RFC3339 and UTC, without fmt: a decision can make
// hundreds of bookings.
func bookWhy(buf []byte, n int, start time.Time) []byte {
	buf = appendPlural(append(buf, "book "...), n, "node")
	buf = append(buf, " from "...)
	buf = start.UTC().AppendFormat(buf, time.RFC3339)
	return append(buf, ", their expected slot, so that only jobs that end by then start there"...)
}
