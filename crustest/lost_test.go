package crustest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
)

// TestLostAnswers: every write of a session loses its answer for its
// first two hours (its work done), and a few more after; or, with
// reboots of a minute, the first nine answers to boot requests are lost,
// so the tenth, some 75 s later, comes after the nodes are back. crus
// finds out what was done or repeats the calls safely: every node is
// upgraded, rebooted once, and Check finds nothing wrong.
func TestLostAnswers(t *testing.T) {
	for _, short := range []bool{false, true} {
		opts := crustest.Options{Nodes: 8, Busy: 0.5, Seed: 4}
		if short {
			opts.RebootTime = time.Minute
		}
		w := crustest.New(opts)
		start := w.Now()
		if short {
			w.LoseNextAnswers("bos.Reboot", 9)
		} else {
			for _, op := range []string{"hsm.AddMembers", "hsm.RemoveMembers", "bos.Reboot", "wlm.Drain", "wlm.Resume", "wlm.Fail"} {
				w.LoseAnswers(op, start, start.Add(2*time.Hour))
				w.LoseNextAnswers(op, 3)
			}
		}
		final := runOn(t, w, 3)
		if err := w.Check(context.Background(), final); err != nil {
			t.Errorf("short reboots %v: %v", short, err)
		}
		for _, n := range final.Progress.Nodes {
			if n.Outcome != crus.OutcomeUpgraded {
				t.Errorf("short reboots %v: %s: %s %s", short, n.XName, n.Outcome, n.Reason)
			}
			if got := w.Reboots(n.XName); got != 1 {
				t.Errorf("short reboots %v: %s rebooted %d times", short, n.XName, got)
			}
		}
		if w.Calls()["bos.Reboot"] <= len(final.Progress.Nodes)/3 {
			t.Errorf("short reboots %v: %d boot requests: the lost answers made none sent again", short, w.Calls()["bos.Reboot"])
		}
	}
}

// TestLostAnswersRefuseReads: a lost read is a failed read (FailNext);
// the kit says so rather than inject nothing.
func TestLostAnswersRefuseReads(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 2})
	for _, f := range []func(){
		func() { w.LoseNextAnswers("wlm.Nodes", 1) },
		func() { w.LoseAnswers("bos.Status", w.Now(), w.Now().Add(time.Hour)) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "not a write") {
					t.Errorf("recovered %v; want a panic saying it is not a write", r)
				}
			}()
			f()
		}()
	}
}

// TestLostAnswersKeptByUseManager: answers to lose, set before
// UseManager, are lost by the outside manager's calls too, as failures
// and outages are (they used to be dropped with the kit's own manager).
func TestLostAnswersKeptByUseManager(t *testing.T) {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 2})
	w.LoseNextAnswers("wlm.Resume", 1)
	w.LoseAnswers("wlm.Drain", w.Now(), w.Now().Add(time.Hour))
	m := newMini(w)
	w.UseManager(m, m)
	mgr := w.WLM()
	name := w.Names()[:1]
	if err := mgr.Drain(ctx, name, "test"); !errors.Is(err, crustest.ErrAnswerLost) {
		t.Errorf("drain within the window: %v; want ErrAnswerLost", err)
	}
	if err := mgr.Resume(ctx, name); !errors.Is(err, crustest.ErrAnswerLost) {
		t.Errorf("first resume: %v; want ErrAnswerLost", err)
	}
	if err := mgr.Resume(ctx, name); err != nil {
		t.Errorf("second resume: %v; want its answer", err)
	}
}
