package etcdstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/storetest"
)

// TestFencedWrites: a Store that drives a session writes it only while
// its lease key is the one it created; once the lease is gone (or the key
// is another replica's), every write is refused with crus.ErrLeaseLost and
// nothing changes. Another Store, not fenced, still writes by revision.
func TestFencedWrites(t *testing.T) {
	ctx := context.Background()
	c, prefix := etcdtest.Shared(t)
	st, err := New(c, Config{Prefix: prefix})
	require.NoError(t, err)
	s := storetest.Session("s", 300)
	require.NoError(t, st.CreateReserved(ctx, s))

	lease, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	key := st.leaderKey("s")
	resp, err := c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, "me", clientv3.WithLease(lease.ID))).Commit()
	require.NoError(t, err)
	require.True(t, resp.Succeeded)
	st.setFence("s", key, resp.Header.Revision)

	s.Messages = append(s.Messages, "while holding the lease")
	require.NoError(t, st.Update(ctx, s))

	_, err = c.Revoke(ctx, lease.ID) // the lease expires
	require.NoError(t, err)
	before, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	s.Messages = append(s.Messages, "after losing it")
	s.Progress.Nodes[200].Phase = crus.PhaseBooting
	err = st.Update(ctx, s)
	assert.ErrorIs(t, err, crus.ErrLeaseLost)
	assert.ErrorContains(t, err, key)
	err = st.UpdateNodes(ctx, s, []int{200})
	assert.ErrorIs(t, err, crus.ErrLeaseLost, "UpdateNodes is fenced as Update is")
	assert.ErrorIs(t, st.Delete(ctx, "s"), crus.ErrLeaseLost)

	// Another replica takes it: its key is not ours either.
	other, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	_, err = c.Put(ctx, key, "other", clientv3.WithLease(other.ID))
	require.NoError(t, err)
	assert.ErrorIs(t, st.Update(ctx, s), crus.ErrLeaseLost)
	after, err := c.Get(ctx, prefix+"sessions/", clientv3.WithPrefix())
	require.NoError(t, err)
	var head []byte
	for _, kv := range before.Kvs {
		if string(kv.Key) == prefix+"sessions/s" {
			head = kv.Value
		}
	}
	assert.Equal(t, head, after.Kvs[0].Value, "no refused write changed the record")

	// Unfenced, a Store writes by revision as ever.
	st.clearFence("s")
	fresh, err := st.Get(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, "while holding the lease", fresh.Messages[len(fresh.Messages)-1])
	fresh.AddMessages("unfenced")
	require.NoError(t, st.Update(ctx, fresh))
	_, _ = c.Revoke(ctx, other.ID)
}

func TestReplicaConfig(t *testing.T) {
	c, prefix := etcdtest.Shared(t)
	st, err := New(c, Config{Prefix: prefix})
	require.NoError(t, err)
	_, err = NewReplica(nil, nil, ReplicaConfig{})
	assert.Error(t, err)
	cfg := ReplicaConfig{}.withDefaults()
	assert.Equal(t, 10*time.Second, cfg.TTL)
	assert.Equal(t, 2500*time.Millisecond, cfg.Margin)
	assert.NotEmpty(t, cfg.Name)
	w := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), crus.Config{Store: st})
	require.NoError(t, err)
	_, err = NewReplica(st, ex, ReplicaConfig{})
	require.NoError(t, err)
	for _, bad := range []ReplicaConfig{{TTL: time.Second}, {TTL: 4 * time.Second, Margin: 2 * time.Second}, {TTL: -time.Second}} {
		_, err := NewReplica(st, ex, bad)
		assert.Error(t, err, "%+v", bad)
	}
}
