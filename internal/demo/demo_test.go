package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/demo"
)

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return body
}

func gauge(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	fam := fams[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.Metric {
		for k, v := range labels {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		if m.Gauge != nil {
			return m.Gauge.GetValue(), true
		}
		if m.Counter != nil {
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

// TestDemoServes: the demo serves the original API under /apis/crus, the
// page at / and the metrics at /metrics, with a session in progress whose
// metrics, scraped and parsed while it runs, agree with its record.
func TestDemoServes(t *testing.T) {
	d, err := demo.New(demo.Options{Nodes: 200, Step: 16, Speed: 600, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	id, err := d.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Run(ctx, time.Hour) }()
	defer func() { cancel(); wg.Wait(); srv.Close() }()

	var list []crus.Status
	if err := json.Unmarshal(get(t, srv.URL+"/apis/crus/session"), &list); err != nil || len(list) != 1 || list[0].UpgradeID != id {
		t.Fatalf("GET /apis/crus/session: %v %+v", err, list)
	}
	if page := get(t, srv.URL+"/"); len(page) == 0 {
		t.Fatal("no page")
	}

	deadline := time.Now().Add(60 * time.Second)
	sawOut, scrapes, checked := false, 0, 0
	for !sawOut || scrapes < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d scrapes no node was seen out of service", scrapes)
		}
		before, err := d.Executor.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(get(t, srv.URL+"/metrics")))
		if err != nil {
			t.Fatalf("parsing /metrics: %v", err)
		}
		scrapes++
		after, err := d.Executor.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// The gauges are read from the store at the scrape: a session
		// UPDATING before it and not completed after it was UPDATING at
		// it. (On a loaded machine the first scrape can come before Run
		// has taken the session up, while it is still CREATED.)
		if before.State == crus.StateUpdating && !after.Completed {
			checked++
			if v, ok := gauge(fams, "crus_sessions", map[string]string{"state": "UPDATING"}); !ok || v != 1 {
				t.Errorf("crus_sessions{state=UPDATING} = %v", v)
			}
		}
		out, _ := gauge(fams, "crus_nodes_out_of_service", map[string]string{"session": id})
		limit, _ := gauge(fams, "crus_nodes_out_of_service_cap", map[string]string{"session": id})
		if limit != 16 || out > limit {
			t.Errorf("%v nodes out of service, cap %v", out, limit)
		}
		if out > 0 {
			sawOut = true
		}
		if v, _ := gauge(fams, "crus_backend_calls_total", map[string]string{"backend": "wlm", "call": "Nodes", "result": "ok"}); v == 0 {
			t.Error("no workload-manager call counted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if checked == 0 {
		t.Error("no scrape was taken while the session was UPDATING")
	}
}

// TestNewRefusesOptionsOutOfRange: a count or a speed no demo can run is
// an error, not replaced by its default; a NaN, infinite or overflowing
// speed once froze the simulated clock at the first boot.
func TestNewRefusesOptionsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		opts demo.Options
		want string
	}{
		{demo.Options{Nodes: -5}, "-5 nodes"},
		{demo.Options{Nodes: demo.MaxNodes + 1}, "160001 nodes"},
		{demo.Options{Step: -1}, "step -1"},
		{demo.Options{Speed: -1}, "speed -1"},
		{demo.Options{Speed: math.NaN()}, "speed NaN"},
		{demo.Options{Speed: math.Inf(1)}, "speed +Inf"},
		{demo.Options{Speed: math.Inf(-1)}, "speed -Inf"},
		{demo.Options{Speed: 1e300}, "speed 1e+300"},
		{demo.Options{Speed: demo.MaxSpeed * 1.5}, "speed 1.5e+06"},
		{demo.Options{Speed: 1e-300}, "speed 1e-300"},
		{demo.Options{Tick: -time.Second}, "tick -1s"},
	} {
		d, err := demo.New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, %v; want an error naming %q", tc.opts, d, err, tc.want)
		}
	}
	// The bounds themselves, and the zero value's defaults, are taken.
	for _, opts := range []demo.Options{
		{Nodes: 1, Step: 1, Speed: demo.MinSpeed},
		{Nodes: 8, Speed: demo.MaxSpeed},
		{},
	} {
		if _, err := demo.New(opts); err != nil {
			t.Errorf("New(%+v): %v", opts, err)
		}
	}
}

// TestSmallStepsStart: every step the demo takes can start its session;
// steps of 1 to 3 once failed to create the first one, its canary batch
// of 4 being larger than the step.
func TestSmallStepsStart(t *testing.T) {
	for _, step := range []int{1, 2, 3, 4, 5} {
		d, err := demo.New(demo.Options{Nodes: 16, Step: step})
		if err != nil {
			t.Fatal(err)
		}
		// The first session is the rolling one with canary batches.
		if _, err := d.Start(context.Background()); err != nil {
			t.Errorf("step %d: %v", step, err)
		}
	}
}

// TestDemoStartsTheNext: Run starts a new session once the last one ended
// (told by its "done" event, its record read only every half minute) and
// the pause passed, and at once when the last one was deleted. In a
// testSpeed runs the tests' sessions fast (an hour of the cluster's time
// a second, three minutes a tick) yet slower than the timeouts: at the
// fastest speeds a tick moves the cluster hours on, and a loaded machine
// that leaves the executor a few ticks behind sees boot and return
// timeouts pass that no node really took.
const testSpeed = 3600

// bubble: the demo's real-time pacing runs on the bubble's clock.
func TestDemoStartsTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Warnings (a next session refused) show with a failure.
		log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		d, err := demo.New(demo.Options{Nodes: 8, Step: 8, Speed: testSpeed, Seed: 3, Keep: -1, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		first, err := d.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- d.Run(ctx, 5*time.Second) }()
		defer func() { cancel(); <-done }()
		time.Sleep(2 * time.Minute)
		second := d.Session()
		if second == first {
			t.Fatalf("no new session two minutes after the first started")
		}
		s, err := d.Executor.Get(ctx, first)
		if err != nil || !s.Completed {
			t.Fatalf("the first session: %v, %v; want it completed", s, err)
		}
		// Deleted (its record removed once it ended): the next starts
		// within a second or two, without the pause.
		for range 60 {
			if _, err := d.Executor.Delete(ctx, second); errors.Is(err, crus.ErrSessionNotFound) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		if third := d.Session(); third == second || third == first {
			t.Errorf("no new session after the last was deleted")
			for _, x := range d.World.XNames() {
				n, _ := d.World.Node(x)
				t.Logf("%s: up %v, drain %v, fail %v, %q", x, n.Up, n.Drain, n.Fail, n.Reason)
			}
		}
	})
}

// TestDemoKeepsTheLastEnded: the demo runs sessions back to back and
// deletes the records of its own ended sessions past the Keep most
// recent, so that a demo left running does not grow without bound.
func TestDemoKeepsTheLastEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, err := demo.New(demo.Options{Nodes: 8, Step: 8, Speed: testSpeed, Seed: 3, Keep: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		first, err := d.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- d.Run(ctx, 0) }()
		seen := map[string]bool{}
		for range 120 {
			seen[d.Session()] = true
			time.Sleep(time.Second)
		}
		cancel()
		<-done
		if len(seen) < 6 {
			t.Fatalf("%d sessions seen in two minutes; want at least 6 to see old ones deleted", len(seen))
		}
		kept, err := d.Executor.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The current session and the 2 last ended, newest first.
		slices.SortFunc(kept, func(a, b *crus.Session) int { return b.Progress.CreatedAt.Compare(a.Progress.CreatedAt) })
		if len(kept) != 3 || kept[0].UpgradeID != d.Session() {
			t.Fatalf("%d sessions kept, the newest %s; want 3, the newest the current one %s", len(kept), kept[0].UpgradeID, d.Session())
		}
		for _, s := range kept[1:] {
			if !s.Completed {
				t.Errorf("session %s kept, not ended", s.UpgradeID)
			}
		}
		if _, err := d.Executor.Get(context.Background(), first); !errors.Is(err, crus.ErrSessionNotFound) {
			t.Errorf("the first session: %v; want it deleted", err)
		}
		for id := range seen {
			if _, err := d.Executor.Get(context.Background(), id); err == nil && !slices.ContainsFunc(kept, func(s *crus.Session) bool { return s.UpgradeID == id }) {
				t.Errorf("session %s kept", id)
			}
		}
	})
}

// TestDemoAtMaxNodes: the demo builds and starts a session on a cluster
// of MaxNodes, the size of the largest machines.
func TestDemoAtMaxNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 160,000 simulated nodes")
	}
	d, err := demo.New(demo.Options{Nodes: demo.MaxNodes, Step: 500})
	if err != nil {
		t.Fatal(err)
	}
	id, err := d.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Executor.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Counts(); c.Nodes != demo.MaxNodes || c.Skipped != 2 {
		t.Errorf("the session has %d nodes, %d skipped; want %d and the 2 the demo takes out of service", c.Nodes, c.Skipped, demo.MaxNodes)
	}
}
