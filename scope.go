package crus

import "slices"

// ScopeFor returns what must be observed before planning the session: the
// workload-manager state of every node in flight (or about to be taken),
// the status of every boot session in use, and the upgrading group when a
// boot is near or the session is winding up.
func ScopeFor(s *Session) Scope {
	sc, _, _ := scopeWith(s, nil, false)
	return sc
}

// scopeWith is ScopeFor, reading only the active nodes of idx if not nil.
// It also returns the positions of Scope.Nodes and of Scope.JobEnds in
// the record. A light scope (a look between two full observations) holds
// only the nodes on their way back (Phase.returning), and leaves out the
// pending nodes, their job ends and the bookings.
func scopeWith(s *Session, idx *nodeIndex, light bool) (Scope, []int, []int) {
	var sc Scope
	var pos, endsPos []int
	var bufs *scopeBufs // reused from the scope before, with an index
	if idx != nil {
		bufs = &idx.scope
		pos = bufs.pos[:0]
	}
	boots := map[string]int{}
	inFlight, quiescing, quiesced, retriedBoot := 0, false, false, false
	firstPending := len(s.Progress.Nodes)
	each := func(yield func(int) bool) {
		for i := range s.Progress.Nodes {
			if !yield(i) {
				return
			}
		}
	}
	var pol *policy
	if idx != nil {
		pol = idx.policy()
		firstPending = idx.firstPending
		each = func(yield func(int) bool) {
			for _, i := range idx.active {
				if !yield(i) {
					return
				}
			}
		}
	} else {
		pol = policyOf(&s.Spec)
	}
	for i := range each {
		n := &s.Progress.Nodes[i]
		switch n.Phase { // most nodes are at rest: keep this loop cheap
		case PhasePending:
			firstPending = min(firstPending, i)
			continue
		case PhaseDone, "":
			continue
		}
		inFlight++
		quiescing = quiescing || n.Phase == PhaseQuiescing
		quiesced = quiesced || n.Phase == PhaseQuiesced
		if !light || n.Phase.returning() {
			pos = append(pos, i)
		}
		if n.Phase == PhaseBooting {
			// A boot request that failed may have to be sent again: the
			// group is checked before every boot request.
			retriedBoot = retriedBoot || n.LastError != ""
			j, ok := boots[n.Boot]
			if !ok {
				j = len(sc.Boots)
				boots[n.Boot] = j
				sc.Boots = append(sc.Boots, BootRef{Name: n.Boot, Requested: n.RebootRequested, TimedFrom: n.bootClock()})
			}
			if n.RebootRequested.Before(sc.Boots[j].Requested) {
				sc.Boots[j].Requested = n.RebootRequested
			}
			if c := n.bootClock(); c.Before(sc.Boots[j].TimedFrom) {
				sc.Boots[j].TimedFrom = c
			}
			sc.Boots[j].Accepted = sc.Boots[j].Accepted || n.BootAccepted
			sc.Boots[j].Nodes = append(sc.Boots[j].Nodes, n.XName)
		}
	}
	// Before a boot, check the nodes to boot are in the upgrading group
	// (the boot template targets it) and who else is: an add lost to a
	// crash between recording a step and acting on it is repaired there,
	// and a stranger is never rebooted. A step with a barrier boots only
	// once none of its nodes is quiescing.
	sc.Upgrading = quiesced && (pol.rolling || !quiescing) || retriedBoot
	nodes := s.Progress.Nodes
	room, _ := pol.gate(s, s.Progress.Step, inFlight)
	room = pol.admissible(room, inFlight)
	// The scheduled strategy keeps the pending nodes' bookings up to date
	// even while no node may be taken: it observes them every time.
	if !light && (room > 0 || pol.scheduled && firstPending < len(nodes)) {
		phase := func(i int) Phase { return nodes[i].Phase }
		limit := pol.candidateLimit(max(room, 1))
		var cands []int
		if bufs != nil {
			// The index says which are pending and which were put
			// back: the walk reads no record.
			cands = idx.candidates(bufs.cands[:0], firstPending, limit, nil, nil, phase)
			bufs.cands = cands
		} else {
			cands = candidates(nodes, phase, limit, firstPending)
		}
		pos = append(pos, cands...)
		if len(cands) > 0 && (pol.order == OrderJobEnd || pol.scheduled) {
			// In xname order: the records are (nodes put back come
			// after the others, out of order).
			slices.Sort(cands)
			if bufs != nil {
				bufs.jobEnds = resize(bufs.jobEnds, len(cands))
				sc.JobEnds = bufs.jobEnds
			} else {
				sc.JobEnds = make([]string, len(cands))
			}
			for k, i := range cands {
				sc.JobEnds[k] = nodes[i].XName
			}
			endsPos = cands
		}
	}
	sc.Bookings = pol.scheduled && !light
	if inFlight == 0 {
		// Winding up, or about to: the group must end empty of the
		// session's nodes.
		sc.Upgrading = sc.Upgrading || s.Progress.Cancel || s.Progress.Abort != "" ||
			s.Progress.Stage == StageCleanup || firstPending == len(nodes)
	}
	// Node records are sorted by xname: sorted positions give sorted
	// xnames.
	slices.Sort(pos)
	if len(pos) > 0 {
		if bufs != nil {
			bufs.nodes = resize(bufs.nodes, len(pos))
			sc.Nodes = bufs.nodes
		} else {
			sc.Nodes = make([]string, len(pos))
		}
		for k, i := range pos {
			sc.Nodes[k] = s.Progress.Nodes[i].XName
		}
	}
	if bufs != nil {
		bufs.pos = pos
	}
	return sc, pos, endsPos
}

// scopeBufs is scopeWith's scratch space in a nodeIndex: the executor
// takes a scope at every observation, and its lists (thousands of
// candidates with the scheduled strategy) are read only until the
// observation is made. A scope taken with an index is valid until the
// next one is.
type scopeBufs struct {
	pos, cands     []int
	nodes, jobEnds []string
}

// candidates returns the indices of at most max pending nodes in turn
// order: nodes never put back in list order, then the ones put back by
// how often they were, reading each node's phase through phase. No node
// before from is pending.
func candidates(nodes []NodeRecord, phase func(i int) Phase, limit, from int) []int {
	out := make([]int, 0, max(0, min(limit, len(nodes)-from)))
	var back []int // put back before
	for i := max(from, 0); i < len(nodes); i++ {
		if phase(i) != PhasePending {
			continue
		}
		if nodes[i].Retries > 0 {
			back = append(back, i)
			continue
		}
		if out = append(out, i); len(out) >= limit {
			return out
		}
	}
	return appendPutBack(out, back, nodes, limit)
}

// appendPutBack appends to out the nodes put back (back, in record
// order), least often first, until out holds limit.
func appendPutBack(out, back []int, nodes []NodeRecord, limit int) []int {
	slices.SortStableFunc(back, func(a, b int) int { return nodes[a].Retries - nodes[b].Retries })
	for _, i := range back {
		if len(out) >= limit {
			break
		}
		out = append(out, i)
	}
	return out
}

// returning reports whether a node in this phase is on its way back to
// service soon: drained and about to boot, booting, or booted and waiting
// to be seen back and resumed. The executor looks at such nodes more
// often than at the rest.
func (p Phase) returning() bool {
	switch p {
	case PhaseQuiesced, PhaseBooting, PhaseReturning, PhaseResuming:
		return true
	}
	return false
}
