package swf_test

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/swf"
)

const sample = `; Version: 2.2
; Computer: Test cluster
; UnixStartTime: 1170175078
; MaxNodes: 4
; MaxProcs: 16
;
    1        0     -1  34616  8     -1    -1  8     -1    -1  0  16  -1  64 -1  1 -1 -1
    2       60     10   3600 -1     -1    -1  4   7200    -1  1   3  -1   2 -1  2 -1 -1
`

func TestReadPlainAndGzip(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte(sample))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	for name, in := range map[string][]byte{"plain": []byte(sample), "gzip": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			tr, err := swf.Read(bytes.NewReader(in))
			require.NoError(t, err)
			assert.Equal(t, swf.Header{Computer: "Test cluster", MaxNodes: 4, MaxProcs: 16, UnixStartTime: 1170175078}, tr.Header)
			assert.Equal(t, time.Date(2007, 1, 30, 16, 37, 58, 0, time.UTC), tr.Header.Start())
			require.Len(t, tr.Jobs, 2)
			assert.Equal(t, swf.Job{ID: 1, Submit: 0, Wait: -1, Run: 34616 * time.Second, Procs: 8, ReqProcs: 8, ReqTime: -1, Status: 0, User: 16, Queue: -1, Partition: 1}, tr.Jobs[0])
			assert.Equal(t, 8, tr.Jobs[0].Width())
			assert.Equal(t, 4, tr.Jobs[1].Width(), "requested processors when the allocation is unknown")
			assert.Equal(t, 2*time.Hour, tr.Jobs[1].ReqTime)
		})
	}
}

func TestReadErrors(t *testing.T) {
	for name, in := range map[string]string{
		"short line":   "1 2 3\n",
		"not number":   strings.Replace(sample, "34616", "x", 1),
		"not finite":   strings.Replace(sample, "34616", "NaN", 1),
		"infinite":     strings.Replace(sample, "34616", "+Inf", 1),
		"out of range": strings.Replace(sample, "34616", "1e30", 1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := swf.Read(strings.NewReader(in))
			assert.ErrorIs(t, err, swf.ErrFormat)
			assert.Contains(t, err.Error(), "line")
		})
	}
	_, err := swf.ReadFile("no/such/file.swf")
	assert.Error(t, err)
}

func TestReadRealTraces(t *testing.T) {
	for file, want := range map[string]struct{ nodes, procs, jobs int }{
		"../../testdata/traces/KTH-SP2-1996-2.1-cln.swf.gz":      {100, 100, 27992},
		"../../testdata/traces/LLNL-Thunder-2007-1.1-cln.swf.gz": {1002, 4008, 121039},
	} {
		tr, err := swf.ReadFile(file)
		require.NoError(t, err)
		assert.Equal(t, want.nodes, tr.Header.MaxNodes, file)
		assert.Equal(t, want.procs, tr.Header.MaxProcs, file)
		assert.Equal(t, want.jobs, len(tr.Jobs), file)
	}
}
