package wlm

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Job is a job as the workload manager reports it.
type Job struct {
	ID    string
	User  string   // empty if unknown
	Nodes []string // the nodes it runs (ran) on
	Start time.Time
	// Limit is when its time limit runs out (start + limit); zero if it
	// has none or it is unknown.
	Limit time.Time
	// End is when it ended; zero while it runs.
	End time.Time
}

// JobLister is implemented by a Manager that reports jobs: the ones
// running on some nodes and the ones that ended recently. It is what a
// Predictor learns from.
type JobLister interface {
	// Jobs returns the jobs running (or completing) on the named nodes,
	// and, if since is not zero, the jobs that ended at or after since,
	// on any node, as far as the workload manager remembers them (Slurm
	// without accounting: its MinJobAge, 5 minutes by default); their
	// Nodes may be left out. Unknown nodes follow the Manager error
	// contract. The jobs returned are the caller's: an implementation
	// may return the same node list at every call, but never changes one
	// it has returned.
	Jobs(ctx context.Context, names []string, since time.Time) ([]Job, error)
}

// Predictor estimates when running jobs will end from what a workload
// manager tells about them and about their users' recent jobs, where time
// limits say little (many sites give every job the partition's maximum).
//
// The method is that of Tsafrir, Etsion and Feitelson ("Backfilling using
// system-generated predictions rather than user runtime estimates", IEEE
// TPDS 18(6), 2007): a job is expected to run as long as the mean of its
// user's last two completed jobs, never past its time limit; without
// history, until its limit. A prediction proven wrong (the job is still
// running at its predicted end) is corrected: the job is then expected to
// run as long again as it already has (heavy-tailed run times: the longer
// a job has run, the longer it is likely to run), still never past its
// limit. This correction is crus's own.
//
// It learns from the jobs a JobLister reports ended. It is safe for
// concurrent use.
type Predictor struct {
	now     func() time.Time
	history time.Duration

	mu    sync.Mutex
	runs  map[string]*lastTwo // by user
	seen  map[string]bool     // ended jobs already learnt from, by ID
	asked time.Time           // when Jobs was last asked about ended jobs
	order []seenJob           // seen, oldest first, to forget them
	// lists remembers, by job ID, what was found out about the node list
	// of a running job, for the list it was found in (see listsOf).
	lists map[string]*jobList
	index nameIndex // of the names last asked (JobEndsInto)
}

// jobList is what is known of a running job's node list, known by its
// first element's address and its length (a JobLister never changes a
// list it has returned, and holding the address keeps it from being
// reused): whether it is in order, and where its nodes are among the
// names asked, for the index of generation gen. A JobLister that reports
// a job with the same list at every call (as the simulator's does) has
// it checked once, and its nodes found among the same names once; one
// that builds a new list every time has both done every time.
type jobList struct {
	first  *string
	n      int
	sorted bool
	gen    uint64 // of the nameIndex at was found for; 0: none
	at     []int  // the places among the names asked of the nodes asked
}

type lastTwo struct {
	run [2]time.Duration // most recent first
	n   int
}

type seenJob struct {
	id  string
	end time.Time
}

// PredictorConfig configures a Predictor. The zero value is usable.
type PredictorConfig struct {
	// Now is the clock; nil means time.Now (a simulation gives its
	// virtual clock).
	Now func() time.Time
	// History is how far back the first call asks for ended jobs;
	// default 7 days.
	History time.Duration
}

// NewPredictor returns a Predictor with no history.
func NewPredictor(cfg PredictorConfig) *Predictor {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.History == 0 {
		cfg.History = 7 * 24 * time.Hour
	}
	return &Predictor{now: cfg.Now, history: cfg.History, runs: map[string]*lastTwo{}, seen: map[string]bool{}}
}

// Learn records ended jobs: each one's run time becomes the latest of its
// user's (jobs without a user, start or end, and jobs already learnt, are
// left out). Jobs are taken in order of their ends.
func (p *Predictor) Learn(jobs []Job) {
	ended := make([]Job, 0, len(jobs))
	for _, j := range jobs {
		if j.User != "" && !j.Start.IsZero() && j.End.After(j.Start) {
			ended = append(ended, j)
		}
	}
	slices.SortStableFunc(ended, func(a, b Job) int { return a.End.Compare(b.End) })
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range ended {
		if p.seen[j.ID] {
			continue
		}
		p.seen[j.ID] = true
		p.order = append(p.order, seenJob{j.ID, j.End})
		h := p.runs[j.User]
		if h == nil {
			h = &lastTwo{}
			p.runs[j.User] = h
		}
		h.run[1], h.run[0] = h.run[0], j.End.Sub(j.Start)
		h.n = min(h.n+1, 2)
	}
}

// forget drops the IDs of jobs that ended long before since: they cannot
// be reported again. Callers hold the lock.
func (p *Predictor) forget(since time.Time) {
	i := 0
	for i < len(p.order) && p.order[i].end.Before(since.Add(-time.Hour)) {
		delete(p.seen, p.order[i].id)
		i++
	}
	p.order = p.order[i:]
}

// listsOf returns, for each running job, what is known of its node list
// (nil for a job without nodes), checking the order of only the lists
// not seen before, and forgetting the jobs no longer running. Callers
// hold the lock.
func (p *Predictor) listsOf(running []Job) []*jobList {
	out := make([]*jobList, len(running))
	last := p.lists
	p.lists = make(map[string]*jobList, len(running))
	for k, j := range running {
		if len(j.Nodes) == 0 {
			continue
		}
		l := last[j.ID]
		if l == nil || l.first != &j.Nodes[0] || l.n != len(j.Nodes) {
			l = &jobList{first: &j.Nodes[0], n: len(j.Nodes), sorted: slices.IsSorted(j.Nodes)}
		}
		p.lists[j.ID] = l
		out[k] = l
	}
	return out
}

// Predict returns when the running job j is expected to end, as of now;
// zero if nothing is known (no history for its user and no limit).
func (p *Predictor) Predict(j Job, now time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.predict(j, now)
}

// predict is Predict; callers hold the lock.
func (p *Predictor) predict(j Job, now time.Time) time.Time {
	h := p.runs[j.User]
	var mean time.Duration
	if h != nil && j.User != "" && h.n > 0 {
		mean = (h.run[0] + h.run[1]) / time.Duration(h.n)
	}
	end := j.Limit
	if mean > 0 && !j.Start.IsZero() {
		end = j.Start.Add(mean)
		if !j.Limit.IsZero() && j.Limit.Before(end) {
			end = j.Limit
		}
	}
	if end.IsZero() || end.After(now) || j.Start.IsZero() {
		return end
	}
	// Proven wrong: as long again as it has run, within its limit.
	end = now.Add(max(now.Sub(j.Start), time.Minute))
	if !j.Limit.IsZero() && j.Limit.Before(end) {
		end = later(j.Limit, now)
	}
	return end
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// JobEnds answers wlm.JobEnder from a JobLister: one Jobs call for the
// nodes' running jobs and the jobs ended since the last call (the first
// call looks back PredictorConfig.History); it learns from the ended ones
// and returns, for each named node that runs jobs, the latest predicted
// end of its jobs. Unknown nodes follow the Manager error contract.
//
// To use predictions in crus, give the executor a Manager whose JobEnds
// calls this, for instance by embedding the adapter:
//
//	type predicting struct {
//		*slurm.CLI
//		p *wlm.Predictor
//	}
//
//	func (m predicting) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
//		return m.p.JobEnds(ctx, m.CLI, names)
//	}
//
// Give it a JobEndsInto method calling [Predictor.JobEndsInto] too (see
// [JobEndsFiller]) and the executor reads the ends by position.
func (p *Predictor) JobEnds(ctx context.Context, l JobLister, names []string) (map[string]time.Time, error) {
	ends := make([]time.Time, len(names))
	err := p.JobEndsInto(ctx, l, names, ends)
	out := make(map[string]time.Time, len(names))
	for k, t := range ends {
		if !t.IsZero() {
			out[names[k]] = t
		}
	}
	if len(out) == 0 && err != nil {
		return nil, err
	}
	return out, err
}

// JobEndsInto is JobEnds by position: it sets ends[k] to the latest
// predicted end of the jobs of names[k], and to zero where none is
// predicted (an idle node, an unknown one). ends must be as long as names.
// Errors are those of JobEnds; after one other than per-node errors, ends
// are not to be read. With it, a Manager is a [JobEndsFiller].
//
// It keeps an index of the names from one call to the next: a session
// asks about the same nodes, its next ones, poll after poll, and
// indexing thousands of names was a third of the time of a call.
func (p *Predictor) JobEndsInto(ctx context.Context, l JobLister, names []string, ends []time.Time) error {
	if len(ends) != len(names) {
		return fmt.Errorf("wlm: %d ends for %d names", len(ends), len(names))
	}
	clear(ends)
	now := p.now()
	p.mu.Lock()
	since := p.asked
	if since.IsZero() {
		since = now.Add(-p.history)
	}
	p.mu.Unlock()
	jobs, err := l.Jobs(ctx, names, since)
	if jobs == nil && err != nil {
		return err
	}
	p.Learn(jobs)
	running := slices.DeleteFunc(slices.Clone(jobs), func(j Job) bool { return !j.End.IsZero() })
	slices.SortFunc(running, func(a, b Job) int { return cmp.Compare(a.ID, b.ID) })
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.After(p.asked) {
		p.asked = now
	}
	p.forget(since)
	lists := p.listsOf(running)
	ix := p.indexOf(names)
	for k, j := range running {
		end := p.predict(j, now)
		if end.IsZero() || lists[k] == nil {
			continue
		}
		l := lists[k]
		if l.gen != ix.gen {
			// Asked about other names, or a list not seen before: find
			// its nodes among them (a session asks about the same names
			// poll after poll, and a wide job's walk was most of a call).
			l.at, l.gen = ix.find(l.at[:0], j.Nodes, l.sorted, names), ix.gen
		}
		for _, at := range l.at {
			if end.After(ends[at]) {
				ends[at] = end
			}
		}
	}
	if ix.dups {
		for k, n := range names {
			ends[k] = ends[ix.at[n]]
		}
	}
	return err
}

// nameIndex is where each name asked is among them (the first place, if
// a name is asked twice: dups), and the least and greatest name.
type nameIndex struct {
	names  []string // the names indexed, a copy
	at     map[string]int
	lo, hi string
	dups   bool
	gen    uint64 // counts the indexes made, from 1
}

// find appends to at the places among names (those indexed) of the
// nodes of a job that are asked, and returns it; sorted says nodes are in
// order.
func (ix *nameIndex) find(at []int, nodes []string, sorted bool, names []string) []int {
	if sorted {
		// The names asked are often a narrow run of the machine's (a
		// session's next nodes), and a wide job's nodes spread over all
		// of it: only the nodes between the least and greatest asked are
		// looked up (they were most of the time at 100,000 nodes).
		from, _ := slices.BinarySearch(nodes, ix.lo)
		to, found := slices.BinarySearch(nodes[from:], ix.hi)
		if found {
			to++
		}
		nodes = nodes[from : from+to]
	}
	next := -1 // where the job's last node asked was, plus one
	for _, n := range nodes {
		// A job's nodes often come in the order asked, one after the
		// other: the next name is tried first (an equality test), then
		// the range asked (two comparisons), then the map (which, with a
		// name asked twice, holds the first place of it).
		k, ok := next, !ix.dups && next >= 0 && next < len(names) && names[next] == n
		if !ok {
			if n < ix.lo || n > ix.hi {
				continue
			}
			k, ok = ix.at[n]
		}
		if !ok {
			continue
		}
		next = k + 1
		at = append(at, k)
	}
	return at
}

// indexOf returns the index of names: the last one if it was made for the
// same names, else a new one in its place. Callers hold the lock.
func (p *Predictor) indexOf(names []string) *nameIndex {
	ix := &p.index
	if ix.at != nil && slices.Equal(ix.names, names) {
		return ix
	}
	if ix.at == nil || len(ix.at) > 4*len(names) {
		ix.at = make(map[string]int, len(names))
	} else {
		clear(ix.at)
	}
	ix.names = append(ix.names[:0], names...)
	ix.lo, ix.hi, ix.dups = "", "", false
	ix.gen++
	for k, n := range names {
		if _, ok := ix.at[n]; ok {
			ix.dups = true
			continue
		}
		ix.at[n] = k
		if k == 0 || n < ix.lo {
			ix.lo = n
		}
		if k == 0 || n > ix.hi {
			ix.hi = n
		}
	}
	return ix
}
