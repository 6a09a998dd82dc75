package crus

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/crus-go/crus/bos"
)

// TestBootNodeByNode: without a barrier, a node whose own boot is over
// moves on while its boot session still runs; with one (the original
// algorithm), it waits for the whole session.
func TestBootNodeByNode(t *testing.T) {
	ok := bos.NodeStatus{Result: bos.ResultSucceeded}
	bad := bos.NodeStatus{Result: bos.ResultFailed, Reason: "power on failed"}
	for _, rolling := range []bool{true, false} {
		s := newTestSession(2, 2)
		if rolling {
			s.Rollout.Strategy = StrategyRolling
		}
		xs := nodes(s, 1)
		setPhase(s, PhaseBooting, t0, xs...)
		s.Progress.Boots = 1
		w := observe(t0.Add(10*time.Minute)).boot("crus-u1-1", bos.PhaseRunning, "", map[string]bos.NodeStatus{xs[0]: ok, xs[1]: bad})
		d := plan(t, s, w.obs)
		c0, moved0 := changeOf(d, xs[0])
		c1, moved1 := changeOf(d, xs[1])
		if !rolling {
			assert.False(t, moved0 || moved1, "classic waits for the session")
			continue
		}
		assert.Equal(t, PhaseReturning, c0.Phase)
		assert.Equal(t, PhaseFailing, c1.Phase)
		assert.Contains(t, c1.Reason, "power on failed")
	}
}
