// Package metrics exposes crus in the Prometheus format, with the official
// client library and a registry of its own (no global state):
//
//	m := metrics.New(metrics.Config{})
//	ex, err := crus.NewExecutor(m.WrapGroups(groups), m.WrapManager(manager), m.WrapBoot(boot), cfg)
//	m.Watch(ex)
//	mux.Handle("/metrics", m.Handler())
//
// # Metrics
//
// From the sessions' records (the store is the truth, also for sessions
// another replica drives). A scrape reads again only the sessions whose
// revision moved since the last one, and lists the sessions (to find new
// ones) only every Config.ListEvery scrapes, when the source can tell
// revisions (a *crus.Executor, or a store that is a crus.RevisionReader):
// a scrape of an idle 160,000-node session then reads one revision, not
// 50 MB of node records. The list, too, reads only the revisions when
// the source can list them (Executor.Revisions, through
// crus.RevisionLister, which the memory, file and etcd stores implement),
// and then the records of the sessions that moved or are new only; else
// it reads every record. The records are read in place when the source
// can show them without a copy (crus.Viewer, through the executor).
//
//	crus_sessions{state}                          sessions by state (CREATED, UPDATING, READY, DELETING)
//	crus_session_nodes{session,outcome}           nodes by outcome: upgraded, failed, skipped, untouched, in_flight, pending
//	crus_session_nodes_in_phase{session,phase}    nodes in flight by phase (quiescing, quiesced, booting, ...)
//	crus_session_stage{session,stage}             1 for the session's current stage
//	crus_session_step{session}, crus_session_steps{session}
//	crus_session_paused{session}                  1 while paused
//	crus_session_condition_since_timestamp_seconds{session,condition}
//	                                              while a condition holds (an outage of a backend, booking refused, ...): when it began
//	crus_nodes_out_of_service{session}            nodes out of service because of the session
//	crus_nodes_out_of_service_cap{session}        the most it may have out (upgrade_step_size)
//	crus_step_duration_seconds                    histogram: first drain request to last outcome of each step
//	crus_node_stage_duration_seconds{stage}       histogram: drain, reboot, return and total time of each node
//
// The histograms count the steps and nodes that finished since the
// process started (a restart does not count old ones again), as the
// scrapes find them: nodes that finish after one scrape in a session
// whose record is deleted before the next are not counted. From the
// backends, through the decorators WrapGroups, WrapManager and WrapBoot:
//
//	crus_backend_calls_total{backend,call,result} calls by backend (hsm, wlm, bos), method and result (ok, partial, error, canceled)
//	crus_backend_call_duration_seconds{backend,call}
//
// No histogram has a session or node label; sessions label only gauges,
// and a store holds a handful of them.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/crus-go/crus"
)

// Lister lists sessions: a *crus.Executor, or a crus.Store.
type Lister interface {
	List(ctx context.Context) ([]*crus.Session, error)
}

// Config configures Metrics. The zero value is usable.
type Config struct {
	// Now is the clock of the session records (the executor's); nil means
	// time.Now. Only nodes and steps finished after New count in the
	// histograms.
	Now func() time.Time
	// ProcessMetrics adds the Go runtime and process collectors.
	ProcessMetrics bool
	// Logger receives a warning when the sessions cannot be read for a
	// scrape. Nil means no logging.
	Logger *slog.Logger
	// ListEvery is how often, in scrapes, a scrape lists the sessions to
	// find new ones; the others read the revisions of the sessions known
	// and read again only those that moved (a deleted session is dropped
	// at once). Default 4; 1 lists at every scrape. It applies only to a
	// source that can tell revisions (see Watch). A source that can also
	// list them (Executor.Revisions) lists no record, so that a list
	// costs about what the scrapes between two lists cost.
	ListEvery int
}

// Metrics holds crus's metrics in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec

	sessions     *prometheus.GaugeVec
	nodes        *prometheus.GaugeVec
	phases       *prometheus.GaugeVec
	stage        *prometheus.GaugeVec
	step, steps  *prometheus.GaugeVec
	paused       *prometheus.GaugeVec
	conditions   *prometheus.GaugeVec
	out, outCap  *prometheus.GaugeVec
	stepDuration prometheus.Histogram
	nodeDuration *prometheus.HistogramVec

	mu        sync.Mutex // one refresh at a time
	src       Lister
	start     time.Time
	seen      map[string]*seen // per session: what the histograms counted
	listEvery int
	scrapes   int                       // refreshes since the last list
	known     map[string]*sessionGauges // per session: its gauges at its revision
	listed    bool                      // known holds the last list
}

// sessionGauges are the gauges of one session at one revision.
type sessionGauges struct {
	rev        int64
	state      crus.State
	counts     crus.Counts
	phases     []int // nodes in each phase of inFlight
	stage      crus.Stage
	step       int
	steps      int
	paused     bool
	conditions []crus.Condition
	stepSize   int
}

// revisionSource is a Lister that can also tell a session's revision and
// read one session: a *crus.Executor, or a store that is a
// crus.RevisionReader.
type revisionSource interface {
	Get(ctx context.Context, id string) (*crus.Session, error)
	Revision(ctx context.Context, id string) (int64, error)
}

type seen struct {
	nodes []bool
	steps map[int]bool
}

// durationBuckets go from 10 s to 2 days: a drain waits for jobs (hours), a
// reboot takes minutes, a step hours.
var durationBuckets = []float64{10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 172800}

// New returns Metrics with nothing to watch yet.
func New(cfg Config) *Metrics {
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	listEvery := cfg.ListEvery
	if listEvery <= 0 {
		listEvery = 4
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log, start: now(), seen: map[string]*seen{},
		listEvery: listEvery, known: map[string]*sessionGauges{}}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(g)
		return g
	}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crus_backend_calls_total", Help: "Calls crus made to its backends, by backend, method and result (ok, partial: some nodes refused, error, canceled).",
	}, []string{"backend", "call", "result"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "crus_backend_call_duration_seconds", Help: "Time a backend call took.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"backend", "call"})
	m.stepDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "crus_step_duration_seconds", Help: "Time from the first drain request of a step to the last outcome of its nodes.",
		Buckets: durationBuckets,
	})
	m.nodeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "crus_node_stage_duration_seconds", Help: "Time a node spent in each stage of its upgrade: drain (requested to drained), reboot (requested to booted), return (booted to back in the workload manager), total (drain requested to outcome).",
		Buckets: durationBuckets,
	}, []string{"stage"})
	m.reg.MustRegister(m.calls, m.latency, m.stepDuration, m.nodeDuration)
	m.sessions = gauge("crus_sessions", "Sessions in the store by state.", "state")
	m.nodes = gauge("crus_session_nodes", "Nodes of a session by outcome (in_flight and pending for nodes without one yet).", "session", "outcome")
	m.phases = gauge("crus_session_nodes_in_phase", "Nodes of a session in flight, by phase.", "session", "phase")
	m.stage = gauge("crus_session_stage", "1 for the current stage of a session.", "session", "stage")
	m.step = gauge("crus_session_step", "The current step of a session (from 1; 0 before the first).", "session")
	m.steps = gauge("crus_session_steps", "The steps planned for a session (0 for the rolling strategy).", "session")
	m.paused = gauge("crus_session_paused", "1 while a session is paused.", "session")
	m.conditions = gauge("crus_session_condition_since_timestamp_seconds", "While a condition holds a session back (nodes_unreadable, booking_refused, ...): when it began, in Unix seconds.", "session", "condition")
	m.out = gauge("crus_nodes_out_of_service", "Nodes out of service because of a session (draining, drained, rebooting or returning).", "session")
	m.outCap = gauge("crus_nodes_out_of_service_cap", "The most nodes a session may have out of service at once (upgrade_step_size).", "session")
	if cfg.ProcessMetrics {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Watch sets where the sessions are read from at each scrape. If src
// also has the methods Get and Revision of a *crus.Executor (as the
// executor has, and a store that is a crus.RevisionReader), a scrape
// reads again only the sessions that moved and lists them only every
// Config.ListEvery scrapes; otherwise it lists them at every scrape.
func (m *Metrics) Watch(src Lister) {
	m.mu.Lock()
	m.src = src
	m.known, m.listed, m.scrapes = map[string]*sessionGauges{}, false, 0
	m.mu.Unlock()
}

// Registry returns the registry, to add a site's own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Gather reads the sessions and returns every metric.
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refresh()
	return m.reg.Gather()
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(prometheus.GathererFunc(m.Gather), promhttp.HandlerOpts{})
}

var (
	states   = []crus.State{crus.StateCreated, crus.StateUpdating, crus.StateReady, crus.StateDeleting}
	inFlight = []crus.Phase{crus.PhaseQuiescing, crus.PhaseQuiesced, crus.PhaseBooting, crus.PhaseReturning,
		crus.PhaseResuming, crus.PhaseFailing, crus.PhaseReleasing}
)

// refresh sets the session gauges from the records and counts newly
// finished nodes and steps in the histograms. Callers hold m.mu.
func (m *Metrics) refresh() {
	if m.src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, byRevision := m.src.(revisionSource)
	if byRevision && m.listed && m.scrapes < m.listEvery {
		m.scrapes++
		m.reread(ctx, rs)
	} else {
		m.list(ctx)
	}
	m.set()
}

// revisionLister is a source that can tell every session's revision
// without reading the records (the Revisions method of a *crus.Executor,
// or of a crus.RevisionLister).
type revisionLister interface {
	Revisions(ctx context.Context) (map[string]int64, error)
}

// list finds every session and reads again only those whose revision
// moved, and new ones: from their revisions (revisionLister) when the
// source can tell them, reading the records of those only; else from the
// records of all, listed.
func (m *Metrics) list(ctx context.Context) {
	if rl, ok := m.src.(revisionLister); ok {
		if rs, ok := m.src.(revisionSource); ok {
			revs, err := rl.Revisions(ctx)
			if !errors.Is(err, errors.ErrUnsupported) {
				m.listRevisions(ctx, rs, revs, err)
				return
			}
		}
	}
	present := map[string]bool{}
	each := func(s *crus.Session) error {
		present[s.UpgradeID] = true
		if g := m.known[s.UpgradeID]; g != nil && g.rev == s.Revision && s.Revision != 0 {
			return nil
		}
		m.read(s)
		return nil
	}
	var err error
	if v, ok := m.src.(allViewer); ok {
		err = v.ViewAll(ctx, each)
	} else {
		var list []*crus.Session
		if list, err = m.src.List(ctx); err == nil {
			for _, s := range list {
				_ = each(s)
			}
		}
	}
	if err != nil {
		// Keep the last values rather than report every session gone.
		m.log.Warn("metrics: cannot read the sessions", "err", err)
		return
	}
	m.listed, m.scrapes = true, 1
	for id := range m.known {
		if !present[id] {
			m.forget(id)
		}
	}
}

// listRevisions is list from the sessions' revisions (revs, or err):
// it reads the record of each session that moved or is new, and drops
// those gone.
func (m *Metrics) listRevisions(ctx context.Context, rs revisionSource, revs map[string]int64, err error) {
	if err != nil {
		m.log.Warn("metrics: cannot read the sessions", "err", err)
		return
	}
	m.listed, m.scrapes = true, 1
	for id := range m.known {
		if _, ok := revs[id]; !ok {
			m.forget(id)
		}
	}
	for id, rev := range revs {
		if g := m.known[id]; g != nil && g.rev == rev && rev != 0 {
			continue
		}
		m.readOne(ctx, rs, id)
	}
}

// allViewer is a source that can show every record without copying them
// (the ViewAll method of a *crus.Executor, or of a crus.Viewer).
type allViewer interface {
	ViewAll(ctx context.Context, fn func(*crus.Session) error) error
}

// reread reads the revision of each session known, and the record of
// those that moved; it drops those deleted.
func (m *Metrics) reread(ctx context.Context, rs revisionSource) {
	for id, g := range m.known {
		rev, err := rs.Revision(ctx, id)
		if errors.Is(err, crus.ErrSessionNotFound) {
			m.forget(id)
			continue
		}
		if err != nil {
			m.log.Warn("metrics: cannot read a session", "session", id, "err", err)
			continue
		}
		if rev == g.rev && rev != 0 {
			continue
		}
		m.readOne(ctx, rs, id)
	}
}

// readOne reads the record of one session (in place when the source can
// show it), or drops it if it is gone.
func (m *Metrics) readOne(ctx context.Context, rs revisionSource, id string) {
	var err error
	if v, ok := rs.(viewer); ok {
		err = v.View(ctx, id, func(s *crus.Session) error { m.read(s); return nil })
	} else {
		var s *crus.Session
		if s, err = rs.Get(ctx, id); err == nil {
			m.read(s)
		}
	}
	if errors.Is(err, crus.ErrSessionNotFound) {
		m.forget(id)
		return
	}
	if err != nil {
		m.log.Warn("metrics: cannot read a session", "session", id, "err", err)
	}
}

// viewer is a source that can show a record without copying it (the
// View method of a *crus.Executor, or of a crus.Viewer).
type viewer interface {
	View(ctx context.Context, id string, fn func(*crus.Session) error) error
}

func (m *Metrics) forget(id string) {
	delete(m.known, id)
	delete(m.seen, id)
}

// read takes the gauges of a session record, and counts in the
// histograms what finished in it. It keeps no slice of s (s may be the
// store's own record, see crus.Viewer).
func (m *Metrics) read(s *crus.Session) {
	g := &sessionGauges{
		rev: s.Revision, state: s.State, counts: s.Counts(),
		stage: s.Progress.Stage, step: s.Progress.Step, steps: s.Progress.Steps, paused: s.Progress.Paused,
		conditions: slices.Clone(s.Progress.Conditions), stepSize: s.StepSize, phases: make([]int, len(inFlight)),
	}
	for i := range s.Progress.Nodes {
		if p := s.Progress.Nodes[i].Phase; p.InFlight() {
			if k := slices.Index(inFlight, p); k >= 0 {
				g.phases[k]++
			}
		}
	}
	m.known[s.UpgradeID] = g
	m.observe(s)
}

// set sets the session gauges from what is known of each session.
func (m *Metrics) set() {
	for _, g := range []*prometheus.GaugeVec{m.sessions, m.nodes, m.phases, m.stage, m.step, m.steps, m.paused, m.conditions, m.out, m.outCap} {
		g.Reset()
	}
	byState := map[crus.State]int{}
	for id, g := range m.known {
		byState[g.state]++
		c := g.counts
		for outcome, n := range map[string]int{
			"upgraded": c.Upgraded, "failed": c.Failed, "skipped": c.Skipped, "untouched": c.Untouched,
			"in_flight": c.InFlight, "pending": c.Pending,
		} {
			m.nodes.WithLabelValues(id, outcome).Set(float64(n))
		}
		for k, p := range inFlight {
			m.phases.WithLabelValues(id, string(p)).Set(float64(g.phases[k]))
		}
		m.stage.WithLabelValues(id, string(g.stage)).Set(1)
		m.step.WithLabelValues(id).Set(float64(g.step))
		m.steps.WithLabelValues(id).Set(float64(g.steps))
		m.paused.WithLabelValues(id).Set(b2f(g.paused))
		for _, c := range g.conditions {
			m.conditions.WithLabelValues(id, string(c.Kind)).Set(float64(c.Since.UnixNano()) / 1e9)
		}
		m.out.WithLabelValues(id).Set(float64(c.InFlight))
		m.outCap.WithLabelValues(id).Set(float64(g.stepSize))
	}
	for _, st := range states {
		m.sessions.WithLabelValues(string(st)).Set(float64(byState[st]))
	}
}

// observe counts in the histograms the nodes and steps of s that finished
// since the process started and were not counted yet.
func (m *Metrics) observe(s *crus.Session) {
	sn := m.seen[s.UpgradeID]
	if sn == nil || len(sn.nodes) != len(s.Progress.Nodes) {
		sn = &seen{nodes: make([]bool, len(s.Progress.Nodes)), steps: map[int]bool{}}
		m.seen[s.UpgradeID] = sn
	}
	type span struct {
		first, last time.Time
		open        bool
	}
	steps := map[int]*span{}
	for i := range s.Progress.Nodes {
		n := &s.Progress.Nodes[i]
		if n.Step > 0 && n.Outcome != crus.OutcomeSkipped {
			sp := steps[n.Step]
			if sp == nil {
				sp = &span{}
				steps[n.Step] = sp
			}
			if !n.DrainRequested.IsZero() && (sp.first.IsZero() || n.DrainRequested.Before(sp.first)) {
				sp.first = n.DrainRequested
			}
			if n.Phase != crus.PhaseDone {
				sp.open = true
			} else if n.Finished.After(sp.last) {
				sp.last = n.Finished
			}
		}
		if sn.nodes[i] || n.Phase != crus.PhaseDone || n.Finished.Before(m.start) {
			continue
		}
		sn.nodes[i] = true
		if n.Outcome == crus.OutcomeSkipped {
			continue
		}
		obs := func(stage string, from, to time.Time) {
			if !from.IsZero() && !to.IsZero() && !to.Before(from) {
				m.nodeDuration.WithLabelValues(stage).Observe(to.Sub(from).Seconds())
			}
		}
		obs("drain", n.DrainRequested, n.Drained)
		obs("reboot", n.RebootRequested, n.Booted)
		obs("return", n.Booted, n.Returned)
		obs("total", n.DrainRequested, n.Finished)
	}
	for k, sp := range steps {
		if sp.open || sn.steps[k] || sp.first.IsZero() || sp.last.Before(m.start) {
			continue
		}
		sn.steps[k] = true
		m.stepDuration.Observe(sp.last.Sub(sp.first).Seconds())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
