package crus

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"pgregory.net/rapid"
)

// TestHeldIndex: over a run of decisions in which bookings come, go, keep
// their slice of nodes or get a new one (sorted or not, with nodes that
// are no record's, and nodes that other bookings hold too), the index
// says for every record what a map by xname, rebuilt every time, says.
func TestHeldIndex(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 40).Draw(t, "records")
		s := &Session{}
		for i := range n {
			s.Progress.Nodes = append(s.Progress.Nodes, NodeRecord{XName: fmt.Sprintf("x%03d", 2*i)})
		}
		// Odd numbers are no record's xname.
		xname := rapid.Custom(func(t *rapid.T) string { return fmt.Sprintf("x%03d", rapid.IntRange(0, 2*n+1).Draw(t, "x")) })
		var h heldIndex
		bookings := map[string]Booking{}
		for call := range rapid.IntRange(1, 8).Draw(t, "decisions") {
			next := map[string]Booking{}
			for _, name := range []string{"b1", "b2", "b3", "b4"} {
				switch rapid.IntRange(0, 2).Draw(t, fmt.Sprint("fate ", name, call)) {
				case 0: // gone, or not made
				case 1: // kept, with its slice
					if b, ok := bookings[name]; ok {
						next[name] = b
					}
				case 2: // new nodes
					xs := rapid.SliceOfN(xname, 0, 12).Draw(t, fmt.Sprint("nodes ", name, call))
					if rapid.Bool().Draw(t, fmt.Sprint("sorted ", name, call)) {
						slices.Sort(xs)
					}
					next[name] = Booking{Name: name, Nodes: xs}
				}
			}
			bookings = next
			h.update(s, bookings)
			want := map[string]string{}
			for _, name := range sortedKeys(bookings) {
				for _, x := range bookings[name].Nodes {
					want[x] = name
				}
			}
			for i, r := range s.Progress.Nodes {
				if got := h.of(i); got != want[r.XName] {
					t.Fatalf("decision %d: %s held by %q, want %q (bookings %v)", call, r.XName, got, want[r.XName], bookings)
				}
			}
		}
	})
}

// TestPackNames: the packed names are the mapped ones, in the order of
// the xnames, "" for an xname without one.
func TestPackNames(t *testing.T) {
	names := map[string]string{"x1": "nid000001", "x3": "n3", "x2": "node-two"}
	assert.Equal(t, []string{"node-two", "", "nid000001", "n3", "nid000001"}, packNames([]string{"x2", "x9", "x1", "x3", "x1"}, names))
	assert.Empty(t, packNames(nil, names))
	assert.Equal(t, []string{""}, packNames([]string{"x1"}, nil))
}
