package slurm_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// harness runs the conformance suite on a real cluster. One cluster serves
// every subtest: Close puts it back as it was (jobs cancelled, nodes idle).
type harness struct {
	c *slurmtest.Cluster
	m wlm.Manager
}

func (h *harness) Manager() wlm.Manager { return h.m }
func (h *harness) Nodes() []string      { return h.c.Names()[:4] }

func (h *harness) StartJob(ctx context.Context, node string) (func(context.Context) error, error) {
	id, err := h.c.Submit(ctx, []string{node}, time.Hour, 2*time.Hour)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return h.c.Cancel(ctx, id) }, nil
}

func (h *harness) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (h *harness) Close(ctx context.Context) error { return h.c.Reset(ctx) }

var _ wlmtest.Rebooter = (*harness)(nil)

// PowerOff stops the node's slurmd, as a reboot does. Slurm notices when
// its next ping fails (about 14 s with slurmtest's SlurmdTimeout).
func (h *harness) PowerOff(_ context.Context, node string) error { return h.c.StopNode(node) }

// PowerOn starts the node's slurmd again with -b: it registers as booted
// now, and Slurm sets it DOWN "Node unexpectedly rebooted", keeping a
// drain or a fail and its reason.
func (h *harness) PowerOn(_ context.Context, node string) error { return h.c.StartNode(node, true) }

// conformanceOptions suit a real cluster: Slurm changes most states within
// a second or two (a cancelled job completes in about 2 s), but sees a
// stopped slurmd only at its next ping.
var conformanceOptions = wlmtest.Options{Settle: 60 * time.Second, Poll: 200 * time.Millisecond}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newCLI(t *testing.T, c *slurmtest.Cluster, run slurm.Runner) *slurm.CLI {
	t.Helper()
	m, err := slurm.NewCLI(slurm.Config{SlurmConf: c.Conf, Runner: run, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCLIConformance(t *testing.T) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 4})
	wlmtest.RunConformanceTestsWithOptions(t, func(ctx context.Context, t *testing.T) (wlmtest.Harness, error) {
		return &harness{c: c, m: newCLI(t, c, nil)}, nil
	}, conformanceOptions)
}

// counter counts the Slurm commands an adapter runs and the HTTP requests
// it makes, around the real ones.
type counter struct {
	mu   sync.Mutex
	cmds []string
	reqs []string
}

func (c *counter) run(ctx context.Context, cmd slurm.Command) ([]byte, []byte, error) {
	c.mu.Lock()
	c.cmds = append(c.cmds, cmd.String())
	c.mu.Unlock()
	return slurm.Exec(ctx, cmd)
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, req.Method+" "+req.URL.Path)
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// total returns the commands and requests counted since the last take.
func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cmds) + len(c.reqs)
}

// take returns what was counted since the last call and starts again.
func (c *counter) take() (cmds, reqs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmds, reqs, c.cmds, c.reqs = c.cmds, c.reqs, nil, nil
	return cmds, reqs
}

func newCountingClient(c *counter) *http.Client { return &http.Client{Transport: c} }
