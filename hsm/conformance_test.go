package hsm_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/hsm/hsmtest"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/hsmserver"
)

// testNodes are the suite's nodes: xnames of a Cray EX cabinet, NIDs from
// 101 so that they differ from indexes.
func testNodes() []hsmtest.Node {
	out := make([]hsmtest.Node, 5)
	for i := range out {
		out[i] = hsmtest.Node{XName: fake.XName(i), NID: 101 + i}
	}
	return out
}

const unknownXName = "x9999c7s31b1n1"

// fakeHarness runs the suite against the in-memory HSM.
type fakeHarness struct{ w *fake.World }

func (h fakeHarness) Store() hsm.GroupStore       { return h.w.HSM() }
func (h fakeHarness) Nodes() []hsmtest.Node       { return testNodes() }
func (h fakeHarness) UnknownNode() string         { return unknownXName }
func (h fakeHarness) Close(context.Context) error { return nil }
func (h fakeHarness) MakeGroup(_ context.Context, label string, members ...string) error {
	h.w.AddGroup(label, members...)
	return nil
}

func TestConformanceFake(t *testing.T) {
	hsmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (hsmtest.Harness, error) {
		w := fake.New(fake.Options{})
		for _, n := range testNodes() {
			w.AddNode(n.XName, n.NID)
		}
		return fakeHarness{w}, nil
	})
}

// httpHarness runs the suite against the HTTP client talking to the
// spec-validating HSM server.
type httpHarness struct {
	srv *hsmserver.Server
	c   *hsm.Client
}

func (h httpHarness) Store() hsm.GroupStore       { return h.c }
func (h httpHarness) Nodes() []hsmtest.Node       { return testNodes() }
func (h httpHarness) UnknownNode() string         { return unknownXName }
func (h httpHarness) Close(context.Context) error { return nil }
func (h httpHarness) MakeGroup(_ context.Context, label string, members ...string) error {
	h.srv.SetGroup(label, members...)
	return nil
}

func newHTTPHarness(t *testing.T, opts hsmserver.Options, cfg hsm.Config) (*hsmserver.Server, *hsm.Client) {
	t.Helper()
	srv, base := hsmserver.NewTest(t, opts)
	for _, n := range testNodes() {
		srv.AddComponent(n.XName, n.NID)
	}
	cfg.BaseURL = base
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := hsm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func TestConformanceHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts hsmserver.Options
		cfg  hsm.Config
	}{
		{"Cray", hsmserver.Options{}, hsm.Config{}},
		{"OpenCHAMI", hsmserver.Options{OpenCHAMI: true}, hsm.Config{}},
		{"OpenCHAMIPerNode", hsmserver.Options{OpenCHAMI: true}, hsm.Config{Members: hsm.MembersPerNode}},
		{"CrayTenantToken", hsmserver.Options{Token: "hsmtest-token"}, hsm.Config{Tenant: "vcluster-a", Tokens: staticToken("hsmtest-token")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hsmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (hsmtest.Harness, error) {
				srv, c := newHTTPHarness(t, tc.opts, tc.cfg)
				return httpHarness{srv, c}, nil
			})
		})
	}
}

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }
func (s staticToken) String() string                        { return fmt.Sprintf("token(%d chars)", len(s)) }
