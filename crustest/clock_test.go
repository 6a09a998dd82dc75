package crustest_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
)

// TestSessionsAtOnceOnTheRealClock runs two sessions at once, each with
// its own executor on crus's default (real) clock, inside a synctest
// bubble, on a World that follows the real clock: the way to test several
// sessions together (a virtual clock that moves when one Run waits would
// move the world under the other). Hours of jobs and reboots take no wall
// time.
func TestSessionsAtOnceOnTheRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		w := crustest.New(crustest.Options{Nodes: 12, Busy: 0.5, Seed: 3, RealClock: true})
		// The first session takes the first six nodes, the second the
		// others, each with groups and a template of its own.
		xs := w.XNames()
		w.AddGroup(crustest.StartingLabel, xs[:6]...)
		w.AddGroup("b-starting", xs[6:]...)
		w.AddGroup("b-upgrading")
		w.AddGroup("b-failed")
		w.AddTemplate("b-template", "b-upgrading")
		a := w.Spec(2)
		b := crus.Spec{
			StartingLabel: "b-starting", UpgradingLabel: "b-upgrading", FailedLabel: "b-failed",
			StepSize: 3, TemplateID: "b-template", WorkloadManagerType: "slurm",
		}

		var wg sync.WaitGroup
		finals := make([]*crus.Session, 2)
		for i, spec := range []crus.Spec{a, b} {
			wg.Go(func() {
				ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
				if err != nil {
					t.Error(err)
					return
				}
				s, err := ex.Create(context.Background(), spec)
				if err != nil {
					t.Error(err)
					return
				}
				finals[i], err = ex.Run(context.Background(), s.UpgradeID)
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for _, s := range finals {
			if c := s.Counts(); c.Upgraded != 6 {
				t.Errorf("session %s: %+v, want 6 upgraded", s.UpgradeID, c)
			}
		}
		if err := w.Check(context.Background(), finals...); err != nil {
			t.Fatal(err)
		}
		// Both ran at once: together they took about as long as the
		// longer one, not the sum.
		took := time.Since(start)
		pa, pb := finals[0].Progress, finals[1].Progress
		if !pa.StartedAt.Before(pb.EndedAt) || !pb.StartedAt.Before(pa.EndedAt) {
			t.Errorf("the sessions did not overlap: %s-%s and %s-%s", pa.StartedAt, pa.EndedAt, pb.StartedAt, pb.EndedAt)
		}
		t.Logf("two sessions of 6 nodes at once: %s of (bubble) time", took.Round(time.Minute))
	})
}

// TestScheduledFunctionOnTheRealClock: a scheduled function that acts on
// a World following the real clock (an operator's drain, a read of a
// group) hung it: each call first brings the World up to the real time,
// and waited for the catch-up that was running the function.
func TestScheduledFunctionOnTheRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := crustest.New(crustest.Options{Nodes: 4, RealClock: true})
		x := w.XNames()[0]
		done := make(chan error, 1)
		w.Schedule(w.Now().Add(time.Second), func() {
			if err := w.AdminDrain(x, "admin: scheduled"); err != nil {
				done <- err
				return
			}
			_, err := w.HSM().Members(context.Background(), crustest.StartingLabel)
			done <- err
		})
		w.Advance(time.Hour)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		nodes, err := w.WLM().Nodes(context.Background(), []string{w.Name(x)})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || !nodes[0].Drain {
			t.Errorf("%s after the scheduled drain: %+v", x, nodes)
		}
	})
}
