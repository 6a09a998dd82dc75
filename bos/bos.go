package bos

import (
	"context"
	"strings"
	"time"

	"github.com/crus-go/crus/batch"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrTemplateNotFound: no session template has this name.
	ErrTemplateNotFound = batch.NewPermanent("bos: session template not found")
	// ErrSessionNotFound: no boot session has this name.
	ErrSessionNotFound = batch.NewPermanent("bos: session not found")
	// ErrSessionExists: a session with this name exists and was created
	// with other parameters.
	ErrSessionExists = batch.NewPermanent("bos: session already exists with other parameters")
	// ErrInvalidRequest: the request was refused as malformed.
	ErrInvalidRequest = batch.NewPermanent("bos: invalid request")
)

// Orchestrator reboots nodes with a boot session template (the Boot
// Orchestration Service). All methods are safe for concurrent use.
//
// Failures of a whole call (network, 5xx) are plain errors and are retried
// by crus unless they match batch.ErrPermanent.
type Orchestrator interface {
	// CheckTemplate returns nil if the session template exists and
	// ErrTemplateNotFound if it does not.
	CheckTemplate(ctx context.Context, template string) error

	// Reboot starts a session that reboots the nodes selected by req: each
	// is powered off and booted with the template, behind the workload
	// manager's back (what the workload manager sees meanwhile is the
	// contract of package wlm, "Through a reboot"). A node reported
	// ResultSucceeded has booted; it need not be back in the workload
	// manager yet, and crus waits for that separately.
	//
	// Reboot is idempotent by name: if a session named req.Name already
	// exists with the same template and limit, Reboot returns nil and
	// creates nothing, so a retried or replayed request never reboots nodes
	// twice. If the name is taken by a session with other parameters, it
	// returns ErrSessionExists. An unknown template is ErrTemplateNotFound.
	Reboot(ctx context.Context, req Request) error

	// Status reports the session's progress and the outcome of each of
	// nodes (xnames) known so far. It returns ErrSessionNotFound if no
	// session has this name and none was ever known to have it. A session
	// that the orchestrator had (created by Reboot, or read by Status) and
	// that is gone since (deleted) is reported PhaseComplete with an Error
	// instead: crus sends the boot of a session not found again, and a
	// deleted one must not reboot its nodes twice. Reboot of such a name
	// creates nothing.
	Status(ctx context.Context, name string, nodes []string) (Status, error)
}

// Request describes a reboot session.
type Request struct {
	// Name identifies the session. crus derives it from the upgrade id and
	// a counter, so the same intent always has the same name. BOS v2 allows
	// letters, digits and ".-_", starting and ending with a letter or digit,
	// at most 127 characters.
	Name string
	// Template is the session template to boot with.
	Template string
	// Limit restricts the session to these xnames or group labels (BOS
	// joins them with ","): the intersection of the template's boot sets
	// and the limit is rebooted.
	Limit []string
	// Within, if set, restricts the session further to the members of
	// this HSM group as BOS reads it (BOS's "&" operator: the limit sent
	// is "a,b,&group"). crus limits a boot by label this way, so that a
	// node someone else puts in the group is never rebooted.
	Within string
}

// LimitString is the limit as BOS takes it: the items of Limit joined
// with ",", then "&" and Within if set.
func (r Request) LimitString() string {
	l := strings.Join(r.Limit, ",")
	if r.Within != "" {
		l += ",&" + r.Within
	}
	return l
}

// Phase is the progress of a boot session.
type Phase string

// Phases of a boot session, in order.
const (
	PhasePending  Phase = "pending"  // created; nodes not chosen yet (BOS reads group membership now)
	PhaseRunning  Phase = "running"  // nodes chosen and being rebooted
	PhaseComplete Phase = "complete" // finished; see Status.Error and the per-node results
)

// Result is the outcome of one node in a boot session.
type Result string

// Node results.
const (
	ResultInProgress Result = ""          // not finished (or not reported yet)
	ResultSucceeded  Result = "succeeded" // booted with the template
	ResultFailed     Result = "failed"    // the orchestrator gave up on it
)

// NodeStatus is the outcome of one node.
type NodeStatus struct {
	Result Result
	Reason string // why it failed, as the orchestrator says
}

// Status is a snapshot of a boot session.
type Status struct {
	Name  string
	Phase Phase
	// Error is set when the session failed as a whole (for example, it
	// found no nodes to boot). Per-node outcomes are then unreliable: treat
	// every node without a success as failed with this reason.
	Error string
	// StartTime is when the orchestrator created the session, by its own
	// clock (BOS v2 status.start_time, v1 metadata.start_time); set from
	// the first Status on, whatever the phase (package bostest checks).
	// crus records it for people to read, not to prove anything: a node's
	// reboot is proven by the workload manager's boot time against the
	// time crus asked for the reboot, on crus's clock, so that clock skew
	// between the orchestrator and crus cannot fake or hide a reboot.
	StartTime time.Time
	// EndTime is when the session completed, by the orchestrator's clock;
	// zero until then, never before StartTime.
	EndTime time.Time
	// Nodes holds the outcome of each node asked about, keyed by xname.
	// Nodes the orchestrator does not report are absent.
	Nodes map[string]NodeStatus
}
