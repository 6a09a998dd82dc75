package slurm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompressHostlist(t *testing.T) {
	seq := func(format string, from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf(format, i))
		}
		return out
	}
	tests := []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"nid000001"}, "nid000001"},
		{append(seq("nid%06d", 1, 50), "nid000077"), "nid[000001-000050,000077]"},
		{[]string{"nid000003", "nid000001", "nid000002", "nid000002"}, "nid[000001-000003]"},
		{[]string{"login", "nid000002", "nid000001"}, "login,nid[000001-000002]"},
		{[]string{"n9", "n10", "n11"}, "n9,n[10-11]"},
		{[]string{"n09", "n10"}, "n[09-10]"},
		{[]string{"n1", "n01"}, "n1,n01"},
		{[]string{"a-1", "a-2", "b.3"}, "a-[1-2],b.3"},
		{[]string{"rack1n1", "rack1n2", "rack2n1"}, "rack1n[1-2],rack2n1"},
		{[]string{"x99999999999999999999"}, "x99999999999999999999"},
	}
	for _, tt := range tests {
		got := CompressHostlist(tt.names)
		if got != tt.want {
			t.Errorf("CompressHostlist(%q) = %q, want %q", tt.names, got, tt.want)
		}
		back, err := ExpandHostlist(got)
		if err != nil {
			t.Errorf("ExpandHostlist(%q): %v", got, err)
		}
		if want := sortedUnique(tt.names); !slices.Equal(sortedUnique(back), want) {
			t.Errorf("round trip of %q through %q gave %q", tt.names, got, back)
		}
	}
}

func TestExpandHostlist(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{"", nil},
		{"nid000001", []string{"nid000001"}},
		{"nid[000001-000003,000007],login1", []string{"nid000001", "nid000002", "nid000003", "nid000007", "login1"}},
		{"n[8-11]", []string{"n8", "n9", "n10", "n11"}},
		{"n[08-10]", []string{"n08", "n09", "n10"}},
		{"r[1-2]n[1-2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}},
		{"a, b", []string{"a", "b"}},
		{"n[5]", []string{"n5"}},
	}
	for _, tt := range tests {
		got, err := ExpandHostlist(tt.expr)
		if err != nil {
			t.Errorf("ExpandHostlist(%q): %v", tt.expr, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ExpandHostlist(%q) (-want +got):\n%s", tt.expr, diff)
		}
	}
	for _, bad := range []string{"n[1-", "n]", "n[]", "n[a-b]", "n[3-1]", "n[[1]]", "n[1-2", "n[0-99999999]", "n[1-99999999999999999999]"} {
		if got, err := ExpandHostlist(bad); !errors.Is(err, ErrHostlist) {
			t.Errorf("ExpandHostlist(%q) = %q, %v; want an error matching ErrHostlist", bad, got, err)
		}
	}
}

func sortedUnique(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}

// FuzzHostlistRoundTrip checks that any list of valid node names survives
// compression and expansion.
func FuzzHostlistRoundTrip(f *testing.F) {
	f.Add("nid000001,nid000002,nid000050,login")
	f.Add("n9,n10,n010,n0,n00,a-1,a-01")
	f.Add("x1y2,x1y3,x2y2")
	f.Fuzz(func(t *testing.T, list string) {
		var names []string
		for _, n := range strings.Split(list, ",") {
			if ValidateName(n) == nil {
				names = append(names, n)
			}
		}
		hl := CompressHostlist(names)
		back, err := ExpandHostlist(hl)
		if err != nil {
			t.Fatalf("ExpandHostlist(CompressHostlist(%q) = %q): %v", names, hl, err)
		}
		if want := sortedUnique(names); !slices.Equal(sortedUnique(back), want) {
			t.Fatalf("round trip of %q through %q gave %q", names, hl, back)
		}
		if len(back) != len(sortedUnique(names)) {
			t.Fatalf("%q expands to %d names, want %d (no duplicates)", hl, len(back), len(sortedUnique(names)))
		}
	})
}

// FuzzExpandHostlist checks that any expression either fails cleanly or
// expands to names that compress back to the same set.
func FuzzExpandHostlist(f *testing.F) {
	for _, s := range []string{"nid[000001-000003,000007],login1", "r[1-2]n[01-03]", "n[", "a,,b", "n[1-2]]", "[1-3]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := ExpandHostlist(expr)
		if err != nil {
			if !errors.Is(err, ErrHostlist) {
				t.Fatalf("error %v does not match ErrHostlist", err)
			}
			return
		}
		if len(names) > MaxHostlistExpansion {
			t.Fatalf("%d names, more than the limit", len(names))
		}
		for _, n := range names {
			if ValidateName(n) != nil {
				return // not a node list crus would produce
			}
		}
		again, err := ExpandHostlist(CompressHostlist(names))
		if err != nil || !slices.Equal(sortedUnique(again), sortedUnique(names)) {
			t.Fatalf("%q: expand/compress/expand gave %q, %v", expr, again, err)
		}
	})
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"nid000001", "x3000c0s19b1n0", "node_1.cluster", "a", "login-1"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-h", "--all", "nid1 State=RESUME", "nid1,nid2", "nid[1-2]", "a=b", ".hidden", "n\n", "n\x00", strings.Repeat("n", 129), "ünï"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) accepted it", bad)
		}
	}
}
