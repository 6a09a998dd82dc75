package bos_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/bos/bostest"
	"github.com/crus-go/crus/internal/bosserver"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/hsmserver"
)

const (
	tmplName = "compute-upgrade"
	label    = "crus-upgrading"
)

func xnames() []string {
	out := make([]string, 6)
	for i := range out {
		out[i] = fake.XName(i)
	}
	return out
}

// fakeHarness runs the suite against the in-memory BOS.
type fakeHarness struct{ w *fake.World }

func (h fakeHarness) Orchestrator() bos.Orchestrator { return h.w.BOS() }
func (h fakeHarness) Template() string               { return tmplName }
func (h fakeHarness) Label() string                  { return label }
func (h fakeHarness) Nodes() []string                { return xnames() }
func (h fakeHarness) Close(context.Context) error    { return nil }
func (h fakeHarness) SetGroup(_ context.Context, members ...string) error {
	h.w.AddGroup(label, members...)
	return nil
}
func (h fakeHarness) FailBoot(x, reason string) {
	h.w.SetFaults(x, fake.NodeFaults{BootFails: true, BootError: reason})
}
func (h fakeHarness) Reboots(x string) int {
	n, _ := h.w.Node(x)
	return n.Reboots
}
func (h fakeHarness) Advance(_ context.Context, d time.Duration) error {
	h.w.Advance(d)
	return nil
}

func TestConformanceFake(t *testing.T) {
	bostest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (bostest.Harness, error) {
		w := fake.New(fake.Options{})
		for i, x := range xnames() {
			w.AddNode(x, i+1)
		}
		w.AddGroup(label)
		w.AddTemplate(tmplName, label)
		return fakeHarness{w}, nil
	})
}

// clock is a manual clock for the test servers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// httpHarness runs the suite against an HTTP client talking to the
// spec-validating BOS server, which reads groups from an HSM server.
type httpHarness struct {
	hsm   *hsmserver.Server
	bos   *bosserver.Server
	clk   *clock
	orch  bos.Orchestrator
	nodes []string
}

func (h *httpHarness) Orchestrator() bos.Orchestrator { return h.orch }
func (h *httpHarness) Template() string               { return tmplName }
func (h *httpHarness) Label() string                  { return label }
func (h *httpHarness) Nodes() []string                { return h.nodes }
func (h *httpHarness) Close(context.Context) error    { return nil }
func (h *httpHarness) SetGroup(_ context.Context, members ...string) error {
	h.hsm.SetGroup(label, members...)
	return nil
}
func (h *httpHarness) FailBoot(x, reason string) { h.bos.FailBoot(x, reason) }
func (h *httpHarness) Reboots(x string) int      { return h.bos.Reboots(x) }
func (h *httpHarness) Advance(_ context.Context, d time.Duration) error {
	h.clk.Advance(d)
	return nil
}

type variant struct {
	name  string
	v1    bool
	token string
	cfg   bos.Config
}

// newHTTP builds the servers and a client (v2, or v1 when v.v1).
func newHTTP(t *testing.T, v variant) *httpHarness {
	t.Helper()
	h := &httpHarness{clk: newClock(), nodes: xnames()}
	h.hsm, _ = hsmserver.NewTest(t, hsmserver.Options{})
	for i, x := range h.nodes {
		h.hsm.AddComponent(x, i+1)
	}
	h.hsm.SetGroup(label)
	var base string
	h.bos, base = bosserver.NewTest(t, bosserver.Options{
		V1: v.v1, Now: h.clk.Now, PendingDelay: 10 * time.Second, Groups: h.hsm.Group, Token: v.token,
	})
	h.bos.AddTemplate(tmplName, []string{label}, nil)
	cfg := v.cfg
	cfg.BaseURL = base
	cfg.RetryWait = time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	if v.v1 {
		h.orch, err = bos.NewV1(bos.V1Config{Config: cfg})
	} else {
		h.orch, err = bos.New(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestConformanceHTTP(t *testing.T) {
	for _, v := range []variant{
		{name: "v2"},
		{name: "v2TenantToken", token: "bostest-token", cfg: bos.Config{Tenant: "vcluster-a", Tokens: auth.StaticToken("bostest-token")}},
		{name: "v1", v1: true},
	} {
		t.Run(v.name, func(t *testing.T) {
			bostest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (bostest.Harness, error) {
				return newHTTP(t, v), nil
			})
		})
	}
}
