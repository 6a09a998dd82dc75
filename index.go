package crus

import "slices"

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
	x := &nodeIndex{s: s, n: n, isActive: make([]bool, n), isFailed: make([]bool, n), firstPending: n}
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
