package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/fake"
)

// hostileHandler returns a handler with cfg over an executor on an
// in-memory world of nodes nodes.
func hostileHandler(t *testing.T, nodes int, cfg api.Config) *api.Handler {
	t.Helper()
	world := fake.NewCluster(fake.ClusterOptions{Nodes: nodes})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	handler, err := api.New(ex, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return handler
}

// TestCrossSiteWritesRefused: a page on another site cannot make an
// admin's browser create, pause or cancel a session. A fetch in no-cors
// mode sends a JSON body without a Content-Type (a simple request, no
// preflight); behind the gateway every request is trusted, so such a
// POST created a session — a rolling reboot of the starting group.
func TestCrossSiteWritesRefused(t *testing.T) {
	h := newHarness(t, 12)
	spec := original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4)
	for _, hdr := range [][]string{
		{"Content-Type", "", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
		{"Content-Type", "", "Sec-Fetch-Site", "same-site", "Origin", "https://other.cluster.example"},
		{"Content-Type", "", "Origin", "https://evil.example"}, // a browser without Sec-Fetch-Site
	} {
		h.expect(http.StatusForbidden, h.url, "POST", "/session", spec, hdr...)
		h.expect(http.StatusForbidden, h.url, "POST", "/sessions", spec, hdr...)
		h.expect(http.StatusForbidden, h.url, "POST", "/sessions/x/pause", nil, hdr...)
		h.expect(http.StatusForbidden, h.url, "DELETE", "/session/x", nil, hdr...)
	}
	if n := h.sessions(); n != 0 {
		t.Fatalf("%d sessions created cross-site", n)
	}
	h.untouched("cross-site requests")
	// Reads stay open to any page (they change nothing), and the page's
	// own requests, and clients that are not browsers, go through.
	h.expect(http.StatusOK, h.url, "GET", "/session", nil, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	h.expect(http.StatusCreated, h.url, "POST", "/session", spec, "Sec-Fetch-Site", "same-origin")
	h.expect(http.StatusNotFound, h.url, "POST", "/sessions/x/pause", nil)
}

// crossSite sends each request ("METHOD path") as a browser on another
// site's page would, and expects it refused.
func (h *harness) crossSite(requests ...string) {
	h.t.Helper()
	for _, r := range requests {
		method, path, _ := strings.Cut(r, " ")
		h.expect(http.StatusForbidden, h.url, method, path, "{}", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	}
}

// flushWriter records whether anything was flushed to the client.
type flushWriter struct {
	header  http.Header
	status  int
	flushed atomic.Bool
}

func (w *flushWriter) Header() http.Header              { return w.header }
func (w *flushWriter) WriteHeader(status int)           { w.status = status }
func (w *flushWriter) Write(p []byte) (int, error)      { return len(p), nil }
func (w *flushWriter) Flush()                           { w.flushed.Store(true) }
func (w *flushWriter) SetWriteDeadline(time.Time) error { return nil }

// TestEmptyStreamAnswersAtOnce: the stream of every session, when there
// is none, sends its head at once; it waited for the first keep-alive
// (15 s by default), the client not knowing meanwhile whether it was
// connected.
func TestEmptyStreamAnswersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handler := hostileHandler(t, 2, api.Config{Events: api.NewHub(), KeepAlive: time.Hour, WatchPoll: time.Hour})
		w := &flushWriter{header: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			handler.ServeHTTP(w, httptest.NewRequest("GET", "/events", nil))
		}()
		synctest.Wait()
		if !w.flushed.Load() || w.status != http.StatusOK {
			t.Errorf("an open stream with nothing to send yet: status %d, flushed %v; want 200, flushed", w.status, w.flushed.Load())
		}
		handler.Close()
		<-done
	})
}

// TestEventStreamsBounded: streams beyond Config.MaxStreams are refused
// with 503 and Retry-After, and a slot is given back when a stream ends.
// Without a bound, 5,000 clients holding /events open grew the demo from
// 23 MB to 375 MB in 35 s, and every event of the executor was handed to
// each of them under one lock.
func TestEventStreamsBounded(t *testing.T) {
	h := newHarness(t, 4)
	handler, err := api.New(h.ex, api.Config{Events: h.hub, MaxStreams: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/apis/crus", handler))
	t.Cleanup(srv.Close)
	t.Cleanup(handler.Close)
	open := func(ctx context.Context) *http.Response {
		req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/apis/crus/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ctx, cancel := context.WithCancel(t.Context())
	for range 2 {
		resp := open(ctx)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream within the bound: %s", resp.Status)
		}
		defer resp.Body.Close()
	}
	resp := open(t.Context())
	if resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		t.Fatal("a third stream is served; want 503")
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third stream: %s %s (Retry-After %q); want 503 with Retry-After", resp.Status, body, resp.Header.Get("Retry-After"))
	}
	cancel() // the two streams end; their slots come back
	for {
		resp := open(t.Context())
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		runtime.Gosched()
	}
}

// stuckWriter is a connection whose client stopped reading: it takes
// budget bytes, then a write waits until the write deadline passes (and
// fails), or for ever if none is set.
type stuckWriter struct {
	header http.Header
	budget int
	stall
}

// stall is the side of a connection whose peer stopped: an operation on
// it waits until its deadline passes, then fails, or for ever (until
// never is closed) if none is set.
type stall struct {
	mu       sync.Mutex
	deadline time.Time
	never    chan struct{}
}

func (s *stall) setDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline = t
}

func (s *stall) wait() error {
	s.mu.Lock()
	d := s.deadline
	s.mu.Unlock()
	if d.IsZero() {
		<-s.never
		return net.ErrClosed
	}
	time.Sleep(time.Until(d))
	return os.ErrDeadlineExceeded
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Flush()              {}
func (w *stuckWriter) SetWriteDeadline(t time.Time) error {
	w.setDeadline(t)
	return nil
}
func (w *stuckWriter) Write(p []byte) (int, error) {
	if len(p) <= w.budget {
		w.budget -= len(p)
		return len(p), nil
	}
	return 0, w.wait()
}

// TestStuckStreamReaderDropped: a client that keeps its event stream open
// but stops reading is dropped once a write has waited
// StreamWriteTimeout; before, the stream's goroutine, its buffer of
// events and its slot were held for as long as the connection lived.
func TestStuckStreamReaderDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := api.NewHub()
		handler := hostileHandler(t, 2, api.Config{Events: hub, KeepAlive: time.Second, WatchPoll: time.Hour, StreamWriteTimeout: time.Minute})
		w := &stuckWriter{header: http.Header{}, budget: 100, stall: stall{never: make(chan struct{})}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			handler.ServeHTTP(w, httptest.NewRequest("GET", "/events", nil))
		}()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Error("the stream of a client that stopped reading is still served after 10 minutes")
		}
		close(w.never)
		handler.Close()
		<-done
	})
}

// trickle is a request body sent a few bytes and then no more, and the
// connection under it: a read waits until the read deadline passes (and
// fails), or for ever if none is set. It records the deadlines set.
type trickle struct {
	header    http.Header
	status    int
	start     []byte
	deadlines []time.Time
	stall
}

func (c *trickle) Header() http.Header         { return c.header }
func (c *trickle) WriteHeader(status int)      { c.status = status }
func (c *trickle) Write(p []byte) (int, error) { return len(p), nil }
func (c *trickle) SetReadDeadline(t time.Time) error {
	c.setDeadline(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadlines = append(c.deadlines, t)
	return nil
}
func (c *trickle) Read(p []byte) (int, error) {
	if len(c.start) > 0 {
		n := copy(p, c.start)
		c.start = c.start[n:]
		return n, nil
	}
	if c.never == nil {
		return 0, io.EOF // the whole body was sent
	}
	return 0, c.wait()
}

// TestTrickledBodyTimesOut: a body that stops arriving is answered 408
// once BodyReadTimeout has passed; before, the request waited for it for
// ever (2,000 clients sending a byte a second held 2,000 connections and
// file descriptors of the demo, unanswered, for as long as they kept on).
// A body that arrives lifts its deadline, which would otherwise end the
// request's context, and Create with it, at that time.
func TestTrickledBodyTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handler := hostileHandler(t, 4, api.Config{BodyReadTimeout: 30 * time.Second})
		for _, path := range []string{"/session", "/sessions"} {
			c := &trickle{header: http.Header{}, start: []byte(`{"starting_label":`), stall: stall{never: make(chan struct{})}}
			req := httptest.NewRequest("POST", path, c)
			req.Header.Set("Content-Type", "application/json")
			done := make(chan struct{})
			go func() {
				defer close(done)
				handler.ServeHTTP(c, req)
			}()
			time.Sleep(time.Hour)
			synctest.Wait()
			select {
			case <-done:
				if c.status != http.StatusRequestTimeout {
					t.Errorf("POST %s with a body that stopped: %d; want 408", path, c.status)
				}
			default:
				t.Errorf("POST %s with a body that stopped is still waiting for it an hour later", path)
				close(c.never)
				<-done
			}
		}
		body, _ := json.Marshal(original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 2))
		c := &trickle{header: http.Header{}, start: body}
		req := httptest.NewRequest("POST", "/session", c)
		req.Header.Set("Content-Type", "application/json")
		handler.ServeHTTP(c, req)
		if c.status != http.StatusCreated {
			t.Fatalf("POST /session: %d; want 201", c.status)
		}
		if n := len(c.deadlines); n == 0 || !c.deadlines[n-1].IsZero() {
			t.Errorf("read deadlines set %v: the last must lift the body's", c.deadlines)
		}
	})
}

// stalled sends a request whose body stops after its first bytes, to a
// server whose BodyReadTimeout is short, and checks the 408 against the
// documents.
func (h *harness) stalled(base, method, path string) {
	h.t.Helper()
	start := []byte(`{"starting_label":`)
	never := make(chan struct{})
	defer close(never)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(start)
		<-never
		pw.Close()
	}()
	req, err := http.NewRequest(method, base+"/apis/crus"+path, pr)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		h.t.Fatalf("%s %s with a body that stopped: %d %s; want 408", method, path, resp.StatusCode, out)
	}
	h.check.check(exchange{method, req.URL.Path, start, req.Header, resp.StatusCode, resp.Header, out}, req)
}

// TestDuplicateKeysRefused: a body giving a key twice is refused, naming
// the key, and creates nothing. The decoder kept the last value, while a
// proxy, a log or whoever reviewed the request may have read the first:
// a starting_label of "other" and then the real group upgraded the
// real group.
func TestDuplicateKeysRefused(t *testing.T) {
	h := newHarness(t, 12)
	for _, c := range []struct{ path, body, field string }{
		{"/session", `{"starting_label":"other","upgrading_label":"crus-upgrading","failed_label":"crus-failed",` +
			`"upgrade_step_size":4,"upgrade_template_id":"compute-upgrade","workload_manager_type":"slurm","starting_label":"crus-starting"}`, "starting_label"},
		{"/sessions", `{"starting_label":"crus-starting","upgrading_label":"crus-upgrading","failed_label":"crus-failed",` +
			`"upgrade_step_size":4,"upgrade_step_size":12,"upgrade_template_id":"compute-upgrade","workload_manager_type":"slurm"}`, "upgrade_step_size"},
		{"/sessions", `{"starting_label":"crus-starting","upgrading_label":"crus-upgrading","failed_label":"crus-failed",` +
			`"upgrade_step_size":4,"upgrade_template_id":"compute-upgrade","workload_manager_type":"slurm",` +
			`"maintenance_windows":[{"start":"22:00","end":"06:00","start":"00:00"}]}`, "maintenance_windows"},
	} {
		p := decode[api.Problem](t, h.expect(http.StatusBadRequest, h.url, "POST", c.path, c.body))
		found := false
		for _, e := range p.Errors {
			found = found || e.Field == c.field
		}
		if !found {
			t.Errorf("POST %s with %s twice: %+v; want a problem with %s", c.path, c.field, p, c.field)
		}
	}
	if n := h.sessions(); n != 0 {
		t.Errorf("%d sessions created from bodies with keys given twice", n)
	}
	h.untouched("bodies with keys given twice")
}

// TestStuckAnswerReaderDropped: a client that stops reading an answer
// (here the full record of a session) is dropped once a write has waited
// WriteTimeout, and the deadline is lifted after an answer that went
// through; before, the answer's buffer — 50 MB for a session of 160,000
// nodes — was held for as long as the connection lived.
func TestStuckAnswerReaderDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		world := fake.NewCluster(fake.ClusterOptions{Nodes: 8})
		ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := ex.Create(t.Context(), crus.Spec{
			StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
			StepSize: 2, TemplateID: fake.Template, WorkloadManagerType: "slurm",
		})
		if err != nil {
			t.Fatal(err)
		}
		handler, err := api.New(ex, api.Config{WriteTimeout: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		w := &stuckWriter{header: http.Header{}, budget: 0, stall: stall{never: make(chan struct{})}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			handler.ServeHTTP(w, httptest.NewRequest("GET", "/sessions/"+s.UpgradeID, nil))
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Error("the answer to a client that stopped reading is still being written an hour later")
			close(w.never)
			<-done
		}
		ok := &stuckWriter{header: http.Header{}, budget: 1 << 20}
		handler.ServeHTTP(ok, httptest.NewRequest("GET", "/sessions/"+s.UpgradeID, nil))
		if !ok.deadline.IsZero() {
			t.Errorf("write deadline %v left after the answer", ok.deadline)
		}
	})
}

// blockingKeys serves a JWKS document, holding a fetch while held is
// open, and says when a fetch is held.
type blockingKeys struct {
	doc    []byte
	held   chan struct{}
	waits  chan struct{}
	fetchs atomic.Int32
}

func (b *blockingKeys) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.fetchs.Add(1) > 1 {
		select {
		case b.waits <- struct{}{}:
		default:
		}
		select {
		case <-b.held:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b.doc)), Request: req}, nil
}

// TestUnknownKeyDoesNotHoldOthers: a token naming a key the server does
// not know makes it fetch the keys again; while that fetch waits on a
// slow issuer, tokens of known keys are still verified at once. The
// fetch held the lock every verification takes, for up to 30 s, so one
// forged token could stall every request behind it.
func TestUnknownKeyDoesNotHoldOthers(t *testing.T) {
	h := newHarness(t, 2)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	keys := &blockingKeys{doc: doc, held: make(chan struct{}), waits: make(chan struct{}, 1)}
	defer close(keys.held)
	auth := &api.JWT{JWKSURL: "https://keycloak.test/certs", Issuer: issuer, Audience: audience,
		HTTPClient: &http.Client{Transport: keys}, MinRefresh: time.Nanosecond}
	if err := auth.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	sign := func(kid string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		return h.token(s, validClaims())
	}
	request := func(tok string) *http.Request {
		r := httptest.NewRequest("GET", "/sessions", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	forged := sign("k-unknown")
	go func() { _, _ = auth.Authenticate(request(forged)) }()
	<-keys.waits // the fetch the forged token asked for is held
	done := make(chan error, 1)
	go func() {
		_, err := auth.Authenticate(request(sign("k1")))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a token of a known key: %v", err)
		}
	case <-time.After(30 * time.Second): // a bound on a hang, not a measure
		t.Fatal("a token of a known key waits for the fetch a forged token asked for")
	}
}

// failingKeys answers every fetch of the keys 500, and counts them.
type failingKeys struct{ fetches atomic.Int32 }

func (f *failingKeys) RoundTrip(req *http.Request) (*http.Response, error) {
	f.fetches.Add(1)
	return &http.Response{StatusCode: http.StatusInternalServerError, Body: io.NopCloser(strings.NewReader("down")), Request: req}, nil
}

// TestFailingKeysFetchedOncePerRefresh: while the issuer cannot give its
// keys, requests are answered 503 without asking it again more than once
// per MinRefresh; every request with a token asked it once more, so
// clients hammered a Keycloak that was already failing.
func TestFailingKeysFetchedOncePerRefresh(t *testing.T) {
	keys := &failingKeys{}
	auth := &api.JWT{JWKSURL: "https://keycloak.test/certs", HTTPClient: &http.Client{Transport: keys}, MinRefresh: time.Hour}
	handler := hostileHandler(t, 2, api.Config{Auth: auth})
	// Any well-formed token will do: no key can verify it.
	tok := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln"
	for range 10 {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/sessions", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		handler.ServeHTTP(w, r)
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("GET /sessions while the keys cannot be had: %d %s; want 503", w.Code, w.Body)
		}
	}
	if n := keys.fetches.Load(); n != 1 {
		t.Errorf("10 requests fetched the keys %d times; want 1 within MinRefresh", n)
	}
}

// TestLongPathsNotEchoed: a path of 200 KB is answered, and logged, with
// a few hundred bytes of it. Each refusal repeated the whole path in its
// answer and its log record, so a client could write up to a megabyte
// (the server's limit on a request's head) to the log per request.
func TestLongPathsNotEchoed(t *testing.T) {
	var log bytes.Buffer
	handler := hostileHandler(t, 2, api.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	long := strings.Repeat("a", 200<<10)
	for _, path := range []string{"/session/" + long, "/sessions/" + long + "/nodes", "/" + long, "/sessions/" + long + "/x"} {
		log.Reset()
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %.40s…: %d; want 404", path, w.Code)
		}
		if w.Body.Len() > 2048 || log.Len() > 4096 {
			t.Errorf("GET %.40s… (%d bytes): an answer of %d bytes, a log of %d", path, len(path), w.Body.Len(), log.Len())
		}
	}
}

// heldGroups is an HSM whose member reads wait while held is open; it
// tells on reading each read made for a request (its context's dryRun
// value), once per request.
type heldGroups struct {
	hsm.GroupStore
	held    chan struct{}
	reading map[string]chan struct{}
}

type dryRunKey struct{}

func (g *heldGroups) Members(ctx context.Context, label string) ([]string, error) {
	if name, ok := ctx.Value(dryRunKey{}).(string); ok {
		select {
		case g.reading[name] <- struct{}{}:
		default:
		}
	}
	<-g.held
	return g.GroupStore.Members(ctx, label)
}

// TestDryRunsBounded: dry runs beyond MaxDryRuns are refused with 503 and
// Retry-After instead of reading the backends once more each: a client
// looping on POST /plan loaded HSM and the workload manager as many times
// over as it had connections.
func TestDryRunsBounded(t *testing.T) {
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
	groups := &heldGroups{GroupStore: world.HSM(), held: make(chan struct{}), reading: map[string]chan struct{}{
		"first": make(chan struct{}, 1), "second": make(chan struct{}, 1), "third": make(chan struct{}, 1),
	}}
	ex, err := crus.NewExecutor(groups, world.WLM(), world.BOS(), crus.Config{Mapper: crus.NIDMapper{Resolver: world.HSM()}})
	if err != nil {
		t.Fatal(err)
	}
	handler, err := api.New(ex, api.Config{DryRuns: true, MaxDryRuns: 1})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 2))
	post := func(name string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequestWithContext(context.WithValue(t.Context(), dryRunKey{}, name), "POST", "/plan", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		handler.ServeHTTP(w, r)
		return w
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- post("first") }()
	<-groups.reading["first"] // the first dry run reads HSM
	second := make(chan *httptest.ResponseRecorder, 1)
	go func() { second <- post("second") }()
	select {
	case w := <-second:
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			close(groups.held)
			t.Fatalf("a dry run while another reads the backends: %d %s; want 503 with Retry-After", w.Code, w.Body)
		}
	case <-groups.reading["second"]:
		close(groups.held)
		<-second
		<-first
		t.Fatal("a second dry run reads the backends while the first does")
	}
	close(groups.held)
	if w := <-first; w.Code != http.StatusOK {
		t.Fatalf("the first dry run: %d %s", w.Code, w.Body)
	}
	if w := post("third"); w.Code != http.StatusOK {
		t.Fatalf("a dry run once the first ended: %d %s", w.Code, w.Body)
	}
}

// TestBearerSchemeAnyCase: the authentication scheme is case-insensitive
// (RFC 9110, 11.1); a valid token sent as "bearer …" was refused 401.
// Tokens anywhere but the Authorization header are still ignored.
func TestBearerSchemeAnyCase(t *testing.T) {
	h := newHarness(t, 2)
	tok := h.token(h.signer, validClaims())
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		h.expect(http.StatusOK, h.jwtURL, "GET", "/session", nil, "Authorization", scheme+" "+tok)
	}
	h.expect(http.StatusUnauthorized, h.jwtURL, "GET", "/session?access_token="+tok, nil)
	h.expect(http.StatusUnauthorized, h.jwtURL, "GET", "/session", nil, "Authorization", "Basic "+tok)
	h.expect(http.StatusUnauthorized, h.jwtURL, "GET", "/session", nil, "Authorization", "Bearer"+tok)
	h.expect(http.StatusUnauthorized, h.jwtURL, "GET", "/session", nil, "Cookie", "token="+tok)
}
