package crus

import (
	"math/bits"
	"slices"
	"strings"
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
	// candidates visits only those (see candidates), where the records
	// between them, done or in flight, were most of what it read.
	pending []uint64
	// retried has bit i set while record i was put back (Retries > 0):
	// with pending, it spares the walk a look at the records.
	retried []uint64

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
	x := &nodeIndex{s: s, n: n, isActive: make([]bool, n), isFailed: make([]bool, n), firstPending: n, pending: make([]uint64, (n+63)/64), retried: make([]uint64, (n+63)/64)}
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
	setBit(x.pending, i, nr.Phase == PhasePending)
	setBit(x.retried, i, nr.Retries > 0)
}

// setBit sets or clears bit i of bits.
func setBit(bits []uint64, i int, on bool) {
	if on {
		bits[i/64] |= 1 << (i % 64)
	} else {
		bits[i/64] &^= 1 << (i % 64)
	}
}

// hasBit reports whether bit i of bits is set.
func hasBit(bits []uint64, i int) bool { return bits[i/64]&(1<<(i%64)) != 0 }

// isPending reports whether record i is pending in the record.
func (x *nodeIndex) isPending(i int) bool { return hasBit(x.pending, i) }

// candidates is the package's candidates over the index, with no look at
// the records: up to limit nodes pending after a decision's changes,
// from from on, those never put back in order, then those put back by
// how often. The pending records and those put back come from the
// bitmaps; act (sorted) are the nodes the decision may have changed,
// chg its changes by node (nil: none), and phase the phase of a node
// after them, read only for the nodes changed or not pending in the
// record. It appends to out.
func (x *nodeIndex) candidates(out []int, from, limit int, act []int, chg []int32, phase func(i int) Phase) []int {
	from = max(from, 0)
	k, _ := slices.BinarySearch(act, from)
	var back []int // put back before
	for w := from / 64; w < len(x.pending); w++ {
		set := x.pending[w]
		if w == from/64 {
			set &^= 1<<(from%64) - 1 // (the records before from)
		}
		for ; k < len(act) && act[k] < (w+1)*64; k++ {
			set |= 1 << (act[k] % 64) // may be pending now
		}
		for set != 0 {
			b := bits.TrailingZeros64(set)
			set &= set - 1
			i := w*64 + b
			sure := x.pending[w]&(1<<b) != 0 && (chg == nil || chg[i] == 0)
			if !sure && phase(i) != PhasePending {
				continue
			}
			if x.retried[w]&(1<<b) != 0 {
				back = append(back, i)
				continue
			}
			if out = append(out, i); len(out) >= limit {
				return out
			}
		}
	}
	return appendPutBack(out, back, x.s.Progress.Nodes, limit)
}

// update follows the record after s.Apply(d).
func (x *nodeIndex) update(d Decision) {
	nodes := x.s.Progress.Nodes
	grew := false
	f := recordFinder{nodes: nodes}
	for _, c := range d.Changes {
		i := f.find(c.XName)
		if i < 0 {
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

// recordFinder finds a session's node records by xname, galloping from
// the record it found last: the changes of a decision come mostly in
// record order, so the next is near and costs a few comparisons, where a
// binary search of 100,000 records costs 17, each a cache miss.
type recordFinder struct {
	nodes []NodeRecord // sorted by xname
	last  int          // the index found last
}

// find returns the index of the record of xname x, or -1.
func (f *recordFinder) find(x string) int {
	nodes, h := f.nodes, f.last
	lo, hi := 0, len(nodes)
	if h < len(nodes) {
		switch c := strings.Compare(nodes[h].XName, x); {
		case c == 0:
			return h
		case c < 0:
			lo = h + 1
			for d := 1; h+d < len(nodes); d *= 2 {
				if nodes[h+d].XName >= x {
					hi = h + d + 1
					break
				}
				lo = h + d + 1
			}
		default:
			hi = h
			for d := 1; h-d >= 0; d *= 2 {
				if nodes[h-d].XName <= x {
					lo = h - d
					break
				}
				hi = h - d
			}
		}
	}
	i, ok := slices.BinarySearchFunc(nodes[lo:hi], x, cmpXName)
	if !ok {
		return -1
	}
	f.last = lo + i
	return lo + i
}

// record returns the record of xname x, or nil.
func (f *recordFinder) record(x string) *NodeRecord {
	if i := f.find(x); i >= 0 {
		return &f.nodes[i]
	}
	return nil
}
