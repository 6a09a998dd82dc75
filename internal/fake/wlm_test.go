package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/wlmtest"
)

type harness struct {
	w *fake.World
}

var _ wlmtest.Rebooter = (*harness)(nil)

func (h *harness) Manager() wlm.Manager { return h.w.WLM() }

func (h *harness) Nodes() []string {
	var names []string
	for _, x := range h.w.XNames() {
		n, _ := h.w.Node(x)
		names = append(names, n.Name)
	}
	return names
}

func (h *harness) StartJob(_ context.Context, name string) (func(context.Context) error, error) {
	x := h.xname(name)
	if err := h.w.StartJob(x, 1000*time.Hour, 1000*time.Hour); err != nil {
		return nil, err
	}
	return func(context.Context) error { h.w.EndJobs(x); return nil }, nil
}

func (h *harness) xname(name string) string {
	for _, x := range h.w.XNames() {
		if n, _ := h.w.Node(x); n.Name == name {
			return x
		}
	}
	return ""
}

// PowerOff and PowerOn make the harness a wlmtest.Rebooter.
func (h *harness) PowerOff(_ context.Context, name string) error {
	h.w.PowerOff(h.xname(name))
	return nil
}

func (h *harness) PowerOn(_ context.Context, name string) error {
	h.w.PowerOn(h.xname(name))
	return nil
}

func (h *harness) Sleep(_ context.Context, d time.Duration) error { h.w.Advance(d); return nil }
func (h *harness) Close(context.Context) error                    { return nil }

func TestWLMConformance(t *testing.T) {
	wlmtest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
		return &harness{w: fake.NewCluster(fake.ClusterOptions{Nodes: 4})}, nil
	})
}
