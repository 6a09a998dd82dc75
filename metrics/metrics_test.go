package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/metrics"
	"github.com/crus-go/crus/wlm"
)

// scrape fetches url and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the metrics: %v", err)
	}
	return fams
}

// value returns the value of the sample of fam with these labels (name,
// value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	fam := fams[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// sum adds the values of every sample of fam with these labels.
func sum(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	fam := fams[name]
	if fam == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range fam.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// TestMetricsDuringASession scrapes the metrics while a session runs (at
// every step) and after it, and checks what they say against the record.
func TestMetricsDuringASession(t *testing.T) {
	const nodes, step = 40, 8
	world := fake.NewCluster(fake.ClusterOptions{Options: fake.Options{Seed: 5}, Nodes: nodes, Busy: 0.7, MaxJob: 3 * time.Hour})
	world.SetFaults(fake.XName(3), fake.NodeFaults{BootFails: true, BootError: "kernel panic"})
	m := metrics.New(metrics.Config{Now: world.Now})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	var scrapes []map[string]*dto.MetricFamily
	var id string
	ex, err := crus.NewExecutor(m.WrapGroups(world.HSM()), m.WrapManager(world.WLM()), m.WrapBoot(world.BOS()), crus.Config{
		Clock: world,
		OnEvent: func(ev crus.Event) {
			if ev.Kind == crus.EventStepStarted || ev.Kind == crus.EventStage && ev.Stage == crus.StageBooting {
				scrapes = append(scrapes, scrape(t, srv.URL))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Watch(ex)
	ctx := context.Background()
	s, err := ex.Create(ctx, crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: step, TemplateID: fake.Template, WorkloadManagerType: "slurm",
		Rollout: crus.Rollout{Order: crus.OrderJobEnd},
	})
	if err != nil {
		t.Fatal(err)
	}
	id = s.UpgradeID
	final, err := ex.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(scrapes) < 5 {
		t.Fatalf("only %d scrapes during the session", len(scrapes))
	}
	sawOut := false
	for i, f := range scrapes {
		if v, _ := value(f, "crus_sessions", "state", "UPDATING"); v != 1 {
			t.Errorf("scrape %d: crus_sessions{state=UPDATING} = %v; want 1", i, v)
		}
		if total := sum(f, "crus_session_nodes", "session", id); total != nodes {
			t.Errorf("scrape %d: the outcomes add up to %v nodes; want %d", i, total, nodes)
		}
		out, _ := value(f, "crus_nodes_out_of_service", "session", id)
		limit, _ := value(f, "crus_nodes_out_of_service_cap", "session", id)
		if limit != step || out > limit {
			t.Errorf("scrape %d: %v nodes out, cap %v", i, out, limit)
		}
		if out > 0 {
			sawOut = true
			if inPhase := sum(f, "crus_session_nodes_in_phase", "session", id); inPhase != out {
				t.Errorf("scrape %d: %v nodes in flight by phase, %v out", i, inPhase, out)
			}
		}
		if v, _ := value(f, "crus_session_stage", "session", id); v != 1 {
			t.Errorf("scrape %d: no current stage", i)
		}
	}
	if !sawOut {
		t.Error("no scrape saw a node out of service")
	}

	f := scrape(t, srv.URL)
	c := final.Counts()
	if v, _ := value(f, "crus_sessions", "state", "READY"); v != 1 {
		t.Errorf("after: crus_sessions{state=READY} = %v", v)
	}
	if v, _ := value(f, "crus_session_nodes", "session", id, "outcome", "upgraded"); v != float64(c.Upgraded) {
		t.Errorf("upgraded %v; the record says %d", v, c.Upgraded)
	}
	if v, _ := value(f, "crus_session_nodes", "session", id, "outcome", "failed"); v != float64(c.Failed) || c.Failed == 0 {
		t.Errorf("failed %v; the record says %d", v, c.Failed)
	}
	if v, _ := value(f, "crus_node_stage_duration_seconds", "stage", "total"); v != float64(c.Upgraded+c.Failed) {
		t.Errorf("total stage durations counted %v nodes; want %d", v, c.Upgraded+c.Failed)
	}
	if v, _ := value(f, "crus_node_stage_duration_seconds", "stage", "drain"); v != float64(c.Upgraded+c.Failed) {
		t.Errorf("drain durations counted %v nodes; want %d", v, c.Upgraded+c.Failed)
	}
	if v, _ := value(f, "crus_step_duration_seconds"); v != float64(final.Progress.Steps) {
		t.Errorf("step durations counted %v steps; want %d", v, final.Progress.Steps)
	}
	// Scraping again counts nothing twice.
	f2 := scrape(t, srv.URL)
	if a, b := sum(f, "crus_node_stage_duration_seconds"), sum(f2, "crus_node_stage_duration_seconds"); a != b {
		t.Errorf("a second scrape counted more node durations: %v then %v", a, b)
	}

	// The decorators count every call the backends saw, and keep their
	// capabilities: NIDs for the default mapper, JobEnds for job_end.
	calls := world.Calls()
	for op, n := range calls {
		backend, call, _ := strings.Cut(op, ".")
		if v, _ := value(f, "crus_backend_calls_total", "backend", backend, "call", call); v < float64(n) {
			t.Errorf("crus_backend_calls_total{%s,%s} = %v; the backend saw %d calls", backend, call, v, n)
		}
	}
	for _, call := range []string{"NIDs", "JobEnds", "Nodes", "Drain", "Reboot"} {
		if sum(f, "crus_backend_calls_total", "call", call) == 0 {
			t.Errorf("no %s call counted", call)
		}
	}
	if v := sum(f, "crus_backend_call_duration_seconds", "backend", "wlm", "call", "Nodes"); v == 0 {
		t.Error("no latency observed for wlm Nodes")
	}

	// Prometheus conventions.
	for name, fam := range f {
		if !strings.HasPrefix(name, "crus_") {
			t.Errorf("%s lacks the crus_ prefix", name)
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
		case dto.MetricType_HISTOGRAM:
			if !strings.HasSuffix(name, "_seconds") {
				t.Errorf("histogram %s does not end in _seconds", name)
			}
			for _, m := range fam.Metric {
				for _, l := range m.Label {
					if l.GetName() == "session" || l.GetName() == "node" || l.GetName() == "xname" {
						t.Errorf("histogram %s has label %s", name, l.GetName())
					}
				}
			}
		}
	}
}

// TestWrapKeepsCapabilities: the decorators implement the optional
// interfaces exactly when the backend does.
func TestWrapKeepsCapabilities(t *testing.T) {
	m := metrics.New(metrics.Config{})
	world := fake.New(fake.Options{})
	g := m.WrapGroups(world.HSM())
	if _, ok := g.(hsm.NIDResolver); !ok {
		t.Error("wrapped HSM lost NIDResolver")
	}
	if _, ok := g.(hsm.GroupCreator); !ok {
		t.Error("wrapped HSM lost GroupCreator")
	}
	w := m.WrapManager(world.WLM())
	if _, ok := w.(wlm.JobEnder); !ok {
		t.Error("wrapped WLM lost JobEnder")
	}
	if _, ok := w.(wlm.Rebooter); !ok {
		t.Error("wrapped WLM lost Rebooter")
	}
	if r, ok := w.(wlm.BootTimeReporter); !ok || !r.ReportsBootTime() {
		t.Error("wrapped WLM does not report boot times")
	}
	if _, ok := w.(wlm.Scheduler); !ok {
		t.Error("wrapped WLM lost Scheduler")
	}
	// A JobEnder becomes a JobEndsFiller: by position, what its map says.
	busy := fake.NewCluster(fake.ClusterOptions{Nodes: 4, Busy: 1, MaxJob: time.Hour})
	if f, ok := m.WrapManager(busy.WLM()).(wlm.JobEndsFiller); !ok {
		t.Error("wrapped WLM is not a JobEndsFiller")
	} else {
		names := []string{"nid000001", "nid000002", "nid000003", "nid999999"}
		byName, errMap := busy.WLM().JobEnds(context.Background(), names)
		if len(byName) == 0 {
			t.Fatalf("no job ends in a busy cluster (%v): the test tests nothing", errMap)
		}
		ends := make([]time.Time, len(names))
		errInto := f.JobEndsInto(context.Background(), names, ends)
		if (errMap == nil) != (errInto == nil) {
			t.Errorf("JobEndsInto: %v; JobEnds: %v", errInto, errMap)
		}
		for k, n := range names {
			if !ends[k].Equal(byName[n]) {
				t.Errorf("JobEndsInto says %s ends %v; JobEnds %v", n, ends[k], byName[n])
			}
		}
	}
	// Every manager becomes a NodesFiller: by position, what Nodes says,
	// from a filler (the in-memory world) or not.
	for name, inner := range map[string]wlm.Manager{"filler": busy.WLM(), "not a filler": plainManager{busy.WLM()}} {
		f, ok := m.WrapManager(inner).(wlm.NodesFiller)
		if !ok {
			t.Errorf("%s: wrapped WLM is not a NodesFiller", name)
			continue
		}
		names := []string{"nid000003", "nid000001", "nid999999", "nid000002"}
		want, errNodes := inner.Nodes(context.Background(), names)
		out := make([]wlm.Node, len(names))
		errInto := f.NodesInto(context.Background(), names, out)
		if (errNodes == nil) != (errInto == nil) || errInto == nil {
			t.Errorf("%s: NodesInto: %v; Nodes: %v (an unknown node was asked)", name, errInto, errNodes)
		}
		if len(want) != 3 {
			t.Fatalf("%s: Nodes answered %d nodes of 3 known: the test tests nothing", name, len(want))
		}
		for _, w := range want {
			k := slices.Index(names, w.Name)
			if out[k] != w {
				t.Errorf("%s: NodesInto says %+v for %s; Nodes %+v", name, out[k], w.Name, w)
			}
		}
		if out[2] != (wlm.Node{}) {
			t.Errorf("%s: the unknown node is %+v, want the zero Node", name, out[2])
		}
	}
	n := wlm.Node{Name: "n1", State: wlm.StateIdle, Drain: true}
	if got, want := wlm.DescriberOf(w).Describe(n), wlm.DescriberOf(world.WLM()).Describe(n); got != want {
		t.Errorf("wrapped WLM describes %q, the WLM %q", got, want)
	}
	bare := m.WrapManager(plainManager{world.WLM()})
	if _, ok := bare.(wlm.JobEnder); ok {
		t.Error("a manager without JobEnds gained it")
	}
	if _, ok := bare.(wlm.JobEndsFiller); ok {
		t.Error("a manager without JobEnds gained JobEndsInto")
	}
	if _, ok := bare.(wlm.Scheduler); ok {
		t.Error("a manager without reservations gained them")
	}
	if _, ok := bare.(wlm.Rebooter); ok {
		t.Error("a manager without reboots gained them")
	}
	if got, want := wlm.DescriberOf(bare).Describe(n), wlm.Neutral.Describe(n); got != want {
		t.Errorf("a manager without words describes %q, not in neutral words %q", got, want)
	}
	// Every combination of the capabilities, both ways: the wrapped
	// manager has one exactly when the manager wrapped has it, and
	// wlm.Steerer when that is a wlm.Scheduler too. Steering is
	// forwarded and counted.
	f, st := world.WLM(), &steerings{}
	steered := 0
	for _, c := range []struct {
		name string
		w    wlm.Manager
	}{
		{"none", plainManager{f}},
		{"JobEnder", struct {
			wlm.Manager
			wlm.JobEnder
		}{f, f}},
		{"Rebooter", struct {
			wlm.Manager
			wlm.Rebooter
		}{f, f}},
		{"Scheduler", struct {
			wlm.Manager
			wlm.Scheduler
		}{f, f}},
		{"Steerer", struct {
			wlm.Manager
			wlm.Steerer
		}{f, st}},
		{"JobEnder Rebooter", struct {
			wlm.Manager
			wlm.JobEnder
			wlm.Rebooter
		}{f, f, f}},
		{"JobEnder Scheduler", struct {
			wlm.Manager
			wlm.JobEnder
			wlm.Scheduler
		}{f, f, f}},
		{"JobEnder Steerer", struct {
			wlm.Manager
			wlm.JobEnder
			wlm.Steerer
		}{f, f, st}},
		{"Rebooter Scheduler", struct {
			wlm.Manager
			wlm.Rebooter
			wlm.Scheduler
		}{f, f, f}},
		{"Rebooter Steerer", struct {
			wlm.Manager
			wlm.Rebooter
			wlm.Steerer
		}{f, f, st}},
		{"Scheduler Steerer", struct {
			wlm.Manager
			wlm.Scheduler
			wlm.Steerer
		}{f, f, st}},
		{"JobEnder Rebooter Scheduler", struct {
			wlm.Manager
			wlm.JobEnder
			wlm.Rebooter
			wlm.Scheduler
		}{f, f, f, f}},
		{"JobEnder Rebooter Steerer", struct {
			wlm.Manager
			wlm.JobEnder
			wlm.Rebooter
			wlm.Steerer
		}{f, f, f, st}},
		{"JobEnder Scheduler Steerer", struct {
			wlm.Manager
			wlm.JobEnder
			wlm.Scheduler
			wlm.Steerer
		}{f, f, f, st}},
		{"Rebooter Scheduler Steerer", struct {
			wlm.Manager
			wlm.Rebooter
			wlm.Scheduler
			wlm.Steerer
		}{f, f, f, st}},
		{"all", struct {
			wlm.Manager
			wlm.JobEnder
			wlm.Rebooter
			wlm.Scheduler
			wlm.Steerer
		}{f, f, f, f, st}},
	} {
		want, wrapped := capabilities(c.w), m.WrapManager(c.w)
		want[3] = want[3] && want[2]
		if got := capabilities(wrapped); got != want {
			t.Errorf("%s: wrapped has JobEnder, Rebooter, Scheduler, Steerer %v; want %v", c.name, got, want)
		}
		if s, ok := wrapped.(wlm.Steerer); ok && want[3] {
			if err := s.Steer(context.Background(), []string{c.name}, true); err != nil {
				t.Fatal(err)
			}
			steered++
			if k := len(st.calls); k != steered || !slices.Equal(st.calls[k-1].names, []string{c.name}) || !st.calls[k-1].last {
				t.Errorf("%s: Steer not forwarded as called: %+v", c.name, st.calls)
			}
		}
	}
	if steered == 0 {
		t.Fatal("no wrapped manager steers: the test tests nothing")
	}
	// Reservations are counted.
	if _, err := w.(wlm.Scheduler).Reservations(context.Background(), "crus-"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if v, _ := value(scrape(t, srv.URL), "crus_backend_calls_total", "backend", "wlm", "call", "Reservations", "result", "ok"); v != 1 {
		t.Errorf("the reservations read counted %v times, not once", v)
	}
	if v, _ := value(scrape(t, srv.URL), "crus_backend_calls_total", "backend", "wlm", "call", "Steer", "result", "ok"); v != float64(steered) {
		t.Errorf("%d steerings counted %v times", steered, v)
	}
	if r, ok := bare.(wlm.BootTimeReporter); ok && r.ReportsBootTime() {
		t.Error("a manager without boot times reports them")
	}
	if _, ok := m.WrapGroups(plainGroups{world.HSM()}).(hsm.NIDResolver); ok {
		t.Error("a group store without NIDs gained them")
	}
}

type plainManager struct{ wlm.Manager }

// capabilities says whether m is a JobEnder, a Rebooter, a Scheduler and
// a Steerer.
func capabilities(m wlm.Manager) [4]bool {
	_, je := m.(wlm.JobEnder)
	_, rb := m.(wlm.Rebooter)
	_, sc := m.(wlm.Scheduler)
	_, st := m.(wlm.Steerer)
	return [4]bool{je, rb, sc, st}
}

// steerings is a wlm.Steerer that records its calls.
type steerings struct{ calls []steering }

type steering struct {
	names []string
	last  bool
}

func (s *steerings) Steer(_ context.Context, names []string, last bool) error {
	s.calls = append(s.calls, steering{names, last})
	return nil
}

type plainGroups struct{ hsm.GroupStore }

// sessions is a Lister of fixed sessions.
type sessions []*crus.Session

func (l sessions) List(context.Context) ([]*crus.Session, error) { return l, nil }

// TestConditionGauge: a condition that holds a session back is a sample
// while it holds, valued when it began; gone once it is over.
func TestConditionGauge(t *testing.T) {
	since := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	s := &crus.Session{UpgradeID: "u1", State: crus.StateUpdating}
	s.Progress.Conditions = []crus.Condition{
		{Kind: crus.CondNodesUnreadable, Since: since, Message: "The workload manager could not be read"},
		{Kind: crus.CondBookingRefused, Since: since.Add(90 * time.Second), Message: "refused"},
	}
	m := metrics.New(metrics.Config{})
	m.Watch(sessions{s})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	f := scrape(t, srv.URL)
	const name = "crus_session_condition_since_timestamp_seconds"
	if v, ok := value(f, name, "session", "u1", "condition", "nodes_unreadable"); !ok || v != float64(since.Unix()) {
		t.Errorf("nodes_unreadable: %v, %v; want %d", v, ok, since.Unix())
	}
	if v, ok := value(f, name, "session", "u1", "condition", "booking_refused"); !ok || v != float64(since.Unix()+90) {
		t.Errorf("booking_refused: %v, %v; want %d", v, ok, since.Unix()+90)
	}
	s.Progress.Conditions = s.Progress.Conditions[1:]
	f = scrape(t, srv.URL)
	if _, ok := value(f, name, "session", "u1", "condition", "nodes_unreadable"); ok {
		t.Error("nodes_unreadable still reported once over")
	}
	if n := len(f[name].GetMetric()); n != 1 {
		t.Errorf("%d samples; want the one condition that holds", n)
	}
}
