package crus

import (
	"fmt"
	"slices"
	"strings"

	"github.com/crus-go/crus/bos"
)

// Booting: nodes quiesced are rebooted with the session's template. One
// rule for every boot request, first or repeated: it names only nodes
// that the same observation shows drained (running nothing, with this
// session's drain) and in the upgrading group, and it never reboots a
// node outside the session. The policy says when: a step with a barrier
// boots once every node of it is quiesced, in one boot session; a rolling
// one boots whatever is quiesced, in boot sessions of at most
// boot_batch_size nodes.
//
// A boot request the orchestrator has not accepted (its session is
// unknown to it: the request failed, or was lost) is not a node's
// failure: the nodes wait, drained, and the request is sent again — after
// checking them again — until boot_timeout has passed since it was first
// made; then they are returned to service, to be taken again later. A
// request accepted at last starts its boot session's boot_timeout then
// (Settle: Change.Accepted). While
// a request is unaccepted no new node is taken, and a cancel returns the
// waiting nodes to service at once.
//
// A request the orchestrator accepted (NodeRecord.BootAccepted) and whose
// session it then does not know was deleted, not unaccepted: it is never
// sent again, which would reboot its nodes twice; the observation reports
// the session failed as a whole (Observe).

// verifyBoot follows a node whose reboot was requested.
func (p *planner) verifyBoot(i int, n *NodeRecord) {
	s, obs := p.s, p.obs
	b, ok := obs.Boots[n.Boot]
	deadline := deadlineOf(n.bootClock(), s.BootTimeout)
	switch {
	case obs.MissingBoots[n.Boot]:
		p.unacceptedBoot(i, n)
	case !ok:
		// Its status could not be read: wait. (The node may be rebooting:
		// even a cancel sees it through.)
	case p.pol.rolling && b.Phase == bos.PhaseRunning && b.Error == "" && b.Nodes[n.XName].Result != bos.ResultInProgress:
		// Its own boot is over: without a barrier, it does not wait for
		// the slowest node of its boot session, which would keep it out
		// of service for nothing. (The original algorithm waits for the
		// whole session.)
		if r := b.Nodes[n.XName]; r.Result == bos.ResultSucceeded {
			p.change(Change{XName: n.XName, Phase: PhaseReturning})
		} else {
			p.fail(n, fmt.Sprintf("boot failed in boot session %s: %s", n.Boot, orNone(r.Reason)))
		}
	case b.Phase == bos.PhaseComplete:
		p.booted = true
		r := b.Nodes[n.XName]
		switch {
		case r.Result == bos.ResultSucceeded && b.Error == "":
			p.change(Change{XName: n.XName, Phase: PhaseReturning})
		case r.Result == bos.ResultFailed:
			p.fail(n, fmt.Sprintf("boot failed in boot session %s: %s", n.Boot, orNone(r.Reason)))
		case b.Error != "" && !obs.UpgradingObserved && !obs.Now.After(deadline):
			// Failed as a whole: which of its nodes could it have
			// rebooted? Read the upgrading group first.
			p.wake(deadline)
		case b.Error != "" && obs.UpgradingObserved && !slices.Contains(obs.Upgrading, n.XName):
			// Someone took it out of the upgrading group before the
			// session chose its nodes: it was not rebooted, so it is not
			// failed; back to service.
			p.releaseFor(n, fmt.Sprintf("boot session %s failed (%s) and the node was no longer in the upgrading group: not rebooted", n.Boot, b.Error))
		case b.Error != "":
			p.fail(n, fmt.Sprintf("boot session %s failed: %s", n.Boot, b.Error))
		default:
			// The orchestrator did not reboot it (someone took it out of
			// the upgrading group, or the template no longer targets it):
			// never rebooted, so not failed; back to service.
			p.releaseFor(n, fmt.Sprintf("boot session %s completed without rebooting this node", n.Boot))
		}
	case obs.Now.After(deadline):
		p.fail(n, fmt.Sprintf("boot session %s did not complete within %s (still %s)", n.Boot, s.BootTimeout, b.Phase))
	default:
		p.wake(deadline)
	}
}

// unacceptedBoot follows a node whose boot session the orchestrator does
// not know. A node seen drained waits for the request to be sent again
// (resendUnaccepted); any other goes back to the drain stage.
func (p *planner) unacceptedBoot(i int, n *NodeRecord) {
	s, obs := p.s, p.obs
	deadline := deadlineOf(n.bootClock(), s.BootTimeout)
	w, seen := obs.Nodes[n.XName]
	switch {
	case s.Progress.Cancel:
		p.releaseFor(n, reasonCancelled)
		return
	case obs.Now.After(deadline):
		p.releaseFor(n, fmt.Sprintf("%s within %s (%s)", reasonBootNotAccepted, s.BootTimeout, orNone(n.LastError)))
		return
	case seen && w.Drained() && p.ours(w):
		u := p.unacceptedOf(n.Boot)
		u.ready = append(u.ready, i)
	case seen || obs.Unknown[n.XName] != "":
		p.quiesce(n) // resumed, busy, or taken by someone: the drain stage decides
	default:
		p.unacceptedOf(n.Boot).waiting = true // not observed: it waits, and so does the request
	}
	p.wake(deadline)
}

// resendUnaccepted sends again the boot requests the orchestrator has not
// accepted, once every node of one is seen drained in the upgrading group.
// When some of a request's nodes are no longer ready, the others go back
// to quiesced, to be booted afresh under a new name by the boot stage.
func (p *planner) resendUnaccepted() {
	if len(p.unaccepted) == 0 {
		return
	}
	s, obs := p.s, p.obs
	for _, name := range sortedKeys(p.unaccepted) {
		ready, waiting := p.unaccepted[name].ready, p.unaccepted[name].waiting
		total := 0
		for _, i := range p.activeNodes() {
			if n := &s.Progress.Nodes[i]; n.Phase == PhaseBooting && n.Boot == name {
				total++
			}
		}
		switch {
		case waiting:
			continue // a node of it was not observed: wait for it
		case len(ready) < total:
			// Some nodes were resumed, drained by someone or lost: the
			// request no longer fits. The ready ones boot again, afresh.
			for _, i := range ready {
				p.change(Change{XName: s.Progress.Nodes[i].XName, Phase: PhaseQuiesced})
			}
			continue
		}
		nodes := make([]string, len(ready))
		for k, i := range ready {
			nodes[k] = s.Progress.Nodes[i].XName
		}
		// The request is noted on its nodes (as a failed one is): the
		// note has the upgrading group read before every request, and a
		// request accepted at last starts its boot_timeout then (Settle:
		// Accepted). A request never sent (a crash between recording and
		// sending it) had no note: it was sent again without the group
		// checked, and its nodes failed at the first request's deadline,
		// a boot_timeout after the crash, while they rebooted.
		note := func() {
			for _, i := range ready {
				if n := &s.Progress.Nodes[i]; n.LastError == "" || strings.HasPrefix(n.LastError, lastErrResolved) {
					p.change(Change{XName: n.XName, Phase: PhaseBooting,
						LastError: fmt.Sprintf("boot session %s is not known to the boot orchestrator: it is sent again", name)})
				}
			}
		}
		if !obs.UpgradingObserved {
			note() // the group is read next time, then the request sent
			continue
		}
		if missing := p.missingFromGroup(nodes); len(missing) > 0 {
			p.addToGroup(missing)
			continue
		}
		note()
		p.nudges.reboot = append(p.nudges.reboot, Action{
			Kind: ActReboot, Nodes: nodes, Reboot: p.rebootRequest(name, nodes),
			Why: "boot session not accepted yet; its nodes are still drained: send it again",
		})
	}
}

// unaccepted is a boot request the orchestrator has not accepted, as seen
// by this decision.
type unaccepted struct {
	ready   []int // its nodes seen drained, ready to be booted
	waiting bool  // one of its nodes was not observed
}

func (p *planner) unacceptedOf(name string) *unaccepted {
	if p.unaccepted == nil {
		p.unaccepted = map[string]*unaccepted{}
	}
	u, ok := p.unaccepted[name]
	if !ok {
		u = &unaccepted{}
		p.unaccepted[name] = u
	}
	return u
}

// boot starts the boot sessions the policy allows now.
func (p *planner) boot() {
	s, obs, pol := p.s, p.obs, p.pol
	var ready []string
	for _, i := range p.activeNodes() {
		n := &s.Progress.Nodes[i]
		switch p.phaseAt(i) {
		case PhaseQuiescing:
			if !pol.rolling {
				return // the barrier: the step is not all drained yet
			}
		case PhaseQuiesced:
			// Reboot only what this very observation shows drained.
			if w, ok := obs.Nodes[n.XName]; !ok || !w.Drained() || !p.ours(w) {
				if !pol.rolling {
					return
				}
				continue
			}
			ready = append(ready, n.XName)
		}
	}
	if len(ready) == 0 || !obs.UpgradingObserved {
		return // nothing to boot; or check group membership first (ScopeFor asks for it)
	}
	if missing := p.missingFromGroup(ready); len(missing) > 0 {
		p.addToGroup(missing)
		if !pol.rolling {
			return // the step boots as a whole
		}
		ready = slices.DeleteFunc(ready, func(x string) bool { _, ok := slices.BinarySearch(missing, x); return ok })
		if len(ready) == 0 {
			return
		}
	}
	if pol.limitLabel {
		// The original waits until the session's other nodes have left the
		// group (a node done, released back to service or being failed may
		// run jobs); the boot is also limited to the nodes to boot, within
		// the label, so no one else's node is ever rebooted.
		for _, i := range p.activeNodes() {
			if p.groupedAt(i) && p.phaseAt(i) != PhaseQuiesced {
				return
			}
		}
	}
	size := pol.bootBatch
	if size <= 0 || !pol.rolling {
		size = len(ready)
	}
	for chunk := range slices.Chunk(ready, size) {
		p.d.Boots++
		name := bootName(s, p.d.Boots)
		for _, x := range chunk {
			p.change(Change{XName: x, Phase: PhaseBooting, Boot: name})
		}
		why := fmt.Sprintf("step %d: every node quiesced; reboot them", p.d.Step)
		msg := fmt.Sprintf("Step %d: all %s quiesced; boot session %s created", p.d.Step, plural(len(chunk), "node"), name)
		if pol.rolling {
			why = "rolling: reboot the nodes drained since the last decision"
			msg = fmt.Sprintf("Boot session %s created for %s", name, plural(len(chunk), "drained node"))
		}
		p.d.Actions = append(p.d.Actions, Action{Kind: ActReboot, Nodes: chunk, Reboot: p.rebootRequest(name, chunk), Why: why})
		p.d.Messages = append(p.d.Messages, msg)
	}
}

// missingFromGroup returns the nodes (sorted) that the observation does
// not show in the upgrading group.
func (p *planner) missingFromGroup(nodes []string) []string {
	var missing []string
	for _, x := range nodes {
		if _, ok := slices.BinarySearch(p.obs.Upgrading, x); !ok {
			missing = append(missing, x)
		}
	}
	return missing
}

func (p *planner) addToGroup(nodes []string) {
	p.d.Actions = append(p.d.Actions, Action{
		Kind: ActAddMembers, Label: p.s.UpgradingLabel, Nodes: nodes,
		Why: "nodes about to boot are missing from the upgrading group: add them (again)",
	})
}

// bootName is the deterministic name of the session's n-th boot session.
func bootName(s *Session, n int) string { return fmt.Sprintf("crus-%s-%d", s.UpgradeID, n) }

// rebootRequest is the boot request for nodes: limited to their xnames,
// and with boot_limit "label" to those of them in the upgrading group as
// BOS reads it (the original limited by the label alone, which reboots
// whoever someone else put in the group).
func (p *planner) rebootRequest(name string, nodes []string) bos.Request {
	req := bos.Request{Name: name, Template: p.s.TemplateID, Limit: slices.Clone(nodes)}
	if p.pol.limitLabel {
		req.Within = p.s.UpgradingLabel
	}
	return req
}
