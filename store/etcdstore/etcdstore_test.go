package etcdstore_test

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
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
		st, _ := newStore(t, etcdstore.Config{ChunkSize: 50, MaxTxnOps: 6, MaxTxnBytes: 64 << 10})
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
// and one delta, not the record.
func TestLayout(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, etcdstore.Config{})
	s := storetest.Session("big", 10000)
	require.NoError(t, st.CreateReserved(ctx, s))
	k := keys(t, c, st.Prefix())
	assert.Len(t, k["sessions"], 1)
	assert.Len(t, k["records"], 1+40, "the snapshot's header and 10,000 nodes in chunks of 256")
	assert.Equal(t, []string{"active/big"}, k["active"])

	size := func(prefix string) (n int) {
		resp, err := c.Get(ctx, st.Prefix()+prefix, clientv3.WithPrefix())
		require.NoError(t, err)
		for _, kv := range resp.Kvs {
			n += len(kv.Key) + len(kv.Value)
		}
		return n
	}
	t.Logf("10,000 nodes: head %d bytes, snapshot %d bytes, reservation %d bytes", size("sessions/"), size("records/"), size("active/"))
	assert.Less(t, size("records/"), 1<<20, "the whole record fits one request")
	assert.Less(t, size("sessions/"), 200, "the head is small")

	before := st.Stats()
	headRev := func() int64 {
		resp, err := c.Get(ctx, st.Prefix()+"sessions/big")
		require.NoError(t, err)
		return resp.Kvs[0].ModRevision
	}
	created := headRev()
	for i := 5100; i < 5150; i++ {
		s.Progress.Nodes[i].Phase = crus.PhaseQuiescing
		s.Progress.Nodes[i].DrainRequested = time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)
	}
	s.AddMessages("Step 103 of 200: quiescing 50 nodes")
	require.NoError(t, st.UpdateNodes(ctx, s, seq(5100, 5150)))
	after := st.Stats()
	assert.Equal(t, before.Snapshots, after.Snapshots, "no snapshot")
	t.Logf("a write of 50 nodes: %d bytes", after.Bytes-before.Bytes)
	assert.Less(t, after.Bytes-before.Bytes, int64(3000), "the head and one small delta")
	assert.Len(t, keys(t, c, st.Prefix())["records"], 1+40+1, "one delta more")
	assert.Equal(t, created, headRev(), "a write puts one key, not the head")
	rev, err := st.Revision(ctx, "big")
	require.NoError(t, err)
	assert.Equal(t, s.Revision, rev, "the session's revision is its last delta's")

	// Update, not UpdateNodes, writes what changed too.
	s.Progress.Nodes[7000].LastError = "x"
	require.NoError(t, st.Update(ctx, s))
	assert.Less(t, st.Stats().Bytes-after.Bytes, int64(2000))

	// A fresh Store (another replica) reads it back and writes it too.
	other, err := etcdstore.New(c, etcdstore.Config{Prefix: st.Prefix()})
	require.NoError(t, err)
	got, err := other.Get(ctx, "big")
	require.NoError(t, err)
	assert.Equal(t, s.Revision, got.Revision)
	assert.Equal(t, s.Progress.Nodes, got.Progress.Nodes)
	got.Progress.Nodes[0].LastError = "x"
	require.NoError(t, other.UpdateNodes(ctx, got, []int{0}))
	s.Progress.Nodes[1].LastError = "stale"
	assert.ErrorIs(t, st.UpdateNodes(ctx, s, []int{1}), crus.ErrConflict)

	// Completing releases the reservation; deleting removes every key.
	got.Completed = true
	require.NoError(t, other.UpdateNodes(ctx, got, nil))
	assert.Empty(t, keys(t, c, st.Prefix())["active"])
	require.NoError(t, other.Delete(ctx, "big"))
	k = keys(t, c, st.Prefix())
	assert.Empty(t, k["sessions"])
	assert.Empty(t, k["records"])
}

func seq(a, b int) []int {
	var out []int
	for i := a; i < b; i++ {
		out = append(out, i)
	}
	return out
}

// TestCompaction: once the deltas outgrow the snapshot, a write is a new
// snapshot, the old generation is deleted with it, and what each write
// costs stays proportional to what changed.
func TestCompaction(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, etcdstore.Config{})
	etcdstore.SetCompaction(st, 1, 4096)
	s := storetest.Session("s", 2000)
	require.NoError(t, st.Create(ctx, s))
	created := st.Stats()
	for i := range 600 {
		k := i * 7 % 2000
		s.Progress.Nodes[k].LastError = fmt.Sprintf("write %d", i)
		s.AddMessages(fmt.Sprintf("message %d", i))
		require.NoError(t, st.UpdateNodes(ctx, s, []int{k}))
	}
	stats := st.Stats()
	assert.Greater(t, stats.Snapshots, created.Snapshots+1, "compacted more than once")
	per := (stats.Bytes - created.Bytes) / (stats.Writes - created.Writes)
	t.Logf("%d writes, %d snapshots, %d bytes per write", stats.Writes-created.Writes, stats.Snapshots-created.Snapshots, per)
	assert.Less(t, per, int64(1500), "a write of one node costs what changed, compactions included")
	gens := map[string]bool{}
	for _, k := range keys(t, c, st.Prefix())["records"] {
		gens[strings.Split(k, "/")[2]] = true
	}
	assert.Len(t, gens, 1, "replaced generations are deleted")
	fresh, err := etcdstore.New(c, etcdstore.Config{Prefix: st.Prefix()})
	require.NoError(t, err)
	got, err := fresh.Get(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, s.Progress.Nodes, got.Progress.Nodes)
	assert.Equal(t, s.Messages, got.Messages)
	assert.Equal(t, s.MessagesDropped, got.MessagesDropped)
}

// TestDamagedRecords: a head that is not JSON, of an unknown schema,
// announcing more than it may, or naming missing or damaged records, is
// a clear error naming the key, never a panic, and is not overwritten.
func TestDamagedRecords(t *testing.T) {
	ctx := context.Background()
	replaceHead := func(old, new string) func(c *clientv3.Client, p string) {
		return func(c *clientv3.Client, p string) {
			resp, _ := c.Get(ctx, p+"sessions/s")
			_, _ = c.Put(ctx, p+"sessions/s", strings.Replace(string(resp.Kvs[0].Value), old, new, 1))
		}
	}
	firstUnder := func(c *clientv3.Client, p, under string) string {
		resp, _ := c.Get(ctx, p+"records/s/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		for _, kv := range resp.Kvs {
			if strings.Contains(string(kv.Key), under) {
				return string(kv.Key)
			}
		}
		return ""
	}
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
		}, crus.ErrCorruptSession, "sessions/s is not a JSON document"},
		{"unknown schema", replaceHead(`"schema":2`, `"schema":3`), etcdstore.ErrUnknownSchema, "unknown schema version 3"},
		{"huge node count", replaceHead(`"n":10`, `"n":9000000000000000000`), crus.ErrCorruptSession, "announces 9000000000000000000 nodes"},
		{"more nodes than the chunks hold", replaceHead(`"n":10`, `"n":4000000`), crus.ErrCorruptSession, "chunks hold 10 nodes, the head says 4000000"},
		{"a delta missing", func(c *clientv3.Client, p string) {
			k := firstUnder(c, p, "/d/")
			resp, _ := c.Get(ctx, k)
			_, _ = c.Put(ctx, strings.Replace(k, "/d/00000001", "/d/00000003", 1), string(resp.Kvs[0].Value))
		}, crus.ErrCorruptSession, "follows a missing one"},
		{"missing chunk", func(c *clientv3.Client, p string) {
			_, _ = c.Delete(ctx, firstUnder(c, p, "/c/"))
		}, crus.ErrCorruptSession, "named by the head is missing"},
		{"damaged chunk", func(c *clientv3.Client, p string) {
			_, _ = c.Put(ctx, firstUnder(c, p, "/c/"), "not a chunk")
		}, crus.ErrCorruptSession, "/c/000000"},
		{"chunk that inflates past its limit", func(c *clientv3.Client, p string) {
			_, _ = c.Put(ctx, firstUnder(c, p, "/c/"), string(bomb()))
		}, crus.ErrCorruptSession, "inflates past its limit"},
		{"damaged delta", func(c *clientv3.Client, p string) {
			_, _ = c.Put(ctx, firstUnder(c, p, "/d/"), "z\x00\x01")
		}, crus.ErrCorruptSession, "/d/00000001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, c := newStore(t, etcdstore.Config{})
			s := storetest.Session("s", 10)
			require.NoError(t, st.Create(ctx, s))
			s.Progress.Nodes[3].LastError = "x"
			require.NoError(t, st.UpdateNodes(ctx, s, []int{3}))
			tc.damage(c, st.Prefix())
			before, err := c.Get(ctx, st.Prefix(), clientv3.WithPrefix())
			require.NoError(t, err)

			fresh, err := etcdstore.New(c, etcdstore.Config{Prefix: st.Prefix()})
			require.NoError(t, err)
			_, err = fresh.Get(ctx, "s")
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, err, batch.ErrPermanent, "reading again reads the same damage")
			assert.ErrorContains(t, err, tc.message)
			assert.ErrorContains(t, err, "s under "+st.Prefix(), "the error names the session and the prefix")
			_, err = fresh.List(ctx)
			assert.ErrorIs(t, err, tc.want)
			s.AddMessages("would overwrite")
			assert.ErrorIs(t, fresh.Update(ctx, s), tc.want, "a record that cannot be read is not written")
			assert.ErrorIs(t, fresh.UpdateNodes(ctx, s, []int{1}), tc.want)
			after, err := c.Get(ctx, st.Prefix(), clientv3.WithPrefix())
			require.NoError(t, err)
			assert.Equal(t, before.Kvs, after.Kvs, "nothing was written")
		})
	}
}

// bomb is a value of the stores' codec that inflates to 100 MiB.
func bomb() []byte {
	var buf bytes.Buffer
	buf.WriteByte('z')
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	zero := make([]byte, 1<<20)
	for range 100 {
		_, _ = w.Write(zero)
	}
	_ = w.Close()
	return buf.Bytes()
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	st, c := newStore(t, etcdstore.Config{})
	for _, id := range []string{"a/b", "", "../x", "-x"} {
		s := storetest.Session("x", 1)
		s.UpgradeID = id
		assert.ErrorIs(t, st.Create(ctx, s), etcdstore.ErrInvalidID, "%q", id)
		assert.ErrorIs(t, st.Create(ctx, s), batch.ErrPermanent, "%q", id)
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

// countingKV counts the reads made through a client and the bytes of the
// values they returned.
type countingKV struct {
	clientv3.KV
	gets, txns, values int
}

func (k *countingKV) Txn(ctx context.Context) clientv3.Txn {
	k.txns++
	return k.KV.Txn(ctx)
}

func (k *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	k.gets++
	if resp != nil {
		for _, kv := range resp.Kvs {
			k.values += len(kv.Value)
		}
	}
	return resp, err
}

// TestRevisionsReadNoRecord: Revisions reads the heads, then in one
// transaction per MaxTxnOps sessions one key a session without its
// value, never a record: at 2,300 nodes a List reads
// some 15 KB of compressed records, Revisions about a hundred bytes,
// whatever the size of the sessions.
func TestRevisionsReadNoRecord(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.SharedServer(t).Client(t)
	_, prefix := etcdtest.Shared(t)
	kv := &countingKV{KV: c.KV}
	c.KV = kv
	st, err := etcdstore.New(c, etcdstore.Config{Prefix: prefix, MaxTxnOps: 4})
	require.NoError(t, err)
	a, b := storetest.Session("a", 2000), storetest.Session("b", 300)
	require.NoError(t, st.Create(ctx, a))
	require.NoError(t, st.Create(ctx, b))
	want := map[string]int64{}
	for i := range 5 { // sessions without a delta
		s := storetest.Session(fmt.Sprint("s", i), 2)
		require.NoError(t, st.Create(ctx, s))
		want[s.UpgradeID] = s.Revision
	}
	for i := range 3 {
		a.Progress.Nodes[i].Reason = "moved"
		a.AddMessages(fmt.Sprint("message ", i))
		require.NoError(t, st.UpdateNodes(ctx, a, []int{i}))
	}

	kv.gets, kv.values = 0, 0
	_, err = st.List(ctx)
	require.NoError(t, err)
	listed := kv.values
	assert.Greater(t, listed, 10000, "List reads the records (compressed)")

	kv.gets, kv.txns, kv.values = 0, 0, 0
	revs, err := st.Revisions(ctx)
	require.NoError(t, err)
	want["a"], want["b"] = a.Revision, b.Revision
	assert.Equal(t, want, revs)
	assert.Equal(t, 1, kv.gets, "the heads")
	assert.Equal(t, 2, kv.txns, "the last delta of 7 sessions, 4 a transaction")
	assert.Less(t, kv.values, 1000, "only the heads' values")
	t.Logf("List read %d bytes of values, Revisions %d in %d reads and %d transactions", listed, kv.values, kv.gets, kv.txns)
}

// TestViewReadsNoRecordWhileCurrent: a session this Store wrote is shown
// (View) and copied (Get) from what it keeps, after a read of its
// revision alone: 2,000 node records are not read from etcd again at each
// request while the session runs. Another Store on the same etcd (a
// replica that does not drive the session) reads the record once, then
// sees each write of the first: a record kept at an older revision is
// never shown.
func TestViewReadsNoRecordWhileCurrent(t *testing.T) {
	ctx := context.Background()
	srv := etcdtest.SharedServer(t)
	_, prefix := etcdtest.Shared(t)
	newCounted := func() (*etcdstore.Store, *countingKV) {
		c := srv.Client(t)
		kv := &countingKV{KV: c.KV}
		c.KV = kv
		st, err := etcdstore.New(c, etcdstore.Config{Prefix: prefix})
		require.NoError(t, err)
		return st, kv
	}
	st, kv := newCounted()
	other, okv := newCounted()
	a := storetest.Session("a", 2000)
	require.NoError(t, st.Create(ctx, a))
	for i := range 5 {
		a.Progress.Nodes[i].Reason = "moved"
		a.AddMessages(fmt.Sprint("message ", i))
		require.NoError(t, st.UpdateNodes(ctx, a, []int{i}))

		kv.gets, kv.values = 0, 0
		require.NoError(t, st.View(ctx, "a", func(s *crus.Session) error {
			assert.Equal(t, a.Revision, s.Revision)
			assert.Equal(t, "moved", s.Progress.Nodes[i].Reason)
			assert.Equal(t, a.Messages, s.Messages)
			return nil
		}))
		got, err := st.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, a.Progress.Nodes, got.Progress.Nodes)
		assert.Less(t, kv.values, 1000, "write %d: only the head's value, twice", i)

		okv.values = 0
		seen, err := other.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, a.Revision, seen.Revision, "write %d: the other Store sees it", i)
		assert.Equal(t, a.Progress.Nodes, seen.Progress.Nodes)
		assert.Greater(t, okv.values, 10000, "write %d: the other Store reads the record that moved", i)
	}
	okv.values = 0
	_, err := other.Get(ctx, "a")
	require.NoError(t, err)
	assert.Less(t, okv.values, 1000, "read again unmoved: from what it keeps")
}

func BenchmarkReads(b *testing.B) {
	for _, n := range []int{10000, 160000} {
		b.Run(fmt.Sprint(n/1000, "k"), func(b *testing.B) {
			c, prefix := etcdtest.Shared(b)
			st, err := etcdstore.New(c, etcdstore.Config{Prefix: prefix})
			require.NoError(b, err)
			storetest.BenchmarkReads(b, st, n)
		})
	}
}
