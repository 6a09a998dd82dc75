package main

import (
	"context"
	"time"

	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
)

// With slurm.predict_job_ends, the Slurm adapter's JobEnds is answered by
// a wlm.Predictor (its users' recent run times) instead of the jobs' time
// limits: where limits say little, the job_end order and the scheduled
// strategy's slots follow what the jobs are likely to do. Each wrapper
// embeds its adapter, so every other capability (boot times, reservations,
// steering, reboots, its own words) is kept, a new one of the adapter's
// with it; JobEndsInto makes them wlm.JobEndsFiller, so the executor
// reads the ends by position.

// The wrappers keep what the scheduled strategy needs of the adapters.
var (
	_ wlm.Scheduler = predictingCLI{}
	_ wlm.Steerer   = predictingCLI{}
	_ wlm.Scheduler = predictingREST{}
	_ wlm.Steerer   = predictingREST{}
)

type predictingCLI struct {
	*slurm.CLI
	p *wlm.Predictor
}

func (m predictingCLI) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	return m.p.JobEnds(ctx, m.CLI, names)
}

func (m predictingCLI) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	return m.p.JobEndsInto(ctx, m.CLI, names, ends)
}

type predictingREST struct {
	*slurm.REST
	p *wlm.Predictor
}

func (m predictingREST) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	return m.p.JobEnds(ctx, m.REST, names)
}

func (m predictingREST) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	return m.p.JobEndsInto(ctx, m.REST, names, ends)
}

// predicting wraps a Slurm adapter so that a Predictor answers JobEnds.
func predicting(m wlm.Manager) wlm.Manager {
	p := wlm.NewPredictor(wlm.PredictorConfig{})
	switch a := m.(type) {
	case *slurm.CLI:
		return predictingCLI{a, p}
	case *slurm.REST:
		return predictingREST{a, p}
	}
	return m
}
