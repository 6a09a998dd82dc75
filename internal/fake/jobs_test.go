package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

func TestJobsAndTrueEnds(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
	t0 := w.Now()
	require.True(t, w.StartJobOnFree(2, "ann", time.Hour, 5*time.Hour, nil)) // nid 1-2
	require.NoError(t, w.StartJob(fake.XName(3), 3*time.Hour, 4*time.Hour))  // nid 4, no user
	w.Advance(10 * time.Minute)
	require.True(t, w.StartJobOnFree(1, "bob", 2*time.Hour, 8*time.Hour, nil)) // nid 3

	ctx := context.Background()
	m := w.WLM()
	jobs, err := m.Jobs(ctx, []string{"nid000001", "nid000002", "nid000004"}, time.Time{})
	require.NoError(t, err)
	require.Len(t, jobs, 2, "the 2-node job once, and the other")
	assert.Equal(t, "ann", jobs[0].User)
	assert.Equal(t, []string{"nid000001", "nid000002"}, jobs[0].Nodes)
	assert.Equal(t, t0, jobs[0].Start)
	assert.Equal(t, t0.Add(5*time.Hour), jobs[0].Limit)
	assert.True(t, jobs[0].End.IsZero())
	assert.Equal(t, wlm.Job{ID: jobs[1].ID, Nodes: []string{"nid000004"}, Limit: t0.Add(4 * time.Hour)}, jobs[1], "no user or start known")

	assert.Equal(t, map[string]time.Time{"nid000001": t0.Add(time.Hour), "nid000003": t0.Add(130 * time.Minute)},
		w.TrueJobEnds([]string{"nid000001", "nid000003", "nid000099"}))

	w.Advance(3 * time.Hour)
	jobs, err = m.Jobs(ctx, []string{"nid000001", "nid000099"}, t0.Add(90*time.Minute))
	assert.True(t, errors.Is(err, wlm.ErrNodeNotFound))
	require.Len(t, jobs, 1, "only bob's ended since 1h30 (ann's ended at 1h)")
	assert.Equal(t, "bob", jobs[0].User)
	assert.Equal(t, t0.Add(130*time.Minute), jobs[0].End)
	assert.Empty(t, jobs[0].Nodes, "ended jobs are kept without their nodes")
	assert.Equal(t, 2, w.Calls()["wlm.Jobs"], "one call each")
}
