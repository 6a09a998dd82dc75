package wlm

import "strings"

// Describer is implemented by a Manager that describes a node's condition
// in its workload manager's own words, for the reasons and messages crus
// records ("not in service at the start of its step: idle+drain (bad
// DIMM)" reads naturally to a Slurm administrator, not to a PBS one). A
// Manager without it gets [Neutral], which names no workload manager's
// syntax.
type Describer interface {
	// Describe returns a few words, on one line, for the node's condition:
	// its base state and flags. It works from n alone (no I/O) and gives
	// the same answer for the same Node. It leaves out n.Reason, which
	// crus adds in its own way.
	Describe(n Node) string
}

// Neutral describes nodes in plain words that belong to no workload
// manager: "idle", "idle, drained", "running jobs, draining",
// "down, drained, not responding", "idle, failed".
var Neutral Describer = neutral{}

// DescriberOf returns m's own Describer if it has one, and [Neutral]
// otherwise.
func DescriberOf(m Manager) Describer {
	if d, ok := m.(Describer); ok {
		return d
	}
	return Neutral
}

type neutral struct{}

// Describe implements Describer.
func (neutral) Describe(n Node) string {
	words := make([]string, 0, 4)
	switch n.State {
	case StateIdle:
		words = append(words, "idle")
	case StateMixed, StateAllocated:
		words = append(words, "running jobs")
	case StateDown:
		words = append(words, "down")
	default:
		words = append(words, "state unknown")
	}
	if n.Completing {
		words = append(words, "jobs completing")
	}
	switch {
	case n.Draining():
		words = append(words, "draining")
	case n.Drain:
		words = append(words, "drained")
	}
	if n.Fail {
		words = append(words, "failed")
	}
	if n.RebootRequested {
		words = append(words, "reboot pending")
	}
	if n.RebootIssued {
		words = append(words, "rebooting")
	}
	if n.NotResponding {
		words = append(words, "not responding")
	}
	return strings.Join(words, ", ")
}
