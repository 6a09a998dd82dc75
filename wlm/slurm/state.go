package slurm

import (
	"strings"

	"github.com/crus-go/crus/wlm"
)

// setState sets n.State and the flag fields of n from Slurm's state words:
// one base state and any number of flags, in any order and case, as
// scontrol writes them ("IDLE+DRAIN+NOT_RESPONDING", split on '+'),
// slurmrestd v0.0.38 ("idle" and state_flags ["DRAIN"]) and v0.0.39+
// (["IDLE","DRAIN"]), including sinfo's one-character suffixes ("down*").
//
// The mapping, per Slurm 22.05 to 24.05:
//
//	IDLE                      → idle
//	MIXED, MIX                → mixed
//	ALLOCATED, ALLOC          → allocated
//	DOWN, ERROR               → down
//	FUTURE, UNKNOWN, other    → unknown
//	DRAIN                     → Drain (draining or drained: see wlm.Node)
//	COMPLETING                → Completing (still draining: jobs are cleaning up)
//	NOT_RESPONDING, "*"       → NotResponding
//	FAIL                      → Fail
//	REBOOT_REQUESTED, "@"     → RebootRequested
//	REBOOT_ISSUED, "^"        → RebootIssued
//
// sinfo's long forms DRAINED, DRAINING and FAILING are understood too.
// Other flags (power saving, maintenance, reservation, cloud) do not change
// whether a node can take work in crus's sense and are ignored.
func setState(n *wlm.Node, words []string) {
	n.State = wlm.StateUnknown
	base := false
	setBase := func(s wlm.BaseState) {
		if !base {
			n.State, base = s, true
		}
	}
	for _, w := range words {
		w = strings.ToUpper(strings.TrimSpace(w))
	trim:
		for w != "" {
			switch w[len(w)-1] {
			case '*':
				n.NotResponding = true
			case '@':
				n.RebootRequested = true
			case '^':
				n.RebootIssued = true
			case '~', '#', '!', '%', '$', '-':
			default:
				break trim
			}
			w = w[:len(w)-1]
		}
		switch w {
		case "IDLE":
			setBase(wlm.StateIdle)
		case "MIXED", "MIX":
			setBase(wlm.StateMixed)
		case "ALLOCATED", "ALLOC":
			setBase(wlm.StateAllocated)
		case "DOWN", "ERROR":
			setBase(wlm.StateDown)
		case "DRAIN":
			n.Drain = true
		case "DRAINED", "DRNG", "DRAINING":
			n.Drain = true
			if w == "DRAINED" {
				setBase(wlm.StateIdle)
			} else {
				setBase(wlm.StateAllocated)
			}
		case "COMPLETING", "COMP":
			n.Completing = true
		case "NOT_RESPONDING", "NO_RESPOND":
			n.NotResponding = true
		case "FAIL", "FAILING":
			n.Fail = true
		case "REBOOT_REQUESTED", "REBOOT":
			n.RebootRequested = true
		case "REBOOT_ISSUED":
			n.RebootIssued = true
		}
	}
}
