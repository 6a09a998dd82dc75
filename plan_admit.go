package crus

import (
	"fmt"
	"slices"
	"time"

	"github.com/crus-go/crus/wlm"
)

// Admission: which pending nodes the session takes next, and when. One
// stage for every policy: the gates (policy.gate, maintenance windows, an
// orchestrator that accepts no boot request), then the candidates in the
// policy's order, then a batch — a whole step at a time for a policy with
// a barrier, as many as there is room for when rolling.

// admit takes the next nodes, if the gates let it.
func (p *planner) admit() {
	s, obs, pol := p.s, p.obs, p.pol
	if p.d.Abort != "" || obs.InFlightOnly {
		return
	}
	inFlight := p.inFlight()
	room, held := pol.gate(s, p.d.Step, inFlight)
	if held != "" {
		if inFlight == 0 {
			p.held = held
		}
		return
	}
	if room = pol.admissible(room, inFlight); room <= 0 || (!pol.rolling && p.anyGrouped()) {
		return
	}
	if open, next := pol.windows.open(obs.Now); !open {
		if !next.IsZero() {
			p.wake(next)
		}
		if inFlight == 0 {
			p.held = StageOutsideWindow
		}
		return
	}
	if len(p.unaccepted) > 0 {
		// The boot orchestrator accepts no boot request: taking more
		// nodes would only drain them for nothing (see setConditions).
		return
	}
	switch {
	case pol.scheduled && obs.Scheduling:
		p.admitRoom = room
		p.admitScheduled(room, inFlight)
	case pol.rolling:
		p.admitRolling(p.candidates(room), room, inFlight)
	default:
		p.admitStep(room)
	}
}

// candidates returns the pending nodes that may form the next batch of
// room nodes, ranked.
func (p *planner) candidates(room int) []ranked {
	return p.rank(candidates(p.s.Progress.Nodes, p.phaseAt, p.pol.candidateLimit(room), p.firstPending))
}

// takeable reports whether a node may be taken now, and if not, why not
// (for its reason). A node in service may be taken; so may a node a crus
// session failed, when the spec asks to retry them (retry_failed).
func (p *planner) takeable(w wlm.Node) (bool, string) {
	if p.canTake(&w) {
		return true, ""
	}
	return false, p.describeNode(w)
}

// canTake is takeable without the reason.
func (p *planner) canTake(w *wlm.Node) bool {
	return w.InService() || p.pol.retryFailed && failedByCrus(w)
}

// admitRolling takes as many nodes as there is room for, in rank order,
// skipping the ones out of service.
func (p *planner) admitRolling(cands []ranked, room, inFlight int) {
	s, obs := p.s, p.obs
	_, canary := p.pol.canarySize(p.d.Step + 1)
	var taken []string
	var out []int
	for _, c := range cands {
		if len(taken) >= room {
			break
		}
		n := &s.Progress.Nodes[c.i]
		if gone, unknown := obs.Unknown[n.XName]; unknown {
			p.done(n, OutcomeSkipped, "unknown to the workload manager when its turn came: "+gone)
			continue
		}
		w, seen := p.observed(c.i)
		switch ok, _ := p.takeable(w); {
		case !seen: // not observed this time: a later decision
		case !ok:
			out = append(out, c.i)
		default:
			taken = append(taken, n.XName)
		}
	}
	if len(taken) == 0 && inFlight == 0 {
		// Only nodes out of service are left to choose from, and none
		// will return from flight: skip them rather than wait for ever.
		for _, i := range out {
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
	what := fmt.Sprintf("Batch %d", batch)
	if canary {
		what = fmt.Sprintf("Canary batch %d of %d", batch, len(p.pol.canary))
	}
	p.take(batch, taken, fmt.Sprintf("%s: quiescing %s (%d in flight, at most %d)", what, plural(len(taken), "node"), inFlight+len(taken), s.StepSize))
}

// admitStep starts the next step (or canary batch) of size nodes in rank
// order: it takes those that may be taken and skips the others, as the
// original algorithm does. If some of them have not been observed, it
// waits for the next observation. A step whose every node is skipped is
// recorded as such, and the next one is tried at once.
func (p *planner) admitStep(size int) {
	s, obs := p.s, p.obs
	for size > 0 {
		cands := p.candidates(size)
		if len(cands) == 0 {
			return
		}
		batch := cands[:min(size, len(cands))]
		for _, c := range batch {
			x := s.Progress.Nodes[c.i].XName
			if _, ok := p.observed(c.i); !ok {
				if _, ok := obs.Unknown[x]; !ok {
					return // not observed: plan again after the next observation
				}
			}
		}
		step := p.d.Step + 1
		_, canary := p.pol.canarySize(step)
		var taken []string
		skipped := 0
		for _, c := range batch {
			n := &s.Progress.Nodes[c.i]
			w, _ := p.observed(c.i)
			renumber := step // recorded only where it differs (the original's slices are numbered at creation)
			if n.Step == step {
				renumber = 0
			}
			if gone, unknown := obs.Unknown[n.XName]; unknown {
				p.change(Change{XName: n.XName, Phase: PhaseDone, Outcome: OutcomeSkipped, Step: renumber, Reason: capReason("unknown to the workload manager at the start of its step: " + gone)})
				skipped++
			} else if ok, why := p.takeable(w); !ok {
				p.change(Change{XName: n.XName, Phase: PhaseDone, Outcome: OutcomeSkipped, Step: renumber, Reason: capReason("not in service at the start of its step: " + why)})
				skipped++
			} else {
				taken = append(taken, n.XName)
			}
		}
		p.d.Step, p.d.Steps = step, max(p.d.Steps, step)
		p.d.StepClosed = false
		what := fmt.Sprintf("Step %d of %d", step, p.d.Steps)
		if canary {
			what = fmt.Sprintf("Step %d of %d (canary)", step, p.d.Steps)
		}
		if len(taken) == 0 {
			p.d.Messages = append(p.d.Messages, fmt.Sprintf("%s: all %s skipped (not in service)", what, plural(skipped, "node")))
			p.d.StepClosed = true
			var held Stage
			if size, held = p.pol.gate(s, p.d.Step, 0); held != "" {
				p.held = held
				return
			}
			continue
		}
		slices.Sort(taken)
		msg := fmt.Sprintf("%s: quiescing %s", what, plural(len(taken), "node"))
		if skipped > 0 {
			msg += fmt.Sprintf(" (%d skipped: not in service)", skipped)
		}
		p.take(step, taken, msg)
		return
	}
}

// take puts nodes in flight as batch (step) number batch: into the
// upgrading group, then drained.
func (p *planner) take(batch int, taken []string, msg string) {
	s := p.s
	for _, x := range taken {
		p.change(Change{XName: x, Phase: PhaseQuiescing, Step: batch, Group: GroupAdded})
	}
	p.d.StepClosed = false
	p.d.Messages = append(p.d.Messages, msg)
	p.d.Actions = append(p.d.Actions,
		Action{Kind: ActAddMembers, Label: s.UpgradingLabel, Nodes: taken, Why: fmt.Sprintf("step %d: put the step's nodes in the upgrading group", batch)},
		Action{Kind: ActDrain, Nodes: taken, Reason: p.drainReason(batch), SkipFailed: true, Why: fmt.Sprintf("step %d: quiesce the step's nodes", batch)},
	)
}

// ranked is a candidate for admission with its rank.
type ranked struct {
	i       int
	retries int
	class   int       // 0 first
	end     time.Time // expected end of its jobs (job_end)
}

// rank orders the candidates by the policy's order, from what was
// observed: nodes put back less often first, then by order, then in list
// order. Nodes changed by this decision wait for a later one. Without job
// ends (no wlm.JobEnder, or the read failed) job_end ranks as idle_first.
func (p *planner) rank(cands []int) []ranked {
	s, obs := p.s, p.obs
	far := obs.Now.Add(100 * 365 * 24 * time.Hour)
	out := make([]ranked, 0, len(cands))
	at := p.viewFor()
	for _, i := range cands {
		if p.chg[i] != 0 {
			continue
		}
		n := &s.Progress.Nodes[i]
		r := ranked{i: i, retries: n.Retries}
		w, seen, k := p.nodeRef(at, i, n.XName)
		switch p.pol.order {
		case OrderIdleFirst, OrderJobEnd:
			switch {
			case !seen || !w.InService():
				r.class = 2
			case !w.Busy():
				r.end = obs.Now
			case p.pol.order == OrderIdleFirst || obs.JobEnds == nil:
				r.class = 1
			default:
				r.end = far
				if e, ok := p.endAt(at, k, n.XName); ok {
					r.end = e
					if e.Before(obs.Now) {
						r.end = obs.Now // overdue: about to end
					}
				}
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ranked) int {
		switch {
		case a.retries != b.retries:
			return a.retries - b.retries
		case a.class != b.class:
			return a.class - b.class
		}
		if c := a.end.Compare(b.end); c != 0 {
			return c
		}
		return a.i - b.i
	})
	return out
}

// checkBudget aborts the session once more of its nodes have failed than
// its failure budget allows: no new node is taken (the pending ones are
// left untouched, in service); the nodes in flight finish.
func (p *planner) checkBudget() {
	s := p.s
	if s.Progress.Abort != "" || s.Progress.Cancel || p.d.Abort != "" {
		return
	}
	budget := p.pol.budget(len(s.Progress.Nodes))
	if budget < 0 || p.failures <= budget {
		return
	}
	p.abort(fmt.Sprintf("%s failed, more than the failure budget of %d", plural(p.failures, "node"), budget),
		"Failure budget exceeded")
}

// abort stops the session from taking new nodes: the pending ones are
// left untouched, in service; the nodes in flight finish.
func (p *planner) abort(why, title string) {
	s := p.s
	p.d.Abort = why
	p.d.Messages = append(p.d.Messages, title+": "+why+"; no new node is taken, nodes in flight finish, the others stay in service")
	for i := range s.Progress.Nodes {
		if p.phaseAt(i) == PhasePending {
			p.done(&s.Progress.Nodes[i], OutcomeUntouched, "session aborted before this node was taken: "+why)
		}
	}
}
