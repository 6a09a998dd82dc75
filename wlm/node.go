package wlm

import "time"

// BaseState is the base state of a node, without flags.
type BaseState string

// Base states. Implementations map their own vocabulary onto these (Slurm:
// IDLE, MIXED, ALLOCATED, DOWN; everything else is Unknown).
const (
	StateIdle      BaseState = "idle"      // up, no jobs
	StateMixed     BaseState = "mixed"     // up, some of its resources run jobs
	StateAllocated BaseState = "allocated" // up, all of its resources run jobs
	StateDown      BaseState = "down"      // not usable (not responding, or set down)
	StateUnknown   BaseState = "unknown"   // the workload manager does not know yet
)

// Node is the state of one node as the workload manager reports it. The
// fields are raw facts; the methods give the readings crus relies on.
type Node struct {
	Name  string
	State BaseState

	Drain           bool // an administrator (or crus) asked it to take no new work
	Fail            bool // marked failed
	Completing      bool // jobs are still cleaning up (Slurm COMPLETING)
	NotResponding   bool // the node's agent (slurmd) does not answer (Slurm "*")
	RebootRequested bool // a workload-manager reboot is pending
	RebootIssued    bool // a workload-manager reboot is under way

	Reason     string    // why it is drained, failed or down; empty if none
	ReasonUser string    // who set Reason, if known
	ReasonTime time.Time // when Reason was set; zero if unknown

	// BootTime is when the node last booted; zero if unknown (Slurm reads
	// "None" for a moment after a node registers: unknown, not old).
	BootTime time.Time
	// AgentStartTime is when the node's agent (slurmd) last started; zero
	// if unknown.
	AgentStartTime time.Time

	// Steering is the node's place in the workload manager's choice for
	// new work, as the adapter reads it (see Steerer): SteeringUnknown,
	// the zero value, where it does not say. An adapter that reports it
	// lets crus see a place lost behind its back (Slurm forgets weights
	// set by scontrol at a reconfigure) at the next observation, rather
	// than at its hourly reassertion.
	Steering Steering
}

// Steering is a node's place in the workload manager's choice for new
// work, as an adapter reports it.
type Steering uint8

const (
	SteeringUnknown Steering = iota // the adapter does not say (or cannot tell)
	SteeringNone                    // the site's own place: not steered
	SteeringLast                    // steered last (Steerer.Steer with last true)
)

func (s Steering) String() string {
	switch s {
	case SteeringNone:
		return "none"
	case SteeringLast:
		return "last"
	}
	return "unknown"
}

// Busy reports whether jobs are running or still completing on the node.
func (n Node) Busy() bool {
	return n.State == StateAllocated || n.State == StateMixed || n.Completing
}

// Draining reports whether the node has been drained but still runs jobs.
func (n Node) Draining() bool { return n.Drain && n.Busy() }

// Drained reports whether the node is drained and runs nothing: it can be
// rebooted without killing work. Slurm's IDLE+DRAIN and DOWN+DRAIN.
func (n Node) Drained() bool { return n.Drain && !n.Busy() }

// Responding reports whether the node's agent answers.
func (n Node) Responding() bool { return !n.NotResponding }

// Down reports whether the node is down or not responding.
func (n Node) Down() bool { return n.State == StateDown || n.NotResponding }

// InService reports whether the node can take new work: up, responding, and
// neither drained, failed nor waiting for a reboot.
func (n Node) InService() bool {
	switch n.State {
	case StateIdle, StateMixed, StateAllocated:
	default:
		return false
	}
	return !n.Drain && !n.Fail && !n.NotResponding && !n.RebootRequested && !n.RebootIssued
}

// Condition describes the node in Slurm's condition syntax ("idle+drain",
// "down+drain*"), whatever the workload manager.
//
// Deprecated: it spells every workload manager's states as Slurm does.
// Use DescriberOf(m).Describe(n): the adapter's own words if it is a
// [Describer], [Neutral] ones otherwise.
func (n Node) Condition() string {
	s := string(n.State)
	if n.Completing {
		s += "+completing"
	}
	if n.Drain {
		s += "+drain"
	}
	if n.Fail {
		s += "+fail"
	}
	if n.RebootRequested {
		s += "+reboot_requested"
	}
	if n.RebootIssued {
		s += "+reboot_issued"
	}
	if n.NotResponding {
		s += "*"
	}
	return s
}
