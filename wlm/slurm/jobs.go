package slurm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// This file implements wlm.JobLister with squeue, for a wlm.Predictor.
// slurmctld remembers an ended job for MinJobAge (300 s by default): a
// predictor that asks every poll learns every run time from then on.

var (
	_ wlm.JobLister = (*CLI)(nil)
	_ wlm.JobLister = (*REST)(nil)
)

// jobsFormat is what Jobs asks squeue for: id, user, state, start, end
// (start + limit while running; the real end once ended) and the nodes,
// last because they hold commas.
const jobsFormat = "%i|%u|%T|%S|%e|%N"

// endedStates are the states of jobs that ran and are over.
const endedStates = "COMPLETED,CANCELLED,FAILED,TIMEOUT,NODE_FAIL,OUT_OF_MEMORY,PREEMPTED,BOOT_FAIL,DEADLINE"

// Jobs implements wlm.JobLister: one `squeue --nodelist=<hostlist>` for
// the jobs running on the nodes and, when since is set, one `squeue` for
// the jobs ended since (those slurmctld still remembers). squeue refuses a
// hostlist naming an unknown node: then the nodes are read (one more
// command) and squeue runs again for the known ones.
func (c *CLI) Jobs(ctx context.Context, names []string, since time.Time) ([]wlm.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	valid, errs := splitValid(names)
	var out []wlm.Job
	if len(valid) > 0 {
		run := func(ns []string) ([]wlm.Job, error) {
			var jobs []wlm.Job
			for _, hl := range c.chunks(ns) {
				js, err := c.squeueJobs(ctx, "--states=RUNNING,COMPLETING,SUSPENDED", "--nodelist="+hl)
				if err != nil {
					return nil, err
				}
				jobs = append(jobs, js...)
			}
			return jobs, nil
		}
		jobs, err := run(valid)
		if err != nil && refused(err) {
			_, unknown, rerr := c.show(ctx, valid)
			if rerr != nil {
				return nil, errors.Join(err, rerr)
			}
			if len(unknown) == 0 {
				return nil, err
			}
			errs = append(errs, notFound(unknown)...)
			valid = slices.DeleteFunc(valid, func(n string) bool { return slices.Contains(unknown, n) })
			jobs, err = nil, nil
			if len(valid) > 0 {
				jobs, err = run(valid)
			}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, dedupeJobs(jobs)...)
	}
	if !since.IsZero() {
		jobs, err := c.squeueJobs(ctx, "--states="+endedStates)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs {
			if !j.End.IsZero() && !j.End.Before(since) {
				out = append(out, j)
			}
		}
	}
	return out, errors.Join(errs...)
}

// dedupeJobs keeps the first of each job id (a job on nodes of two
// chunks shows twice).
func dedupeJobs(jobs []wlm.Job) []wlm.Job {
	seen := make(map[string]bool, len(jobs))
	return slices.DeleteFunc(jobs, func(j wlm.Job) bool {
		dup := seen[j.ID]
		seen[j.ID] = true
		return dup
	})
}

func (c *CLI) squeueJobs(ctx context.Context, args ...string) ([]wlm.Job, error) {
	args = append([]string{"--noheader", "--all", "--format=" + jobsFormat}, args...)
	stdout, _, err := c.runCmd(ctx, c.cfg.Squeue, args...)
	if err != nil {
		return nil, err
	}
	return parseJobs(stdout)
}

// parseJobs parses squeue output in jobsFormat (with --noheader).
func parseJobs(out []byte) ([]wlm.Job, error) {
	var jobs []wlm.Job
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 6)
		if len(f) != 6 {
			return nil, fmt.Errorf("slurm: squeue line %q is not in the format %q", text.Cap(line, 200), jobsFormat)
		}
		start, ok1 := parseTime(f[3])
		end, ok2 := parseTime(f[4])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("slurm: squeue line %q: times %q, %q", text.Cap(line, 200), text.Cap(f[3], 40), text.Cap(f[4], 40))
		}
		var nodes []string
		if f[5] != "" && f[5] != "(null)" {
			var err error
			if nodes, err = ExpandHostlist(f[5]); err != nil {
				return nil, fmt.Errorf("slurm: squeue job %s: %w", text.Cap(f[0], 40), err)
			}
		}
		j := wlm.Job{ID: f[0], User: f[1], Nodes: nodes, Start: start}
		switch f[2] {
		case "RUNNING", "COMPLETING", "SUSPENDED":
			j.Limit = end // an unlimited job shows start + 1 year
		default:
			j.End = end
		}
		jobs = append(jobs, j)
	}
	return jobs, sc.Err()
}

// Jobs implements wlm.JobLister through RESTConfig.Fallback.
func (r *REST) Jobs(ctx context.Context, names []string, since time.Time) ([]wlm.Job, error) {
	cli, err := r.fallback("list jobs with their users here")
	if err != nil {
		return nil, err
	}
	return cli.Jobs(ctx, names, since)
}
