package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// hostileSqueue is 248 bytes of squeue output: eight jobs of 2^20 nodes
// each, every one within the old per-expression cap, 8.4 million names
// (1.1 GB) together.
var hostileSqueue = []byte(strings.Repeat("1|RUNNING|0|x[0000000-1048575]\n", 8))

func TestHostlistBudgetIsPerAnswer(t *testing.T) {
	if len(hostileSqueue) != 248 {
		t.Fatalf("the hostile output is %d bytes", len(hostileSqueue))
	}
	asked := map[string]bool{"x0000001": true}
	keep := func(name []byte) bool { return asked[string(name)] }
	jobs, err := parseSqueue(hostileSqueue, keep)
	if !errors.Is(err, ErrHostlist) || !strings.Contains(err.Error(), "in one answer") {
		t.Errorf("parseSqueue of 8 jobs of 2^20 nodes: %d jobs, %v; want an error matching ErrHostlist", len(jobs), err)
	}
	// What parsing costs does not depend on the output's claims: a few
	// allocations, not one per name.
	if n := testing.AllocsPerRun(1, func() { _, _ = parseSqueue(hostileSqueue, keep) }); n > 200 {
		t.Errorf("parseSqueue of 248 hostile bytes: %.0f allocations", n)
	}

	doc := `{"jobs":[` + strings.TrimSuffix(strings.Repeat(`{"job_id":1,"job_state":"RUNNING","nodes":"x[0000000-1048575]"},`, 8), ",") + `]}`
	if _, _, err := decodeJobs(strings.NewReader(doc), keep); !errors.Is(err, ErrHostlist) {
		t.Errorf("decodeJobs of 8 jobs of 2^20 nodes: %v; want an error matching ErrHostlist", err)
	}

	// One answer of exactly MaxHostlistExpansion names is fine, and only
	// the names asked about are kept.
	ok := []byte("1|RUNNING|0|x[0000000-0524287]\n2|RUNNING|0|y[0000000-0524287]\n")
	jobs, err = parseSqueue(ok, keep)
	if err != nil || len(jobs) != 1 || len(jobs[0].Nodes) != 1 || jobs[0].Nodes[0] != "x0000001" {
		t.Errorf("parseSqueue of 2^20 names in all: %+v, %v; want job 1 on x0000001 alone", jobs, err)
	}
}

func TestHostlistNamesAreBounded(t *testing.T) {
	long := strings.Repeat("n", 200) + "[1-2]"
	if _, err := ExpandHostlist(long); !errors.Is(err, ErrHostlist) {
		t.Errorf("ExpandHostlist of names of 201 bytes: %v; want an error matching ErrHostlist", err)
	}
	if err := fmt.Sprint(ExpandHostlist(strings.Repeat("n[", 1<<20))); len(err) > 1000 {
		t.Errorf("the error of a 2 MB expression is %d bytes long", len(err))
	}
}

// allocated returns the bytes f allocates (the runtime's cumulative
// count: it does not depend on timing or on garbage collection).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Decoding a nodes document allocates in proportion to the nodes asked
// about and to the largest record, not to the size of the answer: small
// records that decode into large structures (the worst case of decoding a
// whole document at once) cost nothing when they are not asked about.
func TestDecodeNodesAllocationIsBounded(t *testing.T) {
	var doc bytes.Buffer
	doc.WriteString(`{"errors":[],"nodes":[`)
	for i := range 100_000 {
		fmt.Fprintf(&doc, `{"name":"n%d","state":["IDLE"]},`, i)
	}
	doc.WriteString(`{"name":"nid000001","state":"idle","state_flags":["DRAIN"],"reason":"crus s1: step 1"}]}`)
	size := doc.Len()
	want := map[string]bool{"nid000001": true}
	var nodes, errs = 0, 0
	got := allocated(func() {
		list, e, err := decodeNodes(bytes.NewReader(doc.Bytes()), func(n string) bool { return want[n] })
		if err != nil || len(list) != 1 || !list[0].Drained() {
			t.Errorf("decodeNodes: %v, %v", list, err)
		}
		nodes, errs = len(list), len(e)
	})
	t.Logf("%d-byte document, %d nodes kept, %d errors: %d bytes allocated (%.2f× the document)", size, nodes, errs, got, float64(got)/float64(size))
	// Decoding the whole document at once allocated 37 times its size;
	// now it is one small string per record that is not kept (a little
	// more under the race detector).
	if got > 2*uint64(size) {
		t.Errorf("decoding a %d-byte document for one node allocated %d bytes, more than twice the document", size, got)
	}

	// The worst case of decoding a whole document at once (tiny records
	// that decode into large structures: 86 bytes allocated for each byte
	// of this document) costs next to nothing when they are not asked
	// about.
	tiny := `{"nodes":[` + strings.Repeat(`{"name":"a"},`, 200_000) + `{}]}`
	got = allocated(func() {
		if list, _, err := decodeNodes(strings.NewReader(tiny), func(n string) bool { return want[n] }); err != nil || len(list) != 0 {
			t.Errorf("decodeNodes of 200,000 tiny records: %v, %v", list, err)
		}
	})
	if got > 1<<20 {
		t.Errorf("decoding 200,000 tiny records for one node allocated %d bytes", got)
	}

	// One record with millions of state flags: refused, not decoded.
	flags := `{"nodes":[{"name":"nid000001","state_flags":[` + strings.Repeat(`"",`, 100_000) + `""]}]}`
	got = allocated(func() {
		if _, _, err := decodeNodes(strings.NewReader(flags), nil); err == nil || !strings.Contains(err.Error(), "more than 64 words") {
			t.Errorf("a node with 100,000 state flags: %v; want it refused", err)
		}
	})
	if got > 4*uint64(len(flags)) {
		t.Errorf("a %d-byte node record with 100,000 state flags allocated %d bytes", len(flags), got)
	}

	// A long "errors" list keeps 8 entries and counts the others.
	many := `{"errors":[` + strings.TrimSuffix(strings.Repeat(`{"error":"e\nf","errno":1},`, 10_000), ",") + `],"nodes":[]}`
	if _, e, err := decodeNodes(strings.NewReader(many), nil); err != nil || len(e) != maxDocErrors+1 || e[maxDocErrors].Error != "and 9992 more errors" ||
		strings.Contains(e[0].String(), "\n") {
		t.Errorf("10,000 errors: %d kept (%v), %v", len(e), e, err)
	}
}

func TestCapReader(t *testing.T) {
	for _, tc := range []struct {
		body string
		cap  int64
		err  error
	}{
		{"0123456789", 10, nil},
		{"01234567890", 10, errTooLarge},
		{"", 0, nil},
		{"x", 0, errTooLarge},
	} {
		got, err := io.ReadAll(&capReader{r: strings.NewReader(tc.body), n: tc.cap})
		if !errors.Is(err, tc.err) || err == nil && string(got) != tc.body {
			t.Errorf("%d-byte body, cap %d: %q, %v; want %v", len(tc.body), tc.cap, got, err, tc.err)
		}
	}
}

// The scontrol adapter's JobEnds on hostile squeue output: an error, and
// few allocations.
func TestCLIJobEndsHostileOutput(t *testing.T) {
	run := func(ctx context.Context, c Command) ([]byte, []byte, error) { return hostileSqueue, nil, nil }
	cli, err := NewCLI(Config{Runner: run})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.JobEnds(t.Context(), []string{"x0000001"}); !errors.Is(err, ErrHostlist) {
		t.Errorf("JobEnds: %v; want an error matching ErrHostlist", err)
	}
	if n := testing.AllocsPerRun(1, func() { _, _ = cli.JobEnds(t.Context(), []string{"x0000001"}) }); n > 300 {
		t.Errorf("JobEnds on 248 hostile bytes: %.0f allocations", n)
	}
}

// A program that writes without end (a broken wrapper, a hostile binary
// on $PATH): the output kept is bounded and the call fails.
func TestExecOutputIsBounded(t *testing.T) {
	out, _, err := execLimited(t.Context(), Command{Path: "yes", Args: []string{"NodeName=x State=IDLE"}}, 1<<20, 1<<10)
	if !errors.Is(err, ErrOutputTooLarge) || len(out) > 1<<20 {
		t.Errorf("yes: %d bytes kept, %v; want at most 1 MiB and ErrOutputTooLarge", len(out), err)
	}
	_, errb, err := execLimited(t.Context(), Command{Path: "sh", Args: []string{"-c", "yes error >&2"}}, 1<<20, 1<<10)
	if !errors.Is(err, ErrOutputTooLarge) || len(errb) > 1<<10 {
		t.Errorf("yes on stderr: %d bytes kept, %v; want at most 1 KiB and ErrOutputTooLarge", len(errb), err)
	}
	out, _, err = execLimited(t.Context(), Command{Path: "echo", Args: []string{"fits"}}, 1<<20, 1<<10)
	if err != nil || string(out) != "fits\n" {
		t.Errorf("echo: %q, %v", out, err)
	}
}
