package crus

import (
	"fmt"
	"time"

	"github.com/crus-go/crus/wlm"
)

// Verification: a node its boot session reports booted is upgraded only
// once the workload manager shows it really rebooted (a boot time later
// than the reboot request, or, without boot times, idle and responding
// again) and back in service. crus resumes it (its drain survives the
// reboot); a node that does not come back within return_timeout is
// failed. A node someone else drained or failed meanwhile is left so.

// verifyReturn follows a node booted by its boot session, until the
// workload manager shows it rebooted.
func (p *planner) verifyReturn(n *NodeRecord) {
	s, obs := p.s, p.obs
	w, seen := obs.Nodes[n.XName]
	gone, unknown := obs.Unknown[n.XName]
	deadline := deadlineOf(n.Booted, s.ReturnTimeout)
	switch {
	case unknown:
		p.fail(n, "disappeared from the workload manager: "+gone)
	case seen && p.rebooted(n, w) && w.InService():
		p.done(n, OutcomeUpgraded, "rebooted and back in service")
	case seen && p.rebooted(n, w) && (w.Drain || w.Fail) && !p.ours(w):
		p.done(n, OutcomeUpgraded, "rebooted; left out of service by someone else: "+p.describeNode(w))
	case seen && p.rebooted(n, w):
		p.change(Change{XName: n.XName, Phase: PhaseResuming})
		p.nudges.resume = append(p.nudges.resume, n.XName)
	case obs.Now.After(deadline) && seen:
		// (Not observed: the workload manager cannot be read. An outage
		// is never a node's failure: wait.)
		state := p.describe(w)
		if obs.BootTimes && !w.BootTime.IsZero() && w.Responding() {
			state += fmt.Sprintf(", last boot %s is before the reboot request", w.BootTime.UTC().Format(time.RFC3339))
		}
		p.fail(n, fmt.Sprintf("did not return to the workload manager within %s of booting (%s)", s.ReturnTimeout, state))
	default:
		p.wake(deadline)
	}
}

// verifyResume follows a node crus resumed after its reboot, until it is
// in service.
func (p *planner) verifyResume(n *NodeRecord) {
	s, obs := p.s, p.obs
	w, seen := obs.Nodes[n.XName]
	gone, unknown := obs.Unknown[n.XName]
	deadline := deadlineOf(n.Booted, s.ReturnTimeout)
	switch {
	case unknown:
		p.fail(n, "disappeared from the workload manager: "+gone)
	case seen && w.InService():
		p.done(n, OutcomeUpgraded, "rebooted and back in service")
	case seen && (w.Drain || w.Fail) && !p.ours(w):
		p.done(n, OutcomeUpgraded, "rebooted; left out of service by someone else: "+p.describeNode(w))
	case obs.Now.After(deadline) && seen && !resumeUndelivered(n) && !obs.TakenUp:
		// Resumed but not in service (down, not responding, drained
		// still), or the resume refused: the node's failure. A resume that
		// could not be delivered is sent again, and so is one an earlier
		// run recorded (it may have stopped before sending it), before
		// the node is judged.
		p.fail(n, fmt.Sprintf("could not be resumed within %s of booting (%s; %s)", s.ReturnTimeout, p.stateOf(w, seen), orNone(n.LastError)))
	default:
		p.nudges.resume = append(p.nudges.resume, n.XName)
		p.wake(deadline)
	}
}

// rebooted reports whether the node has really rebooted since its reboot
// was requested.
func (p *planner) rebooted(n *NodeRecord, w wlm.Node) bool {
	if !w.Responding() || w.State == wlm.StateUnknown {
		return false
	}
	if !p.obs.BootTimes {
		return w.State == wlm.StateIdle
	}
	return !w.BootTime.IsZero() && w.BootTime.After(n.RebootRequested.Add(-p.obs.BootTimeSlack))
}
