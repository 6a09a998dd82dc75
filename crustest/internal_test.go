package crustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

// TestSampledOutOfServiceMatchesTheFake checks the recorder's way of
// measuring the nodes out of service because of crus (sampling through
// the wlm.Manager interface after every drain and reboot), which is all
// an outside workload manager allows, against the kit's own manager's
// exact count, on random sessions.
func TestSampledOutOfServiceMatchesTheFake(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := New(Options{
			Nodes: rapid.IntRange(1, 16).Draw(t, "nodes"),
			Busy:  rapid.Float64Range(0, 1).Draw(t, "busy"),
			Seed:  rapid.Uint64().Draw(t, "seed"),
		})
		step := rapid.IntRange(1, 5).Draw(t, "step")
		for i, x := range w.XNames() {
			switch rapid.IntRange(0, 9).Draw(t, fmt.Sprintf("fault%d", i)) {
			case 0:
				w.SetFaults(x, NodeFaults{BootFails: true})
			case 1:
				w.SetFaults(x, NodeFaults{NeverReturns: true})
			case 2:
				w.SetFaults(x, NodeFaults{RefuseDrain: true})
			}
		}
		spec := w.Spec(step)
		spec.Rollout.Strategy = rapid.SampledFrom([]crus.Strategy{crus.StrategyClassic, crus.StrategyRolling}).Draw(t, "strategy")
		if spec.Rollout.Strategy == crus.StrategyRolling {
			spec.BootLimit = crus.LimitNodes
		}
		final := run(t, w, spec)
		r := w.recorder()
		most := 0
		for _, s := range r.samples {
			most = max(most, len(s))
		}
		if most != w.fw.MaxOut() {
			t.Fatalf("sampled %d nodes out of service at most, the fake counted %d; samples %v", most, w.fw.MaxOut(), r.samples)
		}
		if err := w.Check(context.Background(), final); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNamesAreTheFakes checks the kit's documented labels are the ones its
// World is built with.
func TestNamesAreTheFakes(t *testing.T) {
	for _, p := range [][2]string{
		{StartingLabel, fake.StartingLabel}, {UpgradingLabel, fake.UpgradingLabel},
		{FailedLabel, fake.FailedLabel}, {Template, fake.Template},
	} {
		if p[0] != p[1] {
			t.Errorf("crustest says %q, the World has %q", p[0], p[1])
		}
	}
}

func run(t interface {
	Fatal(...any)
	Helper()
}, w *World, spec crus.Spec) *crus.Session {
	t.Helper()
	ctx := context.Background()
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ex.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		t.Fatal(err)
	}
	return final
}

// filler is an outside manager whose job ends come by position: it counts
// the calls to JobEndsInto.
type filler struct {
	wlm.Manager
	je   wlm.JobEnder
	into int
}

func (f *filler) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	return f.je.JobEnds(ctx, names)
}

func (f *filler) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	f.into++
	return wlm.JobEndsAt(ctx, f.je, names, ends)
}

// TestRecordedJobEndsByPosition: the kit's recording wrapper keeps an
// outside manager's wlm.JobEndsFiller (crus reads job ends through it),
// counts it as wlm.JobEnds and fails it with FailNext.
func TestRecordedJobEndsByPosition(t *testing.T) {
	w := New(Options{Nodes: 8, Busy: 1, Seed: 1})
	inner := &filler{Manager: w.fw.WLM(), je: w.fw.WLM()}
	r := newRecorder(w, inner, nil)
	f, ok := r.manager().(wlm.JobEndsFiller)
	if !ok {
		t.Fatal("the recorded manager of a JobEndsFiller is not one")
	}
	names := w.Names()
	want, err := inner.JobEnds(context.Background(), names)
	if err != nil || len(want) == 0 {
		t.Fatalf("a busy world's job ends: %v, %v", want, err)
	}
	ends := make([]time.Time, len(names))
	if err := f.JobEndsInto(context.Background(), names, ends); err != nil {
		t.Fatal(err)
	}
	if inner.into != 1 {
		t.Errorf("the outside JobEndsInto was called %d times, want 1", inner.into)
	}
	for k, n := range names {
		if !ends[k].Equal(want[n]) {
			t.Errorf("%s ends %v by position, %v by map", n, ends[k], want[n])
		}
	}
	countedAndFailable(t, r, "wlm.JobEnds", &inner.into, func() error { return f.JobEndsInto(context.Background(), names, ends) })
	// A manager without job ends gains none.
	if _, ok := newRecorder(w, struct{ wlm.Manager }{w.fw.WLM()}, nil).manager().(wlm.JobEnder); ok {
		t.Error("the recorded manager of a manager without JobEnds has them")
	}
}

// countedAndFailable checks, after one call of op by position that
// reached the outside manager (into counts them), that the recorder
// counted it, and that FailNext fails the next one before it reaches the
// manager.
func countedAndFailable(t *testing.T, r *recorder, op string, into *int, call func() error) {
	t.Helper()
	if got := r.calls()[op]; got != 1 {
		t.Errorf("counted %d calls to %s, want 1", got, op)
	}
	boom := errors.New("boom")
	r.failNext(op, 1, boom)
	if err := call(); !errors.Is(err, boom) {
		t.Errorf("after FailNext: %v, want %v", err, boom)
	}
	if *into != 1 {
		t.Errorf("a failed call reached the manager (%d calls)", *into)
	}
}

// nodesFiller is an outside manager that answers Nodes by position: it
// counts the calls to NodesInto.
type nodesFiller struct {
	wlm.Manager
	into int
}

func (f *nodesFiller) NodesInto(ctx context.Context, names []string, out []wlm.Node) error {
	f.into++
	return wlm.NodesAt(ctx, f.Manager, names, out)
}

// TestRecordedNodesByPosition: the kit's recording wrapper keeps an
// outside manager's wlm.NodesFiller (crus reads nodes through it), counts
// it as wlm.Nodes and fails it with FailNext; a manager that is not one
// is read through its Nodes.
func TestRecordedNodesByPosition(t *testing.T) {
	w := New(Options{Nodes: 8, Busy: 1, Seed: 1})
	inner := &nodesFiller{Manager: w.fw.WLM()}
	r := newRecorder(w, inner, nil)
	f, ok := r.manager().(wlm.NodesFiller)
	if !ok {
		t.Fatal("the recorded manager is not a NodesFiller")
	}
	names := w.Names()
	want, err := inner.Nodes(context.Background(), names)
	if err != nil || len(want) != len(names) {
		t.Fatalf("the world's nodes: %v, %v", want, err)
	}
	out := make([]wlm.Node, len(names))
	if err := f.NodesInto(context.Background(), names, out); err != nil {
		t.Fatal(err)
	}
	if inner.into != 1 {
		t.Errorf("the outside NodesInto was called %d times, want 1", inner.into)
	}
	if !slices.Equal(out, want) {
		t.Errorf("by position %+v, by Nodes %+v", out, want)
	}
	countedAndFailable(t, r, "wlm.Nodes", &inner.into, func() error { return f.NodesInto(context.Background(), names, out) })
	// A manager that is not a NodesFiller is read through Nodes.
	plain := newRecorder(w, struct{ wlm.Manager }{w.fw.WLM()}, nil).manager().(wlm.NodesFiller)
	clear(out)
	if err := plain.NodesInto(context.Background(), names, out); err != nil || !slices.Equal(out, want) {
		t.Errorf("through Nodes: %+v, %v; want %+v", out, err, want)
	}
}

// steerer is an outside manager that books and steers: it counts the
// calls to Steer.
type steerer struct {
	wlm.Manager
	wlm.Scheduler
	steered int
}

func (s *steerer) Steer(context.Context, []string, bool) error {
	s.steered++
	return nil
}

// TestRecordedSteer: the kit's recording wrapper keeps an outside
// manager's wlm.Steerer along with its wlm.Scheduler (with or without
// job ends), counts it as wlm.Steer and fails it with FailNext; a manager
// that does not steer, or steers but does not book, gains none.
func TestRecordedSteer(t *testing.T) {
	w := New(Options{Nodes: 4, Seed: 1})
	inner := &steerer{Manager: w.fw.WLM(), Scheduler: w.fw.WLM()}
	names := w.Names()[:2]
	boom := errors.New("boom")
	for _, m := range []wlm.Manager{inner, struct {
		*steerer
		wlm.JobEnder
	}{inner, w.fw.WLM()}} {
		inner.steered = 0
		r := newRecorder(w, m, nil)
		rec := r.manager()
		st, ok := rec.(wlm.Steerer)
		if _, sc := rec.(wlm.Scheduler); !ok || !sc {
			t.Fatalf("the recorded manager of a %T steers %v, books %v", m, ok, sc)
		}
		_, je := m.(wlm.JobEnder)
		if _, recJE := rec.(wlm.JobEnder); recJE != je {
			t.Errorf("the recorded manager of a %T: JobEnder %v", m, recJE)
		}
		if err := st.Steer(context.Background(), names, true); err != nil {
			t.Fatal(err)
		}
		if inner.steered != 1 {
			t.Errorf("the outside Steer was called %d times, want 1", inner.steered)
		}
		if got := r.calls()["wlm.Steer"]; got != 1 {
			t.Errorf("counted %d calls to wlm.Steer, want 1", got)
		}
		r.failNext("wlm.Steer", 1, boom)
		if err := st.Steer(context.Background(), names, false); !errors.Is(err, boom) {
			t.Errorf("after FailNext: %v, want %v", err, boom)
		}
		if inner.steered != 1 {
			t.Errorf("a failed call reached the manager (%d calls)", inner.steered)
		}
		if len(r.steered) != 2 {
			t.Errorf("after a failed call giving the places back, %d nodes recorded steered, want 2", len(r.steered))
		}
		if err := st.Steer(context.Background(), names, false); err != nil {
			t.Fatal(err)
		}
		if len(r.steered) != 0 {
			t.Errorf("after the places were given back, %v recorded steered", r.steered)
		}
	}
	for _, m := range []wlm.Manager{
		struct{ wlm.Manager }{w.fw.WLM()},
		struct {
			wlm.Manager
			wlm.Steerer
		}{w.fw.WLM(), inner},
	} {
		if _, ok := newRecorder(w, m, nil).manager().(wlm.Steerer); ok {
			t.Errorf("the recorded manager of a %T steers", m)
		}
	}
}
