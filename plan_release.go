package crus

import (
	"fmt"
	"strings"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/text"
)

// Release and the end of a session: nodes that leave flight without a
// reboot are resumed (released), nodes that failed are put in the failed
// group and failed in the workload manager, nodes done leave the upgrading
// group, steps are summarised, and the session finishes once nothing is
// in flight, grouped or pending.

// Reasons of nodes released (resumed) without a reboot. Their outcome
// follows from the reason: see release.
const (
	// reasonCancelled: the session was cancelled before the node's reboot.
	reasonCancelled = "session cancelled before this node's reboot"
	// reasonDrainTimeout: it still ran jobs at its drain timeout; it waits
	// for a later turn.
	reasonDrainTimeout = "still running jobs at the drain timeout; released to be tried again later"
	// reasonBootNotAccepted: the boot orchestrator did not accept its boot
	// request in time; it waits for a later turn.
	reasonBootNotAccepted = "its boot request was not accepted by the boot orchestrator; released to be tried again later"
	// reasonBootRefused: the boot orchestrator refused its boot request
	// for good; the session is aborted.
	reasonBootRefused = "its boot request was refused by the boot orchestrator"
)

// releaseFor puts a node that was not rebooted back in service, with the
// reason why.
func (p *planner) releaseFor(n *NodeRecord, reason string) {
	p.change(Change{XName: n.XName, Phase: PhaseReleasing, Reason: capReason(reason)})
	p.nudges.resume = append(p.nudges.resume, n.XName)
}

// release follows a node being returned to service without a reboot.
// Released because of a cancel or an abort: untouched; because it could
// not be taken after all: skipped. Either way, back in service unless
// someone else holds it. Released to be tried again later (a drain
// timeout, a boot request not accepted): back to pending, unless the
// session stops taking nodes (untouched).
func (p *planner) release(n *NodeRecord) {
	s, obs := p.s, p.obs
	stopping := s.Progress.Cancel || s.Progress.Abort != "" || p.d.Abort != ""
	later := n.Reason == reasonDrainTimeout || strings.HasPrefix(n.Reason, reasonBootNotAccepted)
	outcome := OutcomeSkipped
	retry := false
	switch {
	case n.Reason == reasonCancelled, strings.HasPrefix(n.Reason, reasonBootRefused):
		outcome = OutcomeUntouched
	case later && stopping:
		outcome = OutcomeUntouched
	case later:
		retry = true
	}
	w, seen := obs.Nodes[n.XName]
	gone, unknown := obs.Unknown[n.XName]
	deadline := deadlineOf(n.Since, s.ReturnTimeout)
	switch {
	case unknown:
		p.done(n, OutcomeSkipped, n.Reason+"; the node then disappeared from the workload manager: "+gone)
	case retry && seen && !w.Drain && !w.Fail:
		p.change(Change{XName: n.XName, Phase: PhasePending, Retry: true})
	case seen && w.InService():
		p.done(n, outcome, n.Reason+"; back in service")
	case seen && (w.Drain || w.Fail) && !p.ours(w):
		p.done(n, OutcomeSkipped, n.Reason+"; left out of service by someone else: "+p.describeNode(w))
	case seen && !w.Drain && !w.Fail:
		// Resumed, not responding yet: nothing more crus can do.
		p.done(n, outcome, n.Reason+"; resumed ("+conditionOf(p.obs.Describer, w)+")")
	case obs.Now.After(deadline) && seen && !resumeUndelivered(n):
		p.done(n, OutcomeSkipped, fmt.Sprintf("%s; could not be returned to service within %s (%s; %s)", n.Reason, s.ReturnTimeout, p.stateOf(w, seen), orNone(n.LastError)))
	default:
		// Not yet, or the workload manager cannot be read or reached: an
		// outage never leaves a node drained; the resume is sent again.
		p.nudges.resume = append(p.nudges.resume, n.XName)
		p.wake(deadline)
	}
}

// resumeUndelivered reports whether the node's last resume could not be
// delivered (the workload manager was not reached), as opposed to
// delivered, or refused by it: only then does crus keep sending it past
// the return timeout.
func resumeUndelivered(n *NodeRecord) bool {
	return strings.HasPrefix(n.LastError, lastErrResumeFailed)
}

// emitNudges repeats the actions whose effect is not visible yet.
func (p *planner) emitNudges() {
	s := p.s
	if len(p.nudges.drain) > 0 {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActDrain, Nodes: p.nudges.drain, Reason: p.drainReason(s.Progress.Step),
			Why: "drain requested but not in effect",
		})
	}
	if len(p.nudges.resume) > 0 {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActResume, Nodes: p.nudges.resume,
			Why: "return nodes to service",
		})
	}
	p.d.Actions = append(p.d.Actions, p.nudges.reboot...)
}

// emitFailing issues the actions that fail nodes: each puts its nodes in
// the failed group and fails them in the workload manager, with one reason
// per action. Settle marks them done once neither call failed for a
// reason that retrying may fix.
func (p *planner) emitFailing() {
	var byReason map[string][]string
	for _, i := range p.activeNodes() {
		if p.phaseAt(i) != PhaseFailing {
			continue
		}
		n := &p.s.Progress.Nodes[i]
		reason := n.Reason
		if c := p.changeOf(i); c != nil && c.Reason != "" {
			reason = c.Reason
		}
		if byReason == nil {
			byReason = map[string][]string{}
		}
		byReason[reason] = append(byReason[reason], n.XName)
	}
	// One fail action per distinct reason, so each node carries its own.
	for _, r := range sortedKeys(byReason) {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActFail, Label: p.s.FailedLabel, Nodes: byReason[r], Reason: text.Cap(reasonPrefix(p.s)+" "+r, text.MaxReason),
			Why: "record failed nodes in the failed group and take them out of service",
		})
	}
}

// emitUngroup removes from the upgrading group the nodes that have left
// flight. The original algorithm (and any boot limited by the label) waits
// while a boot session may still read the group: BOS reads it while the
// session is pending.
func (p *planner) emitUngroup() {
	if (p.pol.classic || p.pol.limitLabel) && p.bootPending() {
		return
	}
	var nodes []string
	for _, i := range p.activeNodes() {
		if p.groupedAt(i) && !p.phaseAt(i).InFlight() {
			nodes = append(nodes, p.s.Progress.Nodes[i].XName)
		}
	}
	if len(nodes) > 0 {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActRemoveMembers, Label: p.s.UpgradingLabel, Nodes: nodes,
			Why: "nodes done with their step leave the upgrading group",
		})
	}
}

// bootPending reports whether a boot session in use may not have read the
// upgrading group yet.
func (p *planner) bootPending() bool {
	for _, i := range p.activeNodes() {
		n := &p.s.Progress.Nodes[i]
		if n.Phase != PhaseBooting {
			continue
		}
		if b, ok := p.obs.Boots[n.Boot]; !ok || b.Phase == bos.PhasePending {
			return true
		}
	}
	return false
}

// summariseStep writes the message that closes the current step once none
// of its nodes is in flight any more (for a policy with a barrier, and for
// canary batches).
func (p *planner) summariseStep() {
	s := p.s
	step := s.Progress.Step
	if step == 0 || p.d.StepClosed || !p.pol.summarises(step) {
		return
	}
	var c Counts
	for _, i := range p.activeNodes() {
		if s.Progress.Nodes[i].Step == step && p.phaseAt(i).InFlight() {
			return
		}
	}
	for i := range s.Progress.Nodes {
		n := &s.Progress.Nodes[i]
		if n.Step != step || p.phaseAt(i) != PhaseDone {
			continue
		}
		o := n.Outcome
		if c := p.changeOf(i); c != nil {
			o = c.Outcome
		}
		c.add(o)
	}
	p.d.StepClosed = true
	p.d.Messages = append(p.d.Messages, fmt.Sprintf("Step %d of %d complete: %d upgraded, %d failed, %d skipped, %d untouched",
		step, s.Progress.Steps, c.Upgraded, c.Failed, c.Skipped, c.Untouched))
}

// finish runs when no node is in flight, grouped or pending: it checks the
// upgrading group holds none of the session's nodes, then ends.
func (p *planner) finish() {
	s := p.s
	p.d.Stage = StageCleanup
	if !p.obs.UpgradingObserved {
		return // observe the group first
	}
	// The session's nodes it took (and so may have put in the group) are
	// removed; any other member — a stranger, or a node of the session it
	// never took, such as one out of service at its start — is left alone.
	var ours, strangers []string
	for _, x := range p.obs.Upgrading {
		if n := s.Node(x); n != nil && !n.DrainRequested.IsZero() {
			ours = append(ours, x)
		} else {
			strangers = append(strangers, x)
		}
	}
	if len(ours) > 0 {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActRemoveMembers, Label: s.UpgradingLabel, Nodes: ours,
			Why: "cleanup: the upgrading group must be empty of the session's nodes",
		})
		return
	}
	if !p.unbookAll() {
		return
	}
	c := s.Counts()
	for _, ch := range p.d.Changes {
		if ch.Phase == PhaseDone && s.Node(ch.XName).Phase != PhaseDone {
			c.add(ch.Outcome)
		}
	}
	if len(strangers) > 0 {
		p.d.Messages = append(p.d.Messages, fmt.Sprintf("The upgrading group holds %s that %s not part of this session's work; left alone: %s",
			plural(len(strangers), "node"), isAre(len(strangers)), abbreviate(strangers, 10)))
	}
	p.d.Done = true
	p.d.Stage = StageDone
	p.d.Result = ResultComplete
	verb := "Upgrade session completed"
	switch {
	case s.Progress.Cancel:
		p.d.Result = ResultCancelled
		verb = "Upgrade session cancelled"
	case s.Progress.Abort != "" || p.d.Abort != "":
		p.d.Result = ResultAborted
		verb = "Upgrade session aborted"
	}
	p.d.Messages = append(p.d.Messages, fmt.Sprintf("%s: %d upgraded, %d failed, %d skipped, %d untouched",
		verb, c.Upgraded, c.Failed, c.Skipped, c.Untouched))
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// setStage derives the session stage from the phases of the nodes in
// flight, and writes a message at each step milestone.
func (p *planner) setStage() {
	count := map[Phase]int{}
	for _, i := range p.active {
		if ph := p.phaseAt(i); ph.InFlight() {
			count[ph]++
		}
	}
	stage := StageStarting
	switch {
	case count[PhaseQuiescing] > 0:
		stage = StageQuiescing
	case count[PhaseQuiesced] > 0:
		stage = StageQuiesced
	case count[PhaseBooting] > 0:
		stage = StageBooting
	case p.booted, count[PhaseFailing] > 0:
		stage = StageBooted
	case count[PhaseReturning]+count[PhaseResuming] > 0:
		stage = StageWLMWaiting
	case count[PhaseReleasing] > 0:
		stage = StageCleanup
	}
	if p.booted {
		var ok, failed int
		for _, c := range p.d.Changes {
			switch c.Phase {
			case PhaseReturning:
				ok++
			case PhaseFailing:
				failed++
			}
		}
		if p.pol.rolling {
			p.d.Messages = append(p.d.Messages, fmt.Sprintf("Boot sessions complete: %d booted, %d failed; waiting for the workload manager", ok, failed))
		} else {
			p.d.Messages = append(p.d.Messages, fmt.Sprintf("Step %d: boot session complete: %d booted, %d failed; waiting for the workload manager", p.d.Step, ok, failed))
		}
	}
	if stage == StageStarting && p.held != "" {
		stage = p.held
		if stage != p.s.Progress.Stage {
			p.d.Messages = append(p.d.Messages, heldMessage(stage))
		}
	}
	p.d.Stage = stage
}

// heldMessage says why a session takes no new node.
func heldMessage(stage Stage) string {
	switch stage {
	case StagePaused:
		return "Session paused: no new node is taken until it is resumed"
	case StageApproval:
		return "Canary batches done: waiting for approval before taking more nodes"
	case StageOutsideWindow:
		return "Outside the maintenance windows: waiting for the next one before taking more nodes"
	}
	return "Waiting: " + string(stage)
}
