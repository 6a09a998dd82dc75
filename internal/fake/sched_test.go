package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

func TestStartJobOnFreeAndSchedulerHook(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 5})
	assert.Equal(t, 5, w.FreeCount())
	ended := 0
	require.True(t, w.StartJobOnFree(3, time.Hour, 2*time.Hour, func() { ended++ }))
	assert.Equal(t, 2, w.FreeCount())
	assert.False(t, w.StartJobOnFree(3, time.Hour, time.Hour, nil), "only 2 nodes free")
	for i, x := range w.XNames()[:3] {
		n, _ := w.Node(x)
		assert.Equal(t, 1, n.Jobs, "node %d runs the job", i)
	}

	runs := 0
	w.SetScheduler(func() { runs++ })
	w.Advance(30 * time.Minute)
	assert.Equal(t, 1, runs, "the hook runs once for what was pending")
	w.Advance(31 * time.Minute)
	assert.Equal(t, 1, ended)
	assert.Equal(t, 5, w.FreeCount(), "free once completing is over")
	assert.GreaterOrEqual(t, runs, 2, "the hook ran after the job freed its nodes")
}

func TestLostCapacity(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
	x := w.XNames()
	require.NoError(t, w.StartJob(x[0], time.Hour, time.Hour))
	m := w.WLM()
	ctx := context.Background()
	require.NoError(t, m.Drain(ctx, []string{"nid000001", "nid000002"}, "crus s1: test"))
	w.Advance(2 * time.Hour)
	// nid000002 was idle: lost from the drain, 2h. nid000001 computed for
	// 1h, then lost 1h.
	assert.InDelta(t, (3 * time.Hour).Seconds(), w.Lost().Seconds(), 5)
	require.NoError(t, m.Resume(ctx, []string{"nid000001", "nid000002"}))
	w.Advance(time.Hour)
	assert.InDelta(t, (3 * time.Hour).Seconds(), w.Lost().Seconds(), 5, "nothing lost once back in service")
	require.NoError(t, m.Drain(ctx, []string{"nid000001"}, "admin: not ours"))
	w.Advance(time.Hour)
	assert.InDelta(t, (3 * time.Hour).Seconds(), w.Lost().Seconds(), 5, "a drain by someone else is not crus's loss")
}

func TestRebootASAP(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 3})
	x := w.XNames()
	require.NoError(t, w.StartJob(x[0], 2*time.Hour, 3*time.Hour))
	w.SetFaults(x[2], fake.NodeFaults{BootFails: true})
	ctx := context.Background()
	start := w.Now()
	require.NoError(t, w.WLM().Reboot(ctx, []string{"nid000001", "nid000002", "nid000003"}, "upgrade"))
	assert.Equal(t, 3, w.RebootsPending())
	nodes, err := w.WLM().Nodes(ctx, []string{"nid000001"})
	require.NoError(t, err)
	assert.True(t, nodes[0].RebootRequested)
	assert.False(t, nodes[0].InService())
	w.Advance(time.Hour)
	assert.Equal(t, 1, w.RebootsPending(), "idle nodes rebooted at once; the busy one waits")
	w.Advance(2 * time.Hour)
	assert.Zero(t, w.RebootsPending())
	assert.Empty(t, w.Violations(), "no job was killed")
	n0, _ := w.Node(x[0])
	assert.True(t, n0.Up && !n0.Drain && n0.BootTime.After(start.Add(2*time.Hour)), "%+v", n0)
	n2, _ := w.Node(x[2])
	assert.False(t, n2.Up, "a node that fails to boot stays down")
	assert.Equal(t, 3, w.MaxOut())
	var _ wlm.Rebooter = w.WLM()
}
