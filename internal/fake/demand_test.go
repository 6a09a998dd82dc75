package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/fake"
)

// TestLossUnwanted: the wait of a node crus drained counts as unwanted
// only while the scheduler says no waiting job could use it; a node that
// starts waiting counts as wanted until the scheduler says otherwise.
func TestLossUnwanted(t *testing.T) {
	ctx := context.Background()
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 3})
	require.NoError(t, w.WLM().Drain(ctx, []string{"nid000001"}, "crus test"))
	assert.Equal(t, 1, w.Waiting())
	w.Advance(time.Hour) // no word from a scheduler: wanted
	w.SetDemand(false)
	w.Advance(2 * time.Hour)
	w.SetDemand(true)
	w.Advance(time.Hour)
	w.SetDemand(false)
	w.Advance(30 * time.Minute) // and still going: read as of now
	l := w.Loss()
	assert.InDelta(t, (4*time.Hour + 30*time.Minute).Hours(), l.Waiting.Hours(), 1e-9)
	assert.InDelta(t, (2*time.Hour + 30*time.Minute).Hours(), l.Unwanted.Hours(), 1e-9)

	// A second node starts waiting: wanted again, both, until the
	// scheduler says otherwise.
	require.NoError(t, w.WLM().Drain(ctx, []string{"nid000002"}, "crus test"))
	assert.Equal(t, 2, w.Waiting())
	w.Advance(time.Hour)
	assert.InDelta(t, (2*time.Hour + 30*time.Minute).Hours(), w.Loss().Unwanted.Hours(), 1e-9)
	w.SetDemand(false)
	w.Advance(time.Hour)
	assert.InDelta(t, (4*time.Hour + 30*time.Minute).Hours(), w.Loss().Unwanted.Hours(), 1e-9, "two nodes for an hour")

	// A drain that is not crus's loses nothing to crus.
	require.NoError(t, w.WLM().Drain(ctx, []string{"nid000003"}, "site maintenance"))
	assert.Equal(t, 2, w.Waiting())
}
