package crus

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
)

// APIVersion is the version of the session record format, reported in
// Session.APIVersion as the original CRUS API does.
const APIVersion = "1.0.0"

// Sentinel errors of package crus, matched with errors.Is.
var (
	// ErrInvalidSpec: the session spec is malformed. The error is a list of
	// *FieldError values, one per problem.
	ErrInvalidSpec = errors.New("crus: invalid session spec")
	// ErrPreflight: a pre-flight check refused the session before any node
	// was touched; nothing was changed anywhere. The error joins one error
	// per problem found (a missing group, a non-empty upgrading group,
	// unknown nodes, ...), each matching its own sentinel too.
	ErrPreflight = errors.New("crus: pre-flight check failed")
	// ErrGroupNotEmpty: a group that must start empty has members.
	ErrGroupNotEmpty = errors.New("crus: group is not empty")
	// ErrNoNodes: the starting group has no members, or none can be taken.
	ErrNoNodes = errors.New("crus: no nodes to upgrade")
	// ErrSteered: a session of the scheduled strategy, which steers the
	// nodes it has still to take (wlm.Steerer), was refused because the
	// workload manager reports nodes of its starting group as its last
	// choice already (wlm.SteeringLast). crus could not tell the site's
	// own setting from its steering, and would undo it when it gives the
	// nodes their place back (Slurm: a site's weight from
	// slurm.SteerWeight up).
	ErrSteered = errors.New("crus: nodes already steered last")
	// ErrSessionNotFound: the store has no session with this id.
	ErrSessionNotFound = errors.New("crus: session not found")
	// ErrSessionExists: the store already has a session with this id.
	ErrSessionExists = errors.New("crus: session already exists")
	// ErrConflict: the session was changed by someone else since it was
	// read (its revision moved on). Read it again and retry.
	ErrConflict = errors.New("crus: session changed concurrently")
	// ErrSessionDone: the session has completed; it cannot be run again.
	ErrSessionDone = errors.New("crus: session already completed")
	// ErrSessionBusy: the session is already being run by this executor.
	ErrSessionBusy = errors.New("crus: session is already running")
	// ErrCorruptSession: a stored session record is inconsistent. It
	// matches batch.ErrPermanent: reading it again reads the same damage,
	// so a run stops at once (a Driver tries again after its RetryAfter,
	// in case an operator repaired the record).
	ErrCorruptSession = batch.NewPermanent("crus: corrupt session record")
	// ErrCallTimeout: a call to a backend (HSM, BOS, the workload
	// manager) or a run's call to the store did not answer within
	// Config.CallTimeout; the executor cancelled it through its ctx and
	// treats it as a failed attempt.
	ErrCallTimeout = errors.New("crus: call timed out")
)

// FieldError describes one problem with one field of a Spec.
type FieldError struct {
	Field   string // JSON name of the field, e.g. "upgrade_step_size"
	Value   any    // the offending value
	Problem string // what is wrong, in words
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %s", e.Field, e.Problem)
}

// Unwrap lets errors.Is(err, ErrInvalidSpec) match a single FieldError.
func (e *FieldError) Unwrap() error { return ErrInvalidSpec }

// Spec is what a session is asked to do: the six parameters of the original
// CRUS API, with their JSON names, plus optional extensions.
type Spec struct {
	// StartingLabel names the HSM group holding every node to upgrade. Its
	// members are read once, when the session is created.
	StartingLabel string `json:"starting_label"`
	// UpgradingLabel names an empty HSM group; crus puts the nodes of the
	// current step in it. The BOS template's boot set targets this group.
	UpgradingLabel string `json:"upgrading_label"`
	// FailedLabel names an empty HSM group; nodes that fail their upgrade
	// end up in it.
	FailedLabel string `json:"failed_label"`
	// StepSize is the most nodes out of service because of the session at
	// any instant (at least 1).
	StepSize int `json:"upgrade_step_size"`
	// TemplateID names the BOS session template to reboot with.
	TemplateID string `json:"upgrade_template_id"`
	// WorkloadManagerType names the workload manager ("slurm"). It must be
	// the one the Executor drives.
	WorkloadManagerType string `json:"workload_manager_type"`

	// ClearFailed lets the session start with a non-empty failed group: its
	// members are removed from the group when the session starts. Without
	// it, a non-empty failed group fails the pre-flight check.
	ClearFailed bool `json:"clear_failed,omitzero"`
	// BootLimit chooses what limits each boot session: "nodes" (default;
	// the step's xnames, so a stranger added to the upgrading group is never
	// rebooted) or "label" (those of the step's xnames that are in the
	// upgrading group when BOS reads it; the original CRUS limited by the
	// label alone, which rebooted strangers too).
	BootLimit BootLimit `json:"boot_limit,omitzero"`
	// BootTimeout bounds how long a boot session may take, from when the
	// boot orchestrator accepted it; its unfinished nodes are failed
	// after it. Default 1h.
	BootTimeout Duration `json:"boot_timeout,omitzero"`
	// ReturnTimeout bounds how long a node may take, after its boot
	// session reported it booted (in the rolling strategies, without
	// waiting for the session's other nodes), to be back in the workload
	// manager with a new boot time and resumed. Default 30m.
	ReturnTimeout Duration `json:"return_timeout,omitzero"`
	// RetryFailed takes again the nodes a crus session failed: a node the
	// workload manager shows failed (or drained) with a crus reason
	// ("crus <id>: ...") counts as one to take, like a node in service,
	// instead of being skipped. A node out of service for any other reason
	// (an administrator's) is still skipped. Use it on the failed group of
	// an earlier session once the cause of the failures is fixed.
	RetryFailed bool `json:"retry_failed,omitzero"`

	// Rollout chooses how nodes are picked and paced (strategy, order,
	// failure budget, drain timeout, canary, maintenance windows). Its
	// zero value is the original CRUS algorithm. See strategy.go.
	Rollout
}

// BootLimit says how a boot session is limited to a step's nodes.
type BootLimit string

// Boot limits.
const (
	LimitNodes BootLimit = "nodes" // the step's xnames
	LimitLabel BootLimit = "label" // the step's xnames within the upgrading group
)

// Defaults filled in by Spec.WithDefaults.
const (
	DefaultBootTimeout   = time.Hour
	DefaultReturnTimeout = 30 * time.Minute
)

// WithDefaults returns a copy of s with every unset extension set to its
// default. The six original parameters are never defaulted.
func (s Spec) WithDefaults() Spec {
	if s.BootLimit == "" {
		s.BootLimit = LimitNodes
	}
	if s.BootTimeout == 0 {
		s.BootTimeout = Duration(DefaultBootTimeout)
	}
	if s.ReturnTimeout == 0 {
		s.ReturnTimeout = Duration(DefaultReturnTimeout)
	}
	if s.DrainTimeout > 0 && s.DrainTimeoutAction == "" {
		s.DrainTimeoutAction = DrainRelease
	}
	return s
}

var wlmTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// Validate checks the spec on its own (without looking at any backend). It
// returns nil or an error matching ErrInvalidSpec that lists every problem
// as a *FieldError. Unset extensions are valid (see WithDefaults).
func (s Spec) Validate() error { return s.validate(true) }

// validate checks the spec; floors adds the least values a new spec may
// set (MinTimeout), which a record stored by an older crus may be below:
// such a record is still read and run (Session.check passes false).
func (s Spec) validate(floors bool) error {
	var errs *multierror.Error
	add := func(field string, value any, format string, args ...any) {
		errs = multierror.Append(errs, &FieldError{Field: field, Value: value, Problem: fmt.Sprintf(format, args...)})
	}
	labels := []struct{ field, value string }{
		{"starting_label", s.StartingLabel},
		{"upgrading_label", s.UpgradingLabel},
		{"failed_label", s.FailedLabel},
	}
	for i, l := range labels {
		switch {
		case l.value == "":
			add(l.field, l.value, "is required")
			continue
		case hsm.ValidateLabel(l.value) != nil:
			add(l.field, l.value, "%q is not a valid HSM group label (lower case letters, digits and -:._ only)", l.value)
			continue
		}
		for _, m := range labels[:i] {
			if m.value == l.value {
				add(l.field, l.value, "%q is the same group as %s; the three groups must be distinct", l.value, m.field)
			}
		}
	}
	if s.StepSize < 1 {
		add("upgrade_step_size", s.StepSize, "must be at least 1, got %d", s.StepSize)
	}
	if s.TemplateID == "" {
		add("upgrade_template_id", s.TemplateID, "is required")
	}
	switch {
	case s.WorkloadManagerType == "":
		add("workload_manager_type", s.WorkloadManagerType, "is required")
	case !wlmTypeRE.MatchString(s.WorkloadManagerType):
		add("workload_manager_type", s.WorkloadManagerType, "%q is not a workload manager type (lower case, e.g. \"slurm\")", s.WorkloadManagerType)
	}
	switch s.BootLimit {
	case "", LimitNodes, LimitLabel:
	default:
		add("boot_limit", s.BootLimit, "%q is not one of %q, %q", s.BootLimit, LimitNodes, LimitLabel)
	}
	for _, t := range []struct {
		field string
		v     Duration
	}{{"boot_timeout", s.BootTimeout}, {"return_timeout", s.ReturnTimeout}} {
		switch {
		case t.v < 0:
			add(t.field, t.v, "must not be negative")
		case floors && t.v > 0 && t.v < MinTimeout:
			add(t.field, t.v, "must be at least %s (0: the default), got %s", MinTimeout, t.v)
		}
	}
	s.Rollout.validate(s.StepSize, s.BootLimit, floors, add)
	if err := errs.ErrorOrNil(); err != nil {
		errs.ErrorFormat = listFormat("invalid session spec")
		return errs
	}
	return nil
}

// MinTimeout is the shortest boot_timeout, return_timeout or drain_timeout
// a spec may set: a node cannot drain, reboot or return faster, and a
// timeout shorter than a poll would fail or release every node.
const MinTimeout = Duration(time.Minute)

// listFormat renders a multierror as "what: a; b; c".
func listFormat(what string) multierror.ErrorFormatFunc {
	return func(es []error) string {
		s := what + ": "
		for i, e := range es {
			if i > 0 {
				s += "; "
			}
			s += e.Error()
		}
		return s
	}
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("30m0s"). It reads only a string: a bare number is refused, since
// nothing says its unit (3600 meant as seconds would be 3.6µs).
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1h30m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string: "90m", "1h30m", "45s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case float64:
		return fmt.Errorf("duration: a bare number (%s) has no unit: write it as a string with one, such as \"%ss\" or \"30m\"", b, b)
	case string:
		p, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("duration %q: %w", v, err)
		}
		*d = Duration(p)
	default:
		return fmt.Errorf("duration: want a string like \"30m\", got %s", b)
	}
	return nil
}

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// State is the state of a session, as in the original CRUS API.
type State string

// Session states.
const (
	StateCreated  State = "CREATED"  // created and checked; no node touched yet
	StateUpdating State = "UPDATING" // running
	StateReady    State = "READY"    // completed
	StateDeleting State = "DELETING" // cancellation requested (or done, if Completed)
)

// Stage is where a session is in its current step.
type Stage string

// Stages, in the order a step goes through them.
const (
	StageStarting   Stage = "starting"    // choosing the step's nodes, adding them to the upgrading group
	StageQuiescing  Stage = "quiescing"   // drain requested; waiting for jobs to end
	StageQuiesced   Stage = "quiesced"    // every node drained; about to reboot
	StageBooting    Stage = "booting"     // boot session under way
	StageBooted     Stage = "booted"      // boot session complete; sorting out its outcomes
	StageWLMWaiting Stage = "wlm_waiting" // waiting for nodes to come back in the workload manager
	StageCleanup    Stage = "cleanup"     // every node has an outcome; emptying the upgrading group
	// Stages of a session that takes no new node for now and has none in
	// flight (see Rollout and Executor.Pause).
	StagePaused        Stage = "paused"            // paused by Executor.Pause
	StageApproval      Stage = "awaiting_approval" // canary done; waiting for Executor.Approve
	StageOutsideWindow Stage = "outside_window"    // waiting for a maintenance window
	StageDone          Stage = "done"              // finished
)

// Phase is where one node is in its own upgrade.
type Phase string

// Node phases. Pending and Done are at rest; the others are in flight (the
// node is out of service because of the session).
const (
	PhasePending   Phase = "pending"   // not started
	PhaseQuiescing Phase = "quiescing" // drain requested
	PhaseQuiesced  Phase = "quiesced"  // drained, waiting to be rebooted
	PhaseBooting   Phase = "booting"   // reboot requested (Boot names the boot session)
	PhaseReturning Phase = "returning" // booted; waiting for the workload manager to see it back
	PhaseResuming  Phase = "resuming"  // back with a new boot time; resume requested
	PhaseFailing   Phase = "failing"   // being put in the failed group and failed in the workload manager
	PhaseReleasing Phase = "releasing" // cancelled before its reboot; resume requested
	PhaseDone      Phase = "done"      // has its outcome
)

// InFlight reports whether a node in this phase is out of service because
// of the session.
func (p Phase) InFlight() bool { return p != PhasePending && p != PhaseDone && p != "" }

// Outcome is how a node ended.
type Outcome string

// Node outcomes. Every node of a finished session has exactly one.
const (
	OutcomeNone      Outcome = ""          // not finished
	OutcomeUpgraded  Outcome = "upgraded"  // rebooted after its step began and back in service
	OutcomeFailed    Outcome = "failed"    // in the failed group, failed in the workload manager
	OutcomeSkipped   Outcome = "skipped"   // not taken: unavailable or refused (see Reason); left as it was
	OutcomeUntouched Outcome = "untouched" // not upgraded because the session was cancelled; in service
)

// Result is how a finished session ended.
type Result string

// Session results.
const (
	ResultComplete  Result = "complete"  // every node has been through a step
	ResultCancelled Result = "cancelled" // deleted before every node was
	// ResultAborted: the failure budget was exceeded, or the boot
	// orchestrator refused a boot request for good; the nodes not taken
	// were left in service, untouched.
	ResultAborted Result = "aborted"
)

// Session is the record of one rolling upgrade. Its JSON form holds every
// field of the original CRUS session status (upgrade_id, kind, api_version,
// state, completed, messages and the six parameters, which Spec contributes
// at the top level) plus "progress". Use [Session.Status] for the strict
// original record.
type Session struct {
	UpgradeID  string `json:"upgrade_id"`
	Kind       string `json:"kind"`
	APIVersion string `json:"api_version"`
	State      State  `json:"state"`
	Completed  bool   `json:"completed"`
	// Messages says what the session did, in words. It is bounded: the
	// first MessagesFirst and the most recent MessagesLast are kept, and
	// MessagesDropped counts those dropped between them, so that the
	// record stays small however many nodes the session has. Append with
	// AddMessages; the full history goes to the event stream
	// (Config.OnEvent).
	Messages []string `json:"messages"`
	// MessagesDropped counts the messages dropped from the middle of
	// Messages.
	MessagesDropped int `json:"messages_dropped,omitzero"`
	Spec
	Progress Progress `json:"progress"`

	// Revision is the store's version of this record, checked on update
	// so that a stale writer loses (see Store). Not part of the record.
	Revision int64 `json:"-"`
}

// Progress is the structured progress of a session.
type Progress struct {
	Stage      Stage     `json:"stage"`
	StageSince time.Time `json:"stage_since,omitzero"`
	Step       int       `json:"step"`  // current step, from 1; 0 before the first
	Steps      int       `json:"steps"` // steps planned
	Result     Result    `json:"result,omitzero"`

	CreatedAt time.Time `json:"created_at,omitzero"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`

	// Cancel is set when deletion was requested.
	Cancel      bool      `json:"cancel,omitzero"`
	CancelledAt time.Time `json:"cancelled_at,omitzero"`

	// Paused is set while the session is paused (Executor.Pause): nodes in
	// flight finish, no new node is taken.
	Paused   bool      `json:"paused,omitzero"`
	PausedAt time.Time `json:"paused_at,omitzero"`
	// Approved is set when the canary batches were approved
	// (Executor.Approve, for Spec.CanaryApproval).
	Approved bool `json:"approved,omitzero"`
	// Abort is why the session stopped taking new nodes (its failure
	// budget was exceeded, or the boot orchestrator refused a boot
	// request for good); empty while it has not.
	Abort string `json:"abort,omitzero"`

	// StepClosed says the current step's summary message was written.
	StepClosed bool `json:"step_closed,omitzero"`
	// Conditions lists what holds the session back or degrades its
	// decisions right now (a backend that cannot be read, boot requests
	// not accepted), each with the time it began; empty when nothing does.
	Conditions []Condition `json:"conditions,omitempty"`

	// Boots counts the boot sessions created so far; the next one is named
	// from it, so a retried intent reuses its name.
	Boots int `json:"boots"`
	// Booked lists, in increasing order, the numbers of the reservations
	// the session may hold (the scheduled strategy): they are named
	// "crus-<id>-<n>". A number is listed before its reservation is
	// made, and taken off once the reservations have been read without
	// it. An executor that starts while they cannot be read deletes the
	// listed ones by name: a few, where deleting every number the session
	// ever used cost one command per five minutes of its life with the
	// Slurm CLI adapter (and a job with a limit of weeks books that far
	// ahead).
	Booked []int64 `json:"booked,omitempty"`
	// BookedUpTo is what records written before Booked hold instead: the
	// session may hold any reservation numbered below it. It is cleared
	// once the reservations have been read.
	BookedUpTo int64 `json:"booked_up_to,omitzero"`
	// FailedToClear lists the failed group's members at creation, removed
	// when the session starts if Spec.ClearFailed; emptied once done.
	FailedToClear []string `json:"failed_to_clear,omitempty"`

	// Nodes holds one record per member of the starting group, sorted by
	// xname.
	Nodes []NodeRecord `json:"nodes"`
}

// NodeRecord is the progress and outcome of one node.
type NodeRecord struct {
	XName   string  `json:"xname"`
	Name    string  `json:"wlm_name"` // the workload manager's name for it
	Step    int     `json:"step,omitzero"`
	Phase   Phase   `json:"phase"`
	Outcome Outcome `json:"outcome,omitzero"`
	Reason  string  `json:"reason,omitzero"` // why it has its outcome (or is skipped)
	Boot    string  `json:"boot,omitzero"`   // the boot session that rebooted it
	// BootAccepted is set once the boot orchestrator accepted the
	// request of Boot: a boot session it then does not know was deleted,
	// and is never requested again.
	BootAccepted bool `json:"boot_accepted,omitzero"`
	// Grouped is set while the node may be in the upgrading group.
	Grouped bool `json:"grouped,omitzero"`
	// LastError is the most recent error of an action on this node.
	LastError string `json:"last_error,omitzero"`
	// Retries counts the times the node was put back to wait for a later
	// turn (its drain timed out).
	Retries int `json:"retries,omitzero"`

	Since          time.Time `json:"since,omitzero"` // when the current phase began
	DrainRequested time.Time `json:"drain_requested,omitzero"`
	// Undrained is when the workload manager began to show the node not
	// drained again while crus still holds its drain (its drain was lost,
	// or someone resumed the node); zero while it shows the drain, and
	// once the node leaves the phases quiescing and quiesced.
	Undrained time.Time `json:"undrained,omitzero"`
	// DrainTaken is when the workload manager showed the drain again
	// after it had shown the node not drained (Undrained): a lost drain
	// sent again, or one an outage kept from it until then. drain_timeout
	// counts from it, or from DrainRequested if it is zero (drainClock).
	DrainTaken time.Time `json:"drain_taken,omitzero"`
	Drained    time.Time `json:"drained,omitzero"`
	// RebootRequested is when the boot request was recorded, before it
	// was first sent: the earliest the node could begin to reboot, so a
	// boot time after it proves the reboot.
	RebootRequested time.Time `json:"reboot_requested,omitzero"`
	// RebootAccepted is when the boot orchestrator last accepted the
	// request (an answer can come long after the reboot began, or be
	// lost and the request sent again): boot_timeout counts from it, or
	// from RebootRequested until then.
	RebootAccepted time.Time `json:"reboot_accepted,omitzero"`
	Booted         time.Time `json:"booted,omitzero"`   // its boot session reported it booted
	Returned       time.Time `json:"returned,omitzero"` // the workload manager saw it back
	Finished       time.Time `json:"finished,omitzero"`
}

// drainClock is when the node's drain_timeout began: when the workload
// manager last showed its drain again after showing it lost, or, if it
// never lost it, when the drain was requested. Jobs that started while
// the drain was not in force get the whole timeout, however long the
// drain took to get through.
func (n *NodeRecord) drainClock() time.Time {
	if n.DrainTaken.After(n.DrainRequested) {
		return n.DrainTaken
	}
	return n.DrainRequested
}

// bootClock is when the node's boot_timeout began: when the orchestrator
// accepted its boot request, or, until it has, when the request was
// recorded.
func (n *NodeRecord) bootClock() time.Time {
	if !n.RebootAccepted.IsZero() {
		return n.RebootAccepted
	}
	return n.RebootRequested
}

// Bounds of Session.Messages: a record keeps its first MessagesFirst
// messages and its last MessagesLast.
const (
	MessagesFirst = 20
	MessagesLast  = 180
)

// AddMessages appends messages to the session's record, keeping the
// first MessagesFirst and the last MessagesLast and counting the others
// in MessagesDropped. It is the only way the executor adds messages, so
// that a store can replay an append (see NodeUpdater and MessagesSince).
// A record holding more (written by an older version) is trimmed by the
// next append.
func (s *Session) AddMessages(msgs ...string) {
	if len(msgs) == 0 {
		return
	}
	s.Messages = append(s.Messages, msgs...)
	if extra := len(s.Messages) - (MessagesFirst + MessagesLast); extra > 0 {
		s.Messages = slices.Delete(s.Messages, MessagesFirst, MessagesFirst+extra)
		s.MessagesDropped += extra
	}
}

// MessagesTotal returns how many messages the session ever had: those
// kept and those dropped.
func (s *Session) MessagesTotal() int { return len(s.Messages) + s.MessagesDropped }

// MessagesSince returns, in order, the kept messages added after the
// session had total messages (see MessagesTotal). A store that knows the
// total it last stored writes only these: appending them with AddMessages
// to the stored record, then setting its MessagesDropped to this
// record's, gives this record's messages.
func (s *Session) MessagesSince(total int) []string {
	var out []string
	for i, m := range s.Messages {
		seq := i
		if i >= MessagesFirst {
			seq += s.MessagesDropped
		}
		if seq >= total {
			out = append(out, m)
		}
	}
	return out
}

// Counts tallies the nodes of a session by outcome.
type Counts struct {
	Nodes     int `json:"nodes"`
	Upgraded  int `json:"upgraded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	Untouched int `json:"untouched"`
	InFlight  int `json:"in_flight"`
	Pending   int `json:"pending"`
}

// Counts returns the tally of the session's nodes.
func (s *Session) Counts() Counts {
	c := Counts{Nodes: len(s.Progress.Nodes)}
	for i := range s.Progress.Nodes {
		n := &s.Progress.Nodes[i]
		switch {
		case n.Phase == PhasePending:
			c.Pending++
		case n.Phase.InFlight():
			c.InFlight++
		}
		c.add(n.Outcome)
	}
	return c
}

// add counts one outcome.
func (c *Counts) add(o Outcome) {
	switch o {
	case OutcomeUpgraded:
		c.Upgraded++
	case OutcomeFailed:
		c.Failed++
	case OutcomeSkipped:
		c.Skipped++
	case OutcomeUntouched:
		c.Untouched++
	}
}

// Node returns the record of the node with this xname, or nil.
func (s *Session) Node(xname string) *NodeRecord {
	i, ok := slices.BinarySearchFunc(s.Progress.Nodes, xname, cmpXName)
	if !ok {
		return nil
	}
	return &s.Progress.Nodes[i]
}

// Clone returns a deep copy of the session.
func (s *Session) Clone() *Session {
	c := *s
	c.Messages = slices.Clone(s.Messages)
	c.Progress.FailedToClear = slices.Clone(s.Progress.FailedToClear)
	c.Progress.Conditions = slices.Clone(s.Progress.Conditions)
	c.Progress.Booked = slices.Clone(s.Progress.Booked)
	c.Progress.Nodes = slices.Clone(s.Progress.Nodes)
	c.Canary = slices.Clone(s.Canary)
	c.MaintenanceWindows = slices.Clone(s.MaintenanceWindows)
	for i := range c.MaintenanceWindows {
		c.MaintenanceWindows[i].Days = slices.Clone(c.MaintenanceWindows[i].Days)
	}
	return &c
}

// copyInto makes dst a deep copy of s, reusing dst's node records and
// messages: a store keeping a large session updates it without allocating
// a new record each time.
func (s *Session) copyInto(dst *Session) {
	nodes, msgs := dst.Progress.Nodes, dst.Messages
	*dst = *s
	dst.Progress.Nodes = append(nodes[:0], s.Progress.Nodes...)
	dst.Messages = append(msgs[:0], s.Messages...)
	if s.Messages == nil {
		dst.Messages = nil
	}
	dst.Progress.FailedToClear = slices.Clone(s.Progress.FailedToClear)
	dst.Progress.Conditions = slices.Clone(s.Progress.Conditions)
	dst.Progress.Booked = slices.Clone(s.Progress.Booked)
	dst.Canary = slices.Clone(s.Canary)
	dst.MaintenanceWindows = slices.Clone(s.MaintenanceWindows)
	for i := range dst.MaintenanceWindows {
		dst.MaintenanceWindows[i].Days = slices.Clone(dst.MaintenanceWindows[i].Days)
	}
}

// Status is the session record exactly as the original CRUS API served it
// (SessionStatus in its OpenAPI document).
type Status struct {
	APIVersion          string   `json:"api_version"`
	Completed           bool     `json:"completed"`
	FailedLabel         string   `json:"failed_label"`
	Kind                string   `json:"kind"`
	Messages            []string `json:"messages"`
	StartingLabel       string   `json:"starting_label"`
	State               State    `json:"state"`
	UpgradeID           string   `json:"upgrade_id"`
	StepSize            int      `json:"upgrade_step_size"`
	TemplateID          string   `json:"upgrade_template_id"`
	UpgradingLabel      string   `json:"upgrading_label"`
	WorkloadManagerType string   `json:"workload_manager_type"`
}

// Kind is the value of Session.Kind, as in the original API.
const Kind = "ComputeUpgradeSession"

// Status returns the original CRUS API's view of the session. Dropped
// messages are shown as one line where they were, such as
// "… 7,700 messages omitted …".
func (s *Session) Status() Status {
	msgs := slices.Clone(s.Messages)
	if msgs == nil {
		msgs = []string{}
	}
	if s.MessagesDropped > 0 {
		at := min(MessagesFirst, len(msgs))
		msgs = slices.Insert(msgs, at, fmt.Sprintf("… %s messages omitted …", thousands(s.MessagesDropped)))
	}
	return Status{
		APIVersion:          s.APIVersion,
		Completed:           s.Completed,
		FailedLabel:         s.FailedLabel,
		Kind:                s.Kind,
		Messages:            msgs,
		StartingLabel:       s.StartingLabel,
		State:               s.State,
		UpgradeID:           s.UpgradeID,
		StepSize:            s.StepSize,
		TemplateID:          s.TemplateID,
		UpgradingLabel:      s.UpgradingLabel,
		WorkloadManagerType: s.WorkloadManagerType,
	}
}

// thousands formats n with commas: 7700 → "7,700".
func thousands(n int) string {
	d := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range d {
		if i > 0 && (len(d)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// check verifies the internal consistency of a session record read from a
// store, so that a corrupt record is refused instead of acted upon.
func (s *Session) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrCorruptSession, s.UpgradeID, fmt.Sprintf(format, args...))
	}
	if s.UpgradeID == "" {
		return bad("no upgrade_id")
	}
	if err := s.Spec.validate(false); err != nil {
		return bad("%v", err)
	}
	if s.MessagesDropped < 0 {
		return bad("messages_dropped %d", s.MessagesDropped)
	}
	if p := &s.Progress; p.BookedUpTo < 0 || p.BookedUpTo > maxBookingNumber {
		return bad("booked_up_to %d out of range", p.BookedUpTo)
	}
	for k, n := range s.Progress.Booked {
		if n < 0 || n > maxBookingNumber || k > 0 && n <= s.Progress.Booked[k-1] {
			return bad("booked: %d out of range or order", n)
		}
	}
	switch s.State {
	case StateCreated, StateUpdating, StateReady, StateDeleting:
	default:
		return bad("unknown state %q", s.State)
	}
	for i := range s.Progress.Nodes {
		n := &s.Progress.Nodes[i]
		if i > 0 && s.Progress.Nodes[i-1].XName >= n.XName {
			return bad("node records not sorted or duplicated at %q", n.XName)
		}
		switch n.Phase {
		case PhasePending, PhaseQuiescing, PhaseQuiesced, PhaseBooting, PhaseReturning,
			PhaseResuming, PhaseFailing, PhaseReleasing:
			if n.Outcome != OutcomeNone {
				return bad("node %s in phase %s already has outcome %s", n.XName, n.Phase, n.Outcome)
			}
		case PhaseDone:
			switch n.Outcome {
			case OutcomeUpgraded, OutcomeFailed, OutcomeSkipped, OutcomeUntouched:
			default:
				return bad("node %s done without a valid outcome (%q)", n.XName, n.Outcome)
			}
		default:
			return bad("node %s has unknown phase %q", n.XName, n.Phase)
		}
		if n.Phase == PhaseBooting && n.Boot == "" {
			return bad("node %s is booting without a boot session", n.XName)
		}
	}
	return nil
}
