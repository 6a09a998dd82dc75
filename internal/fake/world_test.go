package fake_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/fake"
)

// TestWaitsTakeTurns: goroutines that wait on the clock at once, and make
// calls that take their time, while scheduled functions wait on the clock
// too: the scheduled functions run one at a time (two ran at once in a
// scheduled operator's action, "concurrent map writes", when each wait
// ran them), every one runs, and each wait ends no earlier than it asked.
func TestWaitsTakeTurns(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
	w.SetLatency("hsm.Members", 7*time.Second)
	start := w.Now()
	var running, overlaps, ran atomic.Int64
	wait := func(d time.Duration) {
		before := w.Now()
		if at := <-w.After(d); at.Before(before.Add(d)) {
			t.Errorf("After(%v) at %v ended at %v", d, before.Sub(start), at.Sub(start))
		}
	}
	for i := range 600 {
		w.Schedule(start.Add(time.Duration(i)*time.Second), func() {
			if running.Add(1) > 1 {
				overlaps.Add(1)
			}
			runtime.Gosched()
			if i%5 == 0 {
				wait(time.Duration(1+i%3) * time.Second)
				_, err := w.HSM().Members(context.Background(), fake.StartingLabel)
				assert.NoError(t, err)
			}
			running.Add(-1)
			ran.Add(1)
		})
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 20 {
				wait(time.Duration(1+(g*7+i*3)%11) * time.Second)
				// Made while a scheduled function runs, the call is
				// taken for the function's and takes no time.
				_, err := w.HSM().Members(context.Background(), fake.StartingLabel)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	w.RunUntil(start.Add(time.Hour))
	assert.Zero(t, overlaps.Load(), "scheduled functions ran at once")
	assert.EqualValues(t, 600, ran.Load())
}

// TestWaitsInsideScheduledFunctions: a scheduled function that waits on
// the clock (or whose call takes its time) used to hang the World. Its
// wait now runs the World's own events due meanwhile (a job ends), nested
// within it; the functions scheduled meanwhile run after it returns, in
// order, and may wait in turn; its calls take no time of their own.
func TestWaitsInsideScheduledFunctions(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
	w.SetLatency("", time.Minute)
	start := w.Now()
	x := fake.XName(0)
	require.NoError(t, w.StartJob(x, 5*time.Minute, time.Hour))
	var log []string
	note := func(s string) { log = append(log, fmt.Sprintf("%v %s", w.Now().Sub(start), s)) }
	call := func() {
		_, err := w.HSM().Members(context.Background(), fake.StartingLabel)
		require.NoError(t, err)
	}
	jobs := func() int {
		n, _ := w.Node(x)
		return n.Jobs
	}
	assert.False(t, w.InScheduled())
	w.Schedule(start.Add(time.Minute), func() {
		assert.True(t, w.InScheduled())
		note(fmt.Sprintf("a begins, %d job", jobs()))
		call()
		note("a called")
		at := <-w.After(10 * time.Minute)
		note(fmt.Sprintf("a waited until %v, %d jobs", at.Sub(start), jobs()))
	})
	w.Schedule(start.Add(2*time.Minute), func() {
		note("b begins")
		w.RunUntil(start.Add(4 * time.Minute))
		note("b ends")
	})
	w.Schedule(start.Add(3*time.Minute), func() {
		note("c begins")
		call()
		w.Advance(5 * time.Minute)
		note("c ends")
	})
	w.Schedule(start.Add(4*time.Minute), func() { note("d") })
	w.Schedule(start.Add(20*time.Minute), func() { note("e") })
	assert.Equal(t, start.Add(30*time.Minute), w.Advance(30*time.Minute))
	assert.Equal(t, []string{
		"1m0s a begins, 1 job",
		"1m0s a called",
		"11m0s a waited until 11m0s, 0 jobs",
		"11m0s b begins",
		"11m0s b ends",
		"11m0s c begins",
		"16m0s c ends",
		"16m0s d",
		"20m0s e",
	}, log)
	assert.False(t, w.InScheduled())
	// Outside any scheduled function, a call takes its minute.
	before := w.Now()
	call()
	assert.Equal(t, time.Minute, w.Now().Sub(before))
}

// TestFanOutInsideAScheduledFunction: a scheduled function that starts
// goroutines and waits for them, each waiting on the clock again and again
// and making calls that take their time (an executor's observation from
// an operator's command), while the functions scheduled meanwhile wait on
// the clock too. Every function runs, none hangs, and each wait ends no
// earlier than it asked.
func TestFanOutInsideAScheduledFunction(t *testing.T) {
	for round := range 20 {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
		w.SetLatency("hsm.Members", 3*time.Second)
		start := w.Now()
		var ran atomic.Int64
		for i := range 100 {
			w.Schedule(start.Add(time.Duration(i)*time.Second), func() {
				if i%7 == round%7 {
					<-w.After(time.Duration(1+i%4) * time.Second)
				}
				ran.Add(1)
			})
		}
		wait := func(d time.Duration) {
			before := w.Now()
			if at := <-w.After(d); at.Before(before.Add(d)) {
				t.Errorf("After(%v) at %v ended at %v", d, before.Sub(start), at.Sub(start))
			}
		}
		w.Schedule(start.Add(5*time.Second), func() {
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 6 {
						wait(time.Duration(1+(g+i+round)%5) * time.Second)
						_, err := w.HSM().Members(context.Background(), fake.StartingLabel)
						assert.NoError(t, err)
					}
				})
			}
			wg.Wait()
		})
		wait(2 * time.Minute)
		require.EqualValues(t, 100, ran.Load(), "round %d: events run", round)
		assert.False(t, w.InScheduled())
	}
}

// TestLostAnswers: a write whose answer is lost is carried out all the
// same; only the next n that succeed lose theirs, and reads cannot.
func TestLostAnswers(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
	ctx := context.Background()
	names := []string{"nid000001", "nid000002"}
	w.LoseNextAnswers("wlm.Drain", 1)
	// A drain refused (no reason) keeps its own error and the lost answer.
	if err := w.WLM().Drain(ctx, names, ""); errors.Is(err, fake.ErrAnswerLost) || err == nil {
		t.Fatalf("a refused drain: %v", err)
	}
	if err := w.WLM().Drain(ctx, names, "maintenance"); !errors.Is(err, fake.ErrAnswerLost) {
		t.Fatalf("the drain whose answer is lost returned %v", err)
	}
	nodes, err := w.WLM().Nodes(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !n.Drained() || n.Reason != "maintenance" {
			t.Errorf("%s: %s %q; want drained for maintenance, the answer lost but the work done", n.Name, n.State, n.Reason)
		}
	}
	if err := w.WLM().Resume(ctx, names); err != nil {
		t.Fatalf("the next call: %v", err)
	}
	if err := w.WLM().Drain(ctx, names, "again"); err != nil {
		t.Fatalf("one answer lost, not two: %v", err)
	}
	// A window of lost answers: every resume in it is done, none answered.
	w.LoseAnswers("wlm.Resume", w.Now(), w.Now().Add(time.Minute))
	for range 2 {
		if err := w.WLM().Resume(ctx, names); !errors.Is(err, fake.ErrAnswerLost) {
			t.Fatalf("a resume in the window returned %v", err)
		}
	}
	nodes, err = w.WLM().Nodes(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !n.InService() {
			t.Errorf("%s: %s; want resumed, the answer lost but the work done", n.Name, n.State)
		}
	}
	w.Advance(time.Minute)
	if err := w.WLM().Resume(ctx, names); err != nil {
		t.Fatalf("a resume after the window: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("LoseNextAnswers of a read did not panic")
		}
	}()
	w.LoseNextAnswers("wlm.Nodes", 1)
}
