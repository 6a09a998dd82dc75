package crus

import (
	"slices"
	"strings"
)

// heldIndex says which booking holds each node, by record index. It is
// kept from one decision to the next (planBufs), and a booking's nodes
// are looked up again only when they change: the executor gives a
// booking the same slice of nodes from one poll to the next while they
// stay the same (see Executor.bookings). A map by xname rebuilt at every
// decision, and a look-up in it for each of the scheduled strategy's
// thousands of candidates, was a tenth of the time of a decision at
// 100,000 nodes.
type heldIndex struct {
	by    []int32         // by record: 1 + index in names; 0: held by none
	names []string        // the bookings, by name
	set   []int32         // the records set in by
	nodes map[string]held // each booking's nodes as records, by name
}

// held is the nodes of one booking as record indices (-1: an xname that
// is not a record's), for the slice of xnames it was made from.
type held struct {
	first *string
	n     int
	at    []int32
}

// update makes h the index of bookings in s's records. Where bookings
// share a node, the last of them by name holds it.
func (h *heldIndex) update(s *Session, bookings map[string]Booking) {
	if h.by == nil || len(h.by) != len(s.Progress.Nodes) {
		*h = heldIndex{by: make([]int32, len(s.Progress.Nodes)), nodes: map[string]held{}}
	}
	for _, i := range h.set {
		h.by[i] = 0
	}
	h.set, h.names = h.set[:0], h.names[:0]
	for name := range h.nodes {
		if _, ok := bookings[name]; !ok {
			delete(h.nodes, name)
		}
	}
	for _, name := range sortedKeys(bookings) {
		xs := bookings[name].Nodes
		hn, ok := h.nodes[name]
		if !ok || hn.n != len(xs) || len(xs) > 0 && hn.first != &xs[0] {
			hn = held{n: len(xs), at: recordsOf(s.Progress.Nodes, xs, hn.at[:0])}
			if len(xs) > 0 {
				hn.first = &xs[0]
			}
			h.nodes[name] = hn
		}
		h.names = append(h.names, name)
		for _, i := range hn.at {
			if i < 0 {
				continue
			}
			if h.by[i] == 0 {
				h.set = append(h.set, i)
			}
			h.by[i] = int32(len(h.names))
		}
	}
}

// of returns the booking that holds record i, "" if none.
func (h *heldIndex) of(i int) string {
	if b := h.by[i]; b > 0 {
		return h.names[b-1]
	}
	return ""
}

// recordsOf appends to out the index among nodes (sorted by xname) of
// each of xs, -1 for an xname not there. Sorted xnames (the executor's
// are) are found by galloping on from the last one found: a booking's
// nodes lie close together among the records.
func recordsOf(nodes []NodeRecord, xs []string, out []int32) []int32 {
	byXName := func(n NodeRecord, x string) int { return strings.Compare(n.XName, x) }
	sorted := slices.IsSorted(xs)
	lo := 0
	for _, x := range xs {
		if !sorted {
			lo = 0
		}
		// The first record at or after x is within nodes[lo:lo+bound].
		bound := 1
		for lo+bound < len(nodes) && nodes[lo+bound-1].XName < x {
			bound *= 2
		}
		k, ok := slices.BinarySearchFunc(nodes[lo:min(lo+bound, len(nodes))], x, byXName)
		if !ok {
			out = append(out, -1)
			lo += k
			continue
		}
		out = append(out, int32(lo+k))
		lo += k + 1
	}
	return out
}
