package fake_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

// TestSteerPlacesJobsOnOtherNodesFirst: under every placement, a job goes
// to nodes steered last only when the others free do not suffice, and
// takes every node when it needs them; a World that ignores steering
// places as if none were steered.
func TestSteerPlacesJobsOnOtherNodesFirst(t *testing.T) {
	ctx := context.Background()
	nidsOf := func(w *fake.World) map[int]bool {
		busy := map[int]bool{}
		for _, x := range w.XNames() {
			if n, _ := w.Node(x); n.Jobs > 0 {
				busy[n.NID] = true
			}
		}
		return busy
	}
	names := func(nids ...int) []string {
		var out []string
		for _, k := range nids {
			out = append(out, fmt.Sprintf("nid%06d", k))
		}
		return out
	}
	for _, p := range []fake.Placement{fake.PlaceLowest, fake.PlaceHighest, fake.PlaceRandom} {
		w := fake.NewCluster(fake.ClusterOptions{Nodes: 70, Options: fake.Options{Seed: 3}})
		w.SetPlacement(p)
		// Every node but 10, 40 and 70 steered last.
		var last []int
		for k := 1; k <= 70; k++ {
			if k%30 != 10 {
				last = append(last, k)
			}
		}
		require.NoError(t, w.WLM().Steer(ctx, names(last...), true))
		require.True(t, w.StartJobOnFree(2, "", time.Hour, time.Hour, nil))
		got := nidsOf(w)
		assert.Len(t, got, 2, p.String())
		for k := range got {
			assert.Contains(t, []int{10, 40, 70}, k, "%s: a node steered last taken while others were free", p)
		}
		require.True(t, w.StartJobOnFree(3, "", time.Hour, time.Hour, nil))
		got = nidsOf(w)
		assert.Len(t, got, 5, p.String())
		for _, k := range []int{10, 40, 70} {
			assert.True(t, got[k], "%s: node %d free and not steered, yet a steered one was taken", p, k)
		}
		require.True(t, w.StartJobOnFree(65, "", time.Hour, time.Hour, nil), "%s: a job that needs every node still gets them", p)
		assert.False(t, w.StartJobOnFree(1, "", time.Hour, time.Hour, nil))

		ignoring := fake.NewCluster(fake.ClusterOptions{Nodes: 70, Options: fake.Options{Seed: 3}})
		ignoring.SetPlacement(p)
		plain := fake.NewCluster(fake.ClusterOptions{Nodes: 70, Options: fake.Options{Seed: 3}})
		plain.SetPlacement(p)
		ignoring.IgnoreSteering(true)
		require.NoError(t, ignoring.WLM().Steer(ctx, names(last...), true))
		for _, k := range []int{4, 7} {
			require.True(t, ignoring.StartJobOnFree(k, "", time.Hour, time.Hour, nil))
			require.True(t, plain.StartJobOnFree(k, "", time.Hour, time.Hour, nil))
		}
		assert.Equal(t, nidsOf(plain), nidsOf(ignoring), "%s: steering ignored", p)
	}
}

// TestSteerContract: steering is idempotent, given back to nodes never
// steered without change, and reports unknown nodes per node while the
// known ones are steered.
func TestSteerContract(t *testing.T) {
	ctx := context.Background()
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 3})
	m := w.WLM()
	require.NoError(t, m.Steer(ctx, []string{"nid000001"}, false))
	assert.Empty(t, w.Steered())
	assert.Empty(t, w.Touched(), "nothing changed, nothing touched")
	require.NoError(t, m.Steer(ctx, []string{"nid000001", "nid000002"}, true))
	require.NoError(t, m.Steer(ctx, []string{"nid000002"}, true))
	assert.Equal(t, []string{w.XNames()[0], w.XNames()[1]}, w.Steered())

	err := m.Steer(ctx, []string{"nid000003", "nid999999"}, true)
	require.ErrorIs(t, err, wlm.ErrNodeNotFound)
	assert.Equal(t, []string{"nid999999"}, batch.FailedNodes(err))
	assert.Len(t, w.Steered(), 3, "the known node was steered")

	require.NoError(t, m.Steer(ctx, []string{"nid000001", "nid000002", "nid000003"}, false))
	assert.Empty(t, w.Steered())
	require.NoError(t, m.Steer(ctx, nil, true), "no node, nothing to do")
}
