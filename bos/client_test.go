package bos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/apispec"
	"github.com/crus-go/crus/internal/bosserver"
	"github.com/crus-go/crus/internal/faultinject"
	"github.com/crus-go/crus/internal/hsmserver"
	"github.com/crus-go/crus/internal/testtls"
)

// env is a BOS test server (reading groups from an HSM test server)
// behind a fault injector and, optionally, a test's own wrapper.
type env struct {
	hsm    *hsmserver.Server
	srv    *bosserver.Server
	clk    *clock
	faults *faultinject.Injector
	url    string
	logs   *lockedBuffer
}

type envOptions struct {
	v1    bool
	token string
	tls   bool
	wrap  func(http.Handler) http.Handler
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{clk: newClock(), faults: &faultinject.Injector{}, logs: &lockedBuffer{}}
	e.hsm, _ = hsmserver.NewTest(t, hsmserver.Options{})
	for i, x := range xnames() {
		e.hsm.AddComponent(x, i+1)
	}
	e.hsm.SetGroup(label)
	var err error
	e.srv, err = bosserver.New(bosserver.Options{
		V1: o.v1, Now: e.clk.Now, PendingDelay: 10 * time.Second, Groups: e.hsm.Group, Token: o.token,
		Report: func(v apispec.Violation) { t.Errorf("bosserver: %s", v) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.AddTemplate(tmplName, []string{label}, nil)
	var h http.Handler = e.srv
	if o.wrap != nil {
		h = o.wrap(h)
	}
	h = e.faults.Wrap(h)
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are expected
	if o.tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	e.url = ts.URL + e.srv.Base()
	return e
}

func (e *env) config(cfg bos.Config) bos.Config {
	cfg.BaseURL = e.url
	if cfg.RetryWait == 0 {
		cfg.RetryWait = time.Millisecond
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

func (e *env) client(t *testing.T, cfg bos.Config) *bos.Client {
	t.Helper()
	c, err := bos.New(e.config(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// follow advances the clock until the session completes.
func follow(t *testing.T, e *env, o bos.Orchestrator, name string, nodes []string) bos.Status {
	t.Helper()
	for range 200 {
		st, err := o.Status(t.Context(), name, nodes)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.Phase == bos.PhaseComplete {
			return st
		}
		e.clk.Advance(5 * time.Second)
	}
	t.Fatalf("session %s did not complete", name)
	return bos.Status{}
}

func TestComponentsOfLargeSteps(t *testing.T) {
	e := newEnv(t, envOptions{})
	var many []string
	for i := range 40 {
		x := fmt.Sprintf("x%dc%ds%db%dn%d", 1000+i/8, i%8, i%32, i%2, i%2)
		many = append(many, x)
		e.hsm.AddComponent(x, 100+i)
	}
	e.hsm.SetGroup(label, many...)
	c := e.client(t, bos.Config{})
	if err := c.Reboot(t.Context(), bos.Request{Name: "big", Template: tmplName, Limit: []string{label}}); err != nil {
		t.Fatal(err)
	}
	st := follow(t, e, c, "big", many)
	for _, x := range many {
		if st.Nodes[x].Result != bos.ResultSucceeded {
			t.Errorf("node %s: %+v", x, st.Nodes[x])
		}
	}
	// 40 xnames do not fit in the 127 characters of ids (the
	// spec-validating server refuses longer ones): one request per Status
	// asks for the session's components instead.
	sessions, comps := e.srv.Requests()["GET /v2/sessions/{name}"], e.srv.Requests()["GET /v2/components"]
	if comps == 0 || comps > sessions {
		t.Errorf("%d component requests for %d session reads", comps, sessions)
	}
	// A few nodes fit: they are asked for by id.
	if st, err := c.Status(t.Context(), "big", many[:3]); err != nil || len(st.Nodes) != 3 {
		t.Errorf("Status of 3 nodes: %+v, %v", st, err)
	}
}

func TestOnHoldIsFailureOnlyOnceComplete(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.hsm.SetGroup(label, xnames()[0], xnames()[1])
	e.srv.HoldNode(xnames()[1])
	c := e.client(t, bos.Config{})
	req := bos.Request{Name: "held", Template: tmplName, Limit: []string{label}}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(10 * time.Second) // past the pending delay
	for range 30 {                  // well past the boot of the other node
		e.clk.Advance(5 * time.Second)
		st, err := c.Status(t.Context(), "held", xnames()[:2])
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != bos.PhaseRunning {
			t.Fatalf("phase %s; the held node keeps the session running", st.Phase)
		}
		if r, ok := st.Nodes[xnames()[1]]; ok {
			t.Fatalf("node on hold while the session runs reported %+v; want it left out", r)
		}
	}
	e.srv.CompleteNow("held")
	st, err := c.Status(t.Context(), "held", xnames()[:2])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bos.NodeStatus{
		xnames()[0]: {Result: bos.ResultSucceeded},
		xnames()[1]: {Result: bos.ResultFailed, Reason: "Component information was not returned by CAPMC"},
	}
	if diff := cmp.Diff(want, st.Nodes); st.Phase != bos.PhaseComplete || diff != "" {
		t.Errorf("phase %s, nodes (-want +got):\n%s", st.Phase, diff)
	}
}

func TestOutcomesBelongToTheirSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	x0 := xnames()[0]
	e.hsm.SetGroup(label, x0)
	c := e.client(t, bos.Config{})
	if err := c.Reboot(t.Context(), bos.Request{Name: "first", Template: tmplName, Limit: []string{x0}}); err != nil {
		t.Fatal(err)
	}
	follow(t, e, c, "first", []string{x0})
	// A second session: until it has set the node up, the node's stable
	// status is the first session's and says nothing about the second.
	if err := c.Reboot(t.Context(), bos.Request{Name: "second", Template: tmplName, Limit: []string{x0}}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(t.Context(), "second", []string{x0})
	if err != nil || st.Phase != bos.PhasePending || len(st.Nodes) != 0 {
		t.Fatalf("second session pending: %+v, %v; want no outcome", st, err)
	}
	e.clk.Advance(11 * time.Second)
	if st, err = c.Status(t.Context(), "second", []string{x0}); err != nil || len(st.Nodes) != 0 {
		t.Fatalf("second session just set up: %+v, %v; want no outcome (the node is on hold)", st, err)
	}
	// The first session no longer owns the node: it does not report it.
	if st, err = c.Status(t.Context(), "first", []string{x0}); err != nil || len(st.Nodes) != 0 {
		t.Errorf("first session after the node moved on: %+v, %v; want no outcome", st, err)
	}
	if st = follow(t, e, c, "second", []string{x0}); st.Nodes[x0].Result != bos.ResultSucceeded {
		t.Errorf("second session: %+v", st)
	}
}

func TestRequestCheckedBeforeSending(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(t, bos.Config{})
	for _, limit := range [][]string{{"*"}, {"all"}, {"!x1000c0s0b0n0"}, {"&crus-upgrading"}, {"a,b"}, {"a b"}, {""}} {
		err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: tmplName, Limit: limit})
		if !errors.Is(err, bos.ErrInvalidRequest) {
			t.Errorf("limit %q: %v, want ErrInvalidRequest", limit, err)
		}
	}
	if err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: "bad name", Limit: []string{label}}); !errors.Is(err, bos.ErrTemplateNotFound) {
		t.Errorf("malformed template name: %v", err)
	}
	if len(e.srv.Requests()) != 0 {
		t.Errorf("requests sent for refused input: %v", e.srv.Requests())
	}
}

func TestTenantHeader(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(t, bos.Config{Tenant: "vcluster-blue"})
	if err := c.Reboot(t.Context(), bos.Request{Name: "t1", Template: tmplName, Limit: []string{label}}); err != nil {
		t.Fatal(err)
	}
	if tenant, ok := e.srv.SessionTenant("t1"); !ok || tenant != "vcluster-blue" {
		t.Errorf("session tenant %q, %v", tenant, ok)
	}
	// Another tenant does not see it.
	other := e.client(t, bos.Config{Tenant: "vcluster-red"})
	if _, err := other.Status(t.Context(), "t1", nil); !errors.Is(err, bos.ErrSessionNotFound) {
		t.Errorf("other tenant: %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []bos.Config{
		{},
		{BaseURL: "https://api-gw-service-nmn.local/apis/bos/v2"},
		{BaseURL: "http://cray-bos", Concurrency: -2},
	} {
		if _, err := bos.New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	if _, err := bos.NewV1(bos.V1Config{Config: bos.Config{BaseURL: "http://cray-bos", Tenant: "a"}}); err == nil {
		t.Error("NewV1 with a tenant: no error")
	}
}

// Ambiguous creates: the session is made but the answer is lost. The
// client finds it by name and never creates a second one.
func TestFaultAmbiguousCreate(t *testing.T) {
	for _, f := range []faultinject.Fault{
		{Kind: faultinject.Status, After: true},
		{Kind: faultinject.Status, Status: 503, After: true},
		{Kind: faultinject.Drop, After: true},
		{Kind: faultinject.Truncate, After: true},
		{Kind: faultinject.Hang, After: true},
		{Kind: faultinject.Status},                        // not applied: created on the next try
		{Kind: faultinject.Drop},                          // not applied
		{Kind: faultinject.Status, Status: 502, Times: 2}, // not applied twice
	} {
		t.Run(fmt.Sprintf("%s/after=%v/%d", f.Kind, f.After, f.Status), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			f.Method, f.PathContains = "POST", "/v2/sessions"
			e.faults.Arm(f)
			c := e.client(t, bos.Config{Timeout: 200 * time.Millisecond})
			req := bos.Request{Name: "amb", Template: tmplName, Limit: []string{xnames()[0]}}
			if err := c.Reboot(t.Context(), req); err != nil {
				t.Fatalf("Reboot: %v", err)
			}
			if got := e.srv.Sessions(); !cmp.Equal(got, []string{"amb"}) {
				t.Errorf("sessions %v, want one", got)
			}
			if e.faults.Pending() != 0 {
				t.Errorf("fault did not strike")
			}
			if n := e.srv.Requests()["GET /v2/sessions/{name}"]; n < 2 {
				t.Errorf("%d lookups; a create without a clear answer must be followed by one", n)
			}
		})
	}
}

func TestFaultCreateRacedByAnother(t *testing.T) {
	// Between the client's lookup and its create, someone creates the
	// name: BOS answers 409 and the client compares what is there.
	for _, tc := range []struct {
		name   string
		limit  string
		wantOK bool
	}{{"same", xnames()[0], true}, {"other", xnames()[1], false}} {
		t.Run(tc.name, func(t *testing.T) {
			var once sync.Once
			e := newEnv(t, envOptions{wrap: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == "POST" {
						once.Do(func() {
							body := fmt.Sprintf(`{"name":"race","operation":"reboot","template_name":%q,"limit":%q}`, tmplName, tc.limit)
							req := httptest.NewRequest("POST", r.URL.Path, strings.NewReader(body))
							req.Header.Set("Content-Type", "application/json")
							next.ServeHTTP(httptest.NewRecorder(), req)
						})
					}
					next.ServeHTTP(w, r)
				})
			}})
			c := e.client(t, bos.Config{})
			err := c.Reboot(t.Context(), bos.Request{Name: "race", Template: tmplName, Limit: []string{xnames()[0]}})
			switch {
			case tc.wantOK && err != nil:
				t.Errorf("same parameters: %v", err)
			case !tc.wantOK && !errors.Is(err, bos.ErrSessionExists):
				t.Errorf("other parameters: %v, want ErrSessionExists", err)
			}
			if !tc.wantOK && !strings.Contains(fmt.Sprint(err), xnames()[1]) {
				t.Errorf("error %q does not say what differs", err)
			}
		})
	}
}

func TestFaultOldBOSAnswers(t *testing.T) {
	// BOS before 2023 answered an unknown template with a JSON string and
	// 400, outside the spec: the client still says which it is.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v2/sessiontemplates/"):
			w.WriteHeader(404)
			fmt.Fprint(w, `"Sessiontemplate nope could not be found"`)
		case r.Method == "GET":
			w.WriteHeader(404)
			fmt.Fprint(w, `{"title":"Session could not found.","status":404}`)
		default:
			w.WriteHeader(400)
			fmt.Fprint(w, `"Session Template Name invalid: nope"`)
		}
	}))
	defer ts.Close()
	c, err := bos.New(bos.Config{BaseURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Reboot(t.Context(), bos.Request{Name: "s1", Template: "nope", Limit: []string{label}})
	var ae *bos.APIError
	if !errors.Is(err, bos.ErrTemplateNotFound) || !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Detail != "Session Template Name invalid: nope" {
		t.Errorf("unknown template on old BOS: %#v", err)
	}
}

func TestFaultPersistentServerError(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Status, Status: 503, Times: 100})
	c := e.client(t, bos.Config{Retries: 2})
	err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: tmplName, Limit: []string{label}})
	var ae *bos.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 503 || errors.Is(err, batch.ErrPermanent) {
		t.Errorf("BOS down: %v; want a transient APIError 503", err)
	}
	_, err = c.Status(t.Context(), "s1", nil)
	if !errors.As(err, &ae) || ae.StatusCode != 503 || errors.Is(err, bos.ErrSessionNotFound) {
		t.Errorf("Status while BOS is down: %v; want a transient APIError 503, not ErrSessionNotFound", err)
	}
	if len(e.srv.Sessions()) != 0 {
		t.Errorf("sessions %v", e.srv.Sessions())
	}
}

func TestFaultMalformedStatus(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(t, bos.Config{Retries: -1})
	if err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: tmplName, Limit: []string{label}}); err != nil {
		t.Fatal(err)
	}
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Malformed, Method: "GET", After: true})
	if _, err := c.Status(t.Context(), "s1", nil); err == nil || !strings.Contains(err.Error(), "malformed JSON") {
		t.Errorf("truncated JSON: %v", err)
	}
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Truncate, Method: "GET", After: true, Times: 2})
	c2 := e.client(t, bos.Config{})
	if _, err := c2.Status(t.Context(), "s1", nil); err != nil {
		t.Errorf("truncated answers, then a whole one: %v", err)
	}
}

func TestFaultExpiredTokenAndWrongCA(t *testing.T) {
	e := newEnv(t, envOptions{token: "tok-1", tls: true})
	tokens := &flipToken{toks: []string{"tok-1", "tok-2"}}
	// The TLS test server's own CA, then an unrelated one.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	c, err := bos.New(e.config(bos.Config{Tokens: tokens, CAFile: testtls.ServerCA(t, ts)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckTemplate(t.Context(), tmplName); err != nil {
		t.Fatal(err)
	}
	e.srv.SetToken("tok-2") // tok-1 revoked: the client refreshes once
	if err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: tmplName, Limit: []string{label}}); err != nil {
		t.Fatalf("Reboot with a revoked token: %v", err)
	}
	e.srv.SetToken("tok-9")
	if _, err := c.Status(t.Context(), "s1", nil); !errors.Is(err, auth.ErrUnauthorized) {
		t.Errorf("refused credentials: %v", err)
	}
	wrong, err := bos.New(e.config(bos.Config{Tokens: tokens, CAFile: testtls.UnrelatedCA(t)}))
	if err != nil {
		t.Fatal(err)
	}
	err = wrong.Reboot(t.Context(), bos.Request{Name: "s2", Template: tmplName, Limit: []string{label}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server: %v", err)
	}
	if got := e.srv.Sessions(); !cmp.Equal(got, []string{"s1"}) {
		t.Errorf("sessions %v", got)
	}
	if strings.Contains(e.logs.String(), "tok-") {
		t.Errorf("a token was logged")
	}
}

// flipToken gives the next token after each Invalidate.
type flipToken struct {
	mu   sync.Mutex
	toks []string
	i    int
}

func (f *flipToken) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.toks[min(f.i, len(f.toks)-1)], nil
}

func (f *flipToken) Invalidate(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.toks[min(f.i, len(f.toks)-1)] == tok {
		f.i++
	}
}

func TestV1AmbiguousCreate(t *testing.T) {
	e := newEnv(t, envOptions{v1: true})
	e.hsm.SetGroup(label, xnames()[0], xnames()[1])
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Status, Method: "POST", After: true})
	store := &bos.FileV1Store{Path: filepath.Join(t.TempDir(), "v1.json")}
	c, err := bos.NewV1(bos.V1Config{Config: e.config(bos.Config{}), Sessions: store})
	if err != nil {
		t.Fatal(err)
	}
	req := bos.Request{Name: "v1amb", Template: tmplName, Limit: []string{xnames()[0]}}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Fatalf("Reboot with a lost answer: %v", err)
	}
	if n := len(e.srv.V1Sessions()); n != 1 {
		t.Fatalf("%d v1 sessions, want 1", n)
	}
	// A new process with the same store finds the session by name.
	c2, err := bos.NewV1(bos.V1Config{Config: e.config(bos.Config{}), Sessions: &bos.FileV1Store{Path: store.Path}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Reboot(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	other := req
	other.Limit = []string{xnames()[1]}
	if err := c2.Reboot(t.Context(), other); !errors.Is(err, bos.ErrSessionExists) {
		t.Errorf("v1 name with other parameters: %v", err)
	}
	if st := follow(t, e, c2, "v1amb", xnames()[:1]); st.Nodes[xnames()[0]].Result != bos.ResultSucceeded {
		t.Errorf("status %+v", st)
	}
	if n := len(e.srv.V1Sessions()); n != 1 {
		t.Errorf("%d v1 sessions, want 1", n)
	}
}

func TestV1AmbiguityRefused(t *testing.T) {
	// The create's answer is lost and two new sessions of the template
	// appear (someone else made one meanwhile): the client cannot tell
	// which is its own and says so.
	var once sync.Once
	e := newEnv(t, envOptions{v1: true, wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "POST" {
				once.Do(func() {
					body, _ := io.ReadAll(r.Body)
					r.Body = io.NopCloser(bytes.NewReader(body))
					req := httptest.NewRequest("POST", r.URL.Path, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					next.ServeHTTP(httptest.NewRecorder(), req)
				})
			}
			next.ServeHTTP(w, r)
		})
	}})
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Drop, Method: "POST", After: true})
	c, err := bos.NewV1(bos.V1Config{Config: e.config(bos.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Reboot(t.Context(), bos.Request{Name: "v1amb", Template: tmplName, Limit: []string{label}})
	if !errors.Is(err, bos.ErrAmbiguous) || !errors.Is(err, batch.ErrPermanent) {
		t.Errorf("two candidates: %v, want ErrAmbiguous", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// flakyStore fails its first Put.
type flakyStore struct {
	bos.MemoryV1Store
	mu     sync.Mutex
	failed bool
}

func (f *flakyStore) Put(ctx context.Context, r bos.V1Record) error {
	f.mu.Lock()
	first := !f.failed
	f.failed = true
	f.mu.Unlock()
	if first {
		return errors.New("disk full")
	}
	return f.MemoryV1Store.Put(ctx, r)
}

func TestV1RecordLostIsNotRecreated(t *testing.T) {
	e := newEnv(t, envOptions{v1: true})
	e.hsm.SetGroup(label, xnames()[0])
	store := &flakyStore{}
	c, err := bos.NewV1(bos.V1Config{Config: e.config(bos.Config{}), Sessions: store})
	if err != nil {
		t.Fatal(err)
	}
	req := bos.Request{Name: "v1lost", Template: tmplName, Limit: []string{xnames()[0]}}
	if err := c.Reboot(t.Context(), req); err == nil || !strings.Contains(err.Error(), "disk full") || errors.Is(err, batch.ErrPermanent) {
		t.Fatalf("Reboot whose record failed: %v; want the store's error, transient", err)
	}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Fatalf("Reboot again: %v", err)
	}
	if n := len(e.srv.V1Sessions()); n != 1 {
		t.Errorf("%d v1 sessions, want 1", n)
	}
	if _, ok, _ := store.Get(t.Context(), "v1lost"); !ok {
		t.Error("the record was not written on the second try")
	}
}

// TestV1ReadsStartedSession: the answer to a create is lost and the
// session has started by the time the client looks for it, so the client
// reads a started session with GET /v1/session/{id}, whose answer carries
// real metadata and a relative status_link, as BOS v1 sends them. The
// test server checks that answer against the published document (with the
// allowances of internal/apispec/mismatches.go).
func TestV1ReadsStartedSession(t *testing.T) {
	var e *env
	e = newEnv(t, envOptions{v1: true, wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v1/session") {
				e.clk.Advance(time.Minute) // BOA starts before the client looks
			}
		})
	}})
	e.hsm.SetGroup(label, xnames()[0])
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Status, Method: "POST", After: true})
	c, err := bos.NewV1(bos.V1Config{Config: e.config(bos.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	req := bos.Request{Name: "v1started", Template: tmplName, Limit: []string{xnames()[0]}}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Fatalf("Reboot with a lost answer: %v", err)
	}
	if got := e.srv.Requests()["GET /v1/session/{id}"]; got == 0 {
		t.Fatal("the client never read the session it made")
	}
	ids := e.srv.V1Sessions()
	if len(ids) != 1 {
		t.Fatalf("%d v1 sessions, want 1", len(ids))
	}
	st := follow(t, e, c, "v1started", xnames()[:1])
	if st.Nodes[xnames()[0]].Result != bos.ResultSucceeded {
		t.Errorf("status %+v", st)
	}
}

// A BOS v1 status that lists boot sets by the thousand (a broken or
// hostile server) is refused with one error, not read with a request per
// boot set; a boot set listed twice is read once.
func TestV1StatusBootSetsBounded(t *testing.T) {
	var mu sync.Mutex
	reads := map[string]int{}
	var sets []string
	e := newEnv(t, envOptions{v1: true, wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
			if r.Method == http.MethodGet && len(parts) >= 4 && parts[len(parts)-2] == "status" {
				mu.Lock()
				reads[parts[len(parts)-1]]++
				mu.Unlock()
			}
			if r.Method == http.MethodGet && len(parts) >= 3 && parts[len(parts)-1] == "status" && sets != nil {
				w.Header().Set("Content-Type", "application/json")
				b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"in_progress": true, "complete": false, "error_count": 0,
					"start_time": "2026-01-05T08:00:00Z"}, "boot_sets": sets})
				w.Write(b)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	e.hsm.SetGroup(label, xnames()[0])
	c, err := bos.NewV1(bos.V1Config{Config: e.config(bos.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reboot(t.Context(), bos.Request{Name: "v1many", Template: tmplName, Limit: []string{xnames()[0]}}); err != nil {
		t.Fatal(err)
	}
	for range bos.MaxV1BootSets + 1 {
		sets = append(sets, fmt.Sprintf("bs%d", len(sets)))
	}
	if _, err := c.Status(t.Context(), "v1many", xnames()[:1]); err == nil || !strings.Contains(err.Error(), "MaxV1BootSets") {
		t.Errorf("Status of a session listing %d boot sets: %v; want an error naming the bound", len(sets), err)
	}
	if len(reads) != 0 {
		t.Errorf("%d boot sets read; want none", len(reads))
	}
	sets = []string{"compute", "compute", "uan", "compute"}
	if _, err := c.Status(t.Context(), "v1many", xnames()[:1]); err != nil {
		t.Fatalf("Status: %v", err)
	}
	if want := map[string]int{"compute": 1, "uan": 1}; !cmp.Equal(reads, want) {
		t.Errorf("boot sets read %v; want each once: %v", reads, want)
	}
}
