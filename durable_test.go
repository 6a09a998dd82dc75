package crus_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/etcdstore"
	"github.com/crus-go/crus/store/filestore"
)

// TestRunOnFileStoreBadInput: an executor on a file store given a session
// that does not exist, or whose file is damaged, fails with a clear error
// and touches nothing; the file is left as it was.
func TestRunOnFileStoreBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	defer st.Close()
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	e.cfg.Store = st
	ex := e.executor()

	_, err = ex.Run(ctx, "no-such-session")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	assert.ErrorContains(t, err, "no-such-session")
	_, err = ex.Delete(ctx, "no-such-session")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	_, err = ex.Run(ctx, "../../etc/passwd")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)

	s, err := ex.Create(ctx, e.spec)
	require.NoError(t, err)
	p := filepath.Join(dir, s.UpgradeID+".journal")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	torn := b[:len(b)-40]
	require.NoError(t, os.WriteFile(p, torn, 0o600))

	// A restarted controller opens the store again.
	require.NoError(t, st.Close())
	st, err = filestore.Open(dir, filestore.Options{})
	require.NoError(t, err)
	e.cfg.Store = st
	ex = e.executor()

	_, err = ex.Run(ctx, s.UpgradeID)
	assert.ErrorIs(t, err, crus.ErrCorruptSession)
	assert.ErrorContains(t, err, p)
	_, err = ex.Delete(ctx, s.UpgradeID)
	assert.ErrorIs(t, err, crus.ErrCorruptSession)
	_, err = ex.Create(ctx, e.spec)
	assert.ErrorIs(t, err, crus.ErrCorruptSession, "a damaged record may hold the nodes: refuse")
	assert.Empty(t, e.w.Touched(), "nothing touched")
	after, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, torn, after, "the damaged file is left as it was")

	// Repaired, the session runs.
	require.NoError(t, os.WriteFile(p, b, 0o600))
	final, err := ex.Run(ctx, s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	assert.Equal(t, 4, final.Counts().Upgraded)
}

// TestEtcdFullDatabase: etcd refuses every write once its database
// reaches its quota. The executor then stops with etcdstore.ErrNoSpace,
// which names the remedy, before acting on what it could not record: no
// node is drained or rebooted that the record does not show in flight.
// Once an operator applies the remedy (compact, defragment, disarm the
// alarm), Run carries on and the session completes with nothing left
// drained.
func TestEtcdFullDatabase(t *testing.T) {
	srv := etcdtest.Start(t, "--quota-backend-bytes=400000")
	c := srv.Client(t)
	ctx := context.Background()
	st, err := etcdstore.New(c, etcdstore.Config{})
	require.NoError(t, err)
	e := newEnv(t, fake.ClusterOptions{Nodes: 400, Busy: 0.5}, 10)
	e.spec.Strategy = crus.StrategyRolling
	e.cfg.Store = st
	e.cfg.Logger = nil
	ex := e.executor()
	s, err := ex.Create(ctx, e.spec)
	require.NoError(t, err)

	refusals := 0
	var final *crus.Session
	for final == nil {
		got, err := ex.Run(ctx, s.UpgradeID)
		if err == nil {
			final = got
			break
		}
		require.ErrorIs(t, err, etcdstore.ErrNoSpace, "the refusal is named")
		assert.ErrorContains(t, err, "database space exceeded")
		assert.ErrorContains(t, err, "etcdctl defrag")
		assert.ErrorContains(t, err, "alarm disarm")
		refusals++
		require.Less(t, refusals, 30, "the session does not get anywhere")

		// What was done is what was recorded.
		rec, err := st.Get(ctx, s.UpgradeID)
		require.NoError(t, err, "reads still work")
		prefix := "crus " + rec.UpgradeID
		for _, n := range rec.Progress.Nodes {
			ws, ok := e.w.Node(n.XName)
			require.True(t, ok)
			if ws.Drain && strings.HasPrefix(ws.Reason, prefix) && n.Phase != crus.PhaseDone {
				assert.True(t, n.Phase.InFlight(), "node %s drained by crus but recorded %s", n.XName, n.Phase)
			}
			if ws.Reboots > 0 {
				assert.Contains(t, []crus.Phase{crus.PhaseBooting, crus.PhaseReturning, crus.PhaseResuming, crus.PhaseFailing, crus.PhaseDone},
					n.Phase, "node %s rebooted but recorded %s", n.XName, n.Phase)
			}
		}

		// The operator's remedy.
		status, err := c.Status(ctx, srv.Endpoint)
		require.NoError(t, err)
		if _, err = c.Compact(ctx, status.Header.Revision); !errors.Is(err, rpctypes.ErrCompacted) {
			require.NoError(t, err) // else nothing was written since the last remedy
		}
		_, err = c.Defragment(ctx, srv.Endpoint)
		require.NoError(t, err)
		after, err := c.Status(ctx, srv.Endpoint)
		require.NoError(t, err)
		t.Logf("refusal %d: database %d bytes, %d after compaction and defragmentation", refusals, status.DbSize, after.DbSize)
		alarms, err := c.AlarmList(ctx)
		require.NoError(t, err)
		for _, a := range alarms.Alarms {
			_, err := c.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a))
			require.NoError(t, err)
		}
	}
	end, err := c.Status(ctx, srv.Endpoint)
	require.NoError(t, err)
	t.Logf("database at the end: %d bytes", end.DbSize)
	require.Positive(t, refusals, "the quota was reached: the test tested nothing")
	t.Logf("%d refusals, each remedied", refusals)
	e.check(final)
	assert.Equal(t, 400, final.Counts().Upgraded)
}
