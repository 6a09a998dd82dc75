package wlm_test

import (
	"testing"

	"github.com/crus-go/crus/wlm"
)

func TestNeutral(t *testing.T) {
	for _, tc := range []struct {
		n    wlm.Node
		want string
	}{
		{wlm.Node{State: wlm.StateIdle}, "idle"},
		{wlm.Node{State: wlm.StateIdle, Drain: true}, "idle, drained"},
		{wlm.Node{State: wlm.StateAllocated, Drain: true}, "running jobs, draining"},
		{wlm.Node{State: wlm.StateIdle, Completing: true, Drain: true}, "idle, jobs completing, draining"},
		{wlm.Node{State: wlm.StateMixed}, "running jobs"},
		{wlm.Node{State: wlm.StateDown, Drain: true, NotResponding: true}, "down, drained, not responding"},
		{wlm.Node{State: wlm.StateIdle, Fail: true, Reason: "bad DIMM"}, "idle, failed"},
		{wlm.Node{State: wlm.StateIdle, Drain: true, RebootRequested: true}, "idle, drained, reboot pending"},
		{wlm.Node{State: wlm.StateDown, RebootIssued: true, NotResponding: true}, "down, rebooting, not responding"},
		{wlm.Node{}, "state unknown"},
	} {
		if got := wlm.Neutral.Describe(tc.n); got != tc.want {
			t.Errorf("Neutral.Describe(%+v) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// plain is a Manager without a Describer; worded is one with.
type plain struct{ wlm.Manager }

type worded struct{ plain }

func (worded) Describe(n wlm.Node) string { return "WORDS:" + string(n.State) }

func TestDescriberOf(t *testing.T) {
	n := wlm.Node{State: wlm.StateDown, NotResponding: true}
	if got := wlm.DescriberOf(plain{}).Describe(n); got != "down, not responding" {
		t.Errorf("a Manager without a Describer: %q, want the neutral words", got)
	}
	if got := wlm.DescriberOf(worded{}).Describe(n); got != "WORDS:down" {
		t.Errorf("a Manager with a Describer: %q, want its own words", got)
	}
}
