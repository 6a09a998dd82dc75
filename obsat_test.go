package crus

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every test that plans through the executor checks that the observation
// by position says what its maps say (see observedAt).
func init() { checkObservedAt = true }

func TestObservedAtFind(t *testing.T) {
	var at observedAt
	at.reset(nil, []int{2, 5, 9, 40})
	for _, c := range []struct {
		i, k int
		ok   bool
	}{{2, 0, true}, {5, 1, true}, {9, 2, true}, {40, 3, true}, {5, 1, true}, {6, 2, false}, {40, 3, true}, {1, 0, false}, {41, 4, false}} {
		k, ok := at.find(c.i)
		assert.Equal(t, c.ok, ok, "find(%d)", c.i)
		if ok {
			assert.Equal(t, c.k, k, "find(%d)", c.i)
		}
	}
}

// withView gives obs the view by position the executor would make for
// the scope of s through idx, from obs's maps.
func withView(s *Session, idx *nodeIndex, obs Observation) Observation {
	_, pos, _ := scopeWith(s, idx, false)
	at := &observedAt{}
	at.reset(idx, pos)
	for k, i := range pos {
		x := s.Progress.Nodes[i].XName
		at.nodes[k], at.seen[k] = obs.Nodes[x]
		at.ends[k] = obs.JobEnds[x]
	}
	at.nodesOK, at.endsOK = true, obs.JobEnds != nil
	obs.at = at
	return obs
}
