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
	fresh.Messages = append(fresh.Messages, "unfenced")
	require.NoError(t, st.Update(ctx, fresh))
	_, _ = c.Revoke(ctx, other.ID)
}

// TestLeases: a lease acquires a free session and fences its writes to
// itself; another lease cannot acquire it until it is released; a revoked
// lease's sessions are free again, and its writes refused.
func TestLeases(t *testing.T) {
	ctx := context.Background()
	c, prefix := etcdtest.Shared(t)
	a, err := New(c, Config{Prefix: prefix})
	require.NoError(t, err)
	b, err := New(c, Config{Prefix: prefix})
	require.NoError(t, err)
	_, err = a.Grant(ctx, time.Second)
	assert.Error(t, err, "below etcd's minimum TTL")

	s := storetest.Session("s", 20)
	require.NoError(t, a.CreateReserved(ctx, s))
	active, err := b.Active(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"s"}, active)

	la, err := a.Grant(ctx, 60*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 60*time.Second, la.TTL())
	lb, err := b.Grant(ctx, 60*time.Second)
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := b.WatchFree(wctx)

	ok, err := la.Acquire(ctx, "s")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = lb.Acquire(ctx, "s")
	require.NoError(t, err)
	assert.False(t, ok, "held by a")
	require.NoError(t, la.KeepAlive(ctx))
	s.Messages = append(s.Messages, "written by a")
	require.NoError(t, a.Update(ctx, s))

	require.NoError(t, la.Release(ctx, "s"))
	select {
	case id := <-free:
		assert.Equal(t, "s", id, "the released session is announced")
	case <-time.After(10 * time.Second):
		t.Fatal("no notice of the released session")
	}
	ok, err = lb.Acquire(ctx, "s")
	require.NoError(t, err)
	require.True(t, ok)

	fresh, err := b.Get(ctx, "s")
	require.NoError(t, err)
	require.NoError(t, lb.Revoke(ctx))
	assert.ErrorIs(t, lb.KeepAlive(ctx), crus.ErrLeaseLost)
	fresh.Messages = append(fresh.Messages, "after the revoke")
	require.NoError(t, b.Update(ctx, fresh), "a revoked lease no longer fences: b writes by revision like any writer")
	require.NoError(t, la.Revoke(ctx))
}
