package slurm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/redirtest"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
)

const restToken = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDAsInN1biI6InJvb3QifQ.c2lnbmF0dXJl"

func TestRESTRefusesRedirects(t *testing.T) {
	for _, status := range redirtest.Statuses {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			trap := redirtest.NewTrap(t)
			srv := httptest.NewServer(redirtest.Redirect(status, trap.URL))
			defer srv.Close()
			m, err := slurm.NewREST(slurm.RESTConfig{URL: srv.URL, Version: "v0.0.38", User: "root", Token: slurm.StaticToken(restToken)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Nodes(t.Context(), []string{"nid000001"})
			if !errors.Is(err, auth.ErrRedirect) {
				t.Fatalf("Nodes: %v; want an error matching auth.ErrRedirect", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "slurmrestd GET /slurm/v0.0.38/nodes: answered "+fmt.Sprint(status)) ||
				!strings.Contains(msg, "redirects are refused") {
				t.Errorf("error %q: want slurmrestd, the request, the status and that redirects are refused", msg)
			}
			trap.Check(t, restToken)
		})
	}
}

// A TLS proxy in front of slurmrestd that redirects to plain http on the
// same host; the caller's client must not be changed.
func TestRESTRefusesRedirectToPlainHTTP(t *testing.T) {
	trap := redirtest.NewTrap(t)
	proxy := httptest.NewTLSServer(redirtest.Redirect(http.StatusTemporaryRedirect, trap.URL))
	defer proxy.Close()
	mine := proxy.Client()
	m, err := slurm.NewREST(slurm.RESTConfig{URL: proxy.URL, Version: "v0.0.38", User: "root", Token: slurm.StaticToken(restToken), HTTPClient: mine})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.JobEnds(t.Context(), []string{"nid000001"}); !errors.Is(err, auth.ErrRedirect) {
		t.Errorf("JobEnds: %v; want an error matching auth.ErrRedirect", err)
	}
	trap.Check(t, restToken)
	if mine.CheckRedirect != nil {
		t.Error("the caller's http.Client was changed")
	}
}

// slurmrestd's error answers (or a proxy's) may echo the token, hold
// newlines that forge log lines, and be large: errors carry them redacted,
// on one line, capped.
func TestRESTErrorBodiesAreScrubbed(t *testing.T) {
	forged := "\ntime=2030-01-01T00:00:00Z level=ERROR msg=\"forged\"\n"
	for name, answer := range map[string]func(w http.ResponseWriter, tok string){
		"slurm errors": func(w http.ResponseWriter, tok string) {
			w.WriteHeader(http.StatusInternalServerError)
			var errs []map[string]any
			for i := range 50 {
				errs = append(errs, map[string]any{"error": "bad token " + tok + forged + strings.Repeat("x", 5000), "errno": 1000 + i})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
		},
		"proxy page": func(w http.ResponseWriter, tok string) {
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>upstream refused X-SLURM-USER-TOKEN: "+tok+forged+strings.Repeat("y", 1<<20)+"</html>")
		},
		"auth refusal": func(w http.ResponseWriter, tok string) {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"error":"token `+tok+` refused\n","errno":-1}]}`)
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				answer(w, r.Header.Get("X-SLURM-USER-TOKEN"))
			}))
			defer srv.Close()
			var logs bytes.Buffer
			m, err := slurm.NewREST(slurm.RESTConfig{URL: srv.URL, Version: "v0.0.38", User: "root", Token: slurm.StaticToken(restToken),
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Nodes(t.Context(), []string{"nid000001"})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, restToken) || strings.ContainsAny(msg, "\n\r") || len(msg) > 8<<10 {
				t.Errorf("error not scrubbed (%d bytes, token %v, newline %v): %.400q", len(msg), strings.Contains(msg, restToken), strings.ContainsAny(msg, "\n\r"), msg)
			}
			if !strings.Contains(msg, "[REDACTED]") {
				t.Errorf("error %.400q does not keep slurmrestd's words (with the token redacted)", msg)
			}
			if strings.Contains(logs.String(), restToken) {
				t.Errorf("the log shows the token: %.400s", logs.String())
			}
		})
	}
}

func TestRESTConfigNeverShowsSecrets(t *testing.T) {
	cfg := slurm.RESTConfig{URL: "https://proxy-user:proxy-password@slurm.example:6820", User: "root", Token: slurm.StaticToken(restToken)}
	if _, err := slurm.NewREST(cfg); err == nil || strings.Contains(err.Error(), "proxy-password") {
		t.Errorf("NewREST with a password in the URL: %v; want it refused without showing the password", err)
	}
	cfg.URL = "https://slurm.example:6820"
	m, err := slurm.NewREST(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{cfg, &cfg, m, struct{ Config slurm.RESTConfig }{cfg}} {
		shown := []string{fmt.Sprintf("%v", v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), fmt.Sprintf("%s", v)}
		var tb, jb bytes.Buffer
		slog.New(slog.NewTextHandler(&tb, nil)).Info("x", slog.Any("v", v))
		slog.New(slog.NewJSONHandler(&jb, nil)).Info("x", slog.Any("v", v))
		shown = append(shown, tb.String(), jb.String())
		for _, s := range shown {
			if strings.Contains(s, restToken) || strings.Contains(s, "proxy-password") {
				t.Errorf("%T shown as %s", v, s)
			}
		}
	}
	if s := fmt.Sprint(cfg); !strings.Contains(s, "slurm.example:6820") || !strings.Contains(s, "Token: set") {
		t.Errorf("RESTConfig prints as %q; want its URL and that a token is set", s)
	}
}

// The slurmrestd adapter holds reasons to the same rules as scontrol's:
// cleaned, and refused per node (permanently) when too long, before any
// request.
func TestRESTReasons(t *testing.T) {
	var posts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet:
			io.WriteString(w, `{"nodes":[{"name":"nid000001","state":["IDLE"]}],"errors":[]}`)
		default:
			b, _ := io.ReadAll(r.Body)
			posts = append(posts, string(b))
			io.WriteString(w, `{"errors":[]}`)
		}
	}))
	defer srv.Close()
	m, err := slurm.NewREST(slurm.RESTConfig{URL: srv.URL, Version: "v0.0.40", User: "root", Token: slurm.StaticToken(restToken), MaxConcurrentWrites: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Fail(t.Context(), []string{"nid000001", "nid000002"}, strings.Repeat("x", slurm.MaxReason+1))
	perNode, rest := batch.Split(err)
	if rest != nil || len(perNode) != 2 || !errors.Is(perNode["nid000001"], wlm.ErrInvalidArgument) || !batch.IsPermanent(perNode["nid000002"]) {
		t.Errorf("Fail with a reason of MaxReason+1 bytes: per node %v, rest %v", perNode, rest)
	}
	if len(posts) != 0 {
		t.Errorf("requests sent: %q", posts)
	}
	if err := m.Drain(t.Context(), []string{"nid000001"}, "crus s1:\tboot\nfailed"); err != nil {
		t.Fatal(err)
	}
	if len(posts) != 1 || posts[0] != `{"state":["DRAIN"],"reason":"crus s1: boot failed"}` {
		t.Errorf("Drain sent %q; want the reason cleaned", posts)
	}
}

// An answer of 200 without the list asked for (a proxy's page, another
// service, a version that names it otherwise) is an error for the whole
// call: read as an empty list, it said every node asked about was gone,
// and crus failed every node in flight.
func TestRESTAnswerWithoutList(t *testing.T) {
	for _, body := range []string{`{}`, `null`, `{"meta":{"plugin":{}},"errors":[]}`, `{"nodes":null,"errors":[]}`, `{"jobs":[],"errors":[]}`} {
		t.Run(body, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, body)
			}))
			defer srv.Close()
			m, err := slurm.NewREST(slurm.RESTConfig{URL: srv.URL, Version: "v0.0.38", User: "root", Token: slurm.StaticToken(restToken)})
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"nid000001", "nid000002"}
			nodes, err := m.Nodes(t.Context(), names)
			perNode, _ := batch.Split(err)
			if err == nil || errors.Is(err, wlm.ErrNodeNotFound) || len(perNode) != 0 || len(nodes) != 0 {
				t.Errorf("Nodes: %v, %v; want one error for the whole call", nodes, err)
			}
			if err != nil && !strings.Contains(err.Error(), `no list of "nodes"`) && !strings.Contains(err.Error(), "want a list") {
				t.Errorf("Nodes: %v; want it to say the list is missing", err)
			}
			if _, err := m.JobEnds(t.Context(), names); err == nil || errors.Is(err, wlm.ErrNodeNotFound) {
				t.Errorf("JobEnds: %v; want one error for the whole call", err)
			}
		})
	}
}

// Nor may a jobs answer without its list read as every node free.
func TestRESTJobsAnswerWithoutList(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/nodes") {
			io.WriteString(w, `{"nodes":[{"name":"nid000001","state":["ALLOCATED"]}],"errors":[]}`)
			return
		}
		io.WriteString(w, `{"meta":{},"errors":[]}`)
	}))
	defer srv.Close()
	m, err := slurm.NewREST(slurm.RESTConfig{URL: srv.URL, Version: "v0.0.38", User: "root", Token: slurm.StaticToken(restToken)})
	if err != nil {
		t.Fatal(err)
	}
	if ends, err := m.JobEnds(t.Context(), []string{"nid000001"}); err == nil || !strings.Contains(err.Error(), `no list of "jobs"`) {
		t.Errorf("JobEnds: %v, %v; want an error that the jobs list is missing", ends, err)
	}
}

// A token slurmrestd refused (slurmctld restarted with another key, the
// token revoked) is not sent again: the next request asks the source for
// another, and CLI.TokenSource runs scontrol token at once rather than
// when a third of its life is left. Output that is not one token is an
// error, not a token that every request then fails to send.
func TestRESTRenewsARefusedToken(t *testing.T) {
	var issued int
	var outputs = map[int]string{}
	run := func(ctx context.Context, c slurm.Command) ([]byte, []byte, error) {
		if len(c.Args) == 0 || c.Args[0] != "token" {
			return nil, nil, fmt.Errorf("unexpected command %v", c.Args)
		}
		issued++
		if out, ok := outputs[issued]; ok {
			return []byte(out), nil, nil
		}
		return []byte(fmt.Sprintf("SLURM_JWT=tok%d\n", issued)), nil, nil
	}
	cli, err := slurm.NewCLI(slurm.Config{Runner: run})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-SLURM-USER-TOKEN")
		seen = append(seen, tok)
		w.Header().Set("Content-Type", "application/json")
		if tok == "tok1" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"error":"invalid token","error_number":1}]}`)
			return
		}
		io.WriteString(w, `{"nodes":[{"name":"nid000001","state":["IDLE"]}],"errors":[]}`)
	}))
	defer srv.Close()
	m, err := slurm.NewREST(slurm.RESTConfig{URL: srv.URL, Version: "v0.0.38", User: "root", Token: cli.TokenSource("root", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"nid000001"}
	if _, err := m.Nodes(t.Context(), names); !errors.Is(err, slurm.ErrAuth) {
		t.Fatalf("first Nodes: %v; want ErrAuth", err)
	}
	for range 2 {
		if _, err := m.Nodes(t.Context(), names); err != nil {
			t.Fatalf("Nodes after a refusal: %v", err)
		}
	}
	if want := []string{"tok1", "tok2", "tok2"}; !slices.Equal(seen, want) || issued != 2 {
		t.Errorf("tokens sent %q after %d scontrol token runs; want %q after 2", seen, issued, want)
	}

	// scontrol printing two tokens, or one with a space, gives no token.
	for _, out := range []string{"SLURM_JWT=a.b.c\nSLURM_JWT=d.e.f\n", "SLURM_JWT=a.b c\n"} {
		issued, outputs = 0, map[int]string{1: out}
		src := cli.TokenSource("root", time.Hour)
		if tok, err := src(t.Context()); err == nil {
			t.Errorf("scontrol token printing %q: token %q; want an error", out, tok)
		}
		if tok, err := src(t.Context()); err != nil || tok != "tok2" {
			t.Errorf("next call: %q, %v; want a token fetched anew", tok, err)
		}
	}

	// A source of its own that gives such a token: the request is not sent.
	seen = nil
	m, err = slurm.NewREST(slurm.RESTConfig{URL: srv.URL, Version: "v0.0.38", User: "root", Token: slurm.StaticToken("a.b\r\nX-Evil: 1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Nodes(t.Context(), names); !errors.Is(err, slurm.ErrAuth) || strings.Contains(err.Error(), "Evil") || len(seen) != 0 {
		t.Errorf("Nodes with an unsendable token: %v, %d requests; want ErrAuth, no request, the token not shown", err, len(seen))
	}
}
