package slurm_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
	"github.com/crus-go/crus/wlm/wlmtest"
)

func newREST(t *testing.T, c *slurmtest.Cluster, fallback *slurm.CLI, client *http.Client) *slurm.REST {
	t.Helper()
	m, err := slurm.NewREST(slurm.RESTConfig{
		URL: c.RESTURL, User: "root", Token: fallback.TokenSource("root", time.Hour),
		Fallback: fallback, HTTPClient: client, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRESTConformance(t *testing.T) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 4, REST: true})
	wlmtest.RunConformanceTestsWithOptions(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
		return &harness{c: c, m: newREST(t, c, newCLI(t, c, nil), nil)}, nil
	}, conformanceOptions)
}

func TestRESTConfigValidate(t *testing.T) {
	for _, cfg := range []slurm.RESTConfig{{}, {URL: "ftp://x"}, {URL: "http://x", Version: "0.0.38"}, {URL: "http://x", User: "a\nb"}, {URL: "http://x", CAFile: "/nonexistent.pem"}} {
		if _, err := slurm.NewREST(cfg); err == nil {
			t.Errorf("NewREST(%+v) accepted", cfg)
		}
	}
}

func TestRESTVersionDiscovery(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2, REST: true})
	cli := newCLI(t, c, nil)
	m := newREST(t, c, cli, nil)
	v, err := m.Version(ctx)
	if err != nil || v != "v0.0.38" {
		t.Fatalf("Version = %q, %v; want v0.0.38, the highest version Slurm 22.05 serves", v, err)
	}
	want, err := cli.Nodes(ctx, c.Names())
	if err != nil {
		t.Fatal(err)
	}
	// The older versions 22.05 still serves read the same.
	for _, v := range []string{"v0.0.37", "v0.0.38"} {
		m, err := slurm.NewREST(slurm.RESTConfig{URL: c.RESTURL, Version: v, User: "root", Token: cli.TokenSource("root", time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Nodes(ctx, c.Names())
		if err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s reads differently from scontrol (-scontrol +rest):\n%s", v, diff)
		}
	}
}

// TestRESTAuthErrors checks that every way slurmrestd refuses credentials
// is an error matching ErrAuth that says what is wrong, for the whole call
// (no node is blamed) and worth retrying (not permanent).
func TestRESTAuthErrors(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2, REST: true})
	good, err := c.Token(ctx, "root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	short, err := c.Token(ctx, "root", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A well-formed token with a signature slurmctld did not make.
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not the signature of this cluster"))
	time.Sleep(2 * time.Second) // let the short token expire
	for _, tt := range []struct {
		name  string
		user  string
		token slurm.TokenSource
		want  string
	}{
		{"no token", "root", nil, "401 Unauthorized"},
		{"no user", "", slurm.StaticToken(good), "401 Unauthorized"},
		{"not a JWT", "root", slurm.StaticToken("garbage"), "token malformed"},
		{"expired", "root", slurm.StaticToken(short), "token expired at"},
		{"forged", "root", slurm.StaticToken(forged), "unless signed with another key"},
	} {
		m, err := slurm.NewREST(slurm.RESTConfig{URL: c.RESTURL, Version: "v0.0.38", User: tt.user, Token: tt.token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Nodes(ctx, c.Names())
		perNode, _ := batch.Split(err)
		if !errors.Is(err, slurm.ErrAuth) || !strings.Contains(err.Error(), tt.want) || batch.IsPermanent(err) || len(perNode) > 0 {
			t.Errorf("%s: error %v; want one matching slurm.ErrAuth, not permanent, not per node, saying %q", tt.name, err, tt.want)
		}
		if strings.Contains(fmt.Sprint(err), good) || strings.Contains(fmt.Sprint(err), short) {
			t.Errorf("%s: the error shows the token", tt.name)
		}
		t.Logf("%s: %v", tt.name, err)
	}
}

// TestRESTOverTLS puts the real slurmrestd behind a TLS proxy, as sites
// do, and checks that RESTConfig.CAFile is what makes the certificate
// trusted.
func TestRESTOverTLS(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2, REST: true})
	target, err := url.Parse(c.RESTURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	proxy.StartTLS()
	defer proxy.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := newCLI(t, c, nil)
	m, err := slurm.NewREST(slurm.RESTConfig{URL: proxy.URL, User: "root", Token: cli.TokenSource("root", time.Hour), CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := m.Nodes(ctx, c.Names())
	if err != nil || len(nodes) != 2 {
		t.Fatalf("over TLS with the CA: %v, %v", nodes, err)
	}
	m, err = slurm.NewREST(slurm.RESTConfig{URL: proxy.URL, User: "root", Token: cli.TokenSource("root", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var uerr *tls.CertificateVerificationError
	if _, err := m.Nodes(ctx, c.Names()); !errors.As(err, &uerr) {
		t.Errorf("over TLS without the CA: %v; want a certificate verification error", err)
	}
}

// TestRESTWritesWithoutFallback: slurmrestd 22.05 cannot update nodes, so
// without a Fallback the writes are unsupported, and nothing changes.
func TestRESTWritesWithoutFallback(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2, REST: true})
	cli := newCLI(t, c, nil)
	m, err := slurm.NewREST(slurm.RESTConfig{URL: c.RESTURL, User: "root", Token: cli.TokenSource("root", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Drain(ctx, c.Names(), "crus test")
	if !errors.Is(err, wlm.ErrUnsupported) || !batch.IsPermanent(err) {
		t.Errorf("Drain without Fallback on v0.0.38: %v; want wlm.ErrUnsupported", err)
	}
	nodes, err := cli.Nodes(ctx, c.Names())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !n.InService() {
			t.Errorf("node %s changed: %s", n.Name, n.Condition())
		}
	}
}
