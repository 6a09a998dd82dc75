package crus

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Condition is something that holds a session back or degrades its
// decisions for as long as it lasts: a backend that cannot be read, boot
// requests the boot orchestrator does not accept. The planner sets and
// clears conditions from each observation (Progress.Conditions holds the
// current ones); each one's appearance and end is also a message.
type Condition struct {
	Kind    ConditionKind `json:"kind"`
	Since   time.Time     `json:"since"`
	Message string        `json:"message"`
}

// ConditionKind names a Condition.
type ConditionKind string

// Condition kinds.
const (
	// CondNodesUnreadable: the workload manager could not be read; nodes
	// in flight wait (none is failed for it).
	CondNodesUnreadable ConditionKind = "nodes_unreadable"
	// CondBootsUnreadable: the status of boot sessions could not be read;
	// booting nodes wait.
	CondBootsUnreadable ConditionKind = "boots_unreadable"
	// CondGroupUnreadable: the upgrading group could not be read; boots and
	// the end of the session wait.
	CondGroupUnreadable ConditionKind = "group_unreadable"
	// CondJobEndsUnavailable: expected job ends could not be read; the
	// job_end order falls back to idle first, then list order.
	CondJobEndsUnavailable ConditionKind = "job_ends_unavailable"
	// CondBookingsUnreadable: the session's reservations could not be read
	// (the scheduled strategy); the executor moves them on from what it
	// last read and changed since (they stand as they are until its first
	// read), and nodes are still taken at their slots.
	CondBookingsUnreadable ConditionKind = "bookings_unreadable"
	// CondBookingRefused: the workload manager refused to book nodes for
	// the user crus runs as (Slurm: not root, its SlurmUser or an
	// operator); the scheduled strategy takes nodes as rolling by expected
	// job ends, and the executor asks again every 10 minutes, so the
	// condition ends once the right is granted.
	CondBookingRefused ConditionKind = "booking_refused"
	// CondSteeringFailed: the workload manager could not steer new jobs
	// away from the nodes the scheduled strategy has still to take
	// (wlm.Steerer); they may take jobs that put off their reboots. The
	// executor tries again a minute later (ten after a refusal); nothing
	// else waits for it.
	CondSteeringFailed ConditionKind = "steering_failed"
	// CondBootNotAccepted: the boot orchestrator has not accepted a boot
	// request; its nodes wait drained, no new node is taken, and after
	// boot_timeout they return to service to be taken again later.
	CondBootNotAccepted ConditionKind = "boot_not_accepted"
	// CondDrainNotTaking: nodes the session drained have read not drained
	// for 10 minutes (counted from the first request, or from when they
	// were first seen undrained again after showing the drain), though
	// crus asks again at every observation: the workload manager loses the drains,
	// someone resumes the nodes, or its adapter's Drain does nothing.
	// The nodes wait; nothing else does.
	CondDrainNotTaking ConditionKind = "drain_not_taking"
)

// partCondition is the condition a part of the observation that could
// not be read gives.
var partCondition = map[Part]ConditionKind{
	PartNodes:     CondNodesUnreadable,
	PartBoots:     CondBootsUnreadable,
	PartUpgrading: CondGroupUnreadable,
	PartJobEnds:   CondJobEndsUnavailable,
	PartBookings:  CondBookingsUnreadable,
}

// isPartCondition reports whether a condition is that of a part of the
// observation that could not be read.
func isPartCondition(k ConditionKind) bool {
	for _, c := range partCondition {
		if c == k {
			return true
		}
	}
	return false
}

// setConditions derives the session's conditions from this decision's
// observation, keeping the time each began, and writes a message when one
// begins or ends.
func (p *planner) setConditions() {
	var now []Condition
	add := func(k ConditionKind, msg string) {
		now = append(now, Condition{Kind: k, Since: p.obs.Now, Message: capReason(msg)})
	}
	if !p.d.Done {
		parts := []struct {
			part Part
			what string
		}{
			{PartNodes, "The workload manager could not be read (%s): nodes in flight wait; none is failed for it"},
			{PartBoots, "The status of boot sessions could not be read (%s): booting nodes wait"},
			{PartUpgrading, "The upgrading group could not be read (%s): boots and the end of the session wait"},
			{PartJobEnds, "Expected job ends could not be read (%s): nodes are ranked idle first, then in list order"},
			{PartBookings, "The session's reservations could not be read (%s): they are moved on from what was last read; nodes are still taken at their slots"},
		}
		for _, c := range parts {
			if err, ok := p.obs.Errors[c.part]; ok {
				add(partCondition[c.part], fmt.Sprintf(c.what, err))
			}
		}
		if len(p.unaccepted) > 0 {
			add(CondBootNotAccepted, p.unacceptedMessage())
		}
		if len(p.undrained) > 0 {
			slices.Sort(p.undrained)
			add(CondDrainNotTaking, fmt.Sprintf("The workload manager has shown %s not drained for %s or more after crus asked (%s), though crus asks again at every observation: its drains are lost, someone resumes the nodes, or its adapter's Drain does not drain",
				plural(len(p.undrained), "node"), drainNotTaking, abbreviate(p.undrained, 5)))
		}
		if p.pol.scheduled && p.obs.BookingRefused != "" {
			add(CondBookingRefused, fmt.Sprintf("The workload manager refuses reservations to the user crus runs as (%s): nodes are taken as in rolling by expected job ends; crus asks again every %s", p.obs.BookingRefused, refusalRetry))
		}
		if p.pol.scheduled && p.obs.SteeringFailed != "" {
			add(CondSteeringFailed, fmt.Sprintf("New jobs could not be steered away from the nodes still to take (%s): they may take jobs that put off their reboots; crus tries again every %s (%s after a refusal)", p.obs.SteeringFailed, steerRetry, refusalRetry))
		}
	}
	old := p.s.Progress.Conditions
	if p.obs.InFlightOnly && !p.d.Done {
		// A look at the nodes in flight alone reads no job ends and no
		// reservations, and only the boot sessions with news: it cannot
		// tell that a part is readable again. An outage ends at a full
		// observation; ended here, it would begin again at the next one,
		// a pair of messages every poll.
		for _, c := range old {
			if isPartCondition(c.Kind) && !slices.ContainsFunc(now, func(n Condition) bool { return n.Kind == c.Kind }) {
				now = append(now, c)
			}
		}
	}
	for k := range now {
		if i := slices.IndexFunc(old, func(c Condition) bool { return c.Kind == now[k].Kind }); i >= 0 {
			now[k].Since = old[i].Since
		} else {
			p.d.Messages = append(p.d.Messages, now[k].Message)
		}
	}
	for _, c := range old {
		if !slices.ContainsFunc(now, func(n Condition) bool { return n.Kind == c.Kind }) {
			p.d.Messages = append(p.d.Messages, conditionOver(c, p.obs.Now))
		}
	}
	slices.SortFunc(now, func(a, b Condition) int { return strings.Compare(string(a.Kind), string(b.Kind)) })
	p.d.Conditions = now
}

// unacceptedMessage describes the boot requests the orchestrator has not
// accepted.
func (p *planner) unacceptedMessage() string {
	names := sortedKeys(p.unaccepted)
	var nodes []string
	var lastErr string
	var first time.Time
	firstSet := false
	for _, i := range p.activeNodes() {
		n := &p.s.Progress.Nodes[i]
		if n.Phase != PhaseBooting || p.unaccepted[n.Boot] == nil {
			continue
		}
		nodes = append(nodes, n.XName)
		if n.LastError != "" && lastErr == "" {
			lastErr = n.LastError
		}
		if !firstSet || n.RebootRequested.Before(first) {
			first, firstSet = n.RebootRequested, true
		}
	}
	what := "boot session " + names[0]
	if len(names) > 1 {
		what = fmt.Sprintf("%d boot sessions (%s)", len(names), abbreviate(names, 3))
	}
	return fmt.Sprintf("The boot orchestrator has not accepted %s (%s): %s wait drained and no new node is taken; if it is still not accepted at %s they return to service, to be taken again later",
		what, orNone(lastErr), plural(len(nodes), "node"), deadlineOf(first, p.s.BootTimeout).UTC().Format(time.RFC3339))
}

// conditionOver is the message that says a condition has ended.
func conditionOver(c Condition, now time.Time) string {
	what := map[ConditionKind]string{
		CondNodesUnreadable:    "The workload manager can be read again",
		CondBootsUnreadable:    "The status of boot sessions can be read again",
		CondGroupUnreadable:    "The upgrading group can be read again",
		CondJobEndsUnavailable: "Expected job ends can be read again",
		CondBootNotAccepted:    "The boot orchestrator accepts boot requests again, or their nodes were returned to service",
		CondDrainNotTaking:     "The workload manager shows the session's drains in effect",
	}[c.Kind]
	if what == "" {
		what = "Over: " + string(c.Kind)
	}
	return fmt.Sprintf("%s (after %s)", what, now.Sub(c.Since).Round(time.Second))
}
