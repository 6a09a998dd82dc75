package crus

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/crus-go/crus/wlm"
)

// TestKeepNodesHoldsExactlyTheLastObservation: the run's map of observed
// nodes is reused, not cleared, from one observation to the next; after
// each it holds exactly the nodes that observation set, whatever the ones
// before held (a node left over from an earlier observation would be seen
// with a stale state), and a failed read leaves it empty.
func TestKeepNodesHoldsExactlyTheLastObservation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := &run{obsNodes: map[string]wlm.Node{}}
		rounds := rapid.IntRange(1, 8).Draw(t, "rounds")
		for round := range rounds {
			if rapid.Bool().Draw(t, fmt.Sprint("fails", round)) {
				r.forgetNodes()
				if len(r.obsNodes) != 0 {
					t.Fatalf("round %d: a failed read left %v", round, slices.Sorted(maps.Keys(r.obsNodes)))
				}
				continue
			}
			var keys []string
			for i := range 12 {
				if rapid.Bool().Draw(t, fmt.Sprint("in", round, "-", i)) {
					x := fmt.Sprintf("x%02d", i)
					r.obsNodes[x] = wlm.Node{Name: x, Reason: fmt.Sprint(round)}
					keys = append(keys, x)
				}
			}
			r.keepNodes(keys)
			if got := slices.Sorted(maps.Keys(r.obsNodes)); !slices.Equal(got, keys) {
				t.Fatalf("round %d: map holds %v, the observation set %v", round, got, keys)
			}
			for _, x := range keys {
				if r.obsNodes[x].Reason != fmt.Sprint(round) {
					t.Fatalf("round %d: %s not this round's", round, x)
				}
			}
		}
	})
}
