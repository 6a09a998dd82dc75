package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const kth = "../../testdata/traces/KTH-SP2-1996-2.1-cln.swf.gz"

func TestCSVHasOneRowPerStrategy(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-trace", kth, "-nodes", "24", "-step", "4", "-start", "1560h", "-warmup", "24h", "-format", "csv"}, &out, &errOut)
	require.NoError(t, err, errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Equal(t, "strategy,makespan_h,lost_node_h,lost_over_floor,max_out,step,upgraded,failed,untouched,wlm_calls,hsm_calls,bos_calls", lines[0])
	require.Len(t, lines, 1+len(strategies(0)))
	for i, s := range strategies(0) {
		fields := strings.Split(lines[1+i], ",")
		require.Len(t, fields, 12, lines[1+i])
		assert.Equal(t, s.Name, fields[0])
	}
	assert.True(t, strings.HasPrefix(lines[1], "classic,"), "the original algorithm's row is named classic")
	assert.Contains(t, errOut.String(), "classic: done in", "progress on stderr")
}

func TestMarkdownAndQuiet(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-trace", kth, "-nodes", "16", "-step", "4", "-start", "1560h", "-warmup", "24h",
		"-format", "markdown", "-q", "-strategies", "classic,rolling-job_end"}, &out, &errOut)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4)
	assert.True(t, strings.HasPrefix(lines[0], "| strategy | makespan (h) |"))
	assert.True(t, strings.HasPrefix(lines[3], "| rolling-job_end | "))
	assert.Empty(t, errOut.String(), "-q: no progress")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-format", "xml"},
		{"-nodes", "0"},
		{"-strategies", "fastest"},
		{"-trace", "no/such/trace.swf"},
	} {
		err := run(context.Background(), append([]string{"-trace", kth, "-q"}, args...), &bytes.Buffer{}, &bytes.Buffer{})
		assert.Error(t, err, "%v", args)
	}
}
