package crustest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/wlm"
)

// TestSetLatencySlowsASession: with every call taking a minute, a session
// takes longer in the World's time (not by every call's minute: calls
// overlap with the waits for jobs to end), every node is still upgraded
// and Check finds nothing wrong.
func TestSetLatencySlowsASession(t *testing.T) {
	took := func(latency time.Duration) time.Duration {
		w := crustest.New(crustest.Options{Nodes: 8, Busy: 0.5})
		w.SetLatency("", latency)
		final := runOn(t, w, 4)
		if err := w.Check(context.Background(), final); err != nil {
			t.Errorf("latency %v: %v", latency, err)
		}
		if c := final.Counts(); c.Upgraded != 8 {
			t.Errorf("latency %v: %+v; want 8 upgraded", latency, c)
		}
		return final.Progress.EndedAt.Sub(final.Progress.StartedAt)
	}
	fast, slow := took(0), took(time.Minute)
	if slow <= fast {
		t.Errorf("the session took %v with every call taking a minute, %v without; want longer", slow, fast)
	}
}

// TestSetLatencyByOperation: a call of an operation given a latency moves
// the World on by it, the others do not; an outside manager's calls take
// it too, set before or after UseManager.
func TestSetLatencyByOperation(t *testing.T) {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 2})
	w.SetLatency("wlm.Nodes", 2*time.Minute)
	w.SetLatency("hsm.Members", 3*time.Minute)
	m := newMini(w)
	w.UseManager(m, m)
	var mgr wlm.Manager = w.WLM()
	groups := w.HSM()
	nids, ok := groups.(hsm.NIDResolver)
	if !ok {
		t.Fatal("the World's HSM resolves no NIDs")
	}
	step := func(what string, want time.Duration, call func() error) {
		t.Helper()
		before := w.Now()
		if err := call(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := w.Now().Sub(before); got != want {
			t.Errorf("%s took %v; want %v", what, got, want)
		}
	}
	step("wlm.Nodes", 2*time.Minute, func() error { _, err := mgr.Nodes(ctx, w.Names()); return err })
	step("hsm.Members", 3*time.Minute, func() error { _, err := groups.Members(ctx, crustest.StartingLabel); return err })
	step("wlm.Resume", 0, func() error { return mgr.Resume(ctx, w.Names()[:1]) })
	w.SetLatency("", time.Minute)
	step("wlm.Resume with a default", time.Minute, func() error { return mgr.Resume(ctx, w.Names()[:1]) })
	step("hsm.NIDs with a default", time.Minute, func() error { _, err := nids.NIDs(ctx, w.XNames()); return err })
	step("wlm.Nodes, its own", 2*time.Minute, func() error { _, err := mgr.Nodes(ctx, w.Names()); return err })
	w.SetLatency("wlm.Nodes", 0)
	step("wlm.Nodes back to the default", time.Minute, func() error { _, err := mgr.Nodes(ctx, w.Names()); return err })
	w.SetLatency("", 0)
	step("hsm.Members, its own", 3*time.Minute, func() error { _, err := groups.Members(ctx, crustest.StartingLabel); return err })
	step("wlm.Nodes, none", 0, func() error { _, err := mgr.Nodes(ctx, w.Names()); return err })
}

// TestSetLatencyRefusesWhatItCannotDo: an unknown operation name, and a
// World on the real clock.
func TestSetLatencyRefusesWhatItCannotDo(t *testing.T) {
	panics := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			r := recover()
			if s, _ := r.(string); !strings.Contains(s, want) {
				t.Errorf("%s: panic %v; want one saying %q", what, r, want)
			}
		}()
		f()
	}
	w := crustest.New(crustest.Options{Nodes: 2})
	panics("an unknown operation", `unknown operation "wlm.Nodez"`, func() { w.SetLatency("wlm.Nodez", time.Minute) })
	rw := crustest.New(crustest.Options{Nodes: 2, RealClock: true})
	panics("the real clock", "needs the World's own clock", func() { rw.SetLatency("", time.Minute) })
}
