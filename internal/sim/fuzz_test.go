package sim

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/swf"
)

// FuzzTrace runs whole simulated upgrades on traces the fuzzer writes:
// whatever the jobs (out of order, wider than the machine, without limits
// or run times, overrunning their requests, a header that lies), the
// simulator either says why it cannot run or runs to the end with the cap
// held, every node accounted for and the makespan no shorter than the
// bound, for the rolling and the scheduled strategies.
func FuzzTrace(f *testing.F) {
	f.Add([]byte("; MaxNodes: 4\n; MaxProcs: 8\n" +
		"1 0 0 7200 8 -1 -1 8 7200 -1 1 1 -1 -1 -1 1 -1 -1\n" +
		"2 60 0 600 2 -1 -1 2 -1 -1 1 2 -1 -1 -1 1 -1 -1\n" +
		"3 120 0 90000 4 -1 -1 4 3600 -1 1 1 -1 -1 -1 2 -1 -1\n" +
		"4 30 0 300 1 -1 -1 1 600 -1 1 3 -1 -1 -1 1 -1 -1\n"))
	f.Add([]byte("1 3600 -1 36000 1 -1 -1 -1 -1 -1 0 -1 -1 -1 -1 -1 -1 -1\n" +
		"2 7200 -1 100 64 -1 -1 64 100 -1 0 -1 -1 -1 -1 -1 -1 -1\n"))
	// A job of 416 days that asked for 100 s: the session waits for it,
	// and is stopped at MaxDuration, not when it ends (the fuzzer's find:
	// the guard was on the session's events, and a waiting session has
	// none).
	f.Add([]byte("1 3600 -1 36000406 1 -1 -1 64 100 -1 0 -1 -1 -1 -1 -1 -1 -10"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := swf.Read(bytes.NewReader(in))
		if err != nil {
			return // FuzzRead's
		}
		u, _ := Survey(Config{Trace: tr, Nodes: 6, Step: 2})
		last := u.LastSubmit
		if u.Jobs == 0 || last <= 0 {
			return // nothing to replay, or to start the window at
		}
		cfg := Config{Trace: tr, Nodes: 6, Step: 2, Seed: 1, Start: last,
			Warmup: min(last, 2*24*time.Hour), MaxDuration: 3 * 24 * time.Hour}
		a, err := Run(context.Background(), cfg, asap)
		if err != nil && !errors.Is(err, ErrTooLong) {
			require.NoError(t, err, asap.Name)
		}
		for _, st := range []Strategy{
			jobEnd,
			{Name: "scheduled-predicted", Rollout: crus.Rollout{Strategy: crus.StrategyScheduled}, Ends: EndsPredicted},
		} {
			r, err := Run(context.Background(), cfg, st)
			if errors.Is(err, ErrTooLong) {
				continue // a job longer than the time allowed
			}
			require.NoError(t, err, st.Name)
			require.LessOrEqual(t, r.MaxOut, cfg.Step, st.Name)
			require.Equal(t, cfg.Nodes, r.Upgraded+r.Failed+r.Skipped+r.Untouched, st.Name)
			require.Positive(t, r.Makespan, st.Name)
			require.GreaterOrEqual(t, r.Lost.Hours(), 0.0, st.Name)
			if !a.Unfinished {
				require.GreaterOrEqual(t, r.Makespan, Bound(a, r), "%s: a capped session under the bound", st.Name)
			}
		}
	})
}
