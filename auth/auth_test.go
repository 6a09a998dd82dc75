package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/testtls"
)

const secret = "s3cr3t-client-secret"

// keycloak is a token endpoint issuing "tok-1", "tok-2", ...
type keycloak struct {
	issued   atomic.Int32
	lifetime int // expires_in, seconds
	fail     atomic.Int32
	gate     chan struct{} // if set, each request waits for it
}

func (k *keycloak) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if k.gate != nil {
		<-k.gate
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case k.fail.Load() > 0:
		k.fail.Add(-1)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
	case r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != "admin-client" || r.PostForm.Get("client_secret") != secret:
		w.WriteHeader(http.StatusUnauthorized)
		// A careless server that echoes what it got.
		fmt.Fprintf(w, `{"error":"unauthorized_client","error_description":"Invalid client secret %s"}`, r.PostForm.Get("client_secret"))
	default:
		n := k.issued.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "expires_in": k.lifetime, "token_type": "Bearer"})
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newCC(t *testing.T, k *keycloak, clk *clock) *auth.ClientCredentials {
	t.Helper()
	ts := httptest.NewServer(k)
	t.Cleanup(ts.Close)
	return &auth.ClientCredentials{
		TokenURL: auth.KeycloakTokenURL(ts.URL+"/keycloak", "shasta"), ClientID: "admin-client", ClientSecret: secret,
		HTTPClient: ts.Client(), Now: clk.Now,
	}
}

func TestKeycloakTokenURL(t *testing.T) {
	got := auth.KeycloakTokenURL("https://api-gw-service-nmn.local/keycloak/", "shasta")
	if want := "https://api-gw-service-nmn.local/keycloak/realms/shasta/protocol/openid-connect/token"; got != want {
		t.Errorf("KeycloakTokenURL = %q, want %q", got, want)
	}
}

func TestClientCredentialsOneFetchForManyCallers(t *testing.T) {
	k := &keycloak{lifetime: 300, gate: make(chan struct{})}
	cc := newCC(t, k, &clock{now: time.Unix(1e9, 0)})
	var wg sync.WaitGroup
	toks := make([]string, 50)
	errs := make([]error, 50)
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = cc.Token(t.Context()) })
	}
	time.Sleep(50 * time.Millisecond) // let them all queue behind the one request
	close(k.gate)
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != "tok-1" {
			t.Errorf("caller %d: %q, %v; want tok-1", i, toks[i], errs[i])
		}
	}
	if n := k.issued.Load(); n != 1 {
		t.Errorf("%d token requests for 50 concurrent callers, want 1", n)
	}
}

func TestClientCredentialsRefreshesBeforeExpiry(t *testing.T) {
	k := &keycloak{lifetime: 300}
	clk := &clock{now: time.Unix(1e9, 0)}
	cc := newCC(t, k, clk)
	get := func() string {
		t.Helper()
		tok, err := cc.Token(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if got := get(); got != "tok-1" {
		t.Fatalf("first token %q", got)
	}
	clk.Add(269 * time.Second) // default margin: 300s/10 = 30s
	if got := get(); got != "tok-1" {
		t.Errorf("at 269s of 300s: %q, want the cached tok-1", got)
	}
	clk.Add(2 * time.Second)
	if got := get(); got != "tok-2" {
		t.Errorf("at 271s of 300s: %q, want a fresh tok-2", got)
	}
	// Keycloak down while the token is still valid: keep using it.
	k.fail.Store(1)
	clk.Add(280 * time.Second)
	if got := get(); got != "tok-2" {
		t.Errorf("refresh failing, token still valid: %q, want tok-2", got)
	}
	// Refused token: dropped, and the next call fetches.
	cc.Invalidate("tok-2")
	if got := get(); got != "tok-3" {
		t.Errorf("after Invalidate: %q, want tok-3", got)
	}
	cc.Invalidate("tok-1") // stale: changes nothing
	if got := get(); got != "tok-3" {
		t.Errorf("after a stale Invalidate: %q, want tok-3", got)
	}
}

func TestClientCredentialsRefusedSecretIsNotShown(t *testing.T) {
	k := &keycloak{lifetime: 300}
	cc := newCC(t, k, &clock{now: time.Unix(1e9, 0)})
	cc.ClientSecret = "wrong-" + secret
	_, err := cc.Token(t.Context())
	if !errors.Is(err, auth.ErrUnauthorized) || !errors.Is(err, batch.ErrPermanent) {
		t.Fatalf("refused secret: error %v, want auth.ErrUnauthorized (permanent)", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret: %q", err)
	}
	if !strings.Contains(err.Error(), "unauthorized_client") {
		t.Errorf("error %q does not give Keycloak's reason", err)
	}
	for _, s := range []string{fmt.Sprint(cc), fmt.Sprintf("%+v", cc), fmt.Sprintf("%#v", cc)} {
		if strings.Contains(s, secret) {
			t.Errorf("formatting shows the secret: %s", s)
		}
	}
}

func TestClientCredentialsCallerGivesUp(t *testing.T) {
	k := &keycloak{lifetime: 300, gate: make(chan struct{})}
	cc := newCC(t, k, &clock{now: time.Unix(1e9, 0)})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := cc.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller whose context ends: %v, want context.DeadlineExceeded", err)
	}
	close(k.gate)
	if tok, err := cc.Token(t.Context()); err != nil || tok != "tok-1" {
		t.Errorf("next caller: %q, %v; want tok-1 from the request the first one started", tok, err)
	}
}

func TestClientCredentialsSecretFile(t *testing.T) {
	k := &keycloak{lifetime: 300}
	cc := newCC(t, k, &clock{now: time.Unix(1e9, 0)})
	cc.ClientSecret = ""
	cc.ClientSecretFile = filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(cc.ClientSecretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := cc.Token(t.Context()); err != nil || tok != "tok-1" {
		t.Errorf("Token = %q, %v", tok, err)
	}
}

func TestStaticToken(t *testing.T) {
	if tok, err := auth.StaticToken("abc").Token(t.Context()); err != nil || tok != "abc" {
		t.Errorf("Token = %q, %v", tok, err)
	}
	if _, err := auth.StaticToken("").Token(t.Context()); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("empty static token: %v, want auth.ErrNoToken", err)
	}
	if s := fmt.Sprintf("%v %s %#v", auth.StaticToken("abcdef"), auth.StaticToken("abcdef"), auth.StaticToken("abcdef")); strings.Contains(s, "abcdef") {
		t.Errorf("formatting shows the token: %s", s)
	}
}

func TestFileToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	ft := &auth.FileToken{Path: path}
	if _, err := ft.Token(t.Context()); err == nil {
		t.Error("missing token file: no error")
	}
	write := func(s string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write("  first-token\n", time.Unix(1e9, 0))
	if tok, err := ft.Token(t.Context()); err != nil || tok != "first-token" {
		t.Errorf("Token = %q, %v; want first-token", tok, err)
	}
	write("second-token\n", time.Unix(1e9+60, 0))
	if tok, err := ft.Token(t.Context()); err != nil || tok != "second-token" {
		t.Errorf("after the file changed: %q, %v; want second-token", tok, err)
	}
	write("\n", time.Unix(1e9+120, 0))
	if _, err := ft.Token(t.Context()); !errors.Is(err, auth.ErrNoToken) {
		t.Errorf("empty token file: %v, want auth.ErrNoToken", err)
	}
}

func TestNewHTTPClient(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer ts.Close()

	hc, err := auth.NewHTTPClient(testtls.ServerCA(t, ts))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(ts.URL)
	if err != nil {
		t.Fatalf("server signed by the CA: %v", err)
	}
	resp.Body.Close()

	wrong, err := auth.NewHTTPClient(testtls.UnrelatedCA(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Get(ts.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("server not signed by the CA: %v, want a certificate error", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewHTTPClient(empty); err == nil {
		t.Error("CA file without PEM certificates: no error")
	}
	if _, err := auth.NewHTTPClient(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("missing CA file: no error")
	}
}

// A token that cannot go in a header (it would fail every request in the
// HTTP client, which no server refuses, so it was never invalidated) is
// refused at fetch; and no token is kept longer than MaxTokenLifetime,
// whatever expires_in says (1e9 s kept one 31 years).
func TestClientCredentialsUnsendableAndEndlessTokens(t *testing.T) {
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch i := n.Add(1); i {
		case 1:
			fmt.Fprint(w, `{"access_token":"abc\ndef","token_type":"Bearer","expires_in":1e9}`)
		case 2:
			fmt.Fprint(w, `{"access_token":"abc def","token_type":"Bearer","expires_in":300}`)
		default:
			fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":1e9}`, i)
		}
	}))
	defer ts.Close()
	clk := &clock{now: time.Unix(1e9, 0)}
	cc := &auth.ClientCredentials{TokenURL: ts.URL, ClientID: "admin-client", ClientSecret: secret, HTTPClient: ts.Client(), Now: clk.Now}
	for i := range 2 {
		if tok, err := cc.Token(t.Context()); err == nil || !strings.Contains(err.Error(), "cannot be sent") {
			t.Errorf("answer %d: %q, %v; want it refused", i+1, tok, err)
		}
	}
	if tok, err := cc.Token(t.Context()); err != nil || tok != "tok-3" {
		t.Fatalf("after the bad answers: %q, %v; want tok-3", tok, err)
	}
	clk.Add(auth.MaxTokenLifetime)
	if tok, err := cc.Token(t.Context()); err != nil || tok != "tok-4" {
		t.Errorf("a day later, expires_in 1e9: %q, %v; want a fresh tok-4", tok, err)
	}
}
