package hsm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/apispec"
	"github.com/crus-go/crus/internal/faultinject"
	"github.com/crus-go/crus/internal/hsmserver"
	"github.com/crus-go/crus/internal/testtls"
)

// env is an HSM test server behind a fault injector, and a client of it.
type env struct {
	srv    *hsmserver.Server
	faults *faultinject.Injector
	c      *hsm.Client
	url    string
	logs   *strings.Builder
}

type setup struct {
	opts hsmserver.Options
	cfg  hsm.Config
	tls  bool
}

func newEnv(t *testing.T, s setup) *env {
	t.Helper()
	s.opts.Report = func(v apispec.Violation) { t.Errorf("hsmserver: %s", v) }
	srv, err := hsmserver.New(s.opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range testNodes() {
		srv.AddComponent(n.XName, n.NID)
	}
	in := &faultinject.Injector{}
	ts := httptest.NewUnstartedServer(in.Wrap(srv))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are expected
	if s.tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	logs := &strings.Builder{}
	cfg := s.cfg
	cfg.BaseURL = ts.URL + srv.Base()
	if cfg.RetryWait == 0 {
		cfg.RetryWait = time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if s.tls && cfg.CAFile == "" && cfg.HTTPClient == nil {
		cfg.CAFile = testtls.ServerCA(t, ts)
	}
	c, err := hsm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, faults: in, c: c, url: ts.URL, logs: logs}
}

func x(i int) string { return testNodes()[i].XName }

func TestBulkPutOnOpenCHAMI(t *testing.T) {
	e := newEnv(t, setup{opts: hsmserver.Options{OpenCHAMI: true}})
	e.srv.SetGroup("blue", x(0))
	if err := e.c.AddMembers(t.Context(), "blue", []string{x(1), x(2), x(3)}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.RemoveMembers(t.Context(), "blue", []string{x(0), x(2)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.srv.Group("blue"); !cmp.Equal(got, []string{x(1), x(3)}) {
		t.Errorf("group = %v", got)
	}
	want := map[string]int{"GET /groups/{label}/members": 2, "PUT /groups/{label}/members": 2}
	if diff := cmp.Diff(want, e.srv.Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestPerNodeOnCray(t *testing.T) {
	e := newEnv(t, setup{})
	e.srv.SetGroup("blue", x(0))
	if err := e.c.AddMembers(t.Context(), "blue", []string{x(0), x(1), x(2)}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddMembers(t.Context(), "blue", []string{x(3)}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.RemoveMembers(t.Context(), "blue", []string{x(0), x(4)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.srv.Group("blue"); !cmp.Equal(got, []string{x(1), x(2), x(3)}) {
		t.Errorf("group = %v", got)
	}
	// One probe of the bulk PUT, then per-node requests only for what
	// changes: x(0) was a member already, x(4) never was.
	want := map[string]int{
		"GET /groups/{label}/members":            3,
		"PUT /groups/{label}/members":            1,
		"POST /groups/{label}/members":           3,
		"DELETE /groups/{label}/members/{xname}": 1,
	}
	if diff := cmp.Diff(want, e.srv.Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestExclusiveGroupConflict(t *testing.T) {
	for _, openchami := range []bool{false, true} {
		t.Run(fmt.Sprintf("OpenCHAMI=%v", openchami), func(t *testing.T) {
			e := newEnv(t, setup{opts: hsmserver.Options{OpenCHAMI: openchami}})
			e.srv.SetExclusiveGroup("red", "colour", x(0))
			e.srv.SetExclusiveGroup("green", "colour")
			err := e.c.AddMembers(t.Context(), "green", []string{x(0), x(1)})
			perNode, rest := batch.Split(err)
			if rest != nil || len(perNode) != 1 || !errors.Is(perNode[x(0)], hsm.ErrMemberConflict) {
				t.Fatalf("AddMembers with an exclusive clash: %v; want a per-node hsm.ErrMemberConflict for %s", err, x(0))
			}
			var ae *hsm.APIError
			if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict {
				t.Errorf("error %v: want an *hsm.APIError with status 409", err)
			}
			if got, _ := e.srv.Group("green"); !cmp.Equal(got, []string{x(1)}) {
				t.Errorf("green = %v, want %s alone", got, x(1))
			}
		})
	}
}

func TestAPIErrorUnwraps(t *testing.T) {
	e := newEnv(t, setup{})
	_, err := e.c.Members(t.Context(), "nope")
	var ae *hsm.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Detail != "No such group: nope" || !errors.Is(err, hsm.ErrGroupNotFound) {
		t.Fatalf("Members of an unknown group: %#v; want APIError 404 matching ErrGroupNotFound", err)
	}
	if want := `hsm: group not found: read the members of group "nope": 404 Not Found: No such group: nope`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	// A malformed label is refused before any request.
	before := e.srv.Requests()
	if _, err := e.c.Members(t.Context(), "Not A Label"); !errors.Is(err, hsm.ErrInvalidLabel) || !errors.Is(err, hsm.ErrGroupNotFound) {
		t.Errorf("malformed label: %v", err)
	}
	if err := e.c.AddMembers(t.Context(), "blue", []string{"nid000001"}); !errors.Is(err, hsm.ErrInvalidXName) {
		t.Errorf("AddMembers of a NodeName: %v, want ErrInvalidXName", err)
	}
	if !cmp.Equal(before, e.srv.Requests()) {
		t.Errorf("requests were sent for refused input: %v -> %v", before, e.srv.Requests())
	}
}

func TestNIDs(t *testing.T) {
	e := newEnv(t, setup{cfg: hsm.Config{QueryBatch: 2}})
	e.srv.AddComponent("x3000c0s19b1n0", -1) // no NID
	in := []string{x(0), "x1000c0s00b0n01", x(2), x(3), x(4), "x3000c0s19b1n0", x(0)}
	got, err := e.c.NIDs(t.Context(), in)
	perNode, rest := batch.Split(err)
	if rest != nil || len(perNode) != 1 || !errors.Is(perNode["x3000c0s19b1n0"], hsm.ErrNoNID) {
		t.Errorf("NIDs error %v; want ErrNoNID for x3000c0s19b1n0 alone", err)
	}
	// "x1000c0s00b0n01" is x(1) with leading zeros: HSM's normal form.
	want := map[string]int{x(0): 101, "x1000c0s00b0n01": 102, x(2): 103, x(3): 104, x(4): 105}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NIDs (-want +got):\n%s", diff)
	}
	if n := e.srv.Requests()["POST /State/Components/Query"]; n != 3 {
		t.Errorf("%d queries for 6 distinct xnames in batches of 2, want 3", n)
	}
}

func TestNormalizeXName(t *testing.T) {
	for in, want := range map[string]string{
		"x3000c0s19b1n0":  "x3000c0s19b1n0",
		"X3000C0S07B1N00": "x3000c0s7b1n0",
		"x0c0s0b0n0":      "x0c0s0b0n0",
		"x1000c0s10b0n1":  "x1000c0s10b0n1",
		"blue":            "blue",
	} {
		if got := hsm.NormalizeXName(in); got != want {
			t.Errorf("NormalizeXName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []hsm.Config{
		{},
		{BaseURL: "http://h/x", Concurrency: -1},
		{BaseURL: "http://h/x", Timeout: -time.Second},
		{BaseURL: "http://h/x", Members: 7},
		{BaseURL: "not a url"},
	} {
		if _, err := hsm.New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

// Fault tests: each fault gives a clear error or a safe retry, and never a
// change that is half made without the caller knowing.

func TestFaultServerErrorAfterApplyIsRetried(t *testing.T) {
	e := newEnv(t, setup{})
	e.srv.SetGroup("blue")
	// The POST is applied, then the answer is lost in a 500: the retry
	// gets 409 ("already a member"), which is verified and is success.
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Status, Method: "POST", After: true})
	if err := e.c.AddMembers(t.Context(), "blue", []string{x(0)}); err != nil {
		t.Fatalf("AddMembers after a lost answer: %v", err)
	}
	if got, _ := e.srv.Group("blue"); !cmp.Equal(got, []string{x(0)}) {
		t.Errorf("group = %v", got)
	}
	if e.faults.Pending() != 0 {
		t.Error("the fault did not strike")
	}
}

func TestFaultDroppedAndTruncated(t *testing.T) {
	for _, k := range []faultinject.Kind{faultinject.Drop, faultinject.Truncate, faultinject.Malformed} {
		for _, m := range []string{"GET", "POST"} {
			for _, after := range []bool{false, true} {
				if m == "POST" && k == faultinject.Malformed {
					continue // the client does not read the body of a 201
				}
				t.Run(fmt.Sprintf("%s/%s/after=%v", k, m, after), func(t *testing.T) {
					e := newEnv(t, setup{})
					e.srv.SetGroup("blue", x(0))
					e.faults.Arm(faultinject.Fault{Kind: k, Method: m, After: after, Times: 2})
					if err := e.c.AddMembers(t.Context(), "blue", []string{x(1)}); err != nil {
						t.Fatalf("AddMembers with two %s faults: %v", k, err)
					}
					if got, _ := e.srv.Group("blue"); !cmp.Equal(got, []string{x(0), x(1)}) {
						t.Errorf("group = %v", got)
					}
					if e.faults.Pending() != 0 {
						t.Errorf("%d strikes of the fault left", e.faults.Pending())
					}
				})
			}
		}
	}
}

func TestFaultPersistentFailureIsClear(t *testing.T) {
	e := newEnv(t, setup{cfg: hsm.Config{Retries: 2}})
	e.srv.SetGroup("blue", x(0))
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Status, Status: 503, Method: "GET", Times: 3})
	err := e.c.AddMembers(t.Context(), "blue", []string{x(1)})
	var ae *hsm.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 503 || errors.Is(err, batch.ErrPermanent) {
		t.Fatalf("AddMembers while HSM answers 503: %v; want a transient APIError 503", err)
	}
	if perNode, _ := batch.Split(err); len(perNode) != 0 {
		t.Errorf("a server failure blamed on nodes: %v", perNode)
	}
	if got, _ := e.srv.Group("blue"); !cmp.Equal(got, []string{x(0)}) {
		t.Errorf("group changed after a failed call: %v", got)
	}
	// The same call again, once HSM is back, completes the change.
	if err := e.c.AddMembers(t.Context(), "blue", []string{x(1)}); err != nil {
		t.Fatal(err)
	}
}

func TestFaultTimeout(t *testing.T) {
	e := newEnv(t, setup{cfg: hsm.Config{Timeout: 50 * time.Millisecond, Retries: -1}})
	e.srv.SetGroup("blue", x(0))
	e.faults.Arm(faultinject.Fault{Kind: faultinject.Hang, Method: "GET"})
	start := time.Now()
	_, err := e.c.Members(t.Context(), "blue")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("Members from a hanging HSM: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %s", d)
	}
	// A caller's deadline bounds the whole call, retries included.
	e2 := newEnv(t, setup{})
	e2.faults.Arm(faultinject.Fault{Kind: faultinject.Hang, Times: 100})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := e2.c.Members(ctx, "blue"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v", err)
	}
}

func TestFaultExpiredToken(t *testing.T) {
	var issued atomic.Int32
	kc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("kc-token-%d", n), "expires_in": 3600, "token_type": "Bearer"})
	}))
	defer kc.Close()
	tokens := &auth.ClientCredentials{TokenURL: kc.URL, ClientID: "admin-client", ClientSecret: "kc-secret"}
	e := newEnv(t, setup{opts: hsmserver.Options{Token: "kc-token-1"}, cfg: hsm.Config{Tokens: tokens}})
	e.srv.SetGroup("blue", x(0))
	if _, err := e.c.Members(t.Context(), "blue"); err != nil {
		t.Fatal(err)
	}
	// The token is revoked before its expiry: HSM answers 401; the client
	// drops it, gets kc-token-2 and tries again, once.
	e.srv.SetToken("kc-token-2")
	if err := e.c.AddMembers(t.Context(), "blue", []string{x(1)}); err != nil {
		t.Fatalf("AddMembers with a revoked token: %v", err)
	}
	if issued.Load() != 2 {
		t.Errorf("%d tokens issued, want 2", issued.Load())
	}
	// A token the service never takes is a clear, permanent error.
	e.srv.SetToken("something-else")
	_, err := e.c.Members(t.Context(), "blue")
	if !errors.Is(err, auth.ErrUnauthorized) || !errors.Is(err, batch.ErrPermanent) {
		t.Errorf("refused credentials: %v, want auth.ErrUnauthorized", err)
	}
	for _, s := range []string{err.Error(), e.logs.String()} {
		if strings.Contains(s, "kc-token-") || strings.Contains(s, "kc-secret") {
			t.Errorf("a token or secret leaked: %s", s)
		}
	}
}

func TestFaultWrongCA(t *testing.T) {
	e := newEnv(t, setup{tls: true, cfg: hsm.Config{CAFile: ""}})
	e.srv.SetGroup("blue", x(0))
	if err := e.c.AddMembers(t.Context(), "blue", []string{x(1)}); err != nil {
		t.Fatalf("with the server's CA: %v", err)
	}
	wrong, err := hsm.New(hsm.Config{BaseURL: e.url + e.srv.Base(), CAFile: testtls.UnrelatedCA(t), RetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = wrong.AddMembers(t.Context(), "blue", []string{x(2)})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("AddMembers to a server the CA did not sign: %v, want a certificate error", err)
	}
	if got, _ := e.srv.Group("blue"); !cmp.Equal(got, []string{x(0), x(1)}) {
		t.Errorf("group changed through an untrusted connection: %v", got)
	}
}

// lockedWriter serializes writes of concurrent requests' log records.
type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
