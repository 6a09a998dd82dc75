package wlm_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

func at(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }

func ended(id, user string, start, end float64) wlm.Job {
	return wlm.Job{ID: id, User: user, Nodes: []string{"n" + id}, Start: at(start), End: at(end)}
}

func TestPredict(t *testing.T) {
	p := wlm.NewPredictor(wlm.PredictorConfig{})
	p.Learn([]wlm.Job{
		ended("1", "ann", 0, 1), // ann: 1h
		ended("2", "bob", 0, 2), // bob: 2h, then 4h: mean 3h
		ended("3", "bob", 1, 5),
		ended("4", "cid", 0, 1), // cid: 1h, 3h, then 5h: the last two, 4h
		ended("5", "cid", 0, 3),
		ended("6", "cid", 0, 5),
		ended("6", "cid", 0, 9),  // the same job again: learnt once
		ended("7", "", 0, 9),     // no user: nothing to learn
		{ID: "8", User: "dan"},   // no times: nothing to learn
		ended("9", "eve", 2, 2),  // no run time
		ended("10", "ann", 3, 3), // idem
	})
	for _, c := range []struct {
		name string
		job  wlm.Job
		now  float64
		want time.Time
	}{
		{"one run of history", wlm.Job{User: "ann", Start: at(10), Limit: at(110)}, 10, at(11)},
		{"the mean of the last two", wlm.Job{User: "bob", Start: at(10), Limit: at(110)}, 10, at(13)},
		{"only the last two", wlm.Job{User: "cid", Start: at(10), Limit: at(110)}, 10, at(14)},
		{"never past the limit", wlm.Job{User: "bob", Start: at(10), Limit: at(12)}, 10, at(12)},
		{"no history: the limit", wlm.Job{User: "zoe", Start: at(10), Limit: at(30)}, 10, at(30)},
		{"no history, no limit: nothing", wlm.Job{User: "zoe", Start: at(10)}, 10, time.Time{}},
		{"no user: the limit", wlm.Job{Start: at(10), Limit: at(30)}, 10, at(30)},
		{"proven wrong: as long again", wlm.Job{User: "ann", Start: at(10), Limit: at(110)}, 12, at(14)},
		{"proven wrong, within the limit", wlm.Job{User: "ann", Start: at(10), Limit: at(13)}, 12, at(13)},
		{"past its limit: now", wlm.Job{User: "zoe", Start: at(10), Limit: at(11)}, 12, at(12)},
	} {
		if got := p.Predict(c.job, at(c.now)); !got.Equal(c.want) {
			t.Errorf("%s: Predict = %v, want %v", c.name, got, c.want)
		}
	}
}

// lister is a JobLister of fixed answers that records what it was asked.
type lister struct {
	jobs   []wlm.Job
	err    error
	asked  [][]string
	sinces []time.Time
}

func (l *lister) Jobs(_ context.Context, names []string, since time.Time) ([]wlm.Job, error) {
	l.asked, l.sinces = append(l.asked, names), append(l.sinces, since)
	var out []wlm.Job
	for _, j := range l.jobs {
		if j.End.IsZero() || !j.End.Before(since) {
			out = append(out, j)
		}
	}
	return out, l.err
}

func TestPredictorJobEnds(t *testing.T) {
	now := at(100)
	p := wlm.NewPredictor(wlm.PredictorConfig{Now: func() time.Time { return now }, History: 48 * time.Hour})
	l := &lister{jobs: []wlm.Job{
		ended("1", "ann", 40, 41), // before the history: not learnt
		ended("2", "ann", 60, 62), // ann: 2h
		ended("3", "bob", 70, 71), // bob: 1h
		{ID: "4", User: "ann", Nodes: []string{"a", "b"}, Start: at(99), Limit: at(199)},
		{ID: "5", User: "bob", Nodes: []string{"b"}, Start: at(99.5), Limit: at(199)},
		{ID: "6", User: "bob", Nodes: []string{"c"}, Start: at(99.5), Limit: at(199)},
	}}
	ends, err := p.JobEnds(context.Background(), l, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"a": at(101), "b": at(101)} // b: the later of ann's 101 and bob's 100.5
	if len(ends) != len(want) || !ends["a"].Equal(want["a"]) || !ends["b"].Equal(want["b"]) {
		t.Errorf("JobEnds = %v, want %v (only the nodes asked)", ends, want)
	}
	if !l.sinces[0].Equal(at(52)) {
		t.Errorf("first call asked for jobs ended since %v, want the history window, %v", l.sinces[0], at(52))
	}

	// An hour later bob's job on b ended after 3h: his mean is now 2h.
	now = at(101)
	l.jobs = append(l.jobs[:4], ended("5", "bob", 98, 101))
	l.jobs[len(l.jobs)-1].Nodes = []string{"b"}
	ends, err = p.JobEnds(context.Background(), l, []string{"a", "b", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !l.sinces[1].Equal(at(100)) {
		t.Errorf("second call asked since %v, want the first call's time", l.sinces[1])
	}
	// ann's job started at 99, expected 2h: ends at 101, now: proven
	// wrong, as long again (2h).
	if !ends["a"].Equal(at(103)) || !ends["b"].Equal(at(103)) || len(ends) != 2 {
		t.Errorf("JobEnds = %v, want a and b at %v", ends, at(103))
	}
	if got := p.Predict(wlm.Job{User: "bob", Start: at(101), Limit: at(200)}, at(101)); !got.Equal(at(103)) {
		t.Errorf("bob's next job: %v, want 2h (mean of 1h and 3h)", got)
	}

	l.err = &batch.NodeError{Node: "x", Err: wlm.ErrNodeNotFound}
	ends, err = p.JobEnds(context.Background(), l, []string{"a", "x"})
	if !errors.Is(err, wlm.ErrNodeNotFound) || ends["a"].IsZero() {
		t.Errorf("an unknown node: %v, %v; want the error and the known node's end", ends, err)
	}
	l.jobs, l.err = nil, errors.New("down")
	if _, err := p.JobEnds(context.Background(), l, []string{"a"}); err == nil {
		t.Error("a failed call: no error")
	}
}

// TestPredictorJobEndsOverCalls: over a run of calls in which jobs
// start, end, are requeued with the same ID elsewhere, lose nodes, and the
// nodes asked about change, JobEnds answers with the latest prediction of
// the jobs listed on each asked node (nothing it keeps between calls, such
// as an index of jobs by node, may go stale).
func TestPredictorJobEndsOverCalls(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := at(100)
		p := wlm.NewPredictor(wlm.PredictorConfig{Now: func() time.Time { return now }})
		nodes := []string{"a", "b", "c", "d", "e", "f"}
		users := []string{"ann", "bob"}
		l := &lister{}
		for call := range rapid.IntRange(1, 12).Draw(t, "calls") {
			now = now.Add(time.Duration(rapid.IntRange(0, 120).Draw(t, fmt.Sprint("wait", call))) * time.Minute)
			// The jobs running now: some kept, some changed, some new.
			var running []wlm.Job
			for k, j := range l.jobs {
				if !j.End.IsZero() {
					continue
				}
				switch rapid.IntRange(0, 5).Draw(t, fmt.Sprint("fate", call, k)) {
				case 0: // ends: learnt from
					j.End = now
					l.jobs[k] = j
					continue
				case 1: // requeued: same ID, other nodes, new start
					j.Start = now
					j.Nodes = rapid.SliceOfNDistinct(rapid.SampledFrom(nodes), 1, 3, rapid.ID[string]).Draw(t, fmt.Sprint("requeue", call, k))
				case 2: // loses nodes
					if len(j.Nodes) > 1 {
						j.Nodes = j.Nodes[:len(j.Nodes)-1]
					}
				}
				running = append(running, j)
			}
			for k := range rapid.IntRange(0, 3).Draw(t, fmt.Sprint("new", call)) {
				running = append(running, wlm.Job{
					ID: fmt.Sprintf("%d.%d", call, k), User: rapid.SampledFrom(users).Draw(t, fmt.Sprint("user", call, k)),
					Nodes: rapid.SliceOfNDistinct(rapid.SampledFrom(nodes), 1, 4, rapid.ID[string]).Draw(t, fmt.Sprint("nodes", call, k)),
					Start: now.Add(-time.Duration(rapid.IntRange(0, 300).Draw(t, fmt.Sprint("ago", call, k))) * time.Minute),
					Limit: now.Add(time.Duration(rapid.IntRange(0, 600).Draw(t, fmt.Sprint("limit", call, k))) * time.Minute),
				})
			}
			var ended []wlm.Job
			for _, j := range l.jobs {
				if !j.End.IsZero() {
					ended = append(ended, j)
				}
			}
			l.jobs = append(ended, running...)
			asked := rapid.SliceOfNDistinct(rapid.SampledFrom(nodes), 0, len(nodes), rapid.ID[string]).Draw(t, fmt.Sprint("asked", call))
			// The lister lists only the jobs running on the nodes asked.
			listed := &lister{}
			for _, j := range l.jobs {
				if !j.End.IsZero() || slices.ContainsFunc(j.Nodes, func(n string) bool { return slices.Contains(asked, n) }) {
					listed.jobs = append(listed.jobs, j)
				}
			}
			got, err := p.JobEnds(context.Background(), listed, asked)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]time.Time{}
			for _, j := range listed.jobs {
				if !j.End.IsZero() {
					continue
				}
				end := p.Predict(j, now)
				for _, n := range j.Nodes {
					if slices.Contains(asked, n) && !end.IsZero() && end.After(want[n]) {
						want[n] = end
					}
				}
			}
			if len(got) != len(want) {
				t.Fatalf("call %d: JobEnds = %v, want %v", call, got, want)
			}
			for n, e := range want {
				if !got[n].Equal(e) {
					t.Fatalf("call %d: %s ends %v, want %v (JobEnds = %v)", call, n, got[n], e, got)
				}
			}
		}
	})
}

// BenchmarkPredictorJobEnds: a 100,000-node machine whose 100 running jobs
// of 1,000 nodes each are spread over all of it (every 100th node), and a
// session asking about its next 4,000 nodes, as the scheduled strategy
// does at every poll.
func BenchmarkPredictorJobEnds(b *testing.B) {
	const nodes, width = 100_000, 1_000
	name := func(i int) string { return fmt.Sprintf("nid%06d", i) }
	var jobs []wlm.Job
	for j := range nodes / width {
		job := wlm.Job{ID: fmt.Sprint(j), User: fmt.Sprint("u", j%7), Start: at(99), Limit: at(199)}
		for k := range width {
			job.Nodes = append(job.Nodes, name(k*(nodes/width)+j))
		}
		jobs = append(jobs, job)
	}
	l := &lister{jobs: jobs}
	names := make([]string, 4_000)
	for i := range names {
		names[i] = name(50_000 + i)
	}
	b.Run("map", func(b *testing.B) {
		p := wlm.NewPredictor(wlm.PredictorConfig{Now: func() time.Time { return at(100) }})
		b.ReportAllocs()
		for b.Loop() {
			ends, err := p.JobEnds(context.Background(), l, names)
			if err != nil || len(ends) != len(names) {
				b.Fatalf("%d ends, %v: want one per node asked", len(ends), err)
			}
			l.asked, l.sinces = l.asked[:0], l.sinces[:0]
		}
	})
	// By position, the same names at every call (the index kept).
	b.Run("into", func(b *testing.B) {
		p := wlm.NewPredictor(wlm.PredictorConfig{Now: func() time.Time { return at(100) }})
		ends := make([]time.Time, len(names))
		b.ReportAllocs()
		for b.Loop() {
			if err := p.JobEndsInto(context.Background(), l, names, ends); err != nil || ends[len(ends)-1].IsZero() {
				b.Fatalf("%v, %v: want an end for every node asked", ends[len(ends)-1], err)
			}
			l.asked, l.sinces = l.asked[:0], l.sinces[:0]
		}
	})
}

// TestPredictorJobEndsAskedOutOfOrder: the names asked, in any order, and
// only they get an end, whether a job's nodes fall before, between or
// after them.
func TestPredictorJobEndsAskedOutOfOrder(t *testing.T) {
	p := wlm.NewPredictor(wlm.PredictorConfig{Now: func() time.Time { return at(100) }})
	l := &lister{jobs: []wlm.Job{
		{ID: "1", Nodes: []string{"n10", "n01", "n05", "n03", "n09", "n02"}, Start: at(99), Limit: at(150)},
		{ID: "2", Nodes: []string{"n04", "n09"}, Start: at(99), Limit: at(160)},
	}}
	ends, err := p.JobEnds(context.Background(), l, []string{"n05", "n09", "n02"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"n02": at(150), "n05": at(150), "n09": at(160)}
	if len(ends) != len(want) {
		t.Fatalf("JobEnds = %v, want %v", ends, want)
	}
	for n, w := range want {
		if !ends[n].Equal(w) {
			t.Errorf("%s: %v, want %v", n, ends[n], w)
		}
	}
}

// TestPredictorJobEndsAnyNodeOrder: whatever the order of a job's nodes,
// and whether a lister returns the same node lists at every call or new
// ones (in another order, or other nodes), the ends are those of the
// nodes asked, each the latest of its jobs'. (A job whose nodes are in
// order has only those between the least and greatest asked looked at,
// and whether they are is remembered for the list it was found in.)
func TestPredictorJobEndsAnyNodeOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		node := rapid.SampledFrom([]string{"n00", "n01", "n02", "n03", "n04", "n05", "n06", "n07", "n08", "n09", "n10", "n11"})
		list := func(label string) []string {
			nodes := rapid.SliceOfNDistinct(node, 1, 8, rapid.ID).Draw(t, label)
			if rapid.Bool().Draw(t, label+" in order") {
				slices.Sort(nodes)
			}
			return nodes
		}
		l := &lister{}
		for k := range rapid.IntRange(1, 5).Draw(t, "jobs") {
			l.jobs = append(l.jobs, wlm.Job{ID: fmt.Sprint(k), Nodes: list(fmt.Sprint("job ", k)), Start: at(99), Limit: at(float64(101 + k))})
		}
		p := wlm.NewPredictor(wlm.PredictorConfig{Now: func() time.Time { return at(100) }})
		for call := range rapid.IntRange(1, 4).Draw(t, "calls") {
			for k := range l.jobs {
				if call > 0 && rapid.Bool().Draw(t, fmt.Sprint("new list ", call, k)) {
					l.jobs[k].Nodes = list(fmt.Sprint("job ", k, " at call ", call))
				}
			}
			names := rapid.SliceOfNDistinct(node, 1, 12, rapid.ID).Draw(t, fmt.Sprint("asked ", call))
			ends, err := p.JobEnds(context.Background(), l, names)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]time.Time{}
			for _, j := range l.jobs {
				for _, n := range j.Nodes {
					if slices.Contains(names, n) && j.Limit.After(want[n]) {
						want[n] = j.Limit
					}
				}
			}
			if !maps.EqualFunc(ends, want, time.Time.Equal) {
				t.Fatalf("call %d: JobEnds = %v, want %v", call, ends, want)
			}
		}
	})
}

// TestPredictorJobEndsInto: by position, whatever the names asked (some
// twice, some unknown to every job) and however the caller reuses its
// slice of names between calls (the index kept from the last call must
// not answer for names changed in place), each end is the latest of the
// jobs of the name at that position, zero where none.
func TestPredictorJobEndsInto(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		node := rapid.SampledFrom([]string{"n00", "n01", "n02", "n03", "n04", "n05", "n06", "n07"})
		l := &lister{}
		for k := range rapid.IntRange(0, 4).Draw(t, "jobs") {
			nodes := rapid.SliceOfNDistinct(node, 1, 5, rapid.ID).Draw(t, fmt.Sprint("job ", k))
			if rapid.Bool().Draw(t, fmt.Sprint("job ", k, " in order")) {
				slices.Sort(nodes)
			}
			l.jobs = append(l.jobs, wlm.Job{ID: fmt.Sprint(k), Nodes: nodes, Start: at(99), Limit: at(float64(101 + k))})
		}
		p := wlm.NewPredictor(wlm.PredictorConfig{Now: func() time.Time { return at(100) }})
		var names []string // reused, as the executor does
		for call := range rapid.IntRange(1, 5).Draw(t, "calls") {
			switch {
			case call == 0 || rapid.Bool().Draw(t, fmt.Sprint("new names ", call)):
				names = rapid.SliceOfN(node, 0, 10).Draw(t, fmt.Sprint("asked ", call))
			case len(names) > 0 && rapid.Bool().Draw(t, fmt.Sprint("change one ", call)):
				names[rapid.IntRange(0, len(names)-1).Draw(t, fmt.Sprint("which ", call))] = node.Draw(t, fmt.Sprint("to ", call))
			}
			ends := make([]time.Time, len(names))
			for k := range ends {
				ends[k] = at(1) // stale: all must be set
			}
			if err := p.JobEndsInto(context.Background(), l, names, ends); err != nil {
				t.Fatal(err)
			}
			for k, n := range names {
				var want time.Time
				for _, j := range l.jobs {
					if slices.Contains(j.Nodes, n) && j.Limit.After(want) {
						want = j.Limit
					}
				}
				if !ends[k].Equal(want) {
					t.Fatalf("call %d: names %v: ends[%d] (%s) = %v, want %v", call, names, k, n, ends[k], want)
				}
			}
		}
	})
	p := wlm.NewPredictor(wlm.PredictorConfig{})
	if err := p.JobEndsInto(context.Background(), &lister{}, []string{"a"}, nil); err == nil {
		t.Error("JobEndsInto with no room for the ends: no error")
	}
}

// mapEnds answers JobEnds from a map; filledEnds answers by position only.
type mapEnds map[string]time.Time

func (m mapEnds) JobEnds(_ context.Context, names []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for _, n := range names {
		if t, ok := m[n]; ok {
			out[n] = t
		}
	}
	return out, nil
}

type filledEnds struct{ mapEnds }

func (f filledEnds) JobEnds(context.Context, []string) (map[string]time.Time, error) {
	panic("JobEnds called on a JobEndsFiller")
}

func (f filledEnds) JobEndsInto(_ context.Context, names []string, ends []time.Time) error {
	for k, n := range names {
		ends[k] = f.mapEnds[n]
	}
	return nil
}

// TestJobEndsAt: by position from a filler (its map is never asked for),
// from the map otherwise, zero where the map has nothing; ends of the
// wrong length are refused.
func TestJobEndsAt(t *testing.T) {
	ends := mapEnds{"a": at(101), "c": at(103)}
	for _, j := range []wlm.JobEnder{ends, filledEnds{ends}} {
		got := []time.Time{at(1), at(1), at(1)}
		if err := wlm.JobEndsAt(context.Background(), j, []string{"a", "b", "c"}, got); err != nil {
			t.Fatal(err)
		}
		if want := []time.Time{at(101), {}, at(103)}; !slices.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("%T: ends %v, want %v", j, got, want)
		}
		if err := wlm.JobEndsAt(context.Background(), j, []string{"a"}, nil); err == nil {
			t.Errorf("%T: no error for no room for the ends", j)
		}
	}
}
