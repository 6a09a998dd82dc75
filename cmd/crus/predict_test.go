package main

import (
	"flag"
	"io"
	"log/slog"
	"testing"

	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
)

// TestPredictJobEndsKeepsCapabilities: with slurm.predict_job_ends, the
// adapter's JobEnds is the predictor's, and every other capability the
// executor looks for is still there (a wrapper that hid the reservations
// or the boot times would silently turn the scheduled strategy into
// rolling, or lose the boot checks).
func TestPredictJobEndsKeepsCapabilities(t *testing.T) {
	for _, adapter := range []string{"scontrol", "slurmrestd"} {
		t.Run(adapter, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			settingFlags(fs, nil)
			args := []string{"--store-dir", t.TempDir(), "--slurm-adapter", adapter, "--slurmrestd-url", "http://127.0.0.1:1", "--predict-job-ends", "true"}
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			c, problems := loadConfig("", fs, func(string) string { return "" })
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			b, problems := c.connect(slog.New(slog.NewTextHandler(io.Discard, nil)))
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			defer b.Close()
			var plain wlm.Manager
			switch m := b.manager.(type) {
			case predictingCLI:
				plain = m.CLI
			case predictingREST:
				plain = m.REST
			default:
				t.Fatalf("manager is a %T, not a predicting wrapper", b.manager)
			}
			if _, ok := plain.(*slurm.CLI); !ok && adapter == "scontrol" {
				t.Fatalf("wrapped a %T", plain)
			}
			has := func(m wlm.Manager) map[string]bool {
				_, sch := m.(wlm.Scheduler)
				_, bt := m.(wlm.BootTimeReporter)
				_, je := m.(wlm.JobEnder)
				_, jl := m.(wlm.JobLister)
				_, rb := m.(wlm.Rebooter)
				_, de := m.(wlm.Describer)
				_, st := m.(wlm.Steerer)
				return map[string]bool{"Scheduler": sch, "BootTimeReporter": bt, "JobEnder": je, "JobLister": jl, "Rebooter": rb, "Describer": de, "Steerer": st}
			}
			want, got := has(plain), has(b.manager)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: the adapter has it %v, the wrapper %v", k, v, got[k])
				}
			}
			if !got["JobEnder"] || !got["Scheduler"] || !got["Steerer"] {
				t.Errorf("capabilities lost: %v", got)
			}
		})
	}
}
