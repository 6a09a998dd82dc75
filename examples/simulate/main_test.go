package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const kth = "../../testdata/traces/KTH-SP2-1996-2.1-cln.swf.gz"

var small = []string{"-trace", kth, "-nodes", "24", "-step", "4", "-start", "1560h", "-warmup", "24h"}

func TestCSVHasOneRowPerRun(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), append(small, "-format", "csv", "-seeds", "2", "-days", "65,66"), &out, &errOut)
	require.NoError(t, err, errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	header := strings.Split(lines[0], ",")
	require.Equal(t, []string{"window_day", "start_day", "seed_index", "strategy"}, header[:4])
	n := len(strategies(0, 0, 0))
	require.Len(t, lines, 1+2*2*n, "windows × seeds × strategies")
	for i, line := range lines[1:] {
		fields := strings.Split(line, ",")
		require.Len(t, fields, len(header), line)
		assert.Equal(t, strategies(0, 0, 0)[i%n].Name, fields[3])
		assert.Equal(t, []string{"65", "66"}[i/(2*n)], fields[0], "windows, then seeds, then strategies")
		assert.Equal(t, []string{"0", "1"}[i%(2*n)/n], fields[2])
	}
	assert.True(t, strings.HasPrefix(lines[1], "65,65,0,classic,"), "the original algorithm's row is named classic: %s", lines[1])
	assert.Contains(t, errOut.String(), "runs done", "progress on stderr")
}

func TestSingleRun(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), append(small, "-format", "markdown", "-q", "-strategies", "classic,reboot-asap,rolling-job_end"), &out, &errOut)
	require.NoError(t, err)
	text := out.String()
	assert.Contains(t, text, "upgrade at day 65: ")
	assert.Contains(t, text, "% of nodes busy, ")
	assert.Contains(t, text, "bound = ")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	require.Len(t, lines, 2+3+3, text)
	assert.True(t, strings.HasPrefix(lines[3], "| strategy | makespan h | ÷ bound |"), lines[3])
	assert.True(t, strings.HasPrefix(lines[6], "| reboot-asap | "))
	assert.Contains(t, lines[6], "| 1.00 |", "reboot-asap is at the bound or the bound is the reboots step at a time")
	assert.Empty(t, errOut.String(), "-q: no progress")
}

func TestSweep(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), append(small, "-q", "-seeds", "3", "-days", "65,80", "-min-busy", "0.5",
		"-strategies", "classic,reboot-asap,rolling-job_end,rolling-idle_first"), &out, &bytes.Buffer{})
	require.NoError(t, err)
	text := out.String()
	assert.Equal(t, 2, strings.Count(text, "(median [min–max] over 3 seeds)"), text)
	assert.Contains(t, text, "best crus strategy per window")
	assert.Regexp(t, `met in \d of 2 windows`, text)
	best := text[strings.Index(text, "best crus strategy per window"):]
	assert.NotContains(t, best, "classic", "the original algorithm is a reference, never the best crus strategy")
	assert.NotContains(t, best, "reboot-asap")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-format", "xml"},
		{"-nodes", "0"},
		{"-seeds", "0"},
		{"-strategies", "fastest"},
		{"-placement", "best"},
		{"-days", "35,x"},
		{"-trace", "no/such/trace.swf"},
	} {
		err := run(context.Background(), append([]string{"-trace", kth, "-q"}, args...), &bytes.Buffer{}, &bytes.Buffer{})
		assert.Error(t, err, "%v", args)
	}
	// Values no window has: refused, naming the value, not run at day 0
	// or without a limit.
	for _, c := range []struct{ args []string }{
		{[]string{"-days", "NaN"}}, {[]string{"-days", "1e9"}}, {[]string{"-days", "-5"}},
		{[]string{"-start", "-5h"}}, {[]string{"-warmup", "-1h"}},
		{[]string{"-default-limit", "-1h"}}, {[]string{"-drain-timeout", "-1h"}},
		{[]string{"-drain-timeout", "30s"}}, {[]string{"-poll", "1ns"}}, {[]string{"-inflight-poll", "1ms"}},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"-trace", kth, "-q", "-nodes", "10", "-step", "2", "-strategies", "rolling-job_end"}, c.args...), &out, &bytes.Buffer{})
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), strings.TrimPrefix(c.args[1], "-"), "%v", c.args)
		assert.NotContains(t, out.String(), "rolling-job_end", "%v: nothing run", c.args)
	}
}

func TestSpread(t *testing.T) {
	assert.Equal(t, spread{2, 1, 9, 3}, spreadOf([]float64{9, 1, 2}))
	assert.Equal(t, spread{2.5, 1, 9, 4}, spreadOf([]float64{9, 1, 2, 3}))
	assert.Equal(t, "–", spreadOf(nil).text(2), "no value: unknown, not 0")
	assert.Equal(t, "2.50 [1.00–9.00]", spreadOf([]float64{9, 1, 2, 3}).text(2))
	assert.Equal(t, "4.0", spreadOf([]float64{4, 4}).text(1))
}

// writeTrace writes an SWF trace of a 4-node machine: a 1-node job of 2 h
// submitted every hour for days days, then the lines given.
func writeTrace(t *testing.T, days int, lines ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("; MaxNodes: 4\n; MaxProcs: 4\n")
	for i := range days * 24 {
		fmt.Fprintf(&b, "%d %d 0 7200 1 -1 -1 1 7200 -1 1 1 -1 -1 -1 1 -1 -1\n", 1000+i, i*3600)
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	path := filepath.Join(t.TempDir(), "trace.swf")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

// TestPartialLinesReported: the lines of a checkpointed job's partial
// executions are not replayed, and the output says how many and why.
func TestPartialLinesReported(t *testing.T) {
	path := writeTrace(t, 3,
		"1 3600 0 10800 2 -1 -1 2 14400 -1 1 1 -1 -1 -1 1 -1 -1", // the summary line
		"1 3600 0 3600 2 -1 -1 2 14400 -1 2 1 -1 -1 -1 1 -1 -1",  // its partial executions
		"1 3600 0 7200 2 -1 -1 2 14400 -1 3 1 -1 -1 -1 1 -1 -1")
	for _, format := range []string{"table", "markdown"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"-trace", path, "-nodes", "4", "-step", "2", "-days", "1", "-warmup", "12h", "-q",
			"-strategies", "reboot-asap,rolling-job_end", "-format", format}, &out, &bytes.Buffer{})
		require.NoError(t, err, format)
		assert.Contains(t, out.String(), "trace: 75 job lines, 73 jobs replayed", format)
		assert.Contains(t, out.String(), "left out: 2 lines of partial executions (status 2-4) of checkpointed or swapped jobs, each job replayed once by its summary line", format)
	}
	var errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-trace", path, "-nodes", "4", "-step", "2", "-days", "1", "-warmup", "12h", "-q",
		"-strategies", "reboot-asap", "-format", "csv"}, &bytes.Buffer{}, &errOut))
	assert.Contains(t, errOut.String(), "left out: 2 lines of partial executions", "csv: on stderr, not among the rows")
}

// TestUsageErrors: an explicit flag value the command cannot run with is
// a usage error (exit 2) naming the flag, before anything runs, not
// quietly replaced by a default (-start 0 and -days 0 ran at day 50,
// -warmup 0 with 7 days of warm-up, -poll 0 every 30 s, -drain-timeout 0
// ran the -timeout strategies without one).
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-start", "0"}, {"-days", "0"}, {"-days", "35,0"}, {"-days", ""}, {"-warmup", "0"}, {"-poll", "0"}, {"-drain-timeout", "0"},
		{"-start", "-5h"}, {"-warmup", "-1h"}, {"-poll", "-1s"}, {"-default-limit", "-1h"}, {"-booking-slack", "-1m"},
		{"-inflight-poll", "-1s"}, {"-lookahead", "-1"}, {"-min-busy", "1.5"}, {"-min-busy", "NaN"},
		{"-nodes", "0"}, {"-nodes", "2000000"}, {"-step", "0"}, {"-seeds", "0"}, {"-parallel", "0"},
		{"-format", "xml"}, {"-placement", "best"}, {"-strategies", "fastest"}, {"-trace", ""},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"-trace", kth, "-q", "-nodes", "10", "-step", "2", "-warmup", "24h", "-strategies", "rolling-job_end"}, args...), &out, &bytes.Buffer{})
		require.Error(t, err, "%v", args)
		assert.Equal(t, 2, exitCode(err), "%v: a usage error: %v", args, err)
		assert.Contains(t, err.Error(), args[0], "%v: names the flag", args)
		assert.Empty(t, out.String(), "%v: nothing run", args)
	}
	for _, args := range [][]string{{"-nodes", "x"}, {"-no-such-flag"}, {"extra"}} {
		var errOut bytes.Buffer
		err := run(context.Background(), append([]string{"-trace", kth, "-q"}, args...), &bytes.Buffer{}, &errOut)
		assert.Equal(t, 2, exitCode(err), "%v: %v", args, err)
	}
	_, err := os.Stat("no/such/trace.swf")
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(run(context.Background(), []string{"-trace", "no/such/trace.swf", "-q"}, &bytes.Buffer{}, &bytes.Buffer{})), "a trace that cannot be read: not a usage error")
	assert.Equal(t, 0, exitCode(nil))
}

// TestWarmupAsReplayed: the header says how much of the trace was
// replayed before the upgrade; a window that starts before the warm-up
// asked for has the trace from its beginning (the header said 48h0m0s
// of warm-up where 24 h were replayed).
func TestWarmupAsReplayed(t *testing.T) {
	path := writeTrace(t, 3)
	for _, c := range []struct{ days, want string }{
		{"1", "24h0m0s of warm-up (the trace's beginning: -warmup 48h0m0s is longer)"},
		{"1,2.5", "48h0m0s of warm-up (less where a window starts earlier: from the trace's beginning)"},
		{"2.5", "48h0m0s of warm-up\n"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"-trace", path, "-nodes", "4", "-step", "2", "-days", c.days, "-warmup", "48h", "-q",
			"-strategies", "reboot-asap"}, &out, &bytes.Buffer{})
		require.NoError(t, err, c.days)
		assert.Contains(t, out.String(), c.want, c.days)
	}
}

// TestTooManyRuns: a sweep of more runs than memory holds is a usage
// error naming -seeds, before the trace is read or anything runs
// (-seeds 100000000 was a crash: the runtime out of memory, listing the
// runs).
func TestTooManyRuns(t *testing.T) {
	for _, args := range [][]string{
		{"-seeds", "100000000"},
		{"-seeds", "9223372036854775807"},
		{"-seeds", "500001", "-days", "1,2"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"-trace", "no/such/trace.swf", "-q", "-strategies", "reboot-asap"}, args...), &out, &bytes.Buffer{})
		require.Error(t, err, "%v", args)
		assert.Equal(t, 2, exitCode(err), "%v: a usage error: %v", args, err)
		assert.Contains(t, err.Error(), "-seeds", "%v", args)
		assert.Contains(t, err.Error(), "runs", "%v", args)
		assert.Empty(t, out.String(), "%v: nothing run", args)
	}
}

// TestUnknownBound: without a reboot-asap run the bound is unknown, and
// so is every ratio to it: an empty CSV field, "–" in a table, never 0.
func TestUnknownBound(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), append(small, "-q", "-format", "csv", "-strategies", "rolling-job_end"), &out, &bytes.Buffer{}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	header, row := strings.Split(lines[0], ","), strings.Split(lines[1], ",")
	for _, col := range []string{"bound_h", "makespan_over_bound"} {
		i := slices.Index(header, col)
		require.GreaterOrEqual(t, i, 0, col)
		assert.Empty(t, row[i], "%s: unknown without reboot-asap", col)
	}
	for _, args := range [][]string{{"-format", "markdown"}, {"-format", "markdown", "-seeds", "2"}, {"-seeds", "2"}} {
		out.Reset()
		require.NoError(t, run(context.Background(), append(append(small, "-q", "-strategies", "rolling-job_end"), args...), &out, &bytes.Buffer{}))
		assert.NotContains(t, out.String(), "0.00", "%v: no ratio of 0", args)
		assert.Contains(t, out.String(), "–", "%v", args)
	}
}

// TestUnfinishedRunsReported: a run whose session does not finish within
// -max-duration is a row marked unfinished, never counted as meeting the
// goal; the other windows still run, and the command exits 1 at the end.
func TestUnfinishedRunsReported(t *testing.T) {
	// A 2-node job of 100 days from hour 13: an upgrade from day 1 waits
	// for it; one from day 120 does not.
	path := writeTrace(t, 130, "1 46800 0 8640000 2 -1 -1 2 8640000 -1 1 1 -1 -1 -1 1 -1 -1")
	args := []string{"-trace", path, "-nodes", "4", "-step", "2", "-days", "1,120", "-warmup", "12h", "-max-duration", "48h", "-q",
		"-strategies", "reboot-asap,rolling-job_end"}
	var out bytes.Buffer
	err := run(context.Background(), args, &out, &bytes.Buffer{})
	require.Error(t, err)
	assert.Equal(t, 1, exitCode(err))
	assert.ErrorContains(t, err, "2 of 4 runs did not finish within 48h0m0s of simulated time")
	text := out.String()
	assert.Contains(t, text, "upgrade at day 1: ")
	assert.Contains(t, text, "upgrade at day 120: ", "the sweep went on")
	assert.Contains(t, text, "rolling-job_end (unfinished in 1 of 1 seeds)")
	assert.Regexp(t, `day 1 +rolling-job_end .* no \(unfinished\)`, text)
	assert.Regexp(t, `met in [01] of 2 windows`, text)

	out.Reset()
	err = run(context.Background(), append(args, "-format", "csv"), &out, &bytes.Buffer{})
	assert.Equal(t, 1, exitCode(err))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 5)
	header := strings.Split(lines[0], ",")
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		require.Len(t, f, len(header), l)
		finished := f[len(f)-2]
		assert.Equal(t, f[0] == "120", finished == "true", l)
		if finished == "false" {
			assert.Empty(t, f[slices.Index(header, "makespan_h")], "unknown, not 0: %s", l)
		}
	}
}

// TestWindowsNotCounted: a window where the cluster never got as busy as
// -min-busy, and one past the trace's end, are shown and left out of the
// goal's count, never counted as met; the other windows run.
func TestWindowsNotCounted(t *testing.T) {
	// Every hour a 1-node job of 2 h: 2 of 4 nodes busy, never 90%.
	path := writeTrace(t, 20)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-trace", path, "-nodes", "4", "-step", "2", "-days", "2,5,30", "-warmup", "12h", "-q",
		"-min-busy", "0.9", "-strategies", "reboot-asap,rolling-job_end"}, &out, &bytes.Buffer{})
	require.NoError(t, err)
	text := out.String()
	assert.Contains(t, text, "day 30: not run, past the trace's end (its last job replayed is submitted on day 20.0)")
	assert.Contains(t, text, "no loaded point found")
	assert.Regexp(t, `day 9 +rolling-job_end .* not counted: not loaded \(under 90% busy\)`, text)
	assert.Contains(t, text, "met in 0 of 0 windows (not counted: 2 not loaded, 1 past the trace's end, not run)")

	err = run(context.Background(), []string{"-trace", path, "-nodes", "4", "-step", "2", "-days", "30,40", "-q"}, &out, &bytes.Buffer{})
	assert.ErrorContains(t, err, "every window is past the trace's end")
}

// TestWindowsStartingTogether: two windows asked for that start at the
// same point (-min-busy moves both to the end of an outage, or -days
// names one twice) are one window's runs twice: the second is shown and
// not counted again (the summary said "met in 2 of 2 windows" for one).
func TestWindowsStartingTogether(t *testing.T) {
	path := writeTrace(t, 20)
	var out bytes.Buffer
	err := run(context.Background(), []string{"-trace", path, "-nodes", "4", "-step", "2", "-days", "3,3,5", "-warmup", "12h", "-q",
		"-strategies", "reboot-asap,rolling-job_end"}, &out, &bytes.Buffer{})
	require.NoError(t, err)
	text := out.String()
	assert.Regexp(t, `met in [0-2] of 2 windows \(not counted: 1 starting where an earlier one did\)`, text)
	assert.Regexp(t, `day 3 +rolling-job_end .* not counted: the same start as day 3 asked`, text)
	assert.Equal(t, 1, strings.Count(text, "the same start as"), text)
}
