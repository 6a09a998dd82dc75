package etcdstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/store/etcdstore"
	"github.com/crus-go/crus/store/storetest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

func newStore(t *testing.T, cfg etcdstore.Config) (*etcdstore.Store, *clientv3.Client) {
	t.Helper()
	c, prefix := etcdtest.Shared(t)
	if cfg.Prefix == "" {
		cfg.Prefix = prefix
	} else {
		cfg.Prefix = prefix + cfg.Prefix
	}
	st, err := etcdstore.New(c, cfg)
	require.NoError(t, err)
	return st, c
}

func TestConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) crus.Store {
		st, _ := newStore(t, etcdstore.Config{})
		return st
	})
}

// TestConformanceStaged runs the suite with transactions so small that
// every record is written in several: the path a 100,000-node record
// takes with the default limits.
func TestConformanceStaged(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) crus.Store {
		st, _ := newStore(t, etcdstore.Config{ChunkSize: 50, MaxTxnOps: 6, MaxTxnBytes: 16 << 10})
		return st
	})
}

// keys returns the keys under the store's prefix, by kind.
func keys(t *testing.T, c *clientv3.Client, prefix string) map[string][]string {
	t.Helper()
	resp, err := c.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	out := map[string][]string{}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), prefix)
		kind, _, _ := strings.Cut(k, "/")
		out[kind] = append(out[kind], k)
	}
	return out
}

// TestLayout checks what a 10,000-node session costs in etcd: it fits the
// server's default limits, and a write of a step's nodes writes the head
// and the chunks holding them, not the whole record.
func TestLayout(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, etcdstore.Config{})
	s := storetest.Session("big", 10000)
	require.NoError(t, st.CreateReserved(ctx, s))
	k := keys(t, c, st.Prefix())
	assert.Len(t, k["sessions"], 1)
	assert.Len(t, k["nodes"], 79, "10,000 nodes in chunks of 128")
	assert.Equal(t, []string{"active/big"}, k["active"])

	size := func(prefix string) (n int) {
		resp, err := c.Get(ctx, st.Prefix()+prefix, clientv3.WithPrefix())
		require.NoError(t, err)
		for _, kv := range resp.Kvs {
			n += len(kv.Value)
		}
		return n
	}
	t.Logf("10,000 nodes: head %d bytes, chunks %d bytes, reservation %d bytes", size("sessions/"), size("nodes/"), size("active/"))
	assert.Less(t, size("nodes/"), 1<<20, "the whole record fits one request")

	before := s.Revision
	for i := 5100; i < 5150; i++ { // chunks 39 (4992..5119) and 40
		s.Progress.Nodes[i].Phase = crus.PhaseQuiescing
	}
	require.NoError(t, st.Update(ctx, s))
	resp, err := c.Get(ctx, st.Prefix()+"nodes/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	var written []string
	for _, kv := range resp.Kvs {
		if kv.ModRevision > before {
			written = append(written, strings.TrimPrefix(string(kv.Key), st.Prefix()+"nodes/big/")[:6])
		}
	}
	assert.Equal(t, []string{"000039", "000040"}, written, "only the chunks that changed are written")
	assert.Len(t, keys(t, c, st.Prefix())["nodes"], 79, "the replaced chunks are deleted")

	// A fresh Store (another replica) reads it back and writes it too.
	other, err := etcdstore.New(c, etcdstore.Config{Prefix: st.Prefix()})
	require.NoError(t, err)
	got, err := other.Get(ctx, "big")
	require.NoError(t, err)
	assert.Equal(t, s.Revision, got.Revision)
	got.Progress.Nodes[0].LastError = "x"
	require.NoError(t, other.Update(ctx, got))
	s.Progress.Nodes[1].LastError = "stale"
	assert.ErrorIs(t, st.Update(ctx, s), crus.ErrConflict)

	// Completing releases the reservation; deleting removes every key.
	got.Completed = true
	require.NoError(t, other.Update(ctx, got))
	assert.Empty(t, keys(t, c, st.Prefix())["active"])
	require.NoError(t, other.Delete(ctx, "big"))
	k = keys(t, c, st.Prefix())
	assert.Empty(t, k["sessions"])
	assert.Empty(t, k["nodes"])
}

// TestDamagedRecords: a head that is not JSON, of an unknown schema, or
// naming a missing chunk, is a clear error and is not overwritten.
func TestDamagedRecords(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		damage  func(c *clientv3.Client, prefix string)
		want    error
		message string
	}{
		{"truncated head", func(c *clientv3.Client, p string) {
			resp, _ := c.Get(ctx, p+"sessions/s")
			v := resp.Kvs[0].Value
			_, _ = c.Put(ctx, p+"sessions/s", string(v[:len(v)/2]))
		}, crus.ErrCorruptSession, "head is not a JSON document"},
		{"unknown schema", func(c *clientv3.Client, p string) {
			resp, _ := c.Get(ctx, p+"sessions/s")
			_, _ = c.Put(ctx, p+"sessions/s", strings.Replace(string(resp.Kvs[0].Value), `"schema":1`, `"schema":2`, 1))
		}, etcdstore.ErrUnknownSchema, "unknown schema version 2"},
		{"missing chunk", func(c *clientv3.Client, p string) {
			_, _ = c.Delete(ctx, p+"nodes/s/", clientv3.WithPrefix())
		}, crus.ErrCorruptSession, "named by the head is missing"},
		{"damaged chunk", func(c *clientv3.Client, p string) {
			resp, _ := c.Get(ctx, p+"nodes/s/", clientv3.WithPrefix())
			_, _ = c.Put(ctx, string(resp.Kvs[0].Key), "not gzip")
		}, crus.ErrCorruptSession, "chunk 000000."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, c := newStore(t, etcdstore.Config{})
			s := storetest.Session("s", 10)
			require.NoError(t, st.Create(ctx, s))
			tc.damage(c, st.Prefix())
			before, err := c.Get(ctx, st.Prefix(), clientv3.WithPrefix())
			require.NoError(t, err)

			fresh, err := etcdstore.New(c, etcdstore.Config{Prefix: st.Prefix()})
			require.NoError(t, err)
			_, err = fresh.Get(ctx, "s")
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorContains(t, err, tc.message)
			assert.ErrorContains(t, err, "s under "+st.Prefix(), "the error names the session and the prefix")
			_, err = fresh.List(ctx)
			assert.ErrorIs(t, err, tc.want)
			s.Messages = append(s.Messages, "would overwrite")
			if err := fresh.Update(ctx, s); err == nil || tc.name == "missing chunk" || tc.name == "damaged chunk" {
				// An Update based on the current revision of a head it can
				// read may replace damaged chunks; one that cannot read the
				// head must not write.
				if tc.name != "missing chunk" && tc.name != "damaged chunk" {
					t.Errorf("Update of a damaged head succeeded")
				}
				return
			}
			after, err := c.Get(ctx, st.Prefix(), clientv3.WithPrefix())
			require.NoError(t, err)
			assert.Equal(t, before.Kvs, after.Kvs, "nothing was written")
		})
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, etcdstore.Config{})
	for _, id := range []string{"a/b", "", "../x", "-x"} {
		s := storetest.Session("x", 1)
		s.UpgradeID = id
		assert.ErrorIs(t, st.Create(ctx, s), etcdstore.ErrInvalidID, "%q", id)
		_, err := st.Get(ctx, id)
		assert.ErrorIs(t, err, crus.ErrSessionNotFound, "%q", id)
	}
	_, err := st.Get(ctx, "missing")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	assert.ErrorContains(t, err, "missing")
	assert.Empty(t, keys(t, c, st.Prefix()), "nothing written")

	_, err = etcdstore.New(nil, etcdstore.Config{})
	assert.Error(t, err)
	_, err = etcdstore.New(c, etcdstore.Config{MaxTxnOps: 2})
	assert.ErrorContains(t, err, "MaxTxnOps")
	_, err = etcdstore.New(c, etcdstore.Config{ChunkSize: -1})
	assert.Error(t, err)
}

// TestStaleReservation: a reservation left for a session that completed
// (by hand, or by an older version) is dropped when a new session meets it.
func TestStaleReservation(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, etcdstore.Config{})
	a := storetest.Session("a", 5)
	require.NoError(t, st.CreateReserved(ctx, a))
	res, err := c.Get(ctx, st.Prefix()+"active/a")
	require.NoError(t, err)
	a.Completed = true
	require.NoError(t, st.Update(ctx, a))
	_, err = c.Put(ctx, st.Prefix()+"active/a", string(res.Kvs[0].Value)) // put it back
	require.NoError(t, err)
	held, err := st.Reservations(ctx)
	require.NoError(t, err)
	assert.Empty(t, held, "a completed session holds nothing")

	b := storetest.Session("b", 5)
	b.UpgradingLabel = a.UpgradingLabel
	require.NoError(t, st.CreateReserved(ctx, b))
	assert.Equal(t, []string{"active/b"}, keys(t, c, st.Prefix())["active"], "the stale reservation was dropped")

	// A live one is not.
	d := storetest.Session("d", 5)
	d.UpgradingLabel = b.UpgradingLabel
	err = st.CreateReserved(ctx, d)
	assert.ErrorIs(t, err, crus.ErrReserved)
	assert.ErrorContains(t, err, fmt.Sprintf("session b holds group %s", b.UpgradingLabel))
}

func BenchmarkUpdate10k(b *testing.B) {
	c, prefix := etcdtest.Shared(b)
	st, err := etcdstore.New(c, etcdstore.Config{Prefix: prefix})
	require.NoError(b, err)
	ctx := context.Background()
	s := storetest.Session("big", 10000)
	require.NoError(b, st.Create(ctx, s))
	b.ResetTimer()
	for i := range b.N {
		s.Progress.Nodes[(i*37)%10000].LastError = fmt.Sprint(i)
		if err := st.Update(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}
