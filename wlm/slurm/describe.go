package slurm

import (
	"strings"

	"github.com/crus-go/crus/wlm"
)

var (
	_ wlm.Describer = (*CLI)(nil)
	_ wlm.Describer = (*REST)(nil)
)

// Describe implements wlm.Describer: the node's condition in Slurm's own
// syntax, the base state and its flags joined by "+", lower case, with
// sinfo's "*" for a node whose slurmd does not answer: "idle",
// "mixed+drain", "idle+completing+drain", "down+drain*",
// "idle+fail", "idle+drain+reboot_requested".
func (m *CLI) Describe(n wlm.Node) string { return condition(n) }

// Describe implements wlm.Describer, in the same words as [CLI.Describe].
func (m *REST) Describe(n wlm.Node) string { return condition(n) }

func condition(n wlm.Node) string {
	var b strings.Builder
	b.WriteString(string(n.State))
	for _, f := range []struct {
		set  bool
		word string
	}{
		{n.Completing, "completing"},
		{n.Drain, "drain"},
		{n.Fail, "fail"},
		{n.RebootRequested, "reboot_requested"},
		{n.RebootIssued, "reboot_issued"},
	} {
		if f.set {
			b.WriteString("+" + f.word)
		}
	}
	if n.NotResponding {
		b.WriteString("*")
	}
	return b.String()
}
