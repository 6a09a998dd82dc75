package crus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/text"
)

// ActionResult is what came of one action.
type ActionResult struct {
	Action Action
	// Nodes are the nodes the action was actually applied to (after
	// SkipFailed).
	Nodes []string
	// PerNode maps nodes the action failed for to the error.
	PerNode map[string]error
	// Err is a failure of the call as a whole, after retries.
	Err error
}

// Settle turns the result of an action into record changes. Like Plan it is
// pure. What a failure means depends on the action: a node that cannot be
// put in the upgrading group or drained is skipped (it was not taken out of
// service); a boot request refused for good aborts the session and returns
// its nodes to service (a node never rebooted is never failed); a resume
// that does not take is tried again until the return timeout; a node the
// failed group or the workload manager refuses is still failed, with the
// refusal noted. Transient failures of a whole call change nothing but the
// nodes' last error: the next plan issues the action again.
func Settle(s *Session, r ActionResult) Decision {
	d := decisionFor(s)
	a := r.Action
	permanent := r.Err != nil && batch.IsPermanent(r.Err)
	errFor := func(x string) error {
		if r.Err != nil {
			return r.Err
		}
		return r.PerNode[x]
	}
	each := func(f func(n *NodeRecord, err error)) {
		for _, x := range r.Nodes {
			if n := s.Node(x); n != nil {
				f(n, errFor(x))
			}
		}
	}
	switch {
	case a.Kind == ActRemoveMembers && a.Label == s.FailedLabel && len(s.Progress.FailedToClear) > 0:
		if r.Err == nil || permanent {
			d.ClearedFailed = true
			msg := fmt.Sprintf("Cleared %s from the failed group %q", plural(len(r.Nodes)-len(r.PerNode), "node"), s.FailedLabel)
			if r.Err != nil || len(r.PerNode) > 0 {
				msg += fmt.Sprintf(" (errors: %s)", errText(errors.Join(r.Err, joinPerNode(r.PerNode))))
			}
			d.Messages = append(d.Messages, msg)
		}

	case a.Kind == ActAddMembers && a.Label == s.UpgradingLabel:
		each(func(n *NodeRecord, err error) {
			switch {
			case err == nil && strings.HasPrefix(n.LastError, lastErrResumeFailed):
				// Delivered now: the return timeout applies again.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: lastErrResolved + n.LastError})
			case err == nil:
			case r.Err != nil && !permanent:
				// Keep the intent: the drain is issued again at the next
				// plan, and the add before the boot.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: errText(err)})
			case n.Phase.InFlight():
				// It may have been drained (by a replayed step): release it.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: PhaseReleasing,
					Reason: capReason("could not be put in the upgrading group: " + errText(err)), LastError: errText(err)})
			}
		})

	case a.Kind == ActDrain:
		each(func(n *NodeRecord, err error) {
			if err == nil || (r.Err != nil && !permanent) || n.Phase != PhaseQuiescing {
				return
			}
			// Release rather than drop it: a refused node may still carry
			// an earlier drain of this session.
			d.Changes = append(d.Changes, Change{XName: n.XName, Phase: PhaseReleasing,
				Reason: capReason("the workload manager refused to drain it: " + errText(err)), LastError: errText(err)})
		})

	case a.Kind == ActReboot:
		if r.Err == nil {
			// The boot session begins now: boot_timeout counts from the
			// acceptance, not from when the request was recorded.
			// Counting from the record would fail nodes for whatever
			// delayed the request: an outage that made it be sent again,
			// the retries of a slow orchestrator within one call, or a
			// pause of the executor between the record and the call.
			// The request is also recorded as accepted: should the
			// orchestrator later not know the session, it was deleted,
			// and sending it again would reboot the nodes twice.
			each(func(n *NodeRecord, err error) {
				switch {
				case err != nil || n.Phase != PhaseBooting || n.Boot != a.Reboot.Name:
				case n.LastError != "" && !strings.HasPrefix(n.LastError, lastErrResolved):
					d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, Accepted: true, BootAccepted: true, LastError: lastErrResolved + n.LastError})
				case !n.BootAccepted:
					d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, Accepted: true, BootAccepted: true})
				}
			})
			break
		}
		if permanent && s.Progress.Abort == "" {
			d.Abort = capReason(fmt.Sprintf("the boot orchestrator refused boot session %s: %s", a.Reboot.Name, errText(r.Err)))
			d.Messages = append(d.Messages, "Boot request refused: "+d.Abort+"; its nodes return to service, no new node is taken, nodes in flight finish")
		}
		each(func(n *NodeRecord, err error) {
			if n.Phase != PhaseBooting || n.Boot != a.Reboot.Name {
				return
			}
			if permanent {
				// Never rebooted: back to service, untouched.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: PhaseReleasing,
					Reason: capReason(fmt.Sprintf("%s (boot session %s: %s)", reasonBootRefused, a.Reboot.Name, errText(err))), LastError: errText(err)})
			} else {
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: PhaseBooting, LastError: errText(err)})
			}
		})

	case a.Kind == ActResume:
		each(func(n *NodeRecord, err error) {
			switch {
			case err == nil && strings.HasPrefix(n.LastError, lastErrResumeFailed):
				// Delivered now: the return timeout applies again.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: lastErrResolved + n.LastError})
			case err == nil:
			case r.Err != nil && !permanent:
				// The workload manager could not be reached: not the
				// node's doing; the resume is sent again until it is.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: lastErrResumeFailed + errText(err)})
			default:
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: lastErrResumeRefused + errText(err)})
			}
		})

	case a.Kind == ActFail:
		// Its two halves fail apart: the failed group refused for good
		// does not make a workload manager that could not be reached
		// refuse too. Both are tried again while either may yet work.
		again := r.Err != nil && !everyPartPermanent(r.Err)
		each(func(n *NodeRecord, err error) {
			if n.Phase != PhaseFailing || again {
				return // try both again at the next plan
			}
			c := Change{XName: n.XName, Phase: PhaseDone, Outcome: OutcomeFailed}
			if err != nil {
				// Keep the refusal with the outcome, for good.
				c.Reason = text.Cap(n.Reason+" (and failing it was refused: "+errText(err)+")", text.MaxReason)
				c.LastError = errText(err)
			}
			d.Changes = append(d.Changes, c)
		})

	case a.Kind == ActRemoveMembers && a.Label == s.UpgradingLabel:
		each(func(n *NodeRecord, err error) {
			switch {
			case err == nil,
				errors.Is(err, hsm.ErrGroupNotFound),
				errors.Is(err, hsm.ErrComponentNotFound):
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, Group: GroupGone})
			default:
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: "leaving the upgrading group: " + errText(err)})
			}
		})
	}
	return d
}

// everyPartPermanent reports whether every error joined in err (one,
// unless err was made by errors.Join) matches batch.ErrPermanent.
func everyPartPermanent(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !everyPartPermanent(e) {
				return false
			}
		}
		return true
	}
	return batch.IsPermanent(err)
}

// How a node's LastError begins after a resume that did not go through:
// refused by the workload manager (for this node, or for good), or not
// delivered (it could not be reached; sent again).
const (
	lastErrResumeRefused = "resume refused: "
	lastErrResumeFailed  = "resume not delivered: "
	// lastErrResolved begins the last error of a node whose failed call
	// went through later.
	lastErrResolved = "resolved: "
)

// errText is an error's text as the record keeps it: cleaned and capped,
// since it may come from a backend.
func errText(err error) string { return text.Clean(err.Error(), text.MaxDetail) }

func joinPerNode(m map[string]error) error {
	var errs []error
	for _, x := range sortedKeys(m) {
		errs = append(errs, &batch.NodeError{Node: x, Err: m[x]})
	}
	return errors.Join(errs...)
}

// Apply writes a decision into the session record, stamping transitions
// with now. It is the only way the executor changes a record.
func (s *Session) Apply(d Decision, now time.Time) {
	p := &s.Progress
	if d.Stage != p.Stage {
		p.Stage, p.StageSince = d.Stage, now
	}
	p.Step, p.Steps, p.Boots, p.StepClosed = d.Step, d.Steps, d.Boots, d.StepClosed
	p.Booked, p.BookedUpTo = d.Booked, d.BookedUpTo
	p.Conditions = d.Conditions
	if d.ClearedFailed {
		p.FailedToClear = nil
	}
	if d.Abort != "" && p.Abort == "" {
		p.Abort = d.Abort
	}
	f := recordFinder{nodes: s.Progress.Nodes}
	for _, c := range d.Changes {
		n := f.record(c.XName)
		if n == nil {
			continue
		}
		if c.Phase != "" && c.Phase != n.Phase {
			old := n.Phase
			n.Phase, n.Since = c.Phase, now
			if c.Phase != PhaseQuiescing && c.Phase != PhaseQuiesced {
				// They speak of a drain crus holds.
				n.Undrained, n.DrainTaken = time.Time{}, time.Time{}
			}
			switch c.Phase {
			case PhaseQuiescing:
				if old == PhasePending {
					n.DrainRequested, n.Undrained, n.DrainTaken = now, time.Time{}, time.Time{}
				}
			case PhaseQuiesced:
				n.Drained = now
			case PhaseBooting:
				n.RebootRequested, n.RebootAccepted = now, time.Time{}
			case PhaseReturning:
				n.Booted = now
			case PhaseResuming:
				n.Returned = now
			case PhaseDone:
				n.Finished = now
				n.Outcome = c.Outcome
			}
		}
		if c.Step != 0 {
			n.Step = c.Step
		}
		if c.Reason != "" {
			n.Reason = c.Reason
		}
		if c.Boot != "" && c.Boot != n.Boot {
			n.Boot = c.Boot
			n.BootAccepted, n.RebootAccepted = false, time.Time{}
		}
		if c.BootAccepted {
			n.BootAccepted = true
		}
		if c.LastError != "" {
			n.LastError = c.LastError
		}
		if c.Retry {
			n.Retries++
		}
		if c.Accepted {
			n.RebootAccepted = now
		}
		switch c.Drain {
		case DrainLost:
			if n.Undrained.IsZero() {
				n.Undrained = now
			}
		case DrainHeld:
			if !n.Undrained.IsZero() {
				n.DrainTaken = now
			}
			n.Undrained = time.Time{}
		}
		switch c.Group {
		case GroupAdded:
			n.Grouped = true
		case GroupGone:
			n.Grouped = false
		}
	}
	s.AddMessages(d.Messages...)
	if d.Done {
		s.Completed = true
		p.Result = d.Result
		p.EndedAt = now
		if s.State != StateDeleting {
			s.State = StateReady
		}
	}
}

// errTextOf is errText for text a backend gave.
func errTextOf(s string) string { return text.Clean(s, text.MaxDetail) }
