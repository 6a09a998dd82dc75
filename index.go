package crus

import (
	"iter"
	"math/bits"
	"slices"
)

// nodeIndex is what the planner needs to know about a session's node
// records without reading all of them: which nodes are active (in flight,
// or possibly in the upgrading group), how many have failed, and where the
// first pending node is. At rest most nodes of a large session are pending
// or done, so a plan that reads only the active nodes costs in proportion
// to the nodes in flight, not to the session.
//
// The executor keeps one per running session, updated after each Apply of
// a decision to the same record; Plan and ScopeFor called on their own
// build a fresh one. It is derived data: never stored, never shared.
type nodeIndex struct {
	s            *Session // the record it indexes
	n            int
	active       []int // sorted
	isActive     []bool
	isFailed     []bool
	failures     int
	firstPending int // len(nodes) if none
	// pending has bit i set while record i is pending: the walk to the
	// candidates visits only those (see pendingFrom), where the records
	// between them, done or in flight, were most of what it read.
	pending []uint64

	// Scratch space of planWith, all zero between plans.
	chg []int32
	act []bool
	// Scratch space of planWith, reused (contents undefined between
	// plans).
	bufs  planBufs
	scope scopeBufs

	pol *policy // of s.Spec, derived once (see policy)
}

// policy returns the session's policy, derived once per index: the spec
// of a session never changes.
func (x *nodeIndex) policy() *policy {
	if x.pol == nil {
		x.pol = policyOf(&x.s.Spec)
	}
	return x.pol
}

// newNodeIndex indexes s with one pass over its nodes.
func newNodeIndex(s *Session) *nodeIndex {
	n := len(s.Progress.Nodes)
	x := &nodeIndex{s: s, n: n, isActive: make([]bool, n), isFailed: make([]bool, n), firstPending: n, pending: make([]uint64, (n+63)/64)}
	for i := range s.Progress.Nodes {
		x.set(i)
		if s.Progress.Nodes[i].Phase == PhasePending {
			x.firstPending = min(x.firstPending, i)
		}
	}
	return x
}

// valid reports whether the index is the one of record s.
func (x *nodeIndex) valid(s *Session) bool {
	return x != nil && x.s == s && x.n == len(s.Progress.Nodes)
}

// set records node i's state, appending to active out of order (callers
// sort).
func (x *nodeIndex) set(i int) {
	nr := &x.s.Progress.Nodes[i]
	active := nr.Phase.InFlight() || nr.Grouped
	if active && !x.isActive[i] {
		x.active = append(x.active, i)
	}
	x.isActive[i] = active
	failed := nr.Outcome == OutcomeFailed || nr.Phase == PhaseFailing
	switch {
	case failed && !x.isFailed[i]:
		x.failures++
	case !failed && x.isFailed[i]:
		x.failures--
	}
	x.isFailed[i] = failed
	if nr.Phase == PhasePending {
		x.pending[i/64] |= 1 << (i % 64)
	} else {
		x.pending[i/64] &^= 1 << (i % 64)
	}
}

// isPending reports whether record i is pending in the record.
func (x *nodeIndex) isPending(i int) bool { return x.pending[i/64]&(1<<(i%64)) != 0 }

// pendingFrom yields, in order, the records from the one at from on that
// are pending in the record.
func (x *nodeIndex) pendingFrom(from int) iter.Seq[int] {
	return func(yield func(int) bool) {
		if from < 0 {
			from = 0
		}
		for w := from / 64; w < len(x.pending); w++ {
			set := x.pending[w]
			if w == from/64 {
				set &^= 1<<(from%64) - 1 // (the records before from)
			}
			for set != 0 {
				b := bits.TrailingZeros64(set)
				if !yield(w*64 + b) {
					return
				}
				set &= set - 1
			}
		}
	}
}

// update follows the record after s.Apply(d).
func (x *nodeIndex) update(d Decision) {
	nodes := x.s.Progress.Nodes
	grew := false
	for _, c := range d.Changes {
		i, ok := slices.BinarySearchFunc(nodes, c.XName, cmpXName)
		if !ok {
			continue
		}
		was := x.isActive[i]
		x.set(i)
		grew = grew || (!was && x.isActive[i])
		if nodes[i].Phase == PhasePending && i < x.firstPending {
			x.firstPending = i
		}
	}
	if grew {
		slices.Sort(x.active)
	}
	x.active = slices.DeleteFunc(x.active, func(i int) bool { return !x.isActive[i] })
	for x.firstPending < len(nodes) && nodes[x.firstPending].Phase != PhasePending {
		x.firstPending++
	}
}

func cmpXName(n NodeRecord, x string) int {
	switch {
	case n.XName < x:
		return -1
	case n.XName > x:
		return 1
	}
	return 0
}

// mergeAscending yields, in order and once each, the indices a yields (in
// order) and those of b (sorted) that are at least from.
func mergeAscending(a iter.Seq[int], b []int, from int) iter.Seq[int] {
	return func(yield func(int) bool) {
		k, _ := slices.BinarySearch(b, from)
		for i := range a {
			for ; k < len(b) && b[k] <= i; k++ {
				if b[k] < i && !yield(b[k]) {
					return
				}
			}
			if !yield(i) {
				return
			}
		}
		for ; k < len(b); k++ {
			if !yield(b[k]) {
				return
			}
		}
	}
}
