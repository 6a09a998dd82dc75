package crus

import (
	"fmt"
	"strings"
	"time"

	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// Draining: a node taken is drained in the workload manager and waits for
// its jobs to end. Its state is read again at every observation, and the
// drain is repeated whenever it is not in effect (lost, or undone by
// someone): a node is only ever rebooted once an observation shows it
// drained and running nothing (plan_boot.go).

// advance moves node i (n) on according to what was observed: the
// per-node half of every stage.
func (p *planner) advance(i int, n *NodeRecord) {
	s := p.s
	switch n.Phase {
	case PhasePending:
		switch {
		case s.Progress.Cancel:
			p.done(n, OutcomeUntouched, "session cancelled before this node's step began")
		case s.Progress.Abort != "":
			p.done(n, OutcomeUntouched, "session aborted before this node was taken: "+s.Progress.Abort)
		}
	case PhaseQuiescing, PhaseQuiesced:
		p.quiesce(n)
	case PhaseBooting:
		p.verifyBoot(i, n)
	case PhaseReturning:
		p.verifyReturn(n)
	case PhaseResuming:
		p.verifyResume(n)
	case PhaseReleasing:
		p.release(n)
	case PhaseFailing, PhaseDone:
		// Failing nodes are handled by emitFailing; done nodes rest.
	}
}

// quiesce follows a node that was drained and has not been rebooted yet:
// it is quiesced once observed drained (running nothing) with this
// session's drain; the drain is repeated if it is not in effect.
func (p *planner) quiesce(n *NodeRecord) {
	w, seen := p.obs.Nodes[n.XName]
	gone, unknown := p.obs.Unknown[n.XName]
	switch {
	case p.s.Progress.Cancel:
		p.releaseFor(n, reasonCancelled)
	case unknown:
		p.fail(n, "disappeared from the workload manager: "+gone)
	case !seen:
	case w.Fail && !p.ours(w):
		p.done(n, OutcomeSkipped, "failed by someone else during the session: "+p.describeNode(w))
	case w.Drain && !p.ours(w):
		p.done(n, OutcomeSkipped, "drained by someone else during the session: "+p.describeNode(w))
	case w.Drained():
		if n.Phase != PhaseQuiesced || !n.Undrained.IsZero() {
			p.change(Change{XName: n.XName, Phase: PhaseQuiesced, Drain: DrainHeld})
		}
	case w.Draining():
		if n.Phase != PhaseQuiescing || !n.Undrained.IsZero() { // a job got onto it after all
			p.change(Change{XName: n.XName, Phase: PhaseQuiescing, Drain: DrainHeld})
		}
		p.drainTimeout(n)
	default: // not drained: the drain was lost, or someone resumed it
		if n.Phase != PhaseQuiescing || n.Undrained.IsZero() {
			p.change(Change{XName: n.XName, Phase: PhaseQuiescing, Drain: DrainLost})
		}
		p.nudges.drain = append(p.nudges.drain, n.XName)
		// Counted from the later of crus's first request and the moment
		// the node was first seen undrained since it last showed the
		// drain, so that a node an operator resumes after hours drained
		// is not named at once.
		if since := n.DrainRequested; !since.IsZero() && !n.Undrained.IsZero() {
			if n.Undrained.After(since) {
				since = n.Undrained
			}
			if p.obs.Now.Sub(since) >= drainNotTaking {
				p.undrained = append(p.undrained, n.XName)
			}
		}
	}
}

// drainNotTaking is how long after its first drain request (or after it
// was first seen undrained again, if later) a node may still read not
// drained before the session says so (condition
// drain_not_taking): a workload manager answers a drain in seconds, so
// one that still shows the node undrained then either lost every request
// since, has someone resuming it, or has an adapter whose Drain does not
// do what it says.
const drainNotTaking = 10 * time.Minute

// drainTimeout releases or fails a node still busy at its drain timeout,
// or asks to plan again when the timeout falls due.
func (p *planner) drainTimeout(n *NodeRecord) {
	t := p.pol.drainTime
	if t <= 0 || p.s.Progress.Cancel {
		return
	}
	since := n.drainClock()
	if !n.Undrained.IsZero() {
		since = p.obs.Now // shown again now (DrainHeld sets DrainTaken)
	}
	deadline := since.Add(t)
	switch {
	case p.obs.Now.Before(deadline):
		p.wake(deadline)
	case p.pol.drainFail:
		p.fail(n, fmt.Sprintf("still running jobs %s after its drain took effect (drain_timeout)", t))
	default:
		p.releaseFor(n, reasonDrainTimeout)
	}
}

// reasonPrefix is how every workload-manager reason crus sets for this
// session begins: "crus <id>:". A drain or fail whose reason does not
// begin so was set by someone else.
func reasonPrefix(s *Session) string { return "crus " + s.UpgradeID + ":" }

// ownedBy reports whether a workload-manager reason was set by the session
// with this id: it begins with "crus <id>:", the id matched whole (session
// "7" does not own "crus 71: ...").
func ownedBy(reason, id string) bool {
	rest, ok := strings.CutPrefix(reason, "crus ")
	return ok && strings.HasPrefix(rest, id) && strings.HasPrefix(rest[len(id):], ":")
}

// failedByCrus reports whether the node was failed (or drained) by a crus
// session, any one: its reason begins with "crus <id>:".
func failedByCrus(w *wlm.Node) bool {
	if !w.Fail && !w.Drain {
		return false
	}
	rest, ok := strings.CutPrefix(w.Reason, "crus ")
	if !ok {
		return false
	}
	id, _, ok := strings.Cut(rest, ":")
	return ok && id != "" && !strings.ContainsAny(id, " \t")
}

// ours reports whether the node's drain or fail was set by this session. A
// workload manager that reports no reason cannot tell; crus then assumes
// the state is its own.
func (p *planner) ours(w wlm.Node) bool {
	return w.Reason == "" || ownedBy(w.Reason, p.s.UpgradeID)
}

// describe describes a node in the workload manager's words, leaving out
// the reason if it is the session's own.
func (p *planner) describe(w wlm.Node) string {
	if ownedBy(w.Reason, p.s.UpgradeID) {
		return conditionOf(p.obs.Describer, w)
	}
	return describeWith(p.obs.Describer, w)
}

// describeNode describes a node and its reason in the workload manager's
// words.
func (p *planner) describeNode(w wlm.Node) string { return describeWith(p.obs.Describer, w) }

// conditionOf is the node's condition (state and flags) in d's words, or
// neutral ones if d is nil.
func conditionOf(d wlm.Describer, w wlm.Node) string {
	if d == nil {
		d = wlm.Neutral
	}
	w.Reason = ""
	return d.Describe(w)
}

// describeWith describes a node's condition in d's words, and its reason,
// cleaned and capped.
func describeWith(d wlm.Describer, w wlm.Node) string {
	if w.Reason != "" {
		return fmt.Sprintf("%s (%s)", conditionOf(d, w), text.Clean(w.Reason, text.MaxDetail))
	}
	return conditionOf(d, w)
}

func (p *planner) drainReason(step int) string {
	return fmt.Sprintf("%s rolling upgrade, step %d of %d", reasonPrefix(p.s), step, p.s.Progress.Steps)
}

// capReason cleans and caps a reason crus records for a node: it may hold
// text from a backend, and it becomes a workload-manager reason.
func capReason(r string) string { return text.Clean(r, text.MaxReason) }

func (p *planner) stateOf(w wlm.Node, seen bool) string {
	if !seen {
		return "not observed"
	}
	return p.describe(w)
}

func orNone(s string) string {
	if s == "" {
		return "no error reported"
	}
	return s
}

// deadlineOf is when a phase that began at since times out after d.
func deadlineOf(since time.Time, d Duration) time.Time { return since.Add(time.Duration(d)) }
