package crus

import (
	"time"
)

// policy is what a session's Spec makes of the one pipeline: how many
// nodes may be taken and when, in which order, and whether a step boots as
// a whole. The original CRUS algorithm is the zero Rollout's policy: fixed
// slices of the sorted list (order "listed", batches of the step size),
// each booted in one boot session once its slowest node is drained (a
// barrier), label- or xname-limited. Rules that hold for every policy —
// pause, cancel, the cap, "never boot a node not seen drained" — live in
// the stages, not here.
//
// A policy is derived from the Spec alone and never changes during a
// session: the executor computes it once per session (see nodeIndex), so
// that maintenance windows' time zones are resolved once.
type policy struct {
	step int
	// rolling: no barrier; each node boots as soon as it is drained and
	// the next one is taken as soon as there is room.
	rolling bool
	// classic: the original algorithm exactly (Rollout.IsClassic). It
	// keeps the upgrading group unchanged while any boot session of the
	// step may still read it, as the original did.
	classic     bool
	order       Order
	lookahead   int
	bootBatch   int
	canary      []int
	approval    bool
	windows     windows
	maxFailures int // -1: no limit; see budget
	maxPercent  float64
	drainTime   time.Duration // 0: no drain timeout
	drainFail   bool
	limitLabel  bool
	retryFailed bool
	// scheduled: rolling, each pending node given a slot and booked with
	// the workload manager ahead of it (plan_schedule.go); slot is the
	// expected time a node stays out once taken.
	scheduled bool
	slot      time.Duration
	slack     time.Duration // Rollout.BookingSlack, defaulted
}

// policyOf derives the policy of a spec (defaults applied).
func policyOf(spec *Spec) *policy {
	r := spec.Rollout
	p := &policy{
		step:        spec.StepSize,
		rolling:     r.rolling(),
		classic:     r.IsClassic(),
		order:       r.Order,
		lookahead:   r.lookahead(spec.StepSize),
		bootBatch:   r.BootBatchSize,
		canary:      r.Canary,
		approval:    r.CanaryApproval && len(r.Canary) > 0,
		windows:     r.windows(),
		maxFailures: -1,
		maxPercent:  r.MaxFailurePercent,
		drainTime:   time.Duration(r.DrainTimeout),
		drainFail:   r.DrainTimeoutAction == DrainFail,
		limitLabel:  spec.BootLimit == LimitLabel,
		retryFailed: spec.RetryFailed,
		scheduled:   r.Strategy == StrategyScheduled,
		slot:        time.Duration(r.RebootTime),
	}
	if p.slot == 0 {
		p.slot = DefaultRebootTime
	}
	p.slack = time.Duration(r.BookingSlack)
	if r.BookingSlack == 0 {
		p.slack = p.slot / 4
	}
	switch {
	case p.order == "" && p.scheduled:
		p.order = OrderJobEnd // without wlm.Scheduler: rolling by expected ends
	case p.order == "":
		p.order = OrderListed
	}
	if r.MaxFailures > 0 {
		p.maxFailures = r.MaxFailures
	}
	return p
}

// budget returns the most failed nodes a session of n nodes tolerates
// before it stops taking new nodes; -1: no limit.
func (p *policy) budget(n int) int {
	return Rollout{MaxFailures: max(p.maxFailures, 0), MaxFailurePercent: p.maxPercent}.failureBudget(n)
}

// canarySize returns the size of batch number b (from 1) and whether it is
// a canary batch.
func (p *policy) canarySize(b int) (int, bool) {
	if b >= 1 && b <= len(p.canary) {
		return p.canary[b-1], true
	}
	return 0, false
}

// summarises reports whether batch b gets a summary when it is over:
// every step of a policy with a barrier, and the canary batches of a
// rolling one.
func (p *policy) summarises(b int) bool {
	_, canary := p.canarySize(b)
	return !p.rolling || canary
}

// DefaultRebootTime is the scheduled strategy's expected time out of
// service of a node taken (Rollout.RebootTime not set).
const DefaultRebootTime = 15 * time.Minute

// admissible returns the room to fill now: all of it when nothing is in
// flight, or once it is a tenth of the step; none before (rolling). Nodes
// come back one by one; ranking the candidates again for each one would
// cost a look at the whole lookahead per node.
func (p *policy) admissible(room, inFlight int) int {
	// (The scheduled strategy looks at its candidates every time
	// anyway, and a node due waits idle: it takes them at once.)
	if !p.rolling || p.scheduled || inFlight == 0 || room >= max(1, p.step/10) {
		return room
	}
	return 0
}

// candidateLimit is how many pending nodes are observed and ranked for a
// batch of room nodes: exactly the batch in list order (the original's
// fixed slice), else the lookahead.
func (p *policy) candidateLimit(room int) int {
	if p.order == OrderListed && !p.rolling {
		return room
	}
	return p.lookahead
}

// gate says whether the session may take new nodes now, given the nodes
// in flight after the decision so far (inFlight) and the current batch
// number: how many (room), or why none (a stage to show while nothing is
// in flight; "" if the reason is not worth a stage of its own).
//
// Every hold lives here, for every policy: the failed group still to be
// cleared, cancel and abort, pause, a canary batch not over, approval,
// the cap. Maintenance windows and boot requests the orchestrator has not
// accepted are checked by the admission stage, which knows the time and
// the observation.
func (p *policy) gate(s *Session, batch, inFlight int) (room int, held Stage) {
	pr := &s.Progress
	switch {
	case len(pr.FailedToClear) > 0, pr.Cancel, pr.Abort != "":
		return 0, ""
	case pr.Paused:
		return 0, StagePaused
	}
	next := batch + 1
	if size, ok := p.canarySize(next); ok {
		if inFlight > 0 {
			return 0, "" // a canary batch runs alone
		}
		return size, ""
	}
	if len(p.canary) > 0 && batch <= len(p.canary) && inFlight > 0 {
		return 0, "" // the last canary batch is not over yet
	}
	if p.approval && !pr.Approved {
		return 0, StageApproval
	}
	if !p.rolling {
		if inFlight > 0 {
			return 0, "" // the barrier: the step is not over yet
		}
		return p.step, ""
	}
	return max(0, p.step-inFlight), ""
}
