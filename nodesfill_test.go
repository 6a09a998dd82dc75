package crus_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

// nodesByName is the fake workload manager less wlm.NodesFiller: two
// NodesInto at the same depth cancel out of its method set, and every
// other method and capability of the fake stays. The executor reads its
// nodes through Nodes, by name.
type nodesByName struct {
	*fake.WLM
	noNodesInto
}

type noNodesInto struct{}

func (noNodesInto) NodesInto(context.Context, []string, []wlm.Node) error {
	panic("not called: ambiguous in nodesByName")
}

// TestNodeReadByPositionOrByName: one session on two identical worlds,
// its nodes read by position from the one (the fake is a
// wlm.NodesFiller) and through Nodes from the other, ends with the same
// record, and with the same node unknown to the workload manager
// midway.
func TestNodeReadByPositionOrByName(t *testing.T) {
	var finals []*crus.Session
	for _, byName := range []bool{false, true} {
		e := newEnv(t, fake.ClusterOptions{Nodes: 40, Busy: 0.7, MaxJob: 2 * time.Hour}, 5)
		e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd}
		var m wlm.Manager = e.w.WLM()
		_, filler := m.(wlm.NodesFiller)
		require.True(t, filler, "the fake reads by position")
		if byName {
			m = nodesByName{WLM: e.w.WLM()}
			_, filler = m.(wlm.NodesFiller)
			require.False(t, filler)
		}
		ex, err := crus.NewExecutor(e.w.HSM(), m, e.w.BOS(), e.cfg)
		require.NoError(t, err)
		e.ex = ex
		gone := e.w.XNames()[37]
		e.w.Schedule(e.w.Now().Add(20*time.Minute), func() { e.w.RemoveNode(gone) })
		s := e.create()
		final, err := e.ex.Run(context.Background(), s.UpgradeID)
		require.NoError(t, err)
		require.True(t, final.Completed)
		n := final.Node(gone)
		require.NotNil(t, n)
		assert.NotEqual(t, crus.OutcomeUpgraded, n.Outcome, "a node the workload manager forgot is not upgraded")
		finals = append(finals, final)
	}
	assert.Empty(t, cmp.Diff(finals[0].Progress, finals[1].Progress), "the record, read by position (-) and by name (+)")
	assert.Equal(t, finals[0].Messages, finals[1].Messages)
}
