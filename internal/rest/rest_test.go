package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/internal/redirtest"
	"github.com/crus-go/crus/internal/text"
)

// rotating is a token source that issues a new token after Invalidate.
type rotating struct {
	mu  sync.Mutex
	n   int
	tok string
}

func (r *rotating) Token(context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tok == "" {
		r.n++
		r.tok = fmt.Sprintf("token-%d-abcdef", r.n)
	}
	return r.tok, nil
}

func (r *rotating) Invalidate(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tok == tok {
		r.tok = ""
	}
}

func newClient(t *testing.T, h http.Handler, o Options) *Client {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	o.Service = "test"
	o.BaseURL = ts.URL + "/api"
	if o.RetryWait == 0 {
		o.RetryWait = time.Millisecond
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRefusesBadSettings(t *testing.T) {
	for _, o := range []Options{
		{},
		{BaseURL: "api-gw-service-nmn.local/apis/bos"},
		{BaseURL: "ftp://host/x"},
		{BaseURL: "https://user:pw@host/x"},
		{BaseURL: "https://host/x?q=1"},
		{BaseURL: "https://host/x", Tenant: "a\r\nX-Evil: 1"},
		{BaseURL: "https://host/x", HTTPClient: &http.Client{}, CAFile: "/etc/ca.pem"},
		{BaseURL: "https://host/x", CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

func TestSafeRequestsAreRetried(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}), Options{})
	var out struct{ OK bool }
	resp, err := c.Do(t.Context(), Request{Method: "GET", Path: "/x", Out: &out, Safe: true})
	if err != nil || resp.Status != 200 || !out.OK || calls.Load() != 3 {
		t.Errorf("Do = %v, %v (ok %v) after %d calls; want 200 after 3", resp, err, out.OK, calls.Load())
	}
}

func TestUnsafeRequestsAreSentOnce(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "boom", http.StatusInternalServerError)
	}), Options{})
	resp, err := c.Do(t.Context(), Request{Method: "POST", Path: "/x", Body: map[string]int{"a": 1}})
	if err != nil || resp.Status != 500 || calls.Load() != 1 {
		t.Errorf("Do = %v, %v after %d calls; want the 500 after 1 call", resp, err, calls.Load())
	}
}

func TestRetriesGiveUp(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "busy", http.StatusBadGateway)
	}), Options{Retries: 2})
	resp, err := c.Do(t.Context(), Request{Method: "GET", Path: "/x", Safe: true})
	if err != nil || resp.Status != 502 || calls.Load() != 3 {
		t.Errorf("Do = %v, %v after %d calls; want the 502 after 3 calls", resp, err, calls.Load())
	}
}

func TestDroppedConnection(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		fmt.Fprint(w, "{}")
	}), Options{})
	if resp, err := c.Do(t.Context(), Request{Method: "GET", Path: "/x", Safe: true}); err != nil || resp.Status != 200 {
		t.Errorf("safe request after a dropped connection: %v, %v; want a retry and 200", resp, err)
	}
	calls.Store(0)
	if _, err := c.Do(t.Context(), Request{Method: "POST", Path: "/x"}); err == nil || calls.Load() != 1 {
		t.Errorf("unsafe request after a dropped connection: %v after %d calls; want an error and no retry", err, calls.Load())
	}
}

// roundTripFunc is an in-memory transport, so that tests can run in a
// synctest bubble, where time only moves when every goroutine waits.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A server that never answers: each attempt ends at Timeout, in virtual
// time, so no load on the machine can make the timeout fire early or late.
func TestAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		hang := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		c, err := New(Options{Service: "test", BaseURL: "http://hsm.invalid/api", HTTPClient: &http.Client{Transport: hang},
			Timeout: 20 * time.Millisecond, Retries: 1, RetryWait: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = c.Do(t.Context(), Request{Method: "GET", Path: "/x", Safe: true})
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "no answer within 20ms") || !errors.Is(err, context.DeadlineExceeded) || calls.Load() != 2 {
			t.Errorf("hanging server: %v after %d calls; want a timeout error after 2", err, calls.Load())
		}
		// Two attempts of 20ms and one backoff of about 1ms.
		if took < 40*time.Millisecond || took > 45*time.Millisecond {
			t.Errorf("gave up after %s of virtual time, want two timeouts of 20ms and a short backoff", took)
		}
	})
}

func TestCanceledContext(t *testing.T) {
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}), Options{RetryWait: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, Request{Method: "GET", Path: "/x", Safe: true})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("context ending during the backoff: %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if _, err := c.Do(ctx, Request{Method: "GET", Path: "/x", Safe: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v, want context.Canceled", err)
	}
}

func TestBodyLimit(t *testing.T) {
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("x", 2048))
	}), Options{MaxBody: 1024})
	if _, err := c.Do(t.Context(), Request{Method: "GET", Path: "/x", Safe: true}); err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes") {
		t.Errorf("oversized answer: %v", err)
	}
}

func TestMalformedJSON(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ids":["x1000c0s0b0n0",`)
	}), Options{Retries: 1})
	var out struct{ IDs []string }
	_, err := c.Do(t.Context(), Request{Method: "GET", Path: "/x", Out: &out, Safe: true})
	if err == nil || !strings.Contains(err.Error(), "malformed JSON") || calls.Load() != 2 {
		t.Errorf("truncated JSON: %v after %d calls; want a malformed-JSON error after a retry", err, calls.Load())
	}
	c2 := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>login page</html>")
	}), Options{Retries: -1})
	if _, err := c2.Do(t.Context(), Request{Method: "GET", Path: "/x", Out: &out, Safe: true}); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("HTML answer: %v", err)
	}
}

func TestHeadersAndReauth(t *testing.T) {
	tokens := &rotating{}
	var seen []string
	var mu sync.Mutex
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get(TenantHeader) != "vcluster-blue" || r.URL.Path != "/api/x/a%2Fb" && r.URL.RawPath != "/api/x/a%2Fb" {
			http.Error(w, "bad request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		if r.Header.Get("Authorization") == "Bearer token-1-abcdef" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			// A proxy that echoes the request's header.
			fmt.Fprintf(w, `{"title":"Unauthorized","detail":"token expired: %s"}`, r.Header.Get("Authorization"))
			return
		}
		fmt.Fprint(w, "{}")
	}), Options{Tokens: tokens, Tenant: "vcluster-blue"})
	resp, err := c.Do(t.Context(), Request{Method: "POST", Path: "/x/a%2Fb"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("Do = %v, %v; want 200 after one fresh token", resp, err)
	}
	if len(seen) != 2 || seen[0] != "Bearer token-1-abcdef" || seen[1] != "Bearer token-2-abcdef" {
		t.Errorf("Authorization headers %v; want token-1 then token-2", seen)
	}

	// A token that stays refused: one re-try, then the 401 is the answer,
	// and its text never shows the token.
	stuck := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"title":"Unauthorized","detail":"bad token %s"}`, r.Header.Get("Authorization"))
	}), Options{Tokens: auth.StaticToken("static-secret-token")})
	resp, err = stuck.Do(t.Context(), Request{Method: "GET", Path: "/x", Safe: true})
	if err != nil || resp.Status != 401 {
		t.Fatalf("Do = %v, %v; want the 401", resp, err)
	}
	if p := resp.Problem(); strings.Contains(p.String(), "static-secret-token") || !strings.Contains(p.Detail, "[REDACTED]") {
		t.Errorf("problem %q shows the token", p)
	}
}

func TestProblem(t *testing.T) {
	for _, tc := range []struct {
		ct, body string
		want     Problem
	}{
		{"application/problem+json", `{"type":"about:blank","title":"Not Found","detail":"No such group: blue","status":404}`,
			Problem{Type: "about:blank", Title: "Not Found", Detail: "No such group: blue", Status: 404}},
		{"application/json", `"Session Template Name invalid: nope"`, Problem{Title: "Not Found", Detail: "Session Template Name invalid: nope", Status: 404}},
		{"text/html", "<html>\n<body>gateway\ttimeout</body></html>", Problem{Title: "Not Found", Detail: "<html> <body>gateway timeout</body></html>", Status: 404}},
		{"application/problem+json", `{"title":"Not Found","detail":{"nested":1}}`, Problem{Title: "Not Found", Detail: `{"nested":1}`, Status: 404}},
	} {
		r := &Response{Status: 404, Header: http.Header{"Content-Type": {tc.ct}}, Body: []byte(tc.body)}
		if got := r.Problem(); got != tc.want {
			t.Errorf("Problem of %s = %+v, want %+v", tc.body, got, tc.want)
		}
	}
	long := &Response{Status: 500, Body: []byte(strings.Repeat("é", 400_000))}
	if d := long.Problem().Detail; len(d) > text.MaxDetail || !strings.HasSuffix(d, "bytes cut)") {
		t.Errorf("long detail not cut: %d bytes", len(d))
	}
}

func TestRedirectsAreRefused(t *testing.T) {
	for _, status := range redirtest.Statuses {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			trap := redirtest.NewTrap(t)
			var calls atomic.Int32
			redirect := redirtest.Redirect(status, trap.URL)
			c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				redirect.ServeHTTP(w, r)
			}), Options{Tokens: auth.StaticToken("bearer-token-not-for-the-trap")})
			resp, err := c.Do(t.Context(), Request{Method: "POST", Path: "/groups", Body: map[string]string{"label": "x"}, Safe: true})
			if !errors.Is(err, auth.ErrRedirect) || resp != nil {
				t.Fatalf("Do = %v, %v; want an error matching auth.ErrRedirect", resp, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "test: POST /groups: answered "+fmt.Sprint(status)) || !strings.Contains(msg, "redirects are refused") {
				t.Errorf("error %q: want the service, the request, the status and that redirects are refused", msg)
			}
			if calls.Load() != 1 {
				t.Errorf("%d requests to the service, want 1 (a redirect is not retried)", calls.Load())
			}
			trap.Check(t, "bearer-token-not-for-the-trap")
		})
	}
}

// An https service that redirects to plain http on the same host: Go's
// client keeps the Authorization header for the same host. The caller's
// client must not be changed.
func TestRedirectToPlainHTTPIsRefused(t *testing.T) {
	trap := redirtest.NewTrap(t)
	ts := httptest.NewTLSServer(redirtest.Redirect(http.StatusTemporaryRedirect, trap.URL))
	defer ts.Close()
	mine := ts.Client()
	c, err := New(Options{Service: "hsm", BaseURL: ts.URL + "/apis/smd/hsm/v2", HTTPClient: mine, Tokens: auth.StaticToken("bearer-token-https-only")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(t.Context(), Request{Method: "GET", Path: "/groups/blue", Safe: true}); !errors.Is(err, auth.ErrRedirect) {
		t.Errorf("Do: %v, want an error matching auth.ErrRedirect", err)
	}
	trap.Check(t, "bearer-token-https-only")
	if mine.CheckRedirect != nil {
		t.Error("the caller's http.Client was changed")
	}
}

func TestNewNeverShowsAPassword(t *testing.T) {
	for _, base := range []string{"https://user:url-secret-pw@host/x", "ftp://user:url-secret-pw@host/x", "https://user:url-secret-pw@host/x\x7f"} {
		_, err := New(Options{Service: "hsm", BaseURL: base})
		if err == nil || strings.Contains(err.Error(), "url-secret-pw") {
			t.Errorf("New(%q): %v; want an error without the password", base, err)
		}
	}
}

// Retry-After may be an HTTP-date as well as a number of seconds (RFC 9110,
// section 10.2.3); both are honoured, up to the longest retry wait.
func TestRetryAfterDate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header func(now time.Time) string
		want   time.Duration
	}{
		{"seconds", func(time.Time) string { return "3" }, 3 * time.Second},
		{"date", func(now time.Time) string { return now.Add(3 * time.Second).UTC().Format(http.TimeFormat) }, 3 * time.Second},
		{"past date", func(now time.Time) string { return now.Add(-time.Hour).UTC().Format(http.TimeFormat) }, 0},
		{"far date", func(now time.Time) string { return now.Add(time.Hour).UTC().Format(http.TimeFormat) }, maxRetryWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
					h := http.Header{"Content-Type": {"application/json"}}
					status := http.StatusOK
					if calls.Add(1) == 1 {
						status = http.StatusServiceUnavailable
						h.Set("Retry-After", tc.header(time.Now()))
					}
					return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
				})
				c, err := New(Options{Service: "test", BaseURL: "http://bos.invalid/api", HTTPClient: &http.Client{Transport: rt},
					Retries: 1, RetryWait: time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				resp, err := c.Do(t.Context(), Request{Method: "GET", Path: "/x", Safe: true})
				took := time.Since(start)
				if err != nil || resp.Status != http.StatusOK || calls.Load() != 2 {
					t.Fatalf("503 then 200: %v, %v after %d calls; want 200 after 2", resp, err, calls.Load())
				}
				if took < tc.want || took > tc.want+10*time.Millisecond {
					t.Errorf("retried after %s of virtual time; want %s", took, tc.want)
				}
			})
		})
	}
}
