package slurm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// TestCLIJobs lists real jobs: a running one with its user, start and
// limit, and an ended one with its real end, for a predictor to learn.
func TestCLIJobs(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 3})
	m := newCLI(t, c, nil)
	names := c.Names()
	before := time.Now().Add(-2 * time.Second)
	short, err := c.Submit(ctx, names[:1], time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	long, err := c.Submit(ctx, names[1:3], time.Hour, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []wlm.Job
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs, err = m.Jobs(ctx, names, before)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 2 && (jobs[0].ID == short) != (jobs[1].ID == short) && !jobs[0].End.IsZero() != !jobs[1].End.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs %s (ended) and %s (running) not both seen: %+v", short, long, jobs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	run, done := jobs[0], jobs[1]
	if run.ID != long {
		run, done = done, run
	}
	if run.User != "root" || len(run.Nodes) != 2 || run.Start.Before(before) || run.Limit.Sub(run.Start) != 2*time.Hour || !run.End.IsZero() {
		t.Errorf("running job: %+v", run)
	}
	if done.ID != short || done.User != "root" || done.End.Before(done.Start) || done.End.Sub(done.Start) > 30*time.Second {
		t.Errorf("ended job: %+v", done)
	}
	jobs, err = m.Jobs(ctx, []string{names[0], "nid999999"}, time.Time{})
	if !errors.Is(err, wlm.ErrNodeNotFound) || len(jobs) != 0 {
		t.Errorf("an unknown node, no since: %+v, %v; want no jobs and ErrNodeNotFound", jobs, err)
	}
}
