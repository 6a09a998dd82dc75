package crustest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
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

// TestSlowCallsFromAScheduledFunction: a scheduled function that called
// a backend taking its time hung the World for good: the call moved the
// World on from inside the run that ran the function, and waited for
// that run to end. Its calls now overlap that run and take no time of
// their own, and the World moves on as before.
func TestSlowCallsFromAScheduledFunction(t *testing.T) {
	w := crustest.New(crustest.Options{Nodes: 4})
	w.SetLatency("", time.Minute)
	start := w.Now()
	at := start.Add(time.Second)
	done := make(chan struct{})
	var took time.Duration
	var errs []error
	w.Schedule(at, func() {
		_, err := w.WLM().Nodes(context.Background(), w.Names())
		errs = append(errs, err)
		_, err = w.HSM().Members(context.Background(), crustest.StartingLabel)
		errs = append(errs, err)
		took = w.Now().Sub(at)
		close(done)
	})
	if now := w.Advance(time.Hour); !now.Equal(start.Add(time.Hour)) {
		t.Errorf("Advance(1h) reached %v, want %v", now.Sub(start), time.Hour)
	}
	<-done
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if took != 0 {
		t.Errorf("the calls of the scheduled function took %v; want none of their own", took)
	}
	// Outside any scheduled function, a call takes its minute again.
	before := w.Now()
	if _, err := w.WLM().Nodes(context.Background(), w.Names()); err != nil {
		t.Fatal(err)
	}
	if got := w.Now().Sub(before); got != time.Minute {
		t.Errorf("a call outside any scheduled function took %v; want a minute", got)
	}
}

// TestScheduledFunctionWaitsOnTheClock: a scheduled function that waits
// on the World's clock gets the time it waited for, and the World moves
// on meanwhile (a job ends); the functions scheduled meanwhile run after
// it, in order, one waiting in turn.
func TestScheduledFunctionWaitsOnTheClock(t *testing.T) {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 2})
	w.SetLatency("", time.Minute)
	start := w.Now()
	x := w.XNames()[0]
	if err := w.StartJob(x, 5*time.Minute, time.Hour); err != nil {
		t.Fatal(err)
	}
	busy := func() bool {
		nodes, err := w.WLM().Nodes(ctx, []string{w.Name(x)})
		if err != nil || len(nodes) != 1 {
			t.Fatalf("reading %s: %v, %v", x, nodes, err)
		}
		return nodes[0].Busy()
	}
	var log []string
	note := func(s string) { log = append(log, fmt.Sprintf("%s at %v", s, w.Now().Sub(start))) }
	w.Schedule(start.Add(time.Minute), func() {
		note(fmt.Sprintf("outer begins, busy %v", busy()))
		at := <-w.After(10 * time.Minute)
		note(fmt.Sprintf("outer waited until %v, busy %v", at.Sub(start), busy()))
	})
	w.Schedule(start.Add(5*time.Minute), func() {
		note("inner begins")
		w.Advance(2 * time.Minute)
		note("inner ends")
	})
	w.Schedule(start.Add(6*time.Minute), func() { note("innermost") })
	w.Schedule(start.Add(20*time.Minute), func() { note("last") })
	if now := w.Advance(time.Hour); !now.Equal(start.Add(time.Hour)) {
		t.Errorf("Advance(1h) reached %v, want %v", now.Sub(start), time.Hour)
	}
	want := []string{
		"outer begins, busy true at 1m0s",
		"outer waited until 11m0s, busy false at 11m0s",
		"inner begins at 11m0s",
		"inner ends at 13m0s",
		"innermost at 13m0s",
		"last at 20m0s",
	}
	if !slices.Equal(log, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

// TestCommandsFromScheduledFunctionsWithSlowBackends: Delete, Pause and
// Resume sent from scheduled functions (an operator during a session)
// while every call takes a minute. Another executor's Delete deletes the
// session's reservations at once, calls that hung the World when made
// from a scheduled function; the other commands write the record only.
func TestCommandsFromScheduledFunctionsWithSlowBackends(t *testing.T) {
	type command struct {
		after time.Duration
		send  func(ctx context.Context, w *crustest.World, ex, other *crus.Executor, id string) error
	}
	deleteBy := func(own bool) command {
		return command{20 * time.Minute, func(ctx context.Context, w *crustest.World, ex, other *crus.Executor, id string) error {
			if own {
				_, err := ex.Delete(ctx, id)
				return err
			}
			unreserved := w.Calls()["wlm.Unreserve"]
			if _, err := other.Delete(ctx, id); err != nil {
				return err
			}
			if w.Calls()["wlm.Unreserve"] == unreserved {
				return fmt.Errorf("another executor's Delete deleted no reservation")
			}
			return nil
		}}
	}
	for _, tc := range []struct {
		name     string
		commands []command
		want     crus.Result
		message  string
	}{
		{"delete by another executor", []command{deleteBy(false)}, crus.ResultCancelled, "Deletion requested"},
		{"delete by its own executor", []command{deleteBy(true)}, crus.ResultCancelled, "Deletion requested"},
		{"pause and resume", []command{
			{10 * time.Minute, func(ctx context.Context, _ *crustest.World, ex, _ *crus.Executor, id string) error {
				_, err := ex.Pause(ctx, id)
				return err
			}},
			{2 * time.Hour, func(ctx context.Context, _ *crustest.World, _, other *crus.Executor, id string) error {
				_, err := other.Resume(ctx, id)
				return err
			}},
		}, crus.ResultComplete, "Resumed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			w := crustest.New(crustest.Options{Nodes: 12, Busy: 0.7, Seed: 2})
			w.SetLatency("", time.Minute)
			cfg := w.Config()
			cfg.Store = crus.NewMemoryStore()
			ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			other, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			spec := w.Spec(3)
			spec.Strategy = crus.StrategyScheduled
			s, err := ex.Create(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			var errs []error
			for _, c := range tc.commands {
				w.Schedule(w.Now().Add(c.after), func() { errs = append(errs, c.send(ctx, w, ex, other, s.UpgradeID)) })
			}
			final, err := ex.Run(ctx, s.UpgradeID)
			if err != nil {
				t.Fatal(err)
			}
			if len(errs) != len(tc.commands) {
				t.Errorf("%d commands sent; want %d", len(errs), len(tc.commands))
			}
			for _, err := range errs {
				if err != nil {
					t.Errorf("command: %v", err)
				}
			}
			if final.Progress.Result != tc.want || !slices.ContainsFunc(final.Messages, func(m string) bool { return strings.HasPrefix(m, tc.message) }) {
				t.Errorf("result %s; want %s, with a message %q: %v", final.Progress.Result, tc.want, tc.message, final.Messages)
			}
			if err := w.Check(ctx, final); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestScheduledFunctionFansOut: a scheduled function whose call fans out
// to several goroutines, each waiting on the World's clock: an
// executor's observation (Next) reads the nodes, the job ends and the
// reservations at once, each read in its own goroutine retrying its
// failures on the clock. The reads all succeed on their third attempt;
// the World moves on meanwhile (a job ends), and a function scheduled
// during the retries runs after the one that made them.
func TestScheduledFunctionFansOut(t *testing.T) {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 8})
	w.SetLatency("", 30*time.Second)
	cfg := w.Config()
	cfg.RetryInitial = 10 * time.Second
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	spec := w.Spec(2)
	spec.Strategy = crus.StrategyScheduled
	s, err := ex.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	at := w.Now().Add(time.Minute)
	x := w.XNames()[0]
	if err := w.StartJob(x, at.Add(20*time.Second).Sub(w.Now()), time.Hour); err != nil {
		t.Fatal(err)
	}
	failing := []string{"wlm.Nodes", "wlm.JobEnds", "wlm.Reservations"}
	var (
		nextErr       error
		obs           crus.Observation
		calls         map[string]int
		during, early bool
		busy          = true
		took          time.Duration
	)
	w.Schedule(at.Add(15*time.Second), func() { during = true })
	w.Schedule(at, func() {
		before := w.Calls()
		for _, op := range failing {
			w.FailNext(op, 2, nil)
		}
		obs, _, nextErr = ex.Next(ctx, s)
		took = w.Now().Sub(at)
		early = during
		calls = w.Calls()
		for op, n := range before {
			calls[op] -= n
		}
		if nodes, err := w.WLM().Nodes(ctx, []string{w.Name(x)}); err == nil && len(nodes) == 1 {
			busy = nodes[0].Busy()
		}
	})
	w.Advance(time.Hour)
	if nextErr != nil {
		t.Fatal(nextErr)
	}
	if len(obs.Errors) > 0 {
		t.Errorf("parts not read: %v", obs.Errors)
	}
	for _, op := range failing {
		if calls[op] != 3 {
			t.Errorf("%s called %d times; want 3 (two failures, then an answer)", op, calls[op])
		}
	}
	// Two waits of the backoff (10s, then 15s); the calls take no time.
	if took < 25*time.Second {
		t.Errorf("the observation took %v; want at least its two waits, 25s", took)
	}
	if busy {
		t.Errorf("%s still busy after the observation: its job, ending 20s into it, did not end meanwhile", x)
	}
	if early || !during {
		t.Errorf("the function scheduled during the retries ran before the one that made them ended (%v), or never (%v)", early, !during)
	}
}
