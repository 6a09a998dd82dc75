package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

// schedHarness adds queued jobs to the harness: a job waits until the
// fake would let a scheduler start it (TryStartJob), tried on every Sleep.
type schedHarness struct {
	harness
	queue []*queuedJob
}

type queuedJob struct {
	h       *schedHarness
	x       string
	limit   time.Duration
	started bool
	stopped bool
}

func (h *schedHarness) Submit(_ context.Context, name string, limit time.Duration) (wlmtest.Job, error) {
	j := &queuedJob{h: h, x: h.xname(name), limit: limit}
	h.queue = append(h.queue, j)
	return j, h.try()
}

func (h *schedHarness) try() error {
	for _, j := range h.queue {
		if j.started || j.stopped {
			continue
		}
		ok, err := h.w.TryStartJob(j.x, 1000*time.Hour, j.limit)
		if err != nil {
			return err
		}
		j.started = ok
	}
	return nil
}

func (h *schedHarness) Sleep(ctx context.Context, d time.Duration) error {
	h.w.Advance(d)
	return h.try()
}

func (j *queuedJob) Running(context.Context) (bool, error) { return j.started && !j.stopped, nil }

func (j *queuedJob) Stop(context.Context) error {
	if j.started && !j.stopped {
		j.h.w.EndJobs(j.x)
	}
	j.stopped = true
	return nil
}

func TestWLMScheduler(t *testing.T) {
	wlmtest.RunSchedulerTests(t, func(ctx context.Context, t *testing.T) (wlmtest.SchedulerHarness, error) {
		return &schedHarness{harness: harness{w: fake.NewCluster(fake.ClusterOptions{Nodes: 4})}}, nil
	}, wlmtest.Options{})
}

// TestNodesInto: NodesInto answers what Nodes does, by position; a node
// Nodes leaves out (unknown) is the zero Node, whatever the slice held,
// and is named in the error; a slice of the wrong length is refused.
func TestNodesInto(t *testing.T) {
	ctx := context.Background()
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 4, Busy: 0.5})
	require.NoError(t, w.WLM().Drain(ctx, []string{"nid000002"}, "crus test"))
	names := []string{"nid000004", "nid000009", "nid000002", "nid000001"}
	want, wantErr := w.WLM().Nodes(ctx, names)
	out := []wlm.Node{{Name: "stale"}, {Name: "nid000009", Drain: true}, {}, {}}
	err := w.WLM().NodesInto(ctx, names, out)
	require.Error(t, err)
	assert.Equal(t, wantErr.Error(), err.Error())
	assert.ErrorIs(t, err, wlm.ErrNodeNotFound)
	assert.Equal(t, []wlm.Node{want[0], {}, want[1], want[2]}, out)
	assert.True(t, out[2].Drain)

	assert.ErrorContains(t, w.WLM().NodesInto(ctx, names, out[:3]), "3 nodes for 4 names")
}
