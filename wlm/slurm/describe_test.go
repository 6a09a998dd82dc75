package slurm_test

import (
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
)

func TestDescribe(t *testing.T) {
	cli, err := slurm.NewCLI(slurm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := slurm.NewREST(slurm.RESTConfig{URL: "http://127.0.0.1:1", User: "root", Token: cli.TokenSource("root", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    wlm.Node
		want string
	}{
		{wlm.Node{State: wlm.StateIdle}, "idle"},
		{wlm.Node{State: wlm.StateMixed, Drain: true}, "mixed+drain"},
		{wlm.Node{State: wlm.StateIdle, Completing: true, Drain: true}, "idle+completing+drain"},
		{wlm.Node{State: wlm.StateDown, Drain: true, NotResponding: true, Reason: "crus"}, "down+drain*"},
		{wlm.Node{State: wlm.StateIdle, Fail: true}, "idle+fail"},
		{wlm.Node{State: wlm.StateIdle, Drain: true, RebootRequested: true}, "idle+drain+reboot_requested"},
		{wlm.Node{State: wlm.StateDown, Drain: true, RebootIssued: true, NotResponding: true}, "down+drain+reboot_issued*"},
		{wlm.Node{State: wlm.StateUnknown, NotResponding: true}, "unknown*"},
	} {
		for _, m := range []wlm.Manager{cli, rest} {
			if got := wlm.DescriberOf(m).Describe(tc.n); got != tc.want {
				t.Errorf("%T: Describe(%+v) = %q, want %q", m, tc.n, got, tc.want)
			}
		}
	}
}
