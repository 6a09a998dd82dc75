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
		// 31,700 years: as nanoseconds it wraps around to 122 years
		"time out of range": strings.Replace(sample, "34616", "1000000000000", 1),
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

// TestReadLimits: the largest values read are read exactly: a count of
// 2^40, a time of 2^31 seconds.
func TestReadLimits(t *testing.T) {
	in := strings.Replace(strings.Replace(sample, "34616", "2147483648", 1), "  8     -1    -1  8", "  8     -1    -1  1099511627776", 1)
	tr, err := swf.Read(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, time.Duration(1<<31)*time.Second, tr.Jobs[0].Run)
	assert.Equal(t, 1<<40, tr.Jobs[0].ReqProcs)
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

// FuzzRead: whatever the input, Read returns a malformed-trace error or
// jobs whose times are unknown (-1) or whole seconds within the bounds,
// never a time that wrapped around.
func FuzzRead(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("1 0 0 60 1 -1 -1 1 60 -1 1 1 -1 -1 -1 -1 -1 -1\n"))
	f.Add([]byte("; MaxNodes: 12\n;MaxProcs:x\n2 1.5 -1 3e2 4 0 0 4 -1 0 0 0 0 0 0 0 0 0\n"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(sample))
	_ = zw.Close()
	f.Add(gz.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := swf.Read(bytes.NewReader(in))
		if err != nil {
			require.ErrorIs(t, err, swf.ErrFormat)
			return
		}
		for _, j := range tr.Jobs {
			for _, d := range []time.Duration{j.Submit, j.Wait, j.Run, j.ReqTime} {
				if d == -1 {
					continue
				}
				require.GreaterOrEqual(t, d, time.Duration(0), "%+v", j)
				require.LessOrEqual(t, d, time.Duration(1<<31)*time.Second, "%+v", j)
				require.Zero(t, d%time.Second, "%+v", j)
			}
			require.LessOrEqual(t, j.Width(), 1<<40)
		}
	})
}

// TestReadHeaderRemarks: a header number followed by a remark, as some
// archive traces write it, is the number; a value with no number is
// unknown (0); a number that is not whole or does not fit is refused with
// its line, not cut short or dropped to 0.
func TestReadHeaderRemarks(t *testing.T) {
	job := "1 0 -1 60 8 -1 -1 8 -1 -1 1 1 -1 -1 -1 1 -1 -1\n"
	for in, want := range map[string]swf.Header{
		"; MaxNodes: 1024 (plus 4 service nodes)\n; MaxProcs: 4096 processors\n": {MaxNodes: 1024, MaxProcs: 4096},
		"; MaxNodes: 100  \n; MaxProcs:\t100\t\n":                                {MaxNodes: 100, MaxProcs: 100},
		"; UnixStartTime: 1170175078 (Tue Jan 30 16:37:58 2007)\n":               {UnixStartTime: 1170175078},
		"; MaxNodes: unknown\n; MaxProcs: -1\n":                                  {MaxProcs: -1},
	} {
		tr, err := swf.Read(strings.NewReader(in + job))
		require.NoError(t, err, in)
		assert.Equal(t, want, tr.Header, in)
	}
	for _, in := range []string{"; MaxNodes: 1,024\n", "; MaxProcs: 4.5\n", "; MaxNodes: 99999999999999999999\n", "; UnixStartTime: 1e9\n"} {
		_, err := swf.Read(strings.NewReader("; Version: 2.2\n" + in + job))
		require.ErrorIs(t, err, swf.ErrFormat, in)
		assert.ErrorContains(t, err, "line 2: header ", in)
	}
}

func TestPartial(t *testing.T) {
	for status, partial := range map[int]bool{-1: false, 0: false, 1: false, 2: true, 3: true, 4: true, 5: false} {
		assert.Equal(t, partial, swf.Job{Status: status}.Partial(), status)
	}
}
