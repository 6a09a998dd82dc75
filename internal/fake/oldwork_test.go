package fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus/internal/fake"
)

// TestOldWork: only jobs started after MarkUpgrade count, by the nodes
// among theirs that had not rebooted since, with their real run times.
func TestOldWork(t *testing.T) {
	ctx := context.Background()
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 5})
	require.True(t, w.StartJobOnFree(1, "", 10*time.Hour, 20*time.Hour, nil)) // nid000001, before the upgrade
	assert.Zero(t, w.OldWork(), "nothing is measured before MarkUpgrade")

	w.MarkUpgrade()
	mark := w.Now()
	require.NoError(t, w.WLM().Reboot(ctx, []string{"nid000002", "nid000003"}, "upgrade"))
	w.Advance(time.Hour)
	assert.Zero(t, w.OldWork(), "no job started yet")

	// nid000002 rebooted: not counted.
	require.True(t, w.StartJobOnFree(1, "", 30*time.Minute, time.Hour, nil))
	assert.Zero(t, w.OldWork(), "a job on rebooted nodes only is not work on old nodes")

	// nid000003 (rebooted) and nid000004 (not): one old node.
	require.True(t, w.StartJobOnFree(2, "", 2*time.Hour, 5*time.Hour, nil))
	got := w.OldWork()
	assert.Equal(t, fake.OldWork{Jobs: 1, NodeHours: 2, LastEnd: mark.Add(3 * time.Hour)}, got)

	// nid000005, old, for less time: the last end stays.
	require.True(t, w.StartJobOnFree(1, "", time.Hour, 5*time.Hour, nil))
	got = w.OldWork()
	assert.Equal(t, fake.OldWork{Jobs: 2, NodeHours: 3, LastEnd: mark.Add(3 * time.Hour)}, got)

	w.MarkUpgrade()
	assert.Zero(t, w.OldWork(), "MarkUpgrade starts from nothing")
}

// Work on old nodes is counted past what a time.Duration holds (2.56
// million hours): a 40,960-node job of 100 hours is 4.1 million node-hours.
func TestOldWorkBeyondDuration(t *testing.T) {
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 40960})
	w.MarkUpgrade()
	w.Advance(time.Hour)
	require.True(t, w.StartJobOnFree(40960, "", 100*time.Hour, 100*time.Hour, nil))
	assert.Equal(t, 4096000.0, w.OldWork().NodeHours)
}
