package crus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/wlm"
)

// The planner is a pure function of a session record and an observation of
// the world: it does no I/O, reads no clock, does not log, and returns the
// same decision for the same inputs. The Executor does everything else.
//
// A decision changes the record (node phases, the stage, the step) and
// lists the actions that carry the changes out. The caller must persist the
// changed record before acting: that is how a crash between the two is
// made safe. Each node's phase is an intent ("quiescing": drain
// requested), and the planner issues its action again whenever the
// observation shows it has not taken effect, so a lost action, a crash or a
// restart is repaired by the next observation.

// Scope says what the executor must observe before the next Plan.
type Scope struct {
	// Nodes are the xnames whose workload-manager state is needed.
	Nodes []string
	// Boots are the boot sessions whose status is needed.
	Boots []BootRef
	// Upgrading asks for the members of the upgrading group.
	Upgrading bool
	// JobEnds are the xnames whose expected job ends are needed (the
	// job_end order), to be read in one wlm.JobEnder call when the
	// workload manager has that capability.
	JobEnds []string
}

// BootRef names a boot session and the nodes crus asked it to reboot.
type BootRef struct {
	Name  string
	Nodes []string
}

// Observation is what the executor saw just before planning. Maps are keyed
// by xname.
type Observation struct {
	Now time.Time
	// Nodes holds the workload-manager state of the nodes of Scope.Nodes
	// that it reported. A node absent from Nodes and from Unknown was not
	// observed this time (the planner waits for it).
	Nodes map[string]wlm.Node
	// Unknown holds the nodes the workload manager says it does not know,
	// with its message.
	Unknown map[string]string
	// Boots holds the status of the boot sessions of Scope.Boots, by name.
	Boots map[string]bos.Status
	// MissingBoots holds the boot sessions the orchestrator does not know.
	MissingBoots map[string]bool
	// Upgrading lists the members of the upgrading group when asked;
	// UpgradingObserved says it was read.
	Upgrading         []string
	UpgradingObserved bool

	// BootTimes says the workload manager reports boot times
	// (wlm.BootTimeReporter): a reboot is proven by a boot time later than
	// the reboot request, less BootTimeSlack. Without boot times a node
	// counts as rebooted when it is idle and responding after its boot
	// session completed (the original CRUS rule).
	BootTimes     bool
	BootTimeSlack time.Duration

	// JobEnds holds, for the nodes of Scope.JobEnds that run jobs, the
	// latest expected end of their jobs (start + time limit), by xname.
	// Nil when the workload manager cannot tell (no wlm.JobEnder).
	JobEnds map[string]time.Time
}

// ActionKind names what an Action does.
type ActionKind string

// Action kinds.
const (
	ActAddMembers    ActionKind = "add_members"    // add Nodes to group Label
	ActRemoveMembers ActionKind = "remove_members" // remove Nodes from group Label
	ActDrain         ActionKind = "drain"          // drain Nodes in the WLM with Reason
	ActReboot        ActionKind = "reboot"         // create boot session Reboot
	ActResume        ActionKind = "resume"         // resume Nodes in the WLM
	ActFail          ActionKind = "fail"           // put Nodes in failed group Label and fail them in the WLM with Reason
)

// Action is one batch call the executor must make.
type Action struct {
	Kind   ActionKind
	Nodes  []string    // xnames, sorted
	Label  string      // group, for add_members and remove_members
	Reason string      // workload-manager reason, for drain and fail
	Reboot bos.Request // for reboot
	// SkipFailed drops from this action the nodes for which an earlier
	// action of the same decision failed (drain only the nodes that made
	// it into the upgrading group).
	SkipFailed bool
	// Why says, in words, why the planner wants this.
	Why string
}

// Change is a transition of one node record.
type Change struct {
	XName   string
	Phase   Phase   // new phase
	Outcome Outcome // set when Phase is PhaseDone
	Reason  string  // replaces the reason if not empty
	Step    int     // replaces the step if not zero
	Boot    string  // replaces the boot session if not empty
	Group   GroupChange
	// LastError replaces the node's last error if not empty.
	LastError string
	// Retry counts one more retry of the node (its drain timed out and it
	// waits for a later turn).
	Retry bool
}

// GroupChange says how a change affects NodeRecord.Grouped.
type GroupChange int8

// Group changes.
const (
	GroupKeep  GroupChange = iota // leave Grouped as it is
	GroupAdded                    // the node may now be in the upgrading group
	GroupGone                     // the node is known not to be in it
)

// Decision is what Plan (or Settle) decided.
type Decision struct {
	// The session header after the decision.
	Stage  Stage
	Step   int
	Steps  int
	Boots  int
	Result Result // set with Done
	Done   bool   // the session is finished
	// ClearedFailed says the failed group has been cleared.
	ClearedFailed bool
	// Abort, when not empty, says why the session stops taking new nodes
	// from now on (its failure budget was exceeded).
	Abort string

	Changes  []Change
	Actions  []Action
	Messages []string
	// Wake is the latest time at which the executor should plan again
	// even if it polls less often (a timeout falls due). Zero: no deadline.
	Wake time.Time
}

// Changed reports whether the decision changes the record.
func (d *Decision) Changed(s *Session) bool {
	return len(d.Changes) > 0 || len(d.Messages) > 0 || d.Done || d.ClearedFailed || d.aborts(s) ||
		d.Stage != s.Progress.Stage || d.Step != s.Progress.Step || d.Steps != s.Progress.Steps ||
		d.Boots != s.Progress.Boots
}

// Transitions reports whether the decision moves the session on: a new
// stage, step or result, or a node changing phase, outcome or group
// membership. (Noting an error is a change, not a transition.)
func (d *Decision) Transitions(s *Session) bool {
	if d.Done || d.ClearedFailed || d.aborts(s) || d.Stage != s.Progress.Stage || d.Step != s.Progress.Step || d.Boots != s.Progress.Boots {
		return true
	}
	for _, c := range d.Changes {
		n := s.Node(c.XName)
		if n != nil && ((c.Phase != "" && c.Phase != n.Phase) || c.Group == GroupAdded && !n.Grouped || c.Group == GroupGone && n.Grouped) {
			return true
		}
	}
	return false
}

// aborts reports whether the decision newly aborts the session.
func (d *Decision) aborts(s *Session) bool { return d.Abort != "" && s.Progress.Abort == "" }

// decisionFor starts a decision that changes nothing.
func decisionFor(s *Session) Decision {
	return Decision{Stage: s.Progress.Stage, Step: s.Progress.Step, Steps: s.Progress.Steps, Boots: s.Progress.Boots}
}

// ScopeFor returns what must be observed before planning the session: the
// workload-manager state of every node in flight (or about to be taken),
// the status of every boot session in use, and the upgrading group when the
// session is winding up.
func ScopeFor(s *Session) Scope {
	sc, _ := scopeWith(s, nil)
	return sc
}

// scopeWith is ScopeFor, reading only the active nodes of idx if not nil.
// It also returns the positions of Scope.Nodes in the record.
func scopeWith(s *Session, idx *nodeIndex) (Scope, []int) {
	var sc Scope
	var pos []int
	boots := map[string]int{}
	inFlight, quiescing, quiesced := 0, false, false
	firstPending := len(s.Progress.Nodes)
	each := func(yield func(int) bool) {
		for i := range s.Progress.Nodes {
			if !yield(i) {
				return
			}
		}
	}
	if idx != nil {
		firstPending = idx.firstPending
		each = func(yield func(int) bool) {
			for _, i := range idx.active {
				if !yield(i) {
					return
				}
			}
		}
	}
	for i := range each {
		n := &s.Progress.Nodes[i]
		switch n.Phase { // most nodes are at rest: keep this loop cheap
		case PhasePending:
			firstPending = min(firstPending, i)
			continue
		case PhaseDone, "":
			continue
		}
		inFlight++
		quiescing = quiescing || n.Phase == PhaseQuiescing
		quiesced = quiesced || n.Phase == PhaseQuiesced
		pos = append(pos, i)
		if n.Phase == PhaseBooting {
			j, ok := boots[n.Boot]
			if !ok {
				j = len(sc.Boots)
				boots[n.Boot] = j
				sc.Boots = append(sc.Boots, BootRef{Name: n.Boot})
			}
			sc.Boots[j].Nodes = append(sc.Boots[j].Nodes, n.XName)
		}
	}
	// At the barrier, check the nodes about to boot are in the upgrading
	// group (the boot template targets it): an add lost to a crash between
	// recording a step and acting on it is repaired here.
	sc.Upgrading = quiesced && !quiescing
	if !s.Rollout.IsClassic() {
		pos = scopeRollout(s, &sc, pos, inFlight, quiesced, firstPending)
	} else if inFlight == 0 {
		next := lowestPending(s, func(i int) Phase { return s.Progress.Nodes[i].Phase })
		if !s.Progress.Cancel && len(s.Progress.FailedToClear) == 0 {
			pos = append(pos, next...)
		}
		sc.Upgrading = len(next) == 0 || s.Progress.Cancel || s.Progress.Stage == StageCleanup
	}
	// Node records are sorted by xname: sorted positions give sorted
	// xnames.
	slices.Sort(pos)
	if len(pos) > 0 {
		sc.Nodes = make([]string, len(pos))
		for k, i := range pos {
			sc.Nodes[k] = s.Progress.Nodes[i].XName
		}
	}
	return sc, pos
}

// scopeRollout completes the scope of a session with rollout options: the
// candidates for the next nodes to take, when there is room for any.
func scopeRollout(s *Session, sc *Scope, pos []int, inFlight int, quiesced bool, firstPending int) []int {
	if s.Rollout.rolling() {
		sc.Upgrading = quiesced // every boot checks its nodes are in the group
	}
	nodes := s.Progress.Nodes
	phase := func(i int) Phase { return nodes[i].Phase }
	room, _ := admissionRoom(s, s.Progress.Step, inFlight)
	if len(s.Progress.FailedToClear) > 0 {
		room = 0
	}
	if room > 0 {
		limit := s.Rollout.lookahead(s.StepSize)
		if s.Rollout.Order == "" || s.Rollout.Order == OrderListed {
			if !s.Rollout.rolling() {
				limit = room
			}
		}
		cands := candidates(nodes, phase, limit, firstPending)
		pos = append(pos, cands...)
		if s.Rollout.Order == OrderJobEnd {
			for _, i := range cands {
				sc.JobEnds = append(sc.JobEnds, nodes[i].XName)
			}
			slices.Sort(sc.JobEnds)
		}
	}
	if inFlight == 0 {
		sc.Upgrading = sc.Upgrading || s.Progress.Cancel || s.Progress.Abort != "" || s.Progress.Stage == StageCleanup ||
			firstPending == len(nodes)
	}
	return pos
}

// admissionRoom returns how many nodes the session may take now, given
// the nodes in flight, from its record alone (maintenance windows aside),
// and the stage that says why it may take none.
func admissionRoom(s *Session, step, inFlight int) (int, Stage) {
	r, p := s.Rollout, &s.Progress
	switch {
	case p.Cancel || p.Abort != "":
		return 0, ""
	case p.Paused:
		return 0, StagePaused
	}
	batch := step + 1
	if size, ok := r.canarySize(batch); ok {
		if inFlight > 0 {
			return 0, "" // a canary batch runs alone
		}
		return size, ""
	}
	if len(r.Canary) > 0 && step <= len(r.Canary) && inFlight > 0 {
		return 0, "" // the last canary batch is not over yet
	}
	if r.CanaryApproval && len(r.Canary) > 0 && !p.Approved {
		return 0, StageApproval
	}
	if !r.rolling() {
		if inFlight > 0 {
			return 0, ""
		}
		return s.StepSize, ""
	}
	return max(0, s.StepSize-inFlight), ""
}

// candidates returns the indices of at most max pending nodes in turn
// order: nodes never put back in list order, then the ones put back by
// how often they were, reading each node's phase through phase. No node
// before from is pending.
func candidates(nodes []NodeRecord, phase func(i int) Phase, max, from int) []int {
	var out, retried []int
	for i := from; i < len(nodes); i++ {
		if phase(i) != PhasePending {
			continue
		}
		if nodes[i].Retries > 0 {
			retried = append(retried, i)
			continue
		}
		if out = append(out, i); len(out) >= max {
			return out
		}
	}
	slices.SortStableFunc(retried, func(a, b int) int { return nodes[a].Retries - nodes[b].Retries })
	for _, i := range retried {
		if len(out) >= max {
			break
		}
		out = append(out, i)
	}
	return out
}

// lowestPending returns the pending nodes of the lowest step that still has
// pending nodes (the original strategy: fixed slices of the sorted list),
// reading each node's phase through phase.
func lowestPending(s *Session, phase func(i int) Phase) []int {
	step := 0
	var out []int
	for i := range s.Progress.Nodes {
		n := &s.Progress.Nodes[i]
		if phase(i) != PhasePending {
			continue
		}
		switch {
		case step == 0 || n.Step < step:
			step, out = n.Step, append(out[:0], i)
		case n.Step == step:
			out = append(out, i)
		}
	}
	return out
}

// Plan decides what to do next for session s, given what was observed.
// It is deterministic and does not modify s. It returns an error only for
// a record it cannot plan (a completed session, a corrupt record).
//
// Its cost is one pass over the node records plus work proportional to
// the nodes in flight, changed or ranked for admission.
func Plan(s *Session, obs Observation) (Decision, error) { return planWith(s, obs, nil) }

// planWith is Plan, reading only the active nodes of idx (the index of s)
// when given one, and using its scratch space.
func planWith(s *Session, obs Observation, idx *nodeIndex) (Decision, error) {
	if s.Completed {
		return Decision{}, fmt.Errorf("%w: %s", ErrSessionDone, s.UpgradeID)
	}
	p := &planner{s: s, obs: obs, d: decisionFor(s), legacy: s.Rollout.IsClassic(), idx: idx}
	if idx != nil {
		if len(idx.chg) != idx.n {
			idx.chg, idx.act = make([]int32, idx.n), make([]bool, idx.n)
		}
		p.chg, p.isActive = idx.chg, idx.act
		defer func() { // leave the scratch space clean: only active nodes were marked
			for _, i := range p.active {
				p.chg[i], p.isActive[i] = 0, false
			}
		}()
	} else {
		p.chg, p.isActive = make([]int32, len(s.Progress.Nodes)), make([]bool, len(s.Progress.Nodes))
	}
	return p.plan(), nil
}

type planner struct {
	s   *Session
	obs Observation
	d   Decision
	// chg maps a node's index to 1 + the index of its change in d.Changes
	// (0: unchanged).
	chg []int32
	// active lists the nodes that matter beyond the first pass: in flight
	// or grouped before the decision, or changed by it. isActive marks
	// them; sorted says active is in index order.
	active   []int
	isActive []bool
	unsorted bool
	legacy   bool // the original algorithm (Rollout.IsClassic)
	idx      *nodeIndex
	booted   bool   // a boot session completed in this decision
	nudges   nudges // actions repeated because the world lags the record
	failures int    // nodes failed or failing, after the decision
	// firstPending is the first node pending in the record (len(nodes):
	// none); nodes this decision makes pending are active.
	firstPending int
	held         Stage // why no node could be taken, if a gate held them
}

// nudges collects repeated actions for nodes whose intent is recorded but
// not (yet) visible in the observation.
type nudges struct {
	drain, resume []string
	reboot        map[string][]string // boot name -> nodes
}

func (p *planner) plan() Decision {
	s := p.s
	if len(s.Progress.FailedToClear) > 0 {
		p.d.Stage = StageStarting
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActRemoveMembers, Label: s.FailedLabel, Nodes: slices.Clone(s.Progress.FailedToClear),
			Why: "clear the failed group before the first step, as asked (clear_failed)",
		})
		return p.d
	}
	wasInFlight := false
	p.firstPending = len(s.Progress.Nodes)
	stop := s.Progress.Cancel || s.Progress.Abort != ""
	if p.idx != nil && !stop {
		// Only the active nodes can change (pending ones do only when
		// the session stops taking nodes: then read them all).
		p.failures, p.firstPending = p.idx.failures, p.idx.firstPending
		for _, i := range p.idx.active {
			p.activate(i)
			if n := &s.Progress.Nodes[i]; n.Phase.InFlight() {
				wasInFlight = true
				p.advance(i, n)
			}
		}
	}
	for i := range s.Progress.Nodes {
		if p.idx != nil && !stop {
			break
		}
		n := &s.Progress.Nodes[i]
		switch n.Phase { // most nodes are at rest: keep this loop cheap
		case PhasePending:
			p.firstPending = min(p.firstPending, i)
			if n.Grouped {
				p.activate(i)
			}
			if stop {
				p.advance(i, n)
			}
			continue
		case PhaseDone:
			if n.Grouped {
				p.activate(i)
			}
			if n.Outcome == OutcomeFailed {
				p.failures++
			}
			continue
		}
		p.activate(i)
		if n.Phase == PhaseFailing {
			p.failures++
		}
		wasInFlight = true
		p.advance(i, n)
	}
	if !p.legacy {
		p.checkBudget()
	}
	p.emitNudges()
	p.emitFailing()
	p.emitUngroup()
	inFlight := p.anyInFlight()
	// The original algorithm closes a step when the next one starts or the
	// session ends (admit, finish): its last node may leave flight in Settle.
	if !p.legacy && wasInFlight && !inFlight && s.Progress.Step > 0 && (!s.Rollout.rolling() || s.Progress.Step <= len(s.Canary)) {
		p.summariseStep()
	}
	if p.legacy {
		if !inFlight && !p.anyGrouped() {
			if len(p.pending()) == 0 {
				p.finish()
				return p.d
			}
			p.admit()
		}
	} else {
		if !inFlight && !p.anyGrouped() && !p.anyPending() {
			p.finish()
			return p.d
		}
		p.admitRollout()
	}
	p.setStage()
	return p.d
}

// pending returns the pending nodes of the next step, after this
// decision's changes.
func (p *planner) pending() []string {
	next := lowestPending(p.s, p.phaseAt)
	out := make([]string, len(next))
	for k, i := range next {
		out[k] = p.s.Progress.Nodes[i].XName
	}
	return out
}

// activate adds node i to the nodes that matter beyond the first pass.
func (p *planner) activate(i int) {
	if p.isActive[i] {
		return
	}
	p.isActive[i] = true
	if len(p.active) > 0 && p.active[len(p.active)-1] > i {
		p.unsorted = true
	}
	p.active = append(p.active, i)
}

// activeNodes returns the active nodes in index order (that is, sorted by
// xname).
func (p *planner) activeNodes() []int {
	if p.unsorted {
		slices.Sort(p.active)
		p.unsorted = false
	}
	return p.active
}

// index returns the index of the node with this xname, or -1.
func (p *planner) index(xname string) int {
	i, ok := slices.BinarySearchFunc(p.s.Progress.Nodes, xname, func(n NodeRecord, x string) int { return strings.Compare(n.XName, x) })
	if !ok {
		return -1
	}
	return i
}

// changeOf returns this decision's change of node i, or nil.
func (p *planner) changeOf(i int) *Change {
	if j := p.chg[i]; j > 0 {
		return &p.d.Changes[j-1]
	}
	return nil
}

// summariseStep writes the message that closes the current step, once its
// nodes are done: when the next step starts, or the session ends.
func (p *planner) summariseStep() {
	var c Counts
	for i := range p.s.Progress.Nodes {
		n := &p.s.Progress.Nodes[i]
		if n.Step != p.s.Progress.Step || p.phaseAt(i) != PhaseDone {
			continue
		}
		o := n.Outcome
		if c := p.changeOf(i); c != nil {
			o = c.Outcome
		}
		c.add(o)
	}
	p.d.Messages = append(p.d.Messages, fmt.Sprintf("Step %d of %d complete: %d upgraded, %d failed, %d skipped, %d untouched",
		p.s.Progress.Step, p.s.Progress.Steps, c.Upgraded, c.Failed, c.Skipped, c.Untouched))
}

// phaseAt returns node i's phase after this decision's changes.
func (p *planner) phaseAt(i int) Phase {
	if c := p.changeOf(i); c != nil {
		return c.Phase
	}
	return p.s.Progress.Nodes[i].Phase
}

// groupedAt reports whether node i may be in the upgrading group after
// this decision's changes.
func (p *planner) groupedAt(i int) bool {
	if c := p.changeOf(i); c != nil {
		switch c.Group {
		case GroupAdded:
			return true
		case GroupGone:
			return false
		}
	}
	return p.s.Progress.Nodes[i].Grouped
}

func (p *planner) change(c Change) {
	i := p.index(c.XName)
	if i < 0 {
		return // not a node of the session: nothing to change
	}
	if old := p.changeOf(i); old != nil {
		*old = c
		return
	}
	p.activate(i)
	if n := &p.s.Progress.Nodes[i]; (c.Phase == PhaseFailing || c.Outcome == OutcomeFailed) && n.Phase != PhaseFailing && n.Outcome != OutcomeFailed {
		p.failures++
	}
	p.d.Changes = append(p.d.Changes, c)
	p.chg[i] = int32(len(p.d.Changes))
}

func (p *planner) done(n *NodeRecord, o Outcome, reason string) {
	p.change(Change{XName: n.XName, Phase: PhaseDone, Outcome: o, Reason: reason})
}

func (p *planner) fail(n *NodeRecord, reason string) {
	p.change(Change{XName: n.XName, Phase: PhaseFailing, Reason: reason})
}

func (p *planner) wake(t time.Time) {
	if p.d.Wake.IsZero() || t.Before(p.d.Wake) {
		p.d.Wake = t
	}
}

// reasonCancelled is the reason of a node released because the session
// was cancelled before its reboot.
const reasonCancelled = "session cancelled before this node's reboot"

// reasonDrainTimeout is the reason of a node released because it still ran
// jobs at its drain timeout; it waits for a later turn.
const reasonDrainTimeout = "still running jobs at the drain timeout; released to be tried again later"

// drainTimeout releases or fails a node still busy at its drain timeout,
// or asks to plan again when the timeout falls due.
func (p *planner) drainTimeout(n *NodeRecord) {
	t := time.Duration(p.s.DrainTimeout)
	if t <= 0 || p.s.Progress.Cancel {
		return
	}
	deadline := n.DrainRequested.Add(t)
	switch {
	case p.obs.Now.Before(deadline):
		p.wake(deadline)
	case p.s.DrainTimeoutAction == DrainFail:
		p.fail(n, fmt.Sprintf("still running jobs %s after its drain was requested (drain_timeout)", t))
	default:
		p.change(Change{XName: n.XName, Phase: PhaseReleasing, Reason: reasonDrainTimeout})
		p.nudges.resume = append(p.nudges.resume, n.XName)
	}
}

// reasonPrefix marks the workload-manager reasons crus sets for this
// session, so that a drain set by someone else is recognised as not ours.
func reasonPrefix(s *Session) string { return "crus " + s.UpgradeID }

// ours reports whether the node's drain or fail was set by this session. A
// workload manager that reports no reason cannot tell; crus then assumes
// the state is its own.
func (p *planner) ours(w wlm.Node) bool {
	return w.Reason == "" || strings.HasPrefix(w.Reason, reasonPrefix(p.s))
}

// describeFor describes a node, leaving out the reason if it is the
// session's own.
func (p *planner) describe(w wlm.Node) string {
	if strings.HasPrefix(w.Reason, reasonPrefix(p.s)) {
		return w.Condition()
	}
	return describe(w)
}

func describe(w wlm.Node) string {
	if w.Reason != "" {
		return fmt.Sprintf("%s (%s)", w.Condition(), w.Reason)
	}
	return w.Condition()
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

// advance moves node i (n) on according to what was observed.
func (p *planner) advance(i int, n *NodeRecord) {
	s, obs := p.s, p.obs
	cancel := s.Progress.Cancel
	switch n.Phase {
	case PhasePending:
		switch {
		case cancel:
			p.done(n, OutcomeUntouched, "session cancelled before this node's step began")
		case s.Progress.Abort != "":
			p.done(n, OutcomeUntouched, "session aborted before this node was taken: "+s.Progress.Abort)
		}
		return
	case PhaseDone:
		return
	}
	now := obs.Now
	w, seen := obs.Nodes[n.XName]
	gone, unknown := obs.Unknown[n.XName]
	switch n.Phase {

	case PhaseQuiescing, PhaseQuiesced:
		switch {
		case cancel:
			p.change(Change{XName: n.XName, Phase: PhaseReleasing, Reason: reasonCancelled})
			p.nudges.resume = append(p.nudges.resume, n.XName)
		case unknown:
			p.fail(n, "disappeared from the workload manager: "+gone)
		case !seen:
		case w.Fail && !p.ours(w):
			p.done(n, OutcomeSkipped, "failed by someone else during the session: "+describe(w))
		case w.Drain && !p.ours(w):
			p.done(n, OutcomeSkipped, "drained by someone else during the session: "+describe(w))
		case w.Drained():
			if n.Phase == PhaseQuiescing {
				p.change(Change{XName: n.XName, Phase: PhaseQuiesced})
			}
		case w.Draining():
			if n.Phase == PhaseQuiesced { // a job got onto it after all
				p.change(Change{XName: n.XName, Phase: PhaseQuiescing})
			}
			p.drainTimeout(n)
		default: // not drained: the drain was lost, or someone resumed it
			if n.Phase == PhaseQuiesced {
				p.change(Change{XName: n.XName, Phase: PhaseQuiescing})
			}
			p.nudges.drain = append(p.nudges.drain, n.XName)
		}

	case PhaseBooting:
		b, ok := obs.Boots[n.Boot]
		deadline := n.RebootRequested.Add(time.Duration(s.BootTimeout))
		switch {
		case obs.MissingBoots[n.Boot]:
			if now.After(deadline) {
				p.fail(n, fmt.Sprintf("boot session %s could not be created within %s (%s)", n.Boot, s.BootTimeout, orNone(n.LastError)))
				return
			}
			if p.nudges.reboot == nil {
				p.nudges.reboot = map[string][]string{}
			}
			p.nudges.reboot[n.Boot] = append(p.nudges.reboot[n.Boot], n.XName)
			p.wake(deadline)
		case !ok:
		case b.Phase == bos.PhaseComplete:
			p.booted = true
			r := b.Nodes[n.XName]
			switch {
			case r.Result == bos.ResultSucceeded && b.Error == "":
				p.change(Change{XName: n.XName, Phase: PhaseReturning})
			case r.Result == bos.ResultFailed:
				p.fail(n, fmt.Sprintf("boot failed in boot session %s: %s", n.Boot, orNone(r.Reason)))
			case b.Error != "":
				p.fail(n, fmt.Sprintf("boot session %s failed: %s", n.Boot, b.Error))
			default:
				p.fail(n, fmt.Sprintf("boot session %s completed without reporting this node", n.Boot))
			}
		case now.After(deadline):
			p.fail(n, fmt.Sprintf("boot session %s did not complete within %s (still %s)", n.Boot, s.BootTimeout, b.Phase))
		default:
			p.wake(deadline)
		}

	case PhaseReturning:
		deadline := n.Booted.Add(time.Duration(s.ReturnTimeout))
		switch {
		case unknown:
			p.fail(n, "disappeared from the workload manager: "+gone)
		case seen && p.rebooted(n, w) && w.InService():
			p.done(n, OutcomeUpgraded, "rebooted and back in service")
		case seen && p.rebooted(n, w) && w.Drain && !p.ours(w):
			p.done(n, OutcomeUpgraded, "rebooted; left drained by someone else: "+describe(w))
		case seen && p.rebooted(n, w):
			p.change(Change{XName: n.XName, Phase: PhaseResuming})
			p.nudges.resume = append(p.nudges.resume, n.XName)
		case now.After(deadline):
			state := "not observed"
			if seen {
				state = p.describe(w)
				if p.obs.BootTimes && !w.BootTime.IsZero() && w.Responding() {
					state += fmt.Sprintf(", last boot %s is before the reboot request", w.BootTime.UTC().Format(time.RFC3339))
				}
			}
			p.fail(n, fmt.Sprintf("did not return to the workload manager within %s of booting (%s)", s.ReturnTimeout, state))
		default:
			p.wake(deadline)
		}

	case PhaseResuming:
		deadline := n.Booted.Add(time.Duration(s.ReturnTimeout))
		switch {
		case unknown:
			p.fail(n, "disappeared from the workload manager: "+gone)
		case seen && w.InService():
			p.done(n, OutcomeUpgraded, "rebooted and back in service")
		case seen && (w.Drain || w.Fail) && !p.ours(w):
			p.done(n, OutcomeUpgraded, "rebooted; left out of service by someone else: "+describe(w))
		case now.After(deadline):
			p.fail(n, fmt.Sprintf("could not be resumed within %s of booting (%s; %s)", s.ReturnTimeout, p.stateOf(w, seen), orNone(n.LastError)))
		default:
			p.nudges.resume = append(p.nudges.resume, n.XName)
			p.wake(deadline)
		}

	case PhaseReleasing:
		// Released because of a cancel: untouched; because it could not
		// be taken after all: skipped. Either way, back in service unless
		// someone else holds it. Released because its drain timed out:
		// back to wait for a later turn, unless the session stops taking
		// nodes (untouched).
		outcome := OutcomeSkipped
		retry := false
		switch {
		case n.Reason == reasonCancelled:
			outcome = OutcomeUntouched
		case n.Reason == reasonDrainTimeout && (cancel || s.Progress.Abort != ""):
			outcome = OutcomeUntouched
		case n.Reason == reasonDrainTimeout:
			retry = true
		}
		deadline := n.Since.Add(time.Duration(s.ReturnTimeout))
		switch {
		case unknown:
			p.done(n, OutcomeSkipped, n.Reason+"; the node then disappeared from the workload manager: "+gone)
		case retry && seen && !w.Drain && !w.Fail:
			p.change(Change{XName: n.XName, Phase: PhasePending, Retry: true})
		case seen && w.InService():
			p.done(n, outcome, n.Reason+"; back in service")
		case seen && (w.Drain || w.Fail) && !p.ours(w):
			p.done(n, OutcomeSkipped, n.Reason+"; left out of service by someone else: "+describe(w))
		case seen && !w.Drain && !w.Fail:
			// Resumed, not responding yet: nothing more crus can do.
			p.done(n, outcome, n.Reason+"; resumed ("+w.Condition()+")")
		case now.After(deadline):
			p.done(n, OutcomeSkipped, fmt.Sprintf("%s; could not be returned to service within %s (%s; %s)", n.Reason, s.ReturnTimeout, p.stateOf(w, seen), orNone(n.LastError)))
		default:
			p.nudges.resume = append(p.nudges.resume, n.XName)
			p.wake(deadline)
		}

	case PhaseFailing, PhaseDone:
		// Failing nodes are handled by emitFailing; done nodes rest.
	}
}

func orNone(s string) string {
	if s == "" {
		return "no error reported"
	}
	return s
}

func (p *planner) stateOf(w wlm.Node, seen bool) string {
	if !seen {
		return "not observed"
	}
	return p.describe(w)
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
	for _, name := range sortedKeys(p.nudges.reboot) {
		nodes := p.nudges.reboot[name]
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActReboot, Nodes: nodes, Reboot: p.rebootRequest(name, nodes),
			Why: "boot session recorded but not found: create it (again)",
		})
	}
}

// emitFailing issues the actions that fail nodes: each puts its nodes in
// the failed group and fails them in the workload manager, with one reason
// per action. Settle marks them done once neither call failed for a
// reason that retrying may fix.
func (p *planner) emitFailing() {
	var nodes []string
	var reasons = map[string]string{}
	for _, i := range p.activeNodes() {
		n := &p.s.Progress.Nodes[i]
		if p.phaseAt(i) != PhaseFailing {
			continue
		}
		nodes = append(nodes, n.XName)
		reason := n.Reason
		if c := p.changeOf(i); c != nil && c.Reason != "" {
			reason = c.Reason
		}
		reasons[n.XName] = reason
	}
	if len(nodes) == 0 {
		return
	}
	// One fail action per distinct reason, so each node carries its own.
	byReason := map[string][]string{}
	for _, x := range nodes {
		byReason[reasons[x]] = append(byReason[reasons[x]], x)
	}
	for _, r := range sortedKeys(byReason) {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActFail, Label: p.s.FailedLabel, Nodes: byReason[r], Reason: reasonPrefix(p.s) + ": " + r,
			Why: "record failed nodes in the failed group and take them out of service",
		})
	}
}

// emitUngroup removes from the upgrading group the nodes that have left
// flight, unless a boot session is pending (BOS reads the group then).
func (p *planner) emitUngroup() {
	// A boot limited to xnames is not affected by other nodes leaving the
	// group; the original algorithm waits all the same.
	if (p.legacy || p.s.BootLimit == LimitLabel) && p.bootPending() {
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

func (p *planner) anyInFlight() bool { return p.inFlight() > 0 }

// inFlight counts the nodes in flight after this decision's changes.
func (p *planner) inFlight() int {
	k := 0
	for _, i := range p.active {
		if p.phaseAt(i).InFlight() {
			k++
		}
	}
	return k
}

// anyPending reports whether a node is pending after this decision.
func (p *planner) anyPending() bool {
	for _, i := range p.active {
		if p.phaseAt(i) == PhasePending {
			return true
		}
	}
	for i := p.firstPending; i < len(p.s.Progress.Nodes); i++ {
		if p.phaseAt(i) == PhasePending {
			return true
		}
	}
	return false
}

func (p *planner) anyGrouped() bool {
	for _, i := range p.active {
		if p.groupedAt(i) {
			return true
		}
	}
	return false
}

// admit starts the next step: it takes the step's nodes that are still in
// service and skips the others. If some of them have not been observed, it
// waits for the next observation.
func (p *planner) admit() {
	s, obs := p.s, p.obs
	for next := p.pending(); len(next) > 0; next = p.pending() {
		step := s.Node(next[0]).Step
		var taken, skipped []string
		for _, x := range next {
			if _, ok := obs.Nodes[x]; !ok {
				if _, ok := obs.Unknown[x]; !ok {
					return // not observed: plan again after the next observation
				}
			}
		}
		for _, x := range next {
			n := s.Node(x)
			w := obs.Nodes[x]
			if gone, unknown := obs.Unknown[x]; unknown {
				p.done(n, OutcomeSkipped, "unknown to the workload manager at the start of its step: "+gone)
				skipped = append(skipped, x)
			} else if !w.InService() {
				p.done(n, OutcomeSkipped, "not in service at the start of its step: "+describe(w))
				skipped = append(skipped, x)
			} else {
				taken = append(taken, x)
			}
		}
		if len(taken) == 0 {
			p.d.Messages = append(p.d.Messages, fmt.Sprintf("Step %d of %d: all %d nodes skipped (not in service)", step, s.Progress.Steps, len(skipped)))
			continue
		}
		if s.Progress.Step > 0 && p.d.Step == s.Progress.Step {
			p.summariseStep()
		}
		p.d.Step = step
		for _, x := range taken {
			p.change(Change{XName: x, Phase: PhaseQuiescing, Step: step, Group: GroupAdded})
		}
		msg := fmt.Sprintf("Step %d of %d: quiescing %d nodes", step, s.Progress.Steps, len(taken))
		if len(skipped) > 0 {
			msg += fmt.Sprintf(" (%d skipped: not in service)", len(skipped))
		}
		p.d.Messages = append(p.d.Messages, msg)
		p.d.Actions = append(p.d.Actions,
			Action{Kind: ActAddMembers, Label: s.UpgradingLabel, Nodes: taken, Why: fmt.Sprintf("step %d: put the step's nodes in the upgrading group", step)},
			Action{Kind: ActDrain, Nodes: taken, Reason: p.drainReason(step), SkipFailed: true, Why: fmt.Sprintf("step %d: quiesce the step's nodes", step)},
		)
		return
	}
}

// checkBudget aborts the session once more of its nodes have failed than
// its failure budget allows: no new node is taken (the pending ones are
// left untouched, in service); the nodes in flight finish.
func (p *planner) checkBudget() {
	s := p.s
	if s.Progress.Abort != "" || s.Progress.Cancel {
		return
	}
	budget := s.Rollout.failureBudget(len(s.Progress.Nodes))
	if budget < 0 || p.failures <= budget {
		return
	}
	p.d.Abort = fmt.Sprintf("%d nodes failed, more than the failure budget of %d", p.failures, budget)
	p.d.Messages = append(p.d.Messages, "Failure budget exceeded: "+p.d.Abort+"; no new node is taken, nodes in flight finish, the others stay in service")
	for i := range s.Progress.Nodes {
		if p.phaseAt(i) == PhasePending {
			p.done(&s.Progress.Nodes[i], OutcomeUntouched, "session aborted before this node was taken: "+p.d.Abort)
		}
	}
}

// ranked is a candidate for admission with its rank.
type ranked struct {
	i       int
	retries int
	class   int       // 0 first
	end     time.Time // expected end of its jobs (job_end)
}

// rank orders the candidates by the rollout's Order, from what was
// observed: nodes put back less often first, then by order, then in list
// order. Nodes changed by this decision wait for a later one.
func (p *planner) rank(cands []int) []ranked {
	s, obs := p.s, p.obs
	far := obs.Now.Add(100 * 365 * 24 * time.Hour)
	out := make([]ranked, 0, len(cands))
	for _, i := range cands {
		if p.chg[i] != 0 {
			continue
		}
		n := &s.Progress.Nodes[i]
		r := ranked{i: i, retries: n.Retries}
		w, seen := obs.Nodes[n.XName]
		switch s.Rollout.Order {
		case OrderIdleFirst, OrderJobEnd:
			switch {
			case !seen || !w.InService():
				r.class = 2
			case !w.Busy():
				r.end = obs.Now
			case s.Rollout.Order == OrderIdleFirst:
				r.class = 1
			default:
				r.end = far
				if e, ok := obs.JobEnds[n.XName]; ok {
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

// admitRollout takes the next nodes for a session with rollout options:
// a whole batch when nothing is in flight (classic, and canary batches),
// or as many as there is room for (rolling), in the rollout's order, while
// no gate (pause, approval, maintenance window) holds it.
func (p *planner) admitRollout() {
	s, obs := p.s, p.obs
	if s.Progress.Cancel || s.Progress.Abort != "" || p.d.Abort != "" {
		return
	}
	inFlight := p.inFlight()
	room, held := admissionRoom(s, p.d.Step, inFlight)
	if held != "" {
		if inFlight == 0 {
			p.held = held
		}
		return
	}
	if room <= 0 || (!s.Rollout.rolling() && p.anyGrouped()) {
		return
	}
	if open, next := s.Rollout.windows().open(obs.Now); !open {
		if !next.IsZero() {
			p.wake(next)
		}
		if inFlight == 0 {
			p.held = StageOutsideWindow
		}
		return
	}
	limit := s.Rollout.lookahead(s.StepSize)
	cands := p.rank(candidates(s.Progress.Nodes, p.phaseAt, limit, p.firstPending))
	if !s.Rollout.rolling() {
		p.admitBatch(cands, room)
		return
	}
	_, canary := s.Rollout.canarySize(p.d.Step + 1)
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
		w, seen := obs.Nodes[n.XName]
		switch {
		case !seen: // not observed this time: a later decision
		case !w.InService():
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
			p.done(n, OutcomeSkipped, "not in service when its turn came: "+describe(obs.Nodes[n.XName]))
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
		what = fmt.Sprintf("Canary batch %d of %d", batch, len(s.Canary))
	}
	p.take(batch, taken, fmt.Sprintf("%s: quiescing %d nodes (%d in flight, at most %d)", what, len(taken), inFlight+len(taken), s.StepSize))
}

// take puts nodes in flight as batch (step) number batch.
func (p *planner) take(batch int, taken []string, msg string) {
	s := p.s
	for _, x := range taken {
		p.change(Change{XName: x, Phase: PhaseQuiescing, Step: batch, Group: GroupAdded})
	}
	p.d.Messages = append(p.d.Messages, msg)
	p.d.Actions = append(p.d.Actions,
		Action{Kind: ActAddMembers, Label: s.UpgradingLabel, Nodes: taken, Why: fmt.Sprintf("step %d: put the step's nodes in the upgrading group", batch)},
		Action{Kind: ActDrain, Nodes: taken, Reason: p.drainReason(batch), SkipFailed: true, Why: fmt.Sprintf("step %d: quiesce the step's nodes", batch)},
	)
}

// admitBatch starts the next classic step (or canary batch) of size nodes
// in the rollout's order: it takes those still in service and skips the
// others, as the original algorithm does. If some of them have not been
// observed, it waits for the next observation.
func (p *planner) admitBatch(cands []ranked, size int) {
	s, obs := p.s, p.obs
	for len(cands) > 0 && size > 0 {
		batch := cands[:min(size, len(cands))]
		for _, c := range batch {
			x := s.Progress.Nodes[c.i].XName
			if _, ok := obs.Nodes[x]; !ok {
				if _, ok := obs.Unknown[x]; !ok {
					return // not observed: plan again after the next observation
				}
			}
		}
		step := p.d.Step + 1
		_, canary := s.Rollout.canarySize(step)
		var taken []string
		skipped := 0
		for _, c := range batch {
			n := &s.Progress.Nodes[c.i]
			w := obs.Nodes[n.XName]
			if gone, unknown := obs.Unknown[n.XName]; unknown {
				p.change(Change{XName: n.XName, Phase: PhaseDone, Outcome: OutcomeSkipped, Step: step, Reason: "unknown to the workload manager at the start of its step: " + gone})
				skipped++
			} else if !w.InService() {
				p.change(Change{XName: n.XName, Phase: PhaseDone, Outcome: OutcomeSkipped, Step: step, Reason: "not in service at the start of its step: " + describe(w)})
				skipped++
			} else {
				taken = append(taken, n.XName)
			}
		}
		cands = cands[len(batch):]
		p.d.Step, p.d.Steps = step, max(p.d.Steps, step)
		what := fmt.Sprintf("Step %d of %d", step, p.d.Steps)
		if canary {
			what = fmt.Sprintf("Step %d of %d (canary)", step, p.d.Steps)
		}
		if len(taken) == 0 {
			p.d.Messages = append(p.d.Messages, fmt.Sprintf("%s: all %d nodes skipped (not in service)", what, skipped))
			var held Stage
			if size, held = admissionRoom(s, p.d.Step, 0); held != "" {
				p.held = held
				return
			}
			continue
		}
		slices.Sort(taken)
		msg := fmt.Sprintf("%s: quiescing %d nodes", what, len(taken))
		if skipped > 0 {
			msg += fmt.Sprintf(" (%d skipped: not in service)", skipped)
		}
		p.take(step, taken, msg)
		return
	}
}

func (p *planner) drainReason(step int) string {
	return fmt.Sprintf("%s: rolling upgrade, step %d of %d", reasonPrefix(p.s), step, p.s.Progress.Steps)
}

// finish runs when no node is in flight and no step can start: it checks
// the upgrading group holds none of the session's nodes, then ends.
func (p *planner) finish() {
	s := p.s
	p.d.Stage = StageCleanup
	if !p.obs.UpgradingObserved {
		return // observe the group first
	}
	var ours, strangers []string
	for _, x := range p.obs.Upgrading {
		if s.Node(x) != nil {
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
	c := s.Counts()
	for _, ch := range p.d.Changes {
		if ch.Phase == PhaseDone && s.Node(ch.XName).Phase != PhaseDone {
			c.add(ch.Outcome)
		}
	}
	if p.legacy && s.Progress.Step > 0 {
		p.summariseStep()
	}
	if len(strangers) > 0 {
		p.d.Messages = append(p.d.Messages, fmt.Sprintf("The upgrading group holds %d nodes that are not part of this session; left alone: %s", len(strangers), abbreviate(strangers, 10)))
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

// setStage derives the session stage from the phases of the nodes in
// flight, and writes a message at each step milestone.
func (p *planner) setStage() {
	if p.s.Rollout.rolling() {
		p.bootRolling()
	}
	var count = map[Phase]int{}
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
	case p.booted:
		stage = StageBooted
	case count[PhaseFailing] > 0:
		stage = StageBooted
	case count[PhaseReturning]+count[PhaseResuming] > 0:
		stage = StageWLMWaiting
	case count[PhaseReleasing] > 0:
		stage = StageCleanup
	}
	if stage == StageQuiesced && !p.s.Rollout.rolling() {
		p.boot()
		stage = StageBooting
		if len(p.d.Actions) == 0 || p.d.Actions[len(p.d.Actions)-1].Kind != ActReboot {
			stage = StageQuiesced
		}
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
		if p.s.Rollout.rolling() {
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

// bootRolling reboots, in boot sessions of at most BootBatchSize nodes,
// every node the observation shows drained and in the upgrading group,
// without waiting for the other nodes in flight (the rolling strategy).
func (p *planner) bootRolling() {
	s := p.s
	if !p.obs.UpgradingObserved {
		return // check group membership first (ScopeFor asks for it)
	}
	var nodes, missing []string
	for _, i := range p.activeNodes() {
		if p.phaseAt(i) != PhaseQuiesced {
			continue
		}
		x := s.Progress.Nodes[i].XName
		if w, ok := p.obs.Nodes[x]; !ok || !w.Drained() {
			continue // reboot only what this very observation shows drained
		}
		if _, ok := slices.BinarySearch(p.obs.Upgrading, x); !ok {
			missing = append(missing, x)
			continue
		}
		nodes = append(nodes, x)
	}
	if len(missing) > 0 {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActAddMembers, Label: s.UpgradingLabel, Nodes: missing,
			Why: "nodes about to boot are missing from the upgrading group: add them (again)",
		})
	}
	if len(nodes) == 0 {
		return
	}
	size := s.BootBatchSize
	if size <= 0 {
		size = len(nodes)
	}
	for chunk := range slices.Chunk(nodes, size) {
		p.d.Boots++
		name := bootName(s, p.d.Boots)
		for _, x := range chunk {
			p.change(Change{XName: x, Phase: PhaseBooting, Boot: name})
		}
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActReboot, Nodes: chunk, Reboot: p.rebootRequest(name, chunk),
			Why: "rolling: reboot the nodes drained since the last decision",
		})
		p.d.Messages = append(p.d.Messages, fmt.Sprintf("Boot session %s created for %d drained nodes", name, len(chunk)))
	}
}

// boot starts the boot session of the step once every node of the step is
// quiesced (the original strategy's whole-step barrier). In label mode it
// also waits until no stranger of the session is left in the group.
func (p *planner) boot() {
	s := p.s
	var nodes []string
	for _, i := range p.activeNodes() {
		n := &s.Progress.Nodes[i]
		switch p.phaseAt(i) {
		case PhaseQuiescing:
			return
		case PhaseQuiesced:
			// Reboot only what this very observation shows drained.
			if w, ok := p.obs.Nodes[n.XName]; !ok || !w.Drained() {
				return
			}
			nodes = append(nodes, n.XName)
		}
	}
	if len(nodes) == 0 {
		return
	}
	if !p.obs.UpgradingObserved {
		return // check group membership first (ScopeFor asks for it)
	}
	var missing []string
	for _, x := range nodes {
		if _, ok := slices.BinarySearch(p.obs.Upgrading, x); !ok {
			missing = append(missing, x)
		}
	}
	if len(missing) > 0 {
		p.d.Actions = append(p.d.Actions, Action{
			Kind: ActAddMembers, Label: s.UpgradingLabel, Nodes: missing,
			Why: "nodes about to boot are missing from the upgrading group: add them (again)",
		})
		return
	}
	if s.BootLimit == LimitLabel {
		// The boot session reboots every member of the group: wait until
		// the only members of the session's are the nodes to boot (not a
		// node done, released back to service or being failed, which may
		// run jobs).
		for _, i := range p.activeNodes() {
			if p.groupedAt(i) && p.phaseAt(i) != PhaseQuiesced {
				return
			}
		}
	}
	p.d.Boots++
	name := bootName(s, p.d.Boots)
	for _, x := range nodes {
		p.change(Change{XName: x, Phase: PhaseBooting, Boot: name})
	}
	p.d.Actions = append(p.d.Actions, Action{
		Kind: ActReboot, Nodes: nodes, Reboot: p.rebootRequest(name, nodes),
		Why: fmt.Sprintf("step %d: every node quiesced; reboot them", p.d.Step),
	})
	p.d.Messages = append(p.d.Messages, fmt.Sprintf("Step %d: all %d nodes quiesced; boot session %s created", p.d.Step, len(nodes), name))
}

// bootName is the deterministic name of the session's n-th boot session.
func bootName(s *Session, n int) string { return fmt.Sprintf("crus-%s-%d", s.UpgradeID, n) }

func (p *planner) rebootRequest(name string, nodes []string) bos.Request {
	limit := slices.Clone(nodes)
	if p.s.BootLimit == LimitLabel {
		limit = []string{p.s.UpgradingLabel}
	}
	return bos.Request{Name: name, Template: p.s.TemplateID, Limit: limit}
}

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
// service); a boot session that cannot be created fails its nodes; a resume
// that does not take is tried again until the return timeout; a node the
// failed group or the workload manager refuses is still failed, with the
// refusal noted. Transient failures of a whole call change nothing: the
// next plan issues the action again.
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
			msg := fmt.Sprintf("Cleared %d nodes from the failed group %q", len(r.Nodes)-len(r.PerNode), s.FailedLabel)
			if r.Err != nil || len(r.PerNode) > 0 {
				msg += fmt.Sprintf(" (errors: %v)", errors.Join(r.Err, joinPerNode(r.PerNode)))
			}
			d.Messages = append(d.Messages, msg)
		}

	case a.Kind == ActAddMembers && a.Label == s.UpgradingLabel:
		each(func(n *NodeRecord, err error) {
			switch {
			case err == nil:
			case r.Err != nil && !permanent:
				// Keep the intent: the drain is issued again at the next
				// plan, and the add at the barrier before the boot.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: err.Error()})
			case n.Phase.InFlight():
				// It may have been drained (by a replayed step): release it.
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: PhaseReleasing,
					Reason: "could not be put in the upgrading group: " + err.Error(), LastError: err.Error()})
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
				Reason: "the workload manager refused to drain it: " + err.Error(), LastError: err.Error()})
		})

	case a.Kind == ActReboot:
		if r.Err == nil {
			break
		}
		each(func(n *NodeRecord, err error) {
			if n.Phase != PhaseBooting || n.Boot != a.Reboot.Name {
				return
			}
			if permanent {
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: PhaseFailing,
					Reason: fmt.Sprintf("boot session %s was refused: %v", a.Reboot.Name, err), LastError: err.Error()})
			} else {
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: PhaseBooting, LastError: err.Error()})
			}
		})

	case a.Kind == ActResume:
		each(func(n *NodeRecord, err error) {
			if err != nil {
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: "resume: " + err.Error()})
			}
		})

	case a.Kind == ActFail:
		each(func(n *NodeRecord, err error) {
			if n.Phase != PhaseFailing || (r.Err != nil && !permanent) {
				return // try both again at the next plan
			}
			c := Change{XName: n.XName, Phase: PhaseDone, Outcome: OutcomeFailed}
			if err != nil {
				// Keep the refusal with the outcome, for good.
				c.Reason = n.Reason + " (and failing it was refused: " + err.Error() + ")"
				c.LastError = err.Error()
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
				d.Changes = append(d.Changes, Change{XName: n.XName, Phase: n.Phase, LastError: "leaving the upgrading group: " + err.Error()})
			}
		})
	}
	return d
}

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
	p.Step, p.Steps, p.Boots = d.Step, d.Steps, d.Boots
	if d.ClearedFailed {
		p.FailedToClear = nil
	}
	if d.Abort != "" && p.Abort == "" {
		p.Abort = d.Abort
	}
	for _, c := range d.Changes {
		n := s.Node(c.XName)
		if n == nil {
			continue
		}
		if c.Phase != "" && c.Phase != n.Phase {
			old := n.Phase
			n.Phase, n.Since = c.Phase, now
			switch c.Phase {
			case PhaseQuiescing:
				if old == PhasePending {
					n.DrainRequested = now
				}
			case PhaseQuiesced:
				n.Drained = now
			case PhaseBooting:
				n.RebootRequested = now
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
		if c.Boot != "" {
			n.Boot = c.Boot
		}
		if c.LastError != "" {
			n.LastError = c.LastError
		}
		if c.Retry {
			n.Retries++
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// abbreviate lists at most max names, then "and N more".
func abbreviate(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
}
