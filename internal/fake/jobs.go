package fake

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// This file makes the fake workload manager report jobs (wlm.JobLister),
// for a wlm.Predictor to learn run times from, and gives a simulation the
// real end times no workload manager knows (TrueJobEnds), for a
// clairvoyant reference.

var _ wlm.JobLister = (*WLM)(nil)

// ended records a StartJobOnFree job that has just ended (without its
// nodes: a predictor needs its user and run time, and a trace replayed on
// 100,000 nodes ends thousands of jobs thousands of nodes wide). Callers
// hold the lock.
func (w *World) ended(rj *runJob) {
	if rj.user == "" {
		return // nothing to learn from
	}
	w.sim.done = append(w.sim.done, wlm.Job{ID: strconv.Itoa(rj.id), User: rj.user, Start: rj.start, Limit: rj.limit, End: w.now}) // in order of their ends
}

// Jobs implements wlm.JobLister. The jobs started by StartJobOnFree carry
// their user and start; jobs started by StartJob only their limit. A
// running job's Nodes are shared from one call to the next (named once:
// a trace replayed on 100,000 nodes runs jobs thousands of nodes wide, and
// a scheduled session lists them at every poll): callers must not modify
// them.
func (m *WLM) Jobs(ctx context.Context, names []string, since time.Time) ([]wlm.Job, error) {
	w, err := m.w.begin(ctx, "wlm.Jobs")
	if err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	var out []wlm.Job
	var unknown []string
	listed := map[int]bool{}
	last := -1 // the job listed last: a job's nodes are often asked one after the other
	for _, name := range names {
		n, ok := w.lookup(name)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		for _, j := range n.jobs {
			if j.id == last || listed[j.id] {
				continue
			}
			listed[j.id], last = true, j.id
			job := wlm.Job{ID: strconv.Itoa(j.id), Nodes: []string{n.name}, Limit: j.limit}
			if r := n.sim.run; r != nil && r.id == j.id {
				if r.names == nil {
					r.names = make([]string, len(r.nodes))
					for k, rn := range r.nodes {
						r.names[k] = rn.name
					}
				}
				job.User, job.Start, job.Nodes = r.user, r.start, r.names[:len(r.names):len(r.names)]
			}
			out = append(out, job)
		}
	}
	if !since.IsZero() {
		i, _ := slices.BinarySearchFunc(w.sim.done, since, func(j wlm.Job, t time.Time) int { return j.End.Compare(t) })
		out = append(out, w.sim.done[i:]...)
	}
	return out, batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

// TrueJobEnds returns, for each named node (workload-manager names) that
// runs jobs, the time its last job will really end: what no workload
// manager knows, for a clairvoyant reference. Unknown names are left out.
func (w *World) TrueJobEnds(names []string) map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]time.Time{}
	for _, name := range names {
		n, ok := w.lookup(name)
		if !ok {
			continue
		}
		for _, j := range n.jobs {
			if j.end.After(out[name]) {
				out[name] = j.end
			}
		}
	}
	return out
}
