package wlm

import (
	"context"
	"fmt"
	"time"

	"github.com/crus-go/crus/batch"
)

// Sentinel errors. Implementations wrap them (with %w, or in a
// *batch.NodeError for a single node) so callers can use errors.Is.
var (
	// ErrNodeNotFound: the workload manager does not know the node. Batch
	// calls report it per node (*batch.NodeError) and still act on the
	// other nodes.
	ErrNodeNotFound = batch.NewPermanent("wlm: node not found")
	// ErrInvalidArgument: the call was refused before reaching the
	// workload manager (an empty reason, a malformed node name).
	ErrInvalidArgument = batch.NewPermanent("wlm: invalid argument")
	// ErrUnsupported: the workload manager cannot do this at all.
	ErrUnsupported = batch.NewPermanent("wlm: operation not supported")
	// ErrPermissionDenied: the workload manager refuses the call to the
	// user crus runs as (Slurm lets only root, its SlurmUser or an
	// operator make reservations): retrying at once does not help. (The
	// executor asks again for reservations only every 10 minutes, in case
	// an administrator grants the right.)
	ErrPermissionDenied = batch.NewPermanent("wlm: permission denied")
)

// MaxReason is the longest drain or fail reason, in bytes, that every
// Manager must accept. crus never passes a longer one (it cleans and caps
// the text it builds its reasons from); an implementation may refuse a
// longer one for each node with ErrInvalidArgument, never by failing the
// whole call. A reason up to this long must read back whole (see
// Manager.Drain).
const MaxReason = 1024

// Manager is what crus needs from a workload manager. Every method takes many
// nodes at once: an implementation should turn one call into one request
// (one scontrol command, one REST call) wherever the workload manager allows.
//
// All methods are safe for concurrent use. Node names are the workload
// manager's own (Slurm NodeNames such as "nid000001"), never HSM xnames.
// A method neither changes the slices it is given nor keeps them once it
// returns: crus reuses them from one call to the next.
//
// Error contract, common to all methods:
//   - an unknown node gives a *batch.NodeError wrapping ErrNodeNotFound and
//     naming the node; the other nodes of the call are still acted on;
//   - other per-node refusals are *batch.NodeError values too;
//   - a failure of the call as a whole (network, daemon down, auth) is a
//     plain error; crus retries those with backoff unless they match
//     batch.ErrPermanent;
//   - context cancellation is returned as (or wrapping) ctx.Err().
//
// Optional capabilities are separate interfaces, found by type assertion:
// [BootTimeReporter] (the Node.BootTime field is meaningful), [JobEnder]
// (expected end times of running jobs; [JobEndsFiller], the same by
// position, cheaper for thousands of nodes), [NodesFiller] (Nodes by
// position, for managers as cheap to read as memory; [NodesAt] and
// [JobEndsAt] read any manager by position, for wrappers), [Rebooter]
// (the workload manager can reboot nodes itself), [Describer] (its own
// words for a node's condition in crus's messages), [Scheduler] (it can
// book nodes ahead of time with reservations), [Steerer] (it can make
// nodes the scheduler's last choice for new work) and [JobLister] (it
// reports jobs, which a [Predictor] learns run times from).
type Manager interface {
	// Nodes returns the current state of the named nodes, in the order
	// asked. Unknown names are left out of the result and reported in the
	// error (see the error contract); the known nodes are still returned.
	// An empty list returns nothing and no error.
	Nodes(ctx context.Context, names []string) ([]Node, error)

	// Drain stops the nodes from taking new work, recording reason. Running
	// jobs continue: a busy node is Draining until they end, then Drained.
	// An idle node is Drained at once. Draining a node that is already
	// drained succeeds and replaces its reason. An empty reason is
	// ErrInvalidArgument.
	//
	// Node.Reason must read back beginning with the given reason,
	// unchanged, up to MaxReason bytes: not cut short, and with nothing
	// put before it (more after it is allowed). crus recognises its own
	// drains by their reason alone ("crus <upgrade-id>: ..."), and leaves
	// a node whose reason it does not recognise drained, as drained by
	// someone else. The wlmtest suite checks it.
	Drain(ctx context.Context, names []string, reason string) error

	// Resume returns the nodes to service, clearing drain, fail and
	// administrative down states. Resuming a node that is already in service
	// succeeds and changes nothing. A node that is not responding returns
	// to service when it responds again.
	Resume(ctx context.Context, names []string) error

	// Fail marks the nodes failed with reason: they take no new work and
	// stay out of service until resumed (Slurm State=FAIL). Running jobs are
	// not killed. Failing a failed node succeeds and replaces its reason. An
	// empty reason is ErrInvalidArgument. Node.Reason must read back
	// beginning with the given reason, unchanged, up to MaxReason bytes,
	// as for Drain: crus finds the nodes its sessions failed by it.
	Fail(ctx context.Context, names []string, reason string) error
}

// BootTimeReporter is implemented by a Manager whose Node.BootTime tells
// when the node last booted. crus proves a reboot by a boot time later than
// the reboot request; without this capability it falls back to the rule of
// the original CRUS: the node is idle and responding again after its boot
// orchestrator session completed.
type BootTimeReporter interface {
	ReportsBootTime() bool
}

// JobEnder is implemented by a Manager that knows when the jobs running on a
// node are expected to end (Slurm: start + time limit, as squeue reports;
// not the real end, which no one knows in advance).
type JobEnder interface {
	// JobEnds returns, for each named node that runs jobs, the latest
	// expected end of those jobs. Idle nodes are absent from the map.
	// Unknown nodes follow the Manager error contract.
	JobEnds(ctx context.Context, names []string) (map[string]time.Time, error)
}

// JobEndsFiller is a JobEnder that also answers by position, into a slice
// the caller keeps from one call to the next. The executor uses it when a
// Manager has it: the scheduled strategy reads the job ends of thousands
// of nodes at every decision, and a map of them each time, built by the
// Manager and read back by the executor, was most of the cost.
type JobEndsFiller interface {
	JobEnder
	// JobEndsInto sets ends[k] to what JobEnds would map names[k] to, and
	// to zero for a node that map would leave out; ends is as long as
	// names. Unknown nodes follow the Manager error contract; after any
	// other error, ends are not to be read.
	JobEndsInto(ctx context.Context, names []string, ends []time.Time) error
}

// NodesFiller is a Manager that also answers Nodes by position, into a
// slice the caller keeps from one call to the next. The executor uses it
// when a Manager has it: the scheduled strategy reads thousands of nodes
// at every decision, and the slice of each answer was two thirds of what
// a 100,000-node simulated upgrade allocated. A Manager whose own reads
// cost far more than a slice (a command, a request) gains nothing by it.
type NodesFiller interface {
	Manager
	// NodesInto sets out[k] to what Nodes would answer for names[k], and
	// to the zero Node (no Name) for a node Nodes would leave out; out is
	// as long as names. Unknown nodes follow the Manager error contract;
	// after any other error, out is not to be read.
	NodesInto(ctx context.Context, names []string, out []Node) error
}

// NodesAt is NodesInto for any Manager: by position if m is a
// NodesFiller, else from the answer of its Nodes, matched to the names
// asked (in the order asked, or by name if m answers in another order).
// out is as long as names; a node the answer leaves out gets the zero
// Node. Errors are those of m.
func NodesAt(ctx context.Context, m Manager, names []string, out []Node) error {
	if len(out) != len(names) {
		return fmt.Errorf("wlm: %d nodes for %d names", len(out), len(names))
	}
	if f, ok := m.(NodesFiller); ok {
		return f.NodesInto(ctx, names, out)
	}
	nodes, err := m.Nodes(ctx, names)
	clear(out)
	var byName map[string]int // made at the first node out of order
	j := 0
	for k, name := range names {
		if byName == nil && j < len(nodes) && nodes[j].Name == name {
			out[k] = nodes[j]
			j++
			continue
		}
		if byName == nil {
			byName = make(map[string]int, len(nodes))
			for i := len(nodes) - 1; i >= 0; i-- {
				byName[nodes[i].Name] = i // the first answer for a name
			}
		}
		if i, ok := byName[name]; ok {
			out[k] = nodes[i]
		}
	}
	return err
}

// JobEndsAt is JobEndsInto for any JobEnder: by position if j is a
// JobEndsFiller, else from the map its JobEnds returns. ends is as long
// as names.
func JobEndsAt(ctx context.Context, j JobEnder, names []string, ends []time.Time) error {
	if len(ends) != len(names) {
		return fmt.Errorf("wlm: %d ends for %d names", len(ends), len(names))
	}
	if f, ok := j.(JobEndsFiller); ok {
		return f.JobEndsInto(ctx, names, ends)
	}
	byName, err := j.JobEnds(ctx, names)
	for k, n := range names {
		ends[k] = byName[n]
	}
	return err
}

// Rebooter is implemented by a Manager that can reboot nodes itself once
// they are idle (Slurm: scontrol reboot ASAP nextstate=RESUME).
type Rebooter interface {
	// Reboot asks for the nodes to reboot as soon as their jobs end and
	// return to service afterwards, recording reason. Rebooting a node
	// whose reboot is already pending succeeds.
	Reboot(ctx context.Context, names []string, reason string) error
}
