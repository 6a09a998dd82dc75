package auth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/internal/redirtest"
	"github.com/crus-go/crus/internal/testtls"
)

// renderings returns every way a value holding a secret may be shown:
// fmt's verbs, slog through the text and JSON handlers, and JSON.
func renderings(t *testing.T, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out["fmt "+verb] = fmt.Sprintf(verb, v)
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("msg", slog.Any("v", v), "w", v)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("msg", slog.Any("v", v), "w", v)
	out["slog text"], out["slog json"] = text.String(), js.String()
	if b, err := json.Marshal(v); err == nil {
		out["json"] = string(b)
	}
	return out
}

func checkHidden(t *testing.T, what string, v any, secrets ...string) {
	t.Helper()
	for how, s := range renderings(t, v) {
		for _, sec := range secrets {
			if strings.Contains(s, sec) || strings.Contains(s, fmt.Sprintf("%x", sec)) {
				t.Errorf("%s shown with %s reveals %q: %s", what, how, sec, s)
			}
		}
	}
}

func TestSecretsAreNeverShown(t *testing.T) {
	const tok = "static-bearer-token-1234"
	checkHidden(t, "StaticToken", auth.StaticToken(tok), tok)
	checkHidden(t, "a config holding a StaticToken", struct {
		URL    string
		Tokens auth.TokenSource
	}{"https://x", auth.StaticToken(tok)}, tok)

	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("file-bearer-token-5678\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ft := &auth.FileToken{Path: path}
	if got, err := ft.Token(t.Context()); err != nil || got != "file-bearer-token-5678" {
		t.Fatalf("FileToken.Token = %q, %v", got, err)
	}
	checkHidden(t, "FileToken", ft, "file-bearer-token-5678")
	checkHidden(t, "a config holding a FileToken", struct{ Tokens auth.TokenSource }{ft}, "file-bearer-token-5678")
	checkHidden(t, "a struct holding a FileToken unexported", struct{ tokens *auth.FileToken }{ft}, "file-bearer-token-5678")
	if !strings.Contains(fmt.Sprint(ft), path) {
		t.Errorf("FileToken prints as %q, want its path", fmt.Sprint(ft))
	}

	k := &keycloak{lifetime: 300}
	cc := newCC(t, k, &clock{now: time.Unix(1e9, 0)})
	cc.TokenURL = strings.Replace(cc.TokenURL, "http://", "http://user:url-password-999@", 1)
	if got, err := cc.Token(t.Context()); err != nil || got != "tok-1" {
		t.Fatalf("ClientCredentials.Token = %q, %v", got, err)
	}
	checkHidden(t, "ClientCredentials", cc, secret, "url-password-999")
	checkHidden(t, "a config holding ClientCredentials", struct{ Tokens auth.TokenSource }{cc}, secret, "url-password-999")
}

func TestKeycloakErrorIsCleanedAndCapped(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		desc := "bad client " + r.PostForm.Get("client_secret") + "\ntime=2030-01-01 level=INFO msg=\"forged line\"\n" + strings.Repeat("x", 900_000)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": desc})
	}))
	defer ts.Close()
	cc := &auth.ClientCredentials{TokenURL: ts.URL, ClientID: "admin-client", ClientSecret: secret}
	_, err := cc.Token(t.Context())
	if !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("error %v, want auth.ErrUnauthorized", err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, secret) || len(msg) > 4096 {
		t.Errorf("Keycloak's description kept raw (%d bytes, newline %v, secret %v): %.300q",
			len(msg), strings.ContainsAny(msg, "\n\r"), strings.Contains(msg, secret), msg)
	}
	if !strings.Contains(msg, "invalid_client: bad client [REDACTED] time=") || !strings.Contains(msg, "bytes cut)") {
		t.Errorf("error %.300q does not keep the start of Keycloak's reason, marked as cut", msg)
	}
}

func TestClientCredentialsRefusesRedirects(t *testing.T) {
	for _, status := range redirtest.Statuses {
		for _, own := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/own-client=%v", status, own), func(t *testing.T) {
				trap := redirtest.NewTrap(t)
				kc := httptest.NewServer(redirtest.Redirect(status, trap.URL))
				defer kc.Close()
				cc := &auth.ClientCredentials{TokenURL: kc.URL + "/token", ClientID: "admin-client", ClientSecret: secret}
				var mine *http.Client
				if own {
					mine = &http.Client{Timeout: time.Minute}
					cc.HTTPClient = mine
				}
				tok, err := cc.Token(t.Context())
				if !errors.Is(err, auth.ErrRedirect) || tok != "" {
					t.Fatalf("Token = %q, %v; want no token and an error matching auth.ErrRedirect", tok, err)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(status)) || !strings.Contains(msg, "redirects are refused") ||
					!strings.Contains(msg, "token endpoint") || strings.Contains(msg, secret) {
					t.Errorf("error %q: want the token endpoint, the status %d and that redirects are refused, without the secret", msg, status)
				}
				trap.Check(t, secret)
				if own && mine.CheckRedirect != nil {
					t.Error("the caller's http.Client was changed")
				}
			})
		}
	}
}

// An https service redirecting to plain http on the same host: Go's client
// would keep the Authorization header (same host); the CA-pinned client
// must not follow at all.
func TestNewHTTPClientRefusesRedirects(t *testing.T) {
	trap := redirtest.NewTrap(t)
	ts := httptest.NewTLSServer(redirtest.Redirect(http.StatusFound, trap.URL))
	defer ts.Close()
	hc, err := auth.NewHTTPClient(testtls.ServerCA(t, ts))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/apis/smd/hsm/v2/groups", nil)
	req.Header.Set("Authorization", "Bearer pinned-client-token")
	resp, err := hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	var re *auth.RedirectError
	if !errors.As(err, &re) || re.StatusCode != http.StatusFound || !strings.HasPrefix(re.Location, trap.URL) {
		t.Errorf("Do = %v; want a *auth.RedirectError for the 302 to %s", err, trap.URL)
	}
	trap.Check(t, "pinned-client-token")
}

func TestRefuseRedirectsCopies(t *testing.T) {
	jar := http.Client{Timeout: 7 * time.Second}
	got := auth.RefuseRedirects(&jar)
	if got == &jar || jar.CheckRedirect != nil || got.Timeout != 7*time.Second || got.CheckRedirect == nil {
		t.Errorf("RefuseRedirects: %+v from %+v; want a copy with CheckRedirect set, the original unchanged", got, jar)
	}
	if auth.RefuseRedirects(nil).CheckRedirect == nil {
		t.Error("RefuseRedirects(nil) follows redirects")
	}
}
