package crustest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/wlm"
)

// Check checks that the sessions, run to their end on this World, kept the
// promises of crus, and returns an error that lists every broken one, or
// nil:
//
//  1. at no moment were more of a session's nodes out of service because
//     of crus (drained or draining with a reason of crus's, or rebooting)
//     than its step size, not counting failed nodes; a node crus failed
//     but the workload manager would not mark failed stays drained, and
//     is allowed for;
//  2. no node was rebooted while it ran a job (a node AdminResume put
//     back in service after its boot request was accepted, and which got a
//     job before the reboot, is the administrator's race: the boot
//     orchestrator reboots what it was asked to);
//  3. every node of a session ended with exactly one outcome, and the
//     world agrees with it: an upgraded node was rebooted by the boot
//     orchestrator after crus asked, and is in service unless someone
//     else drained or failed it (with a reason not crus's); a failed node
//     has a reason and is in the failed group or out of service in the
//     workload manager (or AdminResume put it back in service after crus
//     failed it: the operator's choice); a skipped or untouched node was not rebooted and
//     is not left drained or failed by crus;
//  4. the upgrading group holds none of a session's nodes, none is
//     left the scheduler's last choice for new jobs (wlm.Steerer): each
//     node crus steered was given its place back by a call that
//     succeeded; and no reservation of the session (wlm.Scheduler) is
//     left behind;
//  5. no node outside the sessions was touched: drained, resumed, failed,
//     added to or removed from a group, or rebooted.
//
// With UseManager, Check also fails if nodes were rebooted but that
// manager received no call through WLM (crus was given another manager),
// and reports what the kit saw the manager do against the wlm.Manager
// contract (a node answered twice to one Nodes call, counted once). It
// knows the reasons crus set, and compares each with the reason read back
// right after crus's Drain or Fail: one that does not begin with the
// reason set is reported, by node, and a node crus drained and left
// drained because of it (crus took it for drained by someone else) is
// reported as left drained, not as a breach of the step size.
//
// Pass every session run on the World: one session's nodes are not
// outsiders to another. Check counts every change made through HSM, BOS
// and WLM as crus's; make the changes of a test's own (an operator's
// drain, a group set up) with the World's methods (AddGroup, AdminDrain,
// ...) or directly on your own workload manager.
func (w *World) Check(ctx context.Context, sessions ...*crus.Session) error {
	r := w.recorder()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	r.mu.Lock()
	violations := slices.Concat(w.fw.Violations(), r.violations)
	contract := slices.Clone(r.contract)
	misreads := maps.Clone(r.misread)
	samples := slices.Clone(r.samples)
	sampleTimes := slices.Clone(r.sampleTimes)
	touched := map[string]bool{}
	for n := range r.touched {
		touched[w.xnameOf(n)] = true
	}
	for x := range r.reboots {
		touched[x] = true
	}
	rebooted, called := len(r.reboots), 0
	for _, n := range r.callCount {
		called += n
	}
	r.mu.Unlock()
	if r.power != nil && rebooted > 0 && called == 0 {
		add("%d nodes were rebooted, but the workload manager given to UseManager received no call through WLM: "+
			"give crus the World's WLM (after UseManager), not that manager itself, or Check cannot follow what crus does to it", rebooted)
	}
	for x := range w.fw.Touched() {
		touched[x] = true
	}
	for _, v := range violations {
		add("reboot of a busy node: %s", v)
	}
	for _, v := range contract {
		add("the workload manager breaks the wlm.Manager contract: %s", v)
	}
	if len(misreads) > 0 {
		names := slices.Sorted(maps.Keys(misreads))
		m := misreads[names[0]]
		add("the workload manager's reasons do not read back as set, on %d nodes (%s): crus called %s on %s with reason %q and it reads back %q. "+
			"Node.Reason must read back beginning with the reason given, unchanged, up to wlm.MaxReason (%d) bytes (see wlm.Manager.Drain): "+
			"crus recognises its own drains and fails by their reason alone (\"crus <upgrade-id>: ...\") and takes any other for someone else's",
			len(names), strings.Join(names, " "), m.op, names[0], m.set, m.got, wlm.MaxReason)
	}

	inside := map[string]bool{}
	for _, s := range sessions {
		if s == nil {
			add("Check: a nil session")
			continue
		}
		for _, n := range s.Progress.Nodes {
			inside[n.XName] = true
		}
		errs = append(errs, w.checkSession(ctx, r, s, samples, sampleTimes)...)
	}
	var outsiders []string
	for x := range touched {
		if !inside[x] {
			outsiders = append(outsiders, x)
		}
	}
	slices.Sort(outsiders)
	for _, x := range outsiders {
		add("node %s (%s) is outside the sessions but was touched", x, w.Name(x))
	}
	return errors.Join(errs...)
}

func (w *World) checkSession(ctx context.Context, r *recorder, s *crus.Session, samples [][]string, sampleTimes []time.Time) []error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("session %s: "+format, append([]any{s.UpgradeID}, args...)...))
	}
	if !s.Completed {
		add("not completed (state %s, stage %s)", s.State, s.Progress.Stage)
	}
	// The reservations of a session (the scheduled strategy) go with it.
	if sc, ok := r.inner.(wlm.Scheduler); ok && s.Completed {
		booking := "crus-" + s.UpgradeID + "-"
		left, err := sc.Reservations(ctx, booking)
		if err != nil {
			add("listing its reservations: %v", err)
		}
		for _, res := range left {
			if n := strings.TrimPrefix(res.Name, booking); n != "" && strings.Trim(n, "0123456789") == "" {
				add("reservation %s left behind (nodes %v, from %s)", res.Name, res.Nodes, res.Start.Format(time.RFC3339))
			}
		}
	}
	r.mu.Lock()
	var steered []string
	for _, n := range s.Progress.Nodes {
		if r.steered[n.Name] {
			steered = append(steered, n.Name)
		}
	}
	r.mu.Unlock()
	if len(steered) > 0 {
		add("%d nodes left the scheduler's last choice for new jobs (steered, never given their place back): %v", len(steered), steered)
	}
	// crus's reasons for a session begin "crus <id>:".
	prefix := "crus " + s.UpgradeID + ":"
	ours := func(n wlm.Node) bool { return strings.HasPrefix(n.Reason, prefix) }
	names := make([]string, 0, len(s.Progress.Nodes))
	for _, n := range s.Progress.Nodes {
		names = append(names, w.Name(n.XName))
	}
	read, err := r.read(ctx, names)
	if err != nil {
		add("reading its nodes from the workload manager: %v", err)
	}
	now := map[string]wlm.Node{}
	for _, n := range read {
		now[w.xnameOf(n.Name)] = n
	}
	words := wlm.DescriberOf(r.inner)
	upgrading := w.fw.Members(s.UpgradingLabel)
	failedGroup := w.fw.Members(s.FailedLabel)

	// Nodes crus drained last (it has not resumed or failed them since)
	// and that read drained without a reason of the session's: with no
	// reason, or one read back other than crus set it and unchanged since.
	r.mu.Lock()
	var leftDrained []string
	for _, n := range s.Progress.Nodes {
		wn, seen := now[n.XName]
		if !seen || !r.drained[wn.Name] || !(wn.Drain || wn.Fail) || ours(wn) || n.Outcome == crus.OutcomeFailed {
			continue
		}
		if m, ok := r.misread[wn.Name]; wn.Reason == "" || ok && wn.Reason == m.got {
			leftDrained = append(leftDrained, fmt.Sprintf("%s (%s, reason %q)", n.XName, wn.Name, wn.Reason))
		}
	}
	r.mu.Unlock()
	if len(leftDrained) > 0 && s.Completed {
		add("%d nodes left drained: crus drained them and never resumed them, since their reasons do not read back as crus set them: %s", len(leftDrained), strings.Join(leftDrained, ", "))
	}

	member := map[string]bool{}
	refused := 0 // failed, but the workload manager would not mark them failed
	for _, n := range s.Progress.Nodes {
		member[n.XName] = true
		wn, seen := now[n.XName]
		state := "not read"
		if seen {
			state = words.Describe(wn)
			if wn.Reason != "" {
				state += fmt.Sprintf(" (%s)", wn.Reason)
			}
		}
		if n.Phase != crus.PhaseDone {
			add("node %s has no outcome (phase %s)", n.XName, n.Phase)
		}
		if slices.Contains(upgrading, n.XName) {
			add("node %s left in the upgrading group %q", n.XName, s.UpgradingLabel)
		}
		var reboots []time.Time
		for _, t := range r.rebootTimes(n.XName) {
			if !t.Before(s.Progress.CreatedAt) && (s.Progress.EndedAt.IsZero() || !t.After(s.Progress.EndedAt)) {
				reboots = append(reboots, t)
			}
		}
		leftByCrus := seen && (wn.Drain || wn.Fail) && ours(wn)
		switch n.Outcome {
		case crus.OutcomeUpgraded:
			if !slices.ContainsFunc(reboots, func(t time.Time) bool { return !t.Before(n.RebootRequested.Add(-time.Second)) }) {
				add("node %s is upgraded but was not rebooted after its reboot was requested (%s); reboots %v", n.XName, n.RebootRequested.Format(time.RFC3339), reboots)
			}
			if !seen || !wn.InService() && !((wn.Drain || wn.Fail) && !ours(wn)) {
				add("node %s is upgraded but not back in service: %s", n.XName, state)
			}
		case crus.OutcomeFailed:
			if n.Reason == "" {
				add("node %s failed without a reason", n.XName)
			}
			if !slices.Contains(failedGroup, n.XName) && !(seen && (wn.Fail || wn.Drain)) && !r.resumedAfterFail(r.w.Name(n.XName)) {
				add("node %s failed but is neither in the failed group %q nor out of service: %s", n.XName, s.FailedLabel, state)
			}
			if !seen || !wn.Fail {
				refused++
			}
		case crus.OutcomeSkipped, crus.OutcomeUntouched:
			if len(reboots) > 0 {
				add("node %s is %s but was rebooted at %v", n.XName, n.Outcome, reboots)
			}
			if leftByCrus {
				add("node %s is %s but left out of service by crus: %s", n.XName, n.Outcome, state)
			}
			if n.Reason == "" {
				add("node %s is %s without a reason", n.XName, n.Outcome)
			}
		case crus.OutcomeNone:
			if n.Phase == crus.PhaseDone {
				add("node %s is done without an outcome", n.XName)
			}
		default:
			add("node %s: outcome %q", n.XName, n.Outcome)
		}
	}

	most, at := 0, time.Time{}
	var mostNodes []string
	for i, sample := range samples {
		t := sampleTimes[i]
		if t.Before(s.Progress.CreatedAt) || !s.Progress.EndedAt.IsZero() && t.After(s.Progress.EndedAt) {
			continue
		}
		var in []string
		for _, x := range sample {
			if member[x] {
				in = append(in, x)
			}
		}
		if len(in) > most {
			most, at, mostNodes = len(in), t, in
		}
	}
	if most > s.StepSize+refused {
		add("%d nodes out of service because of crus at %s, more than the step size %d: %s", most, at.Format(time.RFC3339), s.StepSize, strings.Join(mostNodes, " "))
	}
	return errs
}
