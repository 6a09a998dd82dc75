package crustest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/wlm"
)

// session returns the record of a finished session over the first n
// nodes of w, each upgraded as far as the record goes; the test then
// makes the world and the record disagree.
func session(w *crustest.World, n, step int) *crus.Session {
	start := w.Now()
	s := &crus.Session{UpgradeID: "s1", Completed: true, Spec: w.Spec(step)}
	s.Progress.CreatedAt, s.Progress.Result = start, crus.ResultComplete
	for i, x := range w.XNames()[:n] {
		s.Progress.Nodes = append(s.Progress.Nodes, crus.NodeRecord{
			XName: x, Name: w.Names()[i], Step: i/step + 1, Phase: crus.PhaseDone,
			Outcome: crus.OutcomeUpgraded, Reason: "rebooted and back in service", RebootRequested: start,
		})
	}
	return s
}

// reboot reboots the nodes with a boot session of the world's and lets
// them come back.
func reboot(t *testing.T, w *crustest.World, name string, xnames ...string) {
	t.Helper()
	if err := w.BOS().Reboot(t.Context(), bos.Request{Name: name, Template: crustest.Template, Limit: xnames}); err != nil {
		t.Fatal(err)
	}
	if err := w.HSM().AddMembers(t.Context(), crustest.UpgradingLabel, xnames); err != nil {
		t.Fatal(err)
	}
	w.Advance(time.Hour)
	if err := w.HSM().RemoveMembers(t.Context(), crustest.UpgradingLabel, xnames); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		// act does what crus would (through w's backends) and returns
		// the session record it would end with.
		act  func(t *testing.T, w *crustest.World) *crus.Session
		want []string // in the error, one per broken promise; none: no error
		not  []string // not in the error
	}{{
		name: "kept",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 4, 2)
			xs := w.XNames()
			ctx := t.Context()
			for _, step := range [][]string{xs[0:2], xs[2:4]} {
				names := []string{w.Name(step[0]), w.Name(step[1])}
				if err := w.WLM().Drain(ctx, names, "crus s1: step"); err != nil {
					t.Fatal(err)
				}
				reboot(t, w, "b-"+step[0], step...)
				if err := w.WLM().Resume(ctx, names); err != nil {
					t.Fatal(err)
				}
			}
			return s
		},
	}, {
		name: "cap",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 3, 2)
			xs := w.XNames()[:3]
			names := w.Names()[:3]
			if err := w.WLM().Drain(t.Context(), names, "crus s1: step 1"); err != nil {
				t.Fatal(err)
			}
			reboot(t, w, "b1", xs...)
			if err := w.WLM().Resume(t.Context(), names); err != nil {
				t.Fatal(err)
			}
			return s
		},
		want: []string{"3 nodes out of service because of crus", "more than the step size 2"},
	}, {
		name: "reservation left behind",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 1, 1)
			reboot(t, w, "b1", w.XNames()[0])
			sc := w.WLM().(wlm.Scheduler)
			for _, name := range []string{"crus-s1-7", "crus-s1-2-4", "admin"} { // the session's, session "s1-2"'s, an admin's
				if err := sc.Reserve(t.Context(), wlm.Reservation{Name: name, Nodes: w.Names()[1:2], Start: w.Now().Add(time.Hour), End: w.Now().Add(2 * time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			return s
		},
		want: []string{"reservation crus-s1-7 left behind"},
		not:  []string{"crus-s1-2-4", "admin"},
	}, {
		name: "left steered",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 3, 3)
			reboot(t, w, "b1", w.XNames()[:3]...)
			st := w.WLM().(wlm.Steerer)
			if err := st.Steer(t.Context(), w.Names()[:3], true); err != nil {
				t.Fatal(err)
			}
			if err := st.Steer(t.Context(), w.Names()[1:2], false); err != nil {
				t.Fatal(err)
			}
			return s
		},
		want: []string{"2 nodes left the scheduler's last choice for new jobs", w0name(0) + " " + w0name(2)},
		not:  []string{w0name(1), "out of service"},
	}, {
		name: "busy reboot",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 1, 1)
			x := w.XNames()[0]
			if err := w.StartJob(x, time.Hour, time.Hour); err != nil {
				t.Fatal(err)
			}
			reboot(t, w, "b1", x)
			return s
		},
		want: []string{"rebooted while running 1 jobs"},
	}, {
		name: "upgraded without a reboot",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			return session(w, 1, 1)
		},
		want: []string{"upgraded but was not rebooted"},
	}, {
		name: "upgraded but left drained",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 1, 1)
			if err := w.WLM().Drain(t.Context(), w.Names()[:1], "crus s1: step 1"); err != nil {
				t.Fatal(err)
			}
			reboot(t, w, "b1", w.XNames()[0])
			return s
		},
		want: []string{"upgraded but not back in service: idle, drained (crus s1: step 1)"},
	}, {
		name: "left in the upgrading group",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 1, 1)
			reboot(t, w, "b1", w.XNames()[0])
			if err := w.HSM().AddMembers(t.Context(), crustest.UpgradingLabel, w.XNames()[:1]); err != nil {
				t.Fatal(err)
			}
			return s
		},
		want: []string{"left in the upgrading group"},
	}, {
		name: "outsider",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 1, 1)
			reboot(t, w, "b1", w.XNames()[0])
			if err := w.WLM().Resume(t.Context(), w.Names()[5:6]); err != nil {
				t.Fatal(err)
			}
			return s
		},
		want: []string{"node " + crustest.XName(5) + " (nid000006) is outside the sessions but was touched"},
	}, {
		name: "skipped but rebooted, no outcome, failed unmarked",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 3, 1)
			reboot(t, w, "b1", w.XNames()[0:2]...)
			s.Progress.Nodes[0].Outcome, s.Progress.Nodes[0].Reason = crus.OutcomeSkipped, "not in service"
			s.Progress.Nodes[1].Outcome = crus.OutcomeFailed
			s.Progress.Nodes[2].Phase, s.Progress.Nodes[2].Outcome = crus.PhaseBooting, ""
			s.Completed = false
			return s
		},
		want: []string{
			"not completed",
			"is skipped but was rebooted",
			"failed but is neither in the failed group",
			"has no outcome (phase booting)",
		},
	}, {
		name: "failed, then resumed by an operator",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			s := session(w, 1, 1)
			s.Progress.Nodes[0].Outcome, s.Progress.Nodes[0].Reason = crus.OutcomeFailed, "did not return"
			if err := w.WLM().Fail(t.Context(), []string{w.Names()[0]}, "crus s1: did not return"); err != nil {
				t.Fatal(err)
			}
			if err := w.AdminResume(w.XNames()[0]); err != nil {
				t.Fatal(err)
			}
			return s // (the failed group could not be written): the operator's choice
		},
	}, {
		name: "resumed by an operator, then failed but the call never reached the manager",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			return resumedThenFailed(t, w, func() {
				w.FailNext("wlm.Fail", 1, errors.New("refused"))
				if err := w.WLM().Fail(t.Context(), []string{w.Names()[0]}, "crus s1: did not return"); err == nil {
					t.Fatal("the injected failure did not fail the call")
				}
			})
		},
		want: []string{"failed but is neither in the failed group"},
	}, {
		// The call reaches the manager, which refuses it (a reason past
		// wlm.MaxReason): the operator's resume came before crus's call,
		// so it does not excuse the node left in service.
		name: "resumed by an operator, then failed but the manager refused the call",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			return resumedThenFailed(t, w, func() {
				long := "crus s1: " + strings.Repeat("x", wlm.MaxReason)
				if err := w.WLM().Fail(t.Context(), []string{w.Names()[0]}, long); !errors.Is(err, wlm.ErrInvalidArgument) {
					t.Fatalf("Fail with a reason of %d bytes: %v, want wlm.ErrInvalidArgument", len(long), err)
				}
			})
		},
		want: []string{"failed but is neither in the failed group"},
	}, {
		name: "busy reboot, outside manager",
		act: func(t *testing.T, w *crustest.World) *crus.Session {
			m := &mini{clock: w, nodes: map[string]*miniNode{}}
			for _, name := range w.Names() {
				m.nodes[name] = &miniNode{up: true, jobEnd: w.Now().Add(time.Minute)}
			}
			w.UseManager(m, m)
			s := session(w, 1, 1)
			reboot(t, w, "b1", w.XNames()[0])
			if n := m.nodes[w.Names()[0]]; !n.up || !n.booted.After(s.Progress.CreatedAt) {
				t.Errorf("the outside manager's node after a reboot by the kit: %+v", n)
			}
			return s
		},
		want: []string{"x1000c0s0b0n0 (nid000001) rebooted while running jobs (running jobs)"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := crustest.New(crustest.Options{Nodes: 8})
			s := tc.act(t, w)
			err := w.Check(context.Background(), s)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check found nothing; want %q", tc.want)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Check: %v\nwant it to say %q", err, want)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(err.Error(), not) {
					t.Errorf("Check: %v\nwant it not to name %q", err, not)
				}
			}
		})
	}
}

// resumedThenFailed returns the record of a session that failed node 0
// of w, which an operator had resumed a minute before crus's call to fail
// it: fail makes that call, which must not take effect.
func resumedThenFailed(t *testing.T, w *crustest.World, fail func()) *crus.Session {
	t.Helper()
	s := session(w, 1, 1)
	s.Progress.Nodes[0].Outcome, s.Progress.Nodes[0].Reason = crus.OutcomeFailed, "did not return"
	if err := w.AdminResume(w.XNames()[0]); err != nil {
		t.Fatal(err)
	}
	w.Advance(time.Minute)
	fail()
	return s
}

// w0name is the workload-manager name of node i of a World of the kit's
// default naming.
func w0name(i int) string { return crustest.New(crustest.Options{Nodes: i + 1}).Names()[i] }

// Options no World can have are refused by name, before anything is built:
// a negative node count used to panic deep in a slice allocation, and a
// Busy of 2 or a negative RebootTime were taken as they were.
func TestNewRefusesImpossibleOptions(t *testing.T) {
	for _, tc := range []struct {
		opts crustest.Options
		want string
	}{
		{crustest.Options{Nodes: -1}, "Options.Nodes -1"},
		{crustest.Options{Nodes: crustest.MaxNodes + 1}, "MaxNodes"},
		{crustest.Options{Busy: -0.5}, "Options.Busy -0.5"},
		{crustest.Options{Busy: 2}, "Options.Busy 2"},
		{crustest.Options{Busy: math.NaN()}, "Options.Busy NaN"},
		{crustest.Options{RebootTime: -time.Minute}, "Options.RebootTime -1m0s"},
		{crustest.Options{RebootJitter: -time.Second}, "Options.RebootJitter -1s"},
	} {
		func() {
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.HasPrefix(msg, "crustest.New: ") || !strings.Contains(msg, tc.want) {
					t.Errorf("New(%+v) panicked with %q; want a message naming %q", tc.opts, msg, tc.want)
				}
			}()
			crustest.New(tc.opts)
		}()
	}
	if w := crustest.New(crustest.Options{Busy: 1, RebootTime: time.Second}); len(w.Names()) != 8 {
		t.Errorf("New with Busy 1: %d nodes, want the default 8", len(w.Names()))
	}
}
