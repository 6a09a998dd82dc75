package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/scaletest"
)

// scaleHandler is a Handler over a counting store holding sessions of the
// given sizes (scaletest.Session), with their ids.
func scaleHandler(tb testing.TB, sizes ...int) (*Handler, *scaletest.Store, []string) {
	tb.Helper()
	st := scaletest.NewStore()
	var ids []string
	for i, n := range sizes {
		s := scaletest.Session(string(rune('a'+i))+"-scale", n, 500)
		if err := st.Create(context.Background(), s); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, s.UpgradeID)
	}
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(ex, Config{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	return h, st, ids
}

func recorderSSE() *sseWriter {
	w := httptest.NewRecorder()
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

// BenchmarkStreamPoll: one poll (every WatchPoll, 2 s by default) of an
// event stream of one session (the command's watch) and of all sessions
// (the page) when no session moved; the store holds one session of
// 10,000 or 160,000 nodes.
func BenchmarkStreamPoll(b *testing.B) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		for _, which := range []string{"one", "all"} {
			b.Run(which+"/"+n.name, func(b *testing.B) {
				h, _, ids := scaleHandler(b, n.nodes)
				id := ids[0]
				if which == "all" {
					id = ""
				}
				ctx := context.Background()
				sw := &watch{h: h, id: id, revs: map[string]int64{}}
				if _, err := sw.summaries(ctx, recorderSSE(), true); err != nil {
					b.Fatal(err)
				}
				sse := recorderSSE()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := sw.summaries(ctx, sse, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestStreamPollReadsRevisions: a poll of an event stream reads the
// revision of each session watched, and the record of those that moved
// only; a stream of every session lists them every listEvery polls, or
// at the next poll after an event of a session it does not know. Each
// poll of the page's stream copied every record (52 MB for a
// 160,000-node session every 2 s for each page open).
func TestStreamPollReadsRevisions(t *testing.T) {
	ctx := context.Background()
	h, st, ids := scaleHandler(t, 1000, 10)
	one := &watch{h: h, id: ids[0], revs: map[string]int64{}}
	all := &watch{h: h, revs: map[string]int64{}}
	sse := recorderSSE()
	for _, sw := range []*watch{one, all} {
		if _, err := sw.summaries(ctx, sse, true); err != nil {
			t.Fatal(err)
		}
	}
	st.Reset()
	if _, err := one.summaries(ctx, sse, false); err != nil {
		t.Fatal(err)
	}
	if got, want := st.Counts(), (scaletest.Counts{Revisions: 1}); got != want {
		t.Fatalf("a poll of one idle session read %+v; want %+v", got, want)
	}
	st.Reset()
	for range listEvery - 1 {
		if _, err := all.summaries(ctx, sse, false); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := st.Counts(), (scaletest.Counts{Revisions: 2 * (listEvery - 1)}); got != want {
		t.Fatalf("%d polls of all sessions, idle, read %+v; want %+v", listEvery-1, got, want)
	}
	// The next one lists.
	st.Reset()
	if _, err := all.summaries(ctx, sse, false); err != nil {
		t.Fatal(err)
	}
	if got, want := st.Counts(), (scaletest.Counts{RevisionLists: 1}); got != want {
		t.Fatalf("the listing poll read %+v; want %+v", got, want)
	}
	// One session moves: read again, alone, and its summary sent.
	s, err := st.Get(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	s.Progress.Paused = true
	if err := st.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	sse = recorderSSE()
	st.Reset()
	if _, err := all.summaries(ctx, sse, false); err != nil {
		t.Fatal(err)
	}
	if got, want := st.Counts(), (scaletest.Counts{Revisions: 2, Views: 1}); got != want {
		t.Fatalf("a poll after one session moved read %+v; want %+v", got, want)
	}
	body := sse.w.(*httptest.ResponseRecorder).Body.String()
	if strings.Count(body, "event: session") != 1 || !strings.Contains(body, `"upgrade_id":"`+ids[1]+`"`) || !strings.Contains(body, `"paused":true`) {
		t.Fatalf("a poll after one session moved sent:\n%s", body)
	}
	// A new session, of which an event came: listed at the next poll.
	if err := st.Create(ctx, scaletest.Session("new", 5, 5)); err != nil {
		t.Fatal(err)
	}
	all.noticed("new")
	sse = recorderSSE()
	if _, err := all.summaries(ctx, sse, false); err != nil {
		t.Fatal(err)
	}
	if body := sse.w.(*httptest.ResponseRecorder).Body.String(); !strings.Contains(body, `"upgrade_id":"new"`) {
		t.Fatalf("the poll after an event of a new session sent:\n%s", body)
	}
}

// TestStreamConnectReadsOnce: opening a stream reads the session (in
// place) or the list once; it read it twice, once to check it, once to
// send it.
func TestStreamConnectReadsOnce(t *testing.T) {
	h, st, ids := scaleHandler(t, 1000)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want scaletest.Counts
	}{
		{"/sessions/" + ids[0] + "/events", scaletest.Counts{Views: 1}},
		{"/events", scaletest.Counts{ViewAlls: 1}},
	} {
		st.Reset()
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() && sc.Text() != "event: session" {
		}
		resp.Body.Close()
		if got := st.Counts(); got != tc.want {
			t.Errorf("opening %s read %+v; want %+v", tc.path, got, tc.want)
		}
	}
}

// gatedWriter is a ResponseWriter whose writes block, once armed, until
// released; it says when a write is blocked.
type gatedWriter struct {
	header  http.Header
	mu      sync.Mutex
	buf     bytes.Buffer
	armed   bool
	blocked chan struct{} // closed when a write blocks
	release chan struct{}
	once    sync.Once
}

func (g *gatedWriter) Header() http.Header { return g.header }
func (g *gatedWriter) WriteHeader(int)     {}
func (g *gatedWriter) Flush()              {}
func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	armed := g.armed
	g.mu.Unlock()
	if armed {
		g.once.Do(func() { close(g.blocked) })
		<-g.release
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gatedWriter) has(s string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Contains(g.buf.String(), s)
}

// TestLaggedStreamRereadsOnlyWhatMoved: a watcher that fell behind the
// events is told so and sent the summaries of the sessions that moved
// since their last summary: none here, so no record is read. It read
// every record again (a list of all sessions for the page) at each such
// burst.
func TestLaggedStreamRereadsOnlyWhatMoved(t *testing.T) {
	base, st, ids := scaleHandler(t, 1000)
	hub := NewHub()
	h, err := New(base.ex, Config{Events: hub, WatchPoll: time.Hour, KeepAlive: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w := &gatedWriter{header: http.Header{}, blocked: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "GET", "/events", nil))
	}()
	for !w.has("event: session") {
		runtime.Gosched()
	}
	w.mu.Lock()
	w.armed = true
	w.mu.Unlock()
	hub.Publish(crus.Event{Session: ids[0], Kind: crus.EventPhase, Message: "m0"})
	<-w.blocked // the stream is writing m0
	for i := 1; i <= subscriberBuffer+10; i++ {
		hub.Publish(crus.Event{Session: ids[0], Kind: crus.EventPhase, Message: fmt.Sprintf("m%d", i)})
	}
	st.Reset()
	w.mu.Lock()
	w.armed = false
	w.mu.Unlock()
	close(w.release)
	last := fmt.Sprintf(`"message":"m%d"`, subscriberBuffer)
	for !w.has(last) {
		runtime.Gosched()
	}
	if !w.has("event: lagged") {
		t.Fatal("the watcher was not told it lost events")
	}
	if got := st.Counts(); got.Nodes != 0 || got.Lists != 0 || got.Gets != 0 {
		t.Errorf("after a lag with nothing moved, the stream read %+v; want revisions only", got)
	}
	cancel()
	<-done
}

// TestNodesReadInPlace: the page's nodes, a description and the original
// API's record (which has no node in it; its clients poll it) are read
// from the record in place (Executor.View), not from a copy of every node
// record (50 MB for 160,000 nodes, every second or so for each page
// open).
func TestNodesReadInPlace(t *testing.T) {
	h, st, ids := scaleHandler(t, 1000)
	for _, path := range []string{"/sessions/" + ids[0] + "/nodes", "/sessions/" + ids[0] + "/nodes?names=true", "/sessions/" + ids[0] + "/description", "/session/" + ids[0]} {
		st.Reset()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		if got, want := st.Counts(), (scaletest.Counts{Views: 1}); got != want {
			t.Errorf("GET %s read %+v; want %+v", path, got, want)
		}
	}
	// The lists, of summaries and of original records, have no node in
	// them either: the first reads the session in place, the second only
	// its revision (its summary is kept at that revision).
	for i, path := range []string{"/sessions", "/session"} {
		st.Reset()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 || !strings.Contains(w.Body.String(), ids[0]) {
			t.Fatalf("GET %s: %d %.200s", path, w.Code, w.Body)
		}
		want := scaletest.Counts{RevisionLists: 1, Views: 1 - i}
		if got := st.Counts(); got != want {
			t.Errorf("GET %s read %+v; want %+v", path, got, want)
		}
	}
}

// BenchmarkNodesRequest: GET /sessions/{id}/nodes, what the page asks for
// every second or so while a session moves, for 10,000 and 160,000 nodes.
func BenchmarkNodesRequest(b *testing.B) {
	benchmarkRequest(b, "/nodes")
}

// BenchmarkOriginalGet: GET /session/{id} of the original API, which its
// clients poll.
func BenchmarkOriginalGet(b *testing.B) {
	benchmarkRequest(b, "")
}

// BenchmarkListRequest: GET /sessions, the summaries the page lists.
func BenchmarkListRequest(b *testing.B) {
	benchmarkRequest(b, "list")
}

func benchmarkRequest(b *testing.B, suffix string) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		b.Run(n.name, func(b *testing.B) {
			h, _, ids := scaleHandler(b, n.nodes)
			path := "/sessions/" + ids[0] + suffix
			switch suffix {
			case "":
				path = "/session/" + ids[0]
			case "list":
				path = "/sessions"
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
