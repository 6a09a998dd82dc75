package crus

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/crus-go/crus/wlm"
)

// observedAt is the executor's observation by position: the states and
// job ends it read, in the order of the scope's node records, beside the
// maps of Observation that hold the same by xname. The scheduled strategy
// reads thousands of candidates at every decision; by position that is
// an index, not three string look-ups in maps each. It is valid only for
// the node index it was made with (planWith checks), and only for the
// parts the executor filled (nodes, ends); else the planner reads the
// maps, as Plan called on its own always does.
type observedAt struct {
	idx *nodeIndex
	pos []int // record indices, ascending: the scope's
	// nodes[k] is the state of record pos[k] if seen[k] (nodesOK: for
	// every record of pos). The pending nodes seen may be here only, not
	// in Observation.Nodes: the executor leaves out of the map the
	// thousands of candidates the planner reads by position (see
	// observed and complete). shadow holds them for checkObservedAt.
	nodes   []wlm.Node
	seen    []bool
	nodesOK bool
	shadow  map[string]wlm.Node
	// ends[k] is the expected end of record pos[k]'s jobs, zero if none
	// is known (endsOK: for every record of pos). They may be here only,
	// not in Observation.JobEnds; endsShadow holds them for
	// checkObservedAt.
	ends       []time.Time
	endsOK     bool
	endsShadow map[string]time.Time
	// cursor: where the last find ended (candidates come in order).
	cursor int
}

// reset makes at the empty view of the scope pos of idx, reusing its
// space.
func (at *observedAt) reset(idx *nodeIndex, pos []int) {
	at.idx, at.nodesOK, at.endsOK, at.cursor = idx, false, false, 0
	clear(at.shadow)
	clear(at.endsShadow)
	at.pos = append(at.pos[:0], pos...)
	at.nodes = resize(at.nodes, len(pos))
	at.seen = resize(at.seen, len(pos))
	clear(at.seen)
	at.ends = resize(at.ends, len(pos))
	clear(at.ends)
}

// find returns the position of record i in the view, and whether it is
// there: the next one after the last found first, else by binary search.
func (at *observedAt) find(i int) (int, bool) {
	if k := at.cursor; k < len(at.pos) && at.pos[k] == i {
		at.cursor++
		return k, true
	}
	k, ok := slices.BinarySearch(at.pos, i)
	if ok {
		at.cursor = k + 1
	}
	return k, ok
}

// viewFor returns the observation's view by position, if it has one
// (planWith keeps only a view made for the decision's node index), with
// its cursor at the start.
func (p *planner) viewFor() *observedAt {
	at := p.obs.at
	if at != nil {
		at.cursor = 0
	}
	return at
}

// checkObservedAt makes the planner compare every read by position with
// the maps and panic on a difference (set by the tests).
var checkObservedAt bool

// nodeAt returns the observed state of record i (xname x), and its
// position in the view (-1 if not there): by position if the view holds
// the states (nodesOK), else from the map.
func (p *planner) nodeAt(at *observedAt, i int, x string) (w wlm.Node, seen bool, k int) {
	r, seen, k := p.nodeRef(at, i, x)
	return *r, seen, k
}

// nodeRef is nodeAt without the copy of the state, for the loops over
// thousands of candidates: it points into the view, or (read from the map,
// or not seen) to the planner's scratch copy, valid until the next call.
// Callers do not change it.
func (p *planner) nodeRef(at *observedAt, i int, x string) (w *wlm.Node, seen bool, k int) {
	k, ok := -1, false
	if at != nil {
		if k, ok = at.find(i); !ok {
			k = -1 // (a node the decision made pending is not in the scope)
		}
	}
	if !ok || !at.nodesOK {
		// (The ends may be known by position even so: endAt.)
		p.nodeCopy, seen = p.obs.Nodes[x]
		return &p.nodeCopy, seen, k
	}
	w, seen = &at.nodes[k], at.seen[k]
	if checkObservedAt {
		mw, mseen := p.obs.Nodes[x]
		if !mseen {
			mw, mseen = at.shadow[x]
		}
		if mseen != seen || seen && mw != *w {
			panic(fmt.Sprintf("crus: the observation by position differs from its map for %s: %v %+v, map %v %+v", x, seen, *w, mseen, mw))
		}
	}
	return w, seen, k
}

// endAt returns the expected end of the jobs of the node x at position k
// of the view (from nodeAt), and whether it is known.
func (p *planner) endAt(at *observedAt, k int, x string) (time.Time, bool) {
	if k < 0 || !at.endsOK {
		t, ok := p.obs.JobEnds[x]
		return t, ok
	}
	t := at.ends[k]
	if checkObservedAt {
		mt, mok := p.obs.JobEnds[x]
		if !mok {
			mt, mok = at.endsShadow[x]
		}
		if mok != !t.IsZero() || mok && !mt.Equal(t) {
			panic(fmt.Sprintf("crus: the job ends by position differ from their map for %s: %v, map %v %v", x, t, mok, mt))
		}
	}
	return t, !t.IsZero()
}

// observed returns the observed state of record i, and whether it was
// observed: by position if the observation has a view, else from
// Observation.Nodes. Every read of a pending node's state goes through
// here (the executor's map does not hold them; see observedAt.nodes).
func (p *planner) observed(i int) (wlm.Node, bool) {
	w, seen, _ := p.nodeAt(p.obs.at, i, p.s.Progress.Nodes[i].XName)
	return w, seen
}

// complete makes obs whole for a reader without the view: copies of its
// maps (made with this view) with what the view alone holds added, and no
// view.
func (at *observedAt) complete(obs *Observation, s *Session) {
	nodes := maps.Clone(obs.Nodes)
	if nodes == nil {
		nodes = map[string]wlm.Node{}
	}
	if at.nodesOK {
		for k, i := range at.pos {
			if at.seen[k] {
				nodes[s.Progress.Nodes[i].XName] = at.nodes[k]
			}
		}
	}
	obs.Nodes = nodes
	if obs.JobEnds != nil {
		ends := maps.Clone(obs.JobEnds)
		if at.endsOK {
			for k, i := range at.pos {
				if !at.ends[k].IsZero() {
					ends[s.Progress.Nodes[i].XName] = at.ends[k]
				}
			}
		}
		obs.JobEnds = ends
	}
	obs.at = nil
}
