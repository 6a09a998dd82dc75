package crus

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/text"
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
//
// Every session goes through one pipeline, whatever its Rollout:
//
//	observe → settle → admit → drain → boot → verify → release
//
// The rollout options are a policy (policy.go) that the stages consult —
// how many nodes may be taken, in which order, whether a step boots as a
// whole — never a second code path. Each stage lives in its own file:
// admission (plan_admit.go), draining (plan_drain.go), booting
// (plan_boot.go), verification (plan_verify.go), release, failure and the
// end of a session (plan_release.go); Settle and Apply are in settle.go.

// Scope says what the executor must observe before the next Plan.
type Scope struct {
	// Nodes are the xnames whose workload-manager state is needed.
	Nodes []string
	// Boots are the boot sessions whose status is needed.
	Boots []BootRef
	// Upgrading asks for the members of the upgrading group.
	Upgrading bool
	// JobEnds are the xnames whose expected job ends are needed (the
	// job_end order, the scheduled strategy), to be read in one
	// wlm.JobEnder call when the workload manager has that capability.
	JobEnds []string
	// Bookings asks for the session's reservations (the scheduled
	// strategy), read in one wlm.Scheduler call when the workload manager
	// has that capability.
	Bookings bool
}

// BootRef names a boot session and the nodes crus asked it to reboot.
type BootRef struct {
	Name  string
	Nodes []string
	// Requested is the earliest reboot request of its nodes: a boot time
	// later than this is news of them.
	Requested time.Time
	// TimedFrom is the earliest start of its nodes' boot_timeout (when
	// the orchestrator accepted the request, or until then when it was
	// recorded).
	TimedFrom time.Time
	// Accepted: the orchestrator accepted the request (a node of it has
	// NodeRecord.BootAccepted), so a session it does not know was deleted.
	Accepted bool
}

// Part names a part of an observation, for Observation.Errors.
type Part string

// Parts of an observation. Each is read on its own: one that cannot be
// read leaves the others usable.
const (
	PartNodes     Part = "nodes"           // workload-manager node states
	PartBoots     Part = "boots"           // boot session status
	PartUpgrading Part = "upgrading_group" // members of the upgrading group
	PartJobEnds   Part = "job_ends"        // expected ends of running jobs
	PartBookings  Part = "bookings"        // the session's reservations
)

// Observation is what the executor saw just before planning. Maps are keyed
// by xname. Observation is partial by design: what could not be read is
// absent (and its part is in Errors), and the planner acts on what is
// known — a node not observed waits, it is never failed for it.
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
	// MissingBoots holds the boot sessions the orchestrator does not know:
	// their boot request was never accepted.
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
	// Nil when the workload manager cannot tell (no wlm.JobEnder) or the
	// read failed (see Errors).
	JobEnds map[string]time.Time

	// Scheduling says the workload manager can book nodes ahead of time
	// (wlm.Scheduler, and reading the session's reservations did not
	// answer wlm.ErrUnsupported). Bookings holds the session's
	// reservations, by name, when Scope.Bookings asked for them and they
	// could be read (BookingsObserved), or, while they cannot, as the
	// executor last read them with its own changes since (Errors then
	// holds PartBookings).
	Scheduling       bool
	Bookings         map[string]Booking
	BookingsObserved bool
	// BookingRefused, if not empty, says why the workload manager refused
	// to book nodes for the user crus runs as (wlm.ErrPermissionDenied):
	// Scheduling is then false, but for a full observation every 10
	// minutes, at which the executor asks again.
	BookingRefused string
	// SteeringFailed, if not empty, says why the executor could not
	// steer new jobs away from the nodes still to take (wlm.Steerer) at
	// its last try; it tries again a minute later (ten after a refusal).
	SteeringFailed string
	// InFlightOnly says the executor looked at the nodes in flight alone
	// (between two full observations): no pending node was observed, so
	// none is taken and no booking is changed.
	InFlightOnly bool
	// TakenUp says the run that observes has carried out no decision of
	// its own yet (it has just started, after a crash, a restart or a
	// takeover by another replica): what an earlier run recorded it
	// would do, such as resuming a node, may never have been done.
	TakenUp bool

	// at is the same observation by position, as the executor made it
	// (nil from anyone else): see observedAt.
	at *observedAt

	// Horizon is the longest the executor may take to decide again: its
	// poll interval, plus the time a round of calls may spend retrying. A
	// booking never starts sooner than this, so that crus takes its nodes
	// or moves it on before it begins.
	Horizon time.Duration

	// Errors says which parts of the scope could not be read, and why
	// (text from the backend, cleaned and capped). Nil when all were.
	Errors map[Part]string

	// Describer words nodes' conditions in reasons and messages: the
	// workload manager's own (wlm.DescriberOf). Nil means wlm.Neutral.
	Describer wlm.Describer
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
	ActBook          ActionKind = "book"           // make or move the reservation Booking (of Nodes)
	ActUnbook        ActionKind = "unbook"         // delete the reservations named in Unbook
)

// Booking is a reservation of the session's: its Nodes (xnames, sorted)
// take no job that would run past Start, and none from Start to End (see
// wlm.Scheduler). Its name begins with the session's booking prefix.
type Booking struct {
	Name       string
	Nodes      []string
	Start, End time.Time
}

// Action is one batch call the executor must make.
type Action struct {
	Kind   ActionKind
	Nodes  []string    // xnames, sorted
	Label  string      // group, for add_members and remove_members
	Reason string      // workload-manager reason, for drain and fail
	Reboot bos.Request // for reboot
	// Booking is the reservation to make or move (book; Nodes are its
	// nodes).
	Booking Booking
	// Unbook names the reservations to delete (unbook), sorted: one call
	// for all of them.
	Unbook []string
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
	// Retry counts one more retry of the node (it was put back to wait
	// for a later turn).
	Retry bool
	// Accepted: the orchestrator accepted the node's boot request now
	// (NodeRecord.RebootAccepted): boot_timeout counts from the moment
	// it took the request, not from the first attempt.
	Accepted bool
	// BootAccepted: the orchestrator accepted the request of the node's
	// boot session (NodeRecord.BootAccepted).
	BootAccepted bool
	// Drain says whether the workload manager showed the node's drain.
	Drain DrainChange
}

// DrainChange says how a change affects NodeRecord.Undrained.
type DrainChange int8

// Drain changes.
const (
	DrainKeep DrainChange = iota // leave Undrained as it is
	DrainLost                    // shown not drained: Undrained is set to now, unless set
	DrainHeld                    // shown drained or draining: Undrained is cleared, DrainTaken set to now if it was set
)

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
	Stage Stage
	Step  int
	Steps int
	Boots int
	// Booked and BookedUpTo: see Progress.Booked.
	Booked     []int64
	BookedUpTo int64
	Result     Result // set with Done
	Done       bool   // the session is finished
	// ClearedFailed says the failed group has been cleared.
	ClearedFailed bool
	// Abort, when not empty, says why the session stops taking new nodes
	// from now on (its failure budget was exceeded, or the boot
	// orchestrator refused a boot request).
	Abort string
	// StepClosed says the current step's summary has been written.
	StepClosed bool
	// Conditions is the session's list of conditions after the decision
	// (see Progress.Conditions).
	Conditions []Condition

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
		d.header(s) || !slices.Equal(d.Conditions, s.Progress.Conditions)
}

// header reports whether the decision moves the session's header.
func (d *Decision) header(s *Session) bool {
	p := &s.Progress
	return d.Stage != p.Stage || d.Step != p.Step || d.Steps != p.Steps || d.Boots != p.Boots || d.StepClosed != p.StepClosed ||
		d.BookedUpTo != p.BookedUpTo || !slices.Equal(d.Booked, p.Booked)
}

// Transitions reports whether the decision moves the session on: a new
// stage, step or result, or a node changing phase, outcome or group
// membership. (Noting an error or a condition is a change, not a
// transition.)
func (d *Decision) Transitions(s *Session) bool {
	if d.Done || d.ClearedFailed || d.aborts(s) || d.Stage != s.Progress.Stage || d.Step != s.Progress.Step || d.Boots != s.Progress.Boots {
		return true
	}
	f := recordFinder{nodes: s.Progress.Nodes}
	for _, c := range d.Changes {
		n := f.record(c.XName)
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
	p := &s.Progress
	return Decision{Stage: p.Stage, Step: p.Step, Steps: p.Steps, Boots: p.Boots, Booked: p.Booked, BookedUpTo: p.BookedUpTo, StepClosed: p.StepClosed, Conditions: p.Conditions}
}

// Plan decides what to do next for session s, given what was observed.
// It is deterministic and does not modify s. It returns an error only for
// a record it cannot plan (a completed session).
//
// Its cost is one pass over the node records plus work proportional to
// the nodes in flight, changed or ranked for admission.
func Plan(s *Session, obs Observation) (Decision, error) { return planWith(s, obs, nil) }

// planWith is Plan, reading only the active nodes of idx (the index of s)
// when given one, and using its scratch space and its policy.
func planWith(s *Session, obs Observation, idx *nodeIndex) (Decision, error) {
	if s.Completed {
		return Decision{}, fmt.Errorf("%w: %s", ErrSessionDone, s.UpgradeID)
	}
	if at := obs.at; at != nil && (idx == nil || at.idx != idx) {
		// A view made for another index (or none): the planner reads
		// only the maps, made whole. Past here, a view is this index's.
		at.complete(&obs, s)
	}
	p := &planner{s: s, obs: obs, d: decisionFor(s), idx: idx}
	if idx != nil {
		p.pol, p.bufs = idx.policy(), &idx.bufs
		if len(idx.chg) != idx.n {
			idx.chg, idx.act = make([]int32, idx.n), make([]bool, idx.n)
		}
		p.chg, p.isActive, p.active = idx.chg, idx.act, idx.bufs.active[:0]
		defer func() { // leave the scratch space clean: only active nodes were marked
			for _, i := range p.active {
				p.chg[i], p.isActive[i] = 0, false
			}
			idx.bufs.active, idx.bufs.changes = p.active[:0], len(p.d.Changes)
		}()
	} else {
		p.pol, p.bufs = policyOf(&s.Spec), new(planBufs)
		p.chg, p.isActive = make([]int32, len(s.Progress.Nodes)), make([]bool, len(s.Progress.Nodes))
	}
	return p.plan(), nil
}

// planner holds one decision in the making.
type planner struct {
	s   *Session
	obs Observation
	pol *policy
	d   Decision
	// chg maps a node's index to 1 + the index of its change in d.Changes
	// (0: unchanged).
	chg []int32
	// active lists the nodes that matter beyond the first pass: in flight
	// or grouped before the decision, or changed by it. isActive marks
	// them; unsorted says active is not in index order.
	active   []int
	isActive []bool
	unsorted bool
	idx      *nodeIndex
	booted   bool   // a boot session completed in this decision
	nudges   nudges // actions repeated because the world lags the record
	failures int    // nodes failed or failing, after the decision
	// firstPending is the first node pending in the record (len(nodes):
	// none); nodes this decision makes pending are active.
	firstPending int
	held         Stage // why no node could be taken, if a gate held them
	// unaccepted lists the boot sessions the orchestrator has not
	// accepted, with the nodes that wait for them (see plan_boot.go).
	unaccepted map[string]*unaccepted
	// undrained lists the nodes the workload manager still shows not
	// drained drainNotTaking after crus asked (see plan_drain.go).
	undrained []string
	// The scheduled strategy's slots (plan_schedule.go), computed once,
	// with the pending nodes it slotted, their indices, and the pending
	// nodes in view (once lookedAhead), in bufs.
	slotPlan    *slotPlan
	lookedAhead bool
	admitRoom   int // the nodes admission may take in this decision (0 until it runs)
	bufs        *planBufs
	nodeCopy    wlm.Node     // nodeRef's scratch copy
	finder      recordFinder // index's
}

// planBufs is the scheduled strategy's scratch space, reused from one
// decision to the next when the executor plans through its nodeIndex
// (see slotBufs). Nothing a decision holds points into it.
type planBufs struct {
	slots     slotBufs
	pending   []slotNode // the pending nodes in view that were slotted
	slotIdx   []int      // their indices
	slotOut   []int      // candidates out of service
	lookahead []int      // the pending nodes in view
	out       []time.Time
	held      heldIndex
	active    []int // the planner's active nodes (planner.active)
	changes   int   // how many changes the last decision made
}

// nudges collects repeated actions for nodes whose intent is recorded but
// not (yet) visible in the observation.
type nudges struct {
	drain, resume []string
	reboot        []Action // boot requests to send again, by name
}

// plan runs the pipeline once.
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
	// Settle what was observed: every node in flight moves on (drain,
	// boot verification, return, release).
	p.firstPending = len(s.Progress.Nodes)
	stop := s.Progress.Cancel || s.Progress.Abort != ""
	if p.idx != nil && !stop {
		// Only the active nodes can change (pending ones do only when
		// the session stops taking nodes: then read them all).
		p.failures, p.firstPending = p.idx.failures, p.idx.firstPending
		for _, i := range p.idx.active {
			p.activate(i)
			if n := &s.Progress.Nodes[i]; n.Phase.InFlight() {
				p.advance(i, n)
			}
		}
	} else {
		for i := range s.Progress.Nodes {
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
			p.advance(i, n)
		}
	}
	p.resendUnaccepted()
	p.checkBudget()
	p.emitNudges()
	p.emitFailing()
	p.emitUngroup()
	p.summariseStep()
	if !p.anyInFlight() && !p.anyGrouped() && !p.anyPending() {
		p.finish()
		p.setConditions()
		return p.d
	}
	p.admit()
	p.book()
	p.boot()
	p.setStage()
	p.setConditions()
	return p.d
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
	p.finder.nodes = p.s.Progress.Nodes
	return p.finder.find(xname)
}

// changeOf returns this decision's change of node i, or nil.
func (p *planner) changeOf(i int) *Change {
	if j := p.chg[i]; j > 0 {
		return &p.d.Changes[j-1]
	}
	return nil
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

// change records a change of one node, replacing an earlier change of the
// same node in this decision.
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
	if p.d.Changes == nil && p.bufs.changes > 0 {
		// As many as the last decision made: a decision in a busy
		// session changes a step's worth of nodes, and growing the list
		// to that by doubling was a quarter of what it allocated.
		p.d.Changes = make([]Change, 0, p.bufs.changes)
	}
	p.d.Changes = append(p.d.Changes, c)
	p.chg[i] = int32(len(p.d.Changes))
}

func (p *planner) done(n *NodeRecord, o Outcome, reason string) {
	p.change(Change{XName: n.XName, Phase: PhaseDone, Outcome: o, Reason: capReason(reason)})
}

func (p *planner) fail(n *NodeRecord, reason string) {
	p.change(Change{XName: n.XName, Phase: PhaseFailing, Reason: capReason(reason)})
}

// wake asks to plan again at t, a deadline falling due. A deadline already
// past asks for nothing: what it waits for is not observed now (the next
// regular poll looks again), and waking at once would spin.
func (p *planner) wake(t time.Time) {
	if !t.After(p.obs.Now) {
		return
	}
	if p.d.Wake.IsZero() || t.Before(p.d.Wake) {
		p.d.Wake = t
	}
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
	more := ""
	if len(names) > max {
		names, more = names[:max], fmt.Sprintf(" and %d more", len(names)-max)
	}
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		// Names come from backends (HSM members, boot sessions): one
		// with a newline or a terminal's escape must not reach an error,
		// a log or an admin's terminal as it is.
		b.WriteString(text.Clean(n, maxShownName))
	}
	return b.String() + more
}

// maxShownName bounds one name in an abbreviated list.
const maxShownName = 128

// plural returns "1 node", "2 nodes": n and the noun, in the right number.
func plural(n int, noun string) string { return string(appendPlural(make([]byte, 0, 32), n, noun)) }

// appendPlural appends plural(n, noun) to buf.
func appendPlural(buf []byte, n int, noun string) []byte {
	buf = strconv.AppendInt(buf, int64(n), 10)
	buf = append(append(buf, ' '), noun...)
	switch {
	case n == 1:
		return buf
	case strings.HasSuffix(noun, "s") || strings.HasSuffix(noun, "sh") || strings.HasSuffix(noun, "ch"):
		return append(buf, "es"...)
	}
	return append(buf, 's')
}
