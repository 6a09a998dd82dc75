package slurm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// schedHarness queues real sbatch jobs for the scheduler tests.
type schedHarness struct{ harness }

type slurmJob struct {
	c  *slurmtest.Cluster
	id string
}

func (h *schedHarness) Submit(ctx context.Context, node string, limit time.Duration) (wlmtest.Job, error) {
	id, err := h.c.Submit(ctx, []string{node}, time.Hour, limit)
	if err != nil {
		return nil, err
	}
	return &slurmJob{c: h.c, id: id}, nil
}

func (j *slurmJob) Running(ctx context.Context) (bool, error) {
	st, err := j.c.JobState(ctx, j.id)
	return st == "RUNNING", err
}

func (j *slurmJob) Stop(ctx context.Context) error { return j.c.Cancel(ctx, j.id) }

func TestCLIScheduler(t *testing.T) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 4})
	wlmtest.RunSchedulerTests(t, func(ctx context.Context, t *testing.T) (wlmtest.SchedulerHarness, error) {
		return &schedHarness{harness{c: c, m: newCLI(t, c, nil)}}, nil
	}, conformanceOptions)
}

func TestRESTScheduler(t *testing.T) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 4, REST: true})
	wlmtest.RunSchedulerTests(t, func(ctx context.Context, t *testing.T) (wlmtest.SchedulerHarness, error) {
		return &schedHarness{harness{c: c, m: newREST(t, c, newCLI(t, c, nil), nil)}}, nil
	}, conformanceOptions)
}

// TestRESTReservationsWithoutFallback: slurmrestd cannot make
// reservations; without a Fallback every Scheduler call is unsupported
// (and permanent), before any request.
func TestRESTReservationsWithoutFallback(t *testing.T) {
	m, err := slurm.NewREST(slurm.RESTConfig{URL: "http://127.0.0.1:1", User: "root", Token: slurm.StaticToken("t")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r := wlm.Reservation{Name: "crus-s-1", Nodes: []string{"nid000001"}, Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}
	_, lerr := m.Reservations(ctx, "crus-s-")
	for what, err := range map[string]error{"Reserve": m.Reserve(ctx, r), "Unreserve": m.Unreserve(ctx, []string{r.Name}), "Reservations": lerr} {
		if !errors.Is(err, wlm.ErrUnsupported) || !batch.IsPermanent(err) {
			t.Errorf("%s without Fallback: %v; want wlm.ErrUnsupported", what, err)
		}
	}
}

// TestCLIReservationsRefusedToUser: Slurm makes, moves and deletes
// reservations only for root, its SlurmUser and operators; run as another
// user (nobody, through runuser), the adapter's Reserve and Unreserve
// fail with wlm.ErrPermissionDenied, permanent (crus does not retry them
// for a retry timeout at every decision), while listing still works.
func TestCLIReservationsRefusedToUser(t *testing.T) {
	c, asNobody := clusterAsNobody(t, slurm.Exec)
	m := newCLI(t, c, asNobody)
	ctx := t.Context()
	r := wlm.Reservation{Name: "crus-t-1", Nodes: c.Names()[:1], Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}
	err := m.Reserve(ctx, r)
	if !errors.Is(err, wlm.ErrPermissionDenied) || !batch.IsPermanent(err) {
		t.Errorf("Reserve as nobody: %v; want wlm.ErrPermissionDenied, permanent", err)
	}
	if err := m.Unreserve(ctx, []string{r.Name}); !errors.Is(err, wlm.ErrPermissionDenied) {
		t.Errorf("Unreserve as nobody: %v; want wlm.ErrPermissionDenied", err)
	}
	if got, err := m.Reservations(ctx, "crus-"); err != nil || len(got) != 0 {
		t.Errorf("Reservations as nobody: %v, %v; want none, no error", got, err)
	}
	// As root the same reservation is made: the refusal was the user's.
	root := newCLI(t, c, nil)
	if err := root.Reserve(ctx, r); err != nil {
		t.Fatalf("Reserve as root: %v", err)
	}
	if err := root.Unreserve(ctx, []string{r.Name}); err != nil {
		t.Errorf("Unreserve as root: %v", err)
	}
}

// clusterAsNobody starts a 2-node cluster and returns it with a command
// runner that runs each command as the user nobody (through runuser),
// by run. Without runuser the test skips, loudly, or fails in CI.
func clusterAsNobody(t *testing.T, run func(context.Context, slurm.Command) ([]byte, []byte, error)) (*slurmtest.Cluster, func(context.Context, slurm.Command) ([]byte, []byte, error)) {
	t.Helper()
	if _, err := exec.LookPath("runuser"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but no runuser here (util-linux): %v", err)
		}
		t.Skipf("SKIPPED, no runuser here (%v): cannot run scontrol as another user", err)
	}
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2})
	return c, func(ctx context.Context, cmd slurm.Command) ([]byte, []byte, error) {
		cmd.Args = append([]string{"-u", "nobody", "--", cmd.Path}, cmd.Args...)
		cmd.Path = "runuser"
		return run(ctx, cmd)
	}
}
