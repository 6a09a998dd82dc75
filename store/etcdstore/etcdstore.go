package etcdstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/store/internal/record"
)

// SchemaVersion is the version of the layout this package writes and reads.
const SchemaVersion = 2

// Sentinel errors of package etcdstore, matched with errors.Is.
var (
	// ErrUnknownSchema: a head was written in a layout this version does
	// not know (a newer or an older crus wrote it). It is left alone.
	ErrUnknownSchema = batch.NewPermanent("etcdstore: unknown schema version")
	// ErrInvalidID: the session id cannot be part of a key.
	ErrInvalidID = batch.NewPermanent("etcdstore: invalid session id")
	// ErrNoSpace: etcd refused the write because its database reached its
	// quota ("mvcc: database space exceeded", the NOSPACE alarm). Nothing
	// was stored; etcd refuses every write, for every user of it, until
	// an operator compacts its history, defragments it and disarms the
	// alarm (see the package documentation). It matches
	// batch.ErrPermanent: the executor stops instead of retrying, before
	// acting on what it could not record.
	ErrNoSpace = batch.NewPermanent("etcdstore: etcd's database is full (mvcc: database space exceeded); " +
		"run etcdctl compact <current revision>, etcdctl defrag and etcdctl alarm disarm, " +
		"and set --auto-compaction-mode=revision --auto-compaction-retention=1000 so that it does not fill again")
)

// Config tunes a Store. The zero value of every field is usable.
type Config struct {
	// Prefix is the key prefix of everything the store keeps. Default
	// "/crus/"; a trailing "/" is added if missing.
	Prefix string
	// ChunkSize is the number of node records per key of a snapshot.
	// Default 256.
	ChunkSize int
	// MaxTxnOps and MaxTxnBytes bound one transaction: keep them within
	// the server's --max-txn-ops (default 128) and --max-request-bytes
	// (default 1.5 MiB). Defaults 128 and 1 MiB.
	MaxTxnOps, MaxTxnBytes int
	// Logger receives structured logs. Nil means no logging.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "/crus/"
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 256
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = 128
	}
	if c.MaxTxnBytes == 0 {
		c.MaxTxnBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Compaction of a session's deltas into a new snapshot: once the deltas
// written since the snapshot would pass compactRatio times the snapshot
// and compactMin bytes, or one delta maxDelta bytes, the write is a new
// snapshot instead. Each byte of a delta then costs etcd at most
// 1 + 1/compactRatio bytes, whatever the size of the session.
const (
	compactRatio = 4
	compactMin   = 64 << 10
	maxDelta     = 256 << 10
)

// Bounds on what a value read from etcd may claim, checked before
// anything is allocated for it: etcd's values are not trusted.
const (
	maxNodes       = 1 << 22   // node records of one session
	maxDeltas      = 1 << 22   // deltas since a snapshot
	maxHeadJSON    = 64 << 20  // a snapshot's header and messages
	maxChunkJSON   = 64 << 20  // one chunk of node records
	maxDeltaJSON   = 64 << 20  // one delta
	maxReserveJSON = 256 << 20 // one reservation
)

// Stats counts what a Store wrote since it was made.
type Stats struct {
	Writes    int64 // creates and updates of sessions
	Bytes     int64 // bytes of keys and values put
	Snapshots int64 // whole records written (creates, whole Updates, compactions)
}

// Store is a crus.Store on etcd. It is safe for concurrent use.
type Store struct {
	c   *clientv3.Client
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// cache keeps, per session in progress, the record's head, node
	// records and messages at one revision as this Store last wrote or
	// read them, so that a write based on that revision sends only what
	// changed.
	cache map[string]*cached
	// fences holds, per session this process drives, the lease key that
	// every write of it must still find (see lease.go).
	fences map[string]fence
	stats  Stats

	ratio, min int // compaction thresholds; tests lower them
}

type cached struct {
	rev      int64 // the session's revision: of the head, or of the last delta
	headRev  int64 // the head's ModRevision
	head     head
	deltas   int // deltas since the snapshot
	journal  int // their bytes
	nodes    []crus.NodeRecord
	messages []string
	dropped  int
	last     []byte // the header of the last delta, nil after a snapshot (see record.EncodeDelta)
	// hdr is the rest of the record (without nodes and messages), never
	// changed once cached: with it the cache holds the whole record, which
	// View shows and Get copies while the session's revision is rev.
	hdr *crus.Session
}

// headerOf returns a copy of s without its node records and messages.
func headerOf(s *crus.Session) *crus.Session {
	h := *s
	h.Progress.Nodes, h.Messages = nil, nil
	return h.Clone()
}

// session returns the cached record, its node records and messages shared
// with the cache: the caller holds st.mu while it uses it.
func (c *cached) session() *crus.Session {
	s := *c.hdr
	s.Progress.Nodes, s.Messages, s.MessagesDropped, s.Revision = c.nodes, c.messages, c.dropped, c.rev
	return &s
}

type fence struct {
	key string
	rev int64 // the key's CreateRevision
}

var (
	_ crus.Store          = (*Store)(nil)
	_ crus.RevisionReader = (*Store)(nil)
	_ crus.RevisionLister = (*Store)(nil)
	_ crus.Reserver       = (*Store)(nil)
	_ crus.NodeUpdater    = (*Store)(nil)
	_ crus.Viewer         = (*Store)(nil)
)

// New returns a Store on the client. The caller keeps ownership of the
// client.
func New(client *clientv3.Client, cfg Config) (*Store, error) {
	if client == nil {
		return nil, errors.New("etcdstore: New needs a client")
	}
	if cfg.ChunkSize < 0 || cfg.MaxTxnOps < 0 || cfg.MaxTxnBytes < 0 {
		return nil, errors.New("etcdstore: ChunkSize, MaxTxnOps and MaxTxnBytes must not be negative")
	}
	cfg = cfg.withDefaults()
	if cfg.MaxTxnOps < 4 {
		return nil, fmt.Errorf("etcdstore: MaxTxnOps %d is too small (at least 4)", cfg.MaxTxnOps)
	}
	return &Store{c: client, cfg: cfg, log: cfg.Logger, cache: map[string]*cached{}, fences: map[string]fence{},
		ratio: compactRatio, min: compactMin}, nil
}

// Prefix returns the key prefix of the store.
func (st *Store) Prefix() string { return st.cfg.Prefix }

// Stats returns what the Store wrote since it was made.
func (st *Store) Stats() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stats
}

// checkID refuses an id that could not name a file or key
// (crus.ValidateStoredID).
func checkID(id string) error {
	if err := crus.ValidateStoredID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidID, err)
	}
	return nil
}

func (st *Store) headKey(id string) string        { return st.cfg.Prefix + "sessions/" + id }
func (st *Store) headPrefix() string              { return st.cfg.Prefix + "sessions/" }
func (st *Store) recordPrefix(id string) string   { return st.cfg.Prefix + "records/" + id + "/" }
func (st *Store) genPrefix(id, gen string) string { return st.recordPrefix(id) + gen + "/" }
func (st *Store) activeKey(id string) string      { return st.cfg.Prefix + "active/" + id }
func (st *Store) activePrefix() string            { return st.cfg.Prefix + "active/" }
func (st *Store) activeRevKey() string            { return st.cfg.Prefix + "active-rev" }
func (st *Store) leaderKey(id string) string      { return st.cfg.Prefix + "leaders/" + id }
func (st *Store) leaderPrefix() string            { return st.cfg.Prefix + "leaders/" }

func snapHeaderKey(p string) string   { return p + "h" }
func chunkKey(p string, i int) string { return fmt.Sprintf("%sc/%06d", p, i) }
func deltaKey(p string, k int) string { return fmt.Sprintf("%sd/%08d", p, k) }

// head is the JSON form of a session's head key: a few fields naming the
// session's snapshot, written with it (and with the write that completes
// the session), never by the writes in between.
type head struct {
	Schema    int    `json:"schema"`
	Gen       string `json:"gen"`            // the snapshot's generation: records/<id>/<gen>/
	Chunks    int    `json:"c"`              // node chunks of the snapshot
	Nodes     int    `json:"n"`              // node records
	Snapshot  int    `json:"s"`              // bytes of the snapshot
	Completed bool   `json:"done,omitempty"` // the session has completed
}

var genRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func newGen() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (st *Store) corrupt(id, format string, args ...any) error {
	return fmt.Errorf("%w: %s under %s: %s; left as it is", crus.ErrCorruptSession, id, st.cfg.Prefix, fmt.Sprintf(format, args...))
}

// decodeHead checks a head key's value before anything is allocated for
// what it announces.
func (st *Store) decodeHead(id string, b []byte) (*head, error) {
	var h head
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, st.corrupt(id, "head %s is not a JSON document: %v", st.headKey(id), err)
	}
	if h.Schema != SchemaVersion {
		return nil, fmt.Errorf("%w %d in session %s under %s (this version reads schema %d); left as it is",
			ErrUnknownSchema, h.Schema, id, st.cfg.Prefix, SchemaVersion)
	}
	switch {
	case !genRE.MatchString(h.Gen):
		return nil, st.corrupt(id, "head %s names generation %q", st.headKey(id), h.Gen)
	case h.Nodes < 0 || h.Nodes > maxNodes:
		return nil, st.corrupt(id, "head %s announces %d nodes (at most %d)", st.headKey(id), h.Nodes, maxNodes)
	case h.Chunks < 0 || h.Chunks > h.Nodes || (h.Nodes > 0 && h.Chunks == 0):
		return nil, st.corrupt(id, "head %s announces %d chunks for %d nodes", st.headKey(id), h.Chunks, h.Nodes)
	case h.Snapshot < 0:
		return nil, st.corrupt(id, "head %s has a negative size", st.headKey(id))
	}
	return &h, nil
}

// Get implements crus.Store. It reads the head, then the records it names
// at the head's revision, so the record is consistent even while it is
// being written.
//
// A session in progress that this Store last wrote or read at its current
// revision is copied from what it keeps, after one read of that revision
// (as Revision): 160,000 node records are not read from etcd and decoded
// again at each request while the session runs.
func (st *Store) Get(ctx context.Context, id string) (*crus.Session, error) {
	var s *crus.Session
	err := st.View(ctx, id, func(v *crus.Session) error {
		s = v.Clone()
		return nil
	})
	return s, err
}

// View implements crus.Viewer. For a session in progress that this Store
// last wrote or read at its current revision (one read of it, as
// Revision), fn sees the record it keeps, under its lock: the writes of
// this Store wait for fn. Otherwise the record is read and decoded, kept
// if the session is in progress, and fn sees that.
func (st *Store) View(ctx context.Context, id string, fn func(s *crus.Session) error) error {
	rev, err := st.Revision(ctx, id)
	if err != nil {
		return err
	}
	st.mu.Lock()
	if c := st.cache[id]; c != nil && c.rev == rev && c.hdr != nil {
		defer st.mu.Unlock()
		return fn(c.session())
	}
	st.mu.Unlock()
	s, c, err := st.load(ctx, id)
	if err != nil {
		return err
	}
	st.remember(id, c)
	return fn(s)
}

// ViewAll implements crus.Viewer: fn sees copies, as List returns them.
func (st *Store) ViewAll(ctx context.Context, fn func(s *crus.Session) error) error {
	return crus.ViewList(ctx, st, fn)
}

// load reads the session and what the cache keeps of it.
func (st *Store) load(ctx context.Context, id string) (*crus.Session, *cached, error) {
	if err := checkID(id); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	for attempt := 0; ; attempt++ {
		resp, err := st.c.Get(ctx, st.headKey(id))
		if err != nil {
			return nil, nil, fmt.Errorf("etcdstore: reading session %s: %w", id, err)
		}
		if len(resp.Kvs) == 0 {
			return nil, nil, fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
		}
		s, c, err := st.assemble(ctx, id, resp.Kvs[0], resp.Header.Revision)
		if errors.Is(err, errCompacted) && attempt < 3 {
			continue
		}
		return s, c, err
	}
}

var errCompacted = errors.New("etcdstore: revision compacted while reading")

// assemble decodes a head and reads its records at revision at.
func (st *Store) assemble(ctx context.Context, id string, kv *mvccpb.KeyValue, at int64) (*crus.Session, *cached, error) {
	h, err := st.decodeHead(id, kv.Value)
	if err != nil {
		return nil, nil, err
	}
	vals, err := st.rangeAll(ctx, st.genPrefix(id, h.Gen), at)
	if err != nil {
		return nil, nil, err
	}
	return st.build(id, h, kv.ModRevision, vals)
}

// build decodes the records a head names, given the keys under its
// generation: the snapshot, then each delta applied in turn. The
// session's revision is the last delta's, or the head's if there is none.
func (st *Store) build(id string, h *head, headRev int64, vals map[string]*mvccpb.KeyValue) (*crus.Session, *cached, error) {
	p := st.genPrefix(id, h.Gen)
	hk := snapHeaderKey(p)
	kv, ok := vals[hk]
	if !ok {
		return nil, nil, st.corrupt(id, "snapshot %s named by the head is missing", hk)
	}
	s := &crus.Session{}
	if err := record.Decode(kv.Value, maxHeadJSON, s); err != nil {
		return nil, nil, st.corrupt(id, "snapshot %s: %v", hk, err)
	}
	if s.UpgradeID != id {
		return nil, nil, st.corrupt(id, "snapshot %s holds session %q", hk, s.UpgradeID)
	}
	if len(s.Progress.Nodes) != 0 {
		return nil, nil, st.corrupt(id, "snapshot %s holds node records", hk)
	}
	s.Progress.Nodes = make([]crus.NodeRecord, 0, min(h.Nodes, 1<<16)) // grows with what decodes
	for i := range h.Chunks {
		k := chunkKey(p, i)
		kv, ok := vals[k]
		if !ok {
			return nil, nil, st.corrupt(id, "chunk %s named by the head is missing", k)
		}
		var part []crus.NodeRecord
		if err := record.Decode(kv.Value, maxChunkJSON, &part); err != nil {
			return nil, nil, st.corrupt(id, "chunk %s: %v", k, err)
		}
		if len(part) == 0 || len(s.Progress.Nodes)+len(part) > h.Nodes {
			return nil, nil, st.corrupt(id, "chunk %s holds %d nodes, past the %d the head announces", k, len(part), h.Nodes)
		}
		s.Progress.Nodes = append(s.Progress.Nodes, part...)
	}
	if len(s.Progress.Nodes) != h.Nodes {
		return nil, nil, st.corrupt(id, "chunks hold %d nodes, the head says %d", len(s.Progress.Nodes), h.Nodes)
	}
	c := &cached{rev: headRev, headRev: headRev, head: *h}
	for k := 1; ; k++ {
		dk := deltaKey(p, k)
		kv, ok := vals[dk]
		if !ok {
			break
		}
		d, err := record.DecodeDelta(kv.Value, maxDeltaJSON, c.last)
		if err != nil {
			return nil, nil, st.corrupt(id, "delta %s: %v", dk, err)
		}
		if err := d.Apply(s); err != nil {
			return nil, nil, st.corrupt(id, "delta %s: %v", dk, err)
		}
		c.last = d.Header
		c.deltas, c.journal = k, c.journal+len(kv.Value)
		c.rev = max(c.rev, kv.ModRevision)
	}
	// Deltas are numbered from 1 without a gap: any other is damage.
	for k := range vals {
		if strings.HasPrefix(k, p+"d/") && k > deltaKey(p, c.deltas) {
			return nil, nil, st.corrupt(id, "delta %s follows a missing one (%s)", k, deltaKey(p, c.deltas+1))
		}
	}
	s.Revision = c.rev
	c.nodes, c.messages, c.dropped, c.hdr = s.Progress.Nodes, s.Messages, s.MessagesDropped, headerOf(s)
	return s, c, nil
}

// rangeAll reads every key under prefix at revision rev, a page at a time.
func (st *Store) rangeAll(ctx context.Context, prefix string, rev int64) (map[string]*mvccpb.KeyValue, error) {
	out := map[string]*mvccpb.KeyValue{}
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		resp, err := st.c.Get(ctx, key, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(256),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) || strings.Contains(err.Error(), "compacted") {
				return nil, errCompacted
			}
			return nil, fmt.Errorf("etcdstore: reading %s: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = kv
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// remember keeps c, a copy of a session in progress as read, unless the
// cache knows a later one.
func (st *Store) remember(id string, c *cached) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if c.head.Completed {
		delete(st.cache, id)
		return
	}
	if old, ok := st.cache[id]; ok && old.rev > c.rev {
		return
	}
	n := *c
	n.nodes, n.messages = slices.Clone(c.nodes), slices.Clone(c.messages)
	st.cache[id] = &n
}

func (st *Store) forget(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.cache, id)
}

// writePlan is what one write of a session puts and deletes.
type writePlan struct {
	head    head
	putHead bool   // the head is written: a snapshot, or a write that completes the session
	deltas  int    // deltas since the snapshot, after the write
	journal int    // their bytes
	last    []byte // the header of the delta written, if one is
	puts    []clientv3.Op
	bytes   int    // of puts
	stale   string // the generation prefix the write replaces, if any
	staged  bool   // puts written before the final transaction
}

// snapshot plans writing s whole under a new generation.
func (st *Store) snapshot(s *crus.Session) (*writePlan, error) {
	id := s.UpgradeID
	h := head{Schema: SchemaVersion, Gen: newGen(), Nodes: len(s.Progress.Nodes), Completed: s.Completed}
	p := st.genPrefix(id, h.Gen)
	w := &writePlan{head: h, putHead: true}
	put := func(k string, v []byte) {
		w.puts = append(w.puts, clientv3.OpPut(k, string(v)))
		w.bytes += len(k) + len(v)
	}
	hdr := *s
	hdr.Progress.Nodes = nil
	v, err := record.Encode(&hdr)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
	}
	put(snapHeaderKey(p), v)
	for i := 0; i < len(s.Progress.Nodes); i += st.cfg.ChunkSize {
		v, err := record.Encode(s.Progress.Nodes[i:min(i+st.cfg.ChunkSize, len(s.Progress.Nodes))])
		if err != nil {
			return nil, fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
		}
		put(chunkKey(p, w.head.Chunks), v)
		w.head.Chunks++
	}
	w.head.Snapshot = w.bytes
	return w, nil
}

// delta plans writing what changed of s since c: the positions changed
// and the messages added. It returns nil if a snapshot is due instead.
func (st *Store) delta(s *crus.Session, c *cached, changed []int) (*writePlan, error) {
	d, err := record.MakeDelta(s, changed, len(c.messages)+c.dropped)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: encoding session %s: %w", s.UpgradeID, err)
	}
	v, err := record.EncodeDelta(d, c.last)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: encoding session %s: %w", s.UpgradeID, err)
	}
	// A delta is written in one transaction (staged, it would exist before
	// the compare that it does not).
	if len(v) > min(maxDelta, st.cfg.MaxTxnBytes/2) || c.journal+len(v) > max(st.min, st.ratio*c.head.Snapshot) || c.deltas >= maxDeltas {
		return nil, nil
	}
	w := &writePlan{head: c.head, deltas: c.deltas + 1, journal: c.journal + len(v), last: d.Header}
	if s.Completed != c.head.Completed {
		w.head.Completed, w.putHead = s.Completed, true
	}
	k := deltaKey(st.genPrefix(s.UpgradeID, c.head.Gen), w.deltas)
	w.puts, w.bytes = []clientv3.Op{clientv3.OpPut(k, string(v))}, len(k)+len(v)
	return w, nil
}

// sessionCmps are the compares that hold while the session is at c.rev:
// the head is the one c knows, its last delta too, and no delta follows.
func (st *Store) sessionCmps(id string, c *cached) []clientv3.Cmp {
	p := st.genPrefix(id, c.head.Gen)
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(st.headKey(id)), "=", c.headRev),
		clientv3.Compare(clientv3.CreateRevision(deltaKey(p, c.deltas+1)), "=", 0),
	}
	if c.deltas > 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(deltaKey(p, c.deltas)), "=", c.rev))
	}
	return cmps
}

// commit runs the final transaction of a write: cmps, then the head and
// extra ops, with the records if they fit (else they are written first,
// in transactions of their own guarded by the same cmps, under a
// generation no head names yet), and the deletion of the replaced
// generation. When the cmps fail, ok is false and the responses are those
// of the failure reads.
func (st *Store) commit(ctx context.Context, id string, w *writePlan, cmps []clientv3.Cmp, ops, failure []clientv3.Op) (responses []*etcdserverpb.ResponseOp, rev int64, ok bool, err error) {
	written := 0
	if w.putHead {
		hv, err := json.Marshal(w.head)
		if err != nil {
			return nil, 0, false, fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
		}
		ops = append([]clientv3.Op{clientv3.OpPut(st.headKey(id), string(hv))}, ops...)
		written = len(hv) + len(st.headKey(id))
	}
	if w.stale != "" {
		ops = append(ops, clientv3.OpDelete(w.stale, clientv3.WithPrefix()))
	}
	if len(ops)+len(w.puts) <= st.cfg.MaxTxnOps && w.bytes+written+256 <= st.cfg.MaxTxnBytes {
		ops = append(ops, w.puts...)
	} else {
		// Stage the records: keys no head names yet.
		for i := 0; i < len(w.puts); {
			j, b := i, 0
			for j < len(w.puts) && j-i < st.cfg.MaxTxnOps && (j == i || b+opSize(w.puts[j]) <= st.cfg.MaxTxnBytes) {
				b += opSize(w.puts[j])
				j++
			}
			resp, err := st.c.Txn(ctx).If(cmps...).Then(w.puts[i:j]...).Else(failure...).Commit()
			if err != nil {
				st.unstage(id, w)
				return nil, 0, false, st.writeErr(id, err)
			}
			w.staged = true
			st.count(b, false)
			if !resp.Succeeded {
				st.unstage(id, w)
				return resp.Responses, 0, false, nil
			}
			i = j
		}
		written -= w.bytes // counted as staged
	}
	resp, err := st.c.Txn(ctx).If(cmps...).Then(ops...).Else(failure...).Commit()
	if err != nil {
		// The write may or may not have happened: a retry based on the
		// same revision tells (ErrConflict if it did). Staged records are
		// left: if it did not, they are removed with the session.
		return nil, 0, false, st.writeErr(id, err)
	}
	if !resp.Succeeded {
		st.unstage(id, w)
		return resp.Responses, 0, false, nil
	}
	st.count(written+w.bytes, true)
	return resp.Responses, resp.Header.Revision, true, nil
}

// count adds one write (or, for staged records, bytes only) to the stats.
func (st *Store) count(bytes int, write bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stats.Bytes += int64(bytes)
	if write {
		st.stats.Writes++
	}
}

// writeErr reports a failed write, naming etcd's full database clearly.
func (st *Store) writeErr(id string, err error) error {
	if noSpace(err) {
		return fmt.Errorf("%w: writing session %s: %w", ErrNoSpace, id, err)
	}
	return fmt.Errorf("etcdstore: writing session %s: %w", id, err)
}

// noSpace reports whether etcd refused a write for its quota.
func noSpace(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace) ||
		strings.Contains(err.Error(), rpctypes.ErrNoSpace.Error())
}

func opSize(op clientv3.Op) int { return len(op.KeyBytes()) + len(op.ValueBytes()) + 16 }

// unstage deletes, as well as it can, records written for a write that
// did not happen.
func (st *Store) unstage(id string, w *writePlan) {
	if !w.staged {
		return
	}
	if _, err := st.c.Delete(context.Background(), st.genPrefix(id, w.head.Gen), clientv3.WithPrefix()); err != nil {
		st.log.Warn("could not delete the records of a failed write; they are removed with the session", "session", id, "err", err)
		return
	}
	w.staged = false
}

// fenceOf returns the compare that fences writes of session id, if this
// Store drives it, and the read that tells a lost fence.
func (st *Store) fenceOf(id string) (cmps []clientv3.Cmp, reads []clientv3.Op, f fence, ok bool) {
	st.mu.Lock()
	f, ok = st.fences[id]
	st.mu.Unlock()
	if !ok {
		return nil, nil, f, false
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev)},
		[]clientv3.Op{clientv3.OpGet(f.key, clientv3.WithKeysOnly())}, f, true
}

// lostFence reports the write refused because the lease key is gone or
// another's, given the failure reads of the transaction (the fence's read
// last).
func lostFence(rs []*etcdserverpb.ResponseOp, f fence) error {
	kvs := rs[len(rs)-1].GetResponseRange().Kvs
	if len(kvs) == 0 || kvs[0].CreateRevision != f.rev {
		return fmt.Errorf("%w: lease key %s is gone or held by another", crus.ErrLeaseLost, f.key)
	}
	return nil
}

// Create implements crus.Store.
func (st *Store) Create(ctx context.Context, s *crus.Session) error {
	return st.create(ctx, s, false)
}

// CreateReserved implements crus.Reserver.
func (st *Store) CreateReserved(ctx context.Context, s *crus.Session) error {
	return st.create(ctx, s, true)
}

func (st *Store) create(ctx context.Context, s *crus.Session, reserve bool) error {
	if err := checkID(s.UpgradeID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	id := s.UpgradeID
	w, err := st.snapshot(s)
	if err != nil {
		return err
	}
	var res []byte
	if !s.Completed {
		if res, err = record.Encode(crus.ReservationOf(s)); err != nil {
			return fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
		}
		if len(res) > st.cfg.MaxTxnBytes-8<<10 {
			return fmt.Errorf("etcdstore: creating session %s: its reservation takes %d bytes, more than one transaction holds (MaxTxnBytes %d; raise it with etcd's --max-request-bytes)", id, len(res), st.cfg.MaxTxnBytes)
		}
	}
	for attempt := 0; attempt < 20; attempt++ {
		// What the sessions in progress hold, and the revision of that
		// knowledge: the create only happens if nobody changed it since.
		snap, err := st.c.Txn(ctx).Then(
			clientv3.OpGet(st.activeRevKey()),
			clientv3.OpGet(st.activePrefix(), clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return fmt.Errorf("etcdstore: creating session %s: %w", id, err)
		}
		var activeRev int64
		if kvs := snap.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			activeRev = kvs[0].ModRevision
		}
		if reserve {
			held, err := st.decodeActive(snap.Responses[1].GetResponseRange().Kvs)
			if err != nil {
				return err
			}
			err = crus.CheckReservations(crus.ReservationOf(s), held)
			var re *crus.ReservedError
			if errors.As(err, &re) {
				dropped, derr := st.dropStale(ctx, re.Conflicts)
				if derr != nil {
					return derr
				}
				if dropped {
					continue // check again without them
				}
				return err
			}
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(st.headKey(id)), "=", 0),
			clientv3.Compare(clientv3.ModRevision(st.activeRevKey()), "=", activeRev),
		}
		ops := []clientv3.Op{clientv3.OpPut(st.activeRevKey(), id)}
		if res != nil {
			ops = append(ops, clientv3.OpPut(st.activeKey(id), string(res)))
		}
		rs, rev, ok, err := st.commit(ctx, id, w, cmps, ops, []clientv3.Op{clientv3.OpGet(st.headKey(id), clientv3.WithKeysOnly())})
		if err != nil {
			return err
		}
		if ok {
			st.mu.Lock()
			st.stats.Snapshots++
			st.stats.Bytes += int64(len(res))
			st.mu.Unlock()
			s.Revision = rev
			st.remember(id, &cached{rev: rev, headRev: rev, head: w.head, nodes: s.Progress.Nodes,
				messages: s.Messages, dropped: s.MessagesDropped, hdr: headerOf(s)})
			return nil
		}
		if len(rs[0].GetResponseRange().Kvs) > 0 {
			return fmt.Errorf("%w: %s", crus.ErrSessionExists, id)
		}
		// Another session was created meanwhile: check again, under a
		// new generation.
		if w, err = st.snapshot(s); err != nil {
			return err
		}
	}
	return fmt.Errorf("etcdstore: creating session %s: too many concurrent creations, try again", id)
}

func (st *Store) decodeActive(kvs []*mvccpb.KeyValue) ([]crus.Reservation, error) {
	var out []crus.Reservation
	for _, kv := range kvs {
		var r crus.Reservation
		if err := record.Decode(kv.Value, maxReserveJSON, &r); err != nil {
			return nil, fmt.Errorf("%w: reservation %s: %v", crus.ErrCorruptSession, kv.Key, err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b crus.Reservation) int { return strings.Compare(a.Session, b.Session) })
	return out, nil
}

// dropStale deletes the reservations, among the conflicts, of sessions
// that are gone or completed, and reports whether it dropped any.
func (st *Store) dropStale(ctx context.Context, conflicts []crus.Conflict) (bool, error) {
	dropped := false
	for _, c := range conflicts {
		live, err := st.inProgress(ctx, c.Session)
		if err != nil {
			return false, err
		}
		if live {
			continue
		}
		_, err = st.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(st.activeKey(c.Session)), ">", 0)).
			Then(clientv3.OpDelete(st.activeKey(c.Session)), clientv3.OpPut(st.activeRevKey(), c.Session)).Commit()
		if err != nil {
			return false, fmt.Errorf("etcdstore: dropping the stale reservation of session %s: %w", c.Session, err)
		}
		st.log.Info("dropped the reservation of a session no longer in progress", "session", c.Session)
		dropped = true
	}
	return dropped, nil
}

// inProgress reports whether the session exists and is not completed. A
// head that cannot be read counts as in progress (it may be).
func (st *Store) inProgress(ctx context.Context, id string) (bool, error) {
	resp, err := st.c.Get(ctx, st.headKey(id))
	if err != nil {
		return false, fmt.Errorf("etcdstore: reading session %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	h, err := st.decodeHead(id, resp.Kvs[0].Value)
	if err != nil {
		return true, nil
	}
	return !h.Completed, nil
}

// Reservations implements crus.Reserver.
func (st *Store) Reservations(ctx context.Context) ([]crus.Reservation, error) {
	resp, err := st.c.Get(ctx, st.activePrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: reading reservations: %w", err)
	}
	held, err := st.decodeActive(resp.Kvs)
	if err != nil {
		return nil, err
	}
	out := held[:0]
	for _, r := range held {
		live, err := st.inProgress(ctx, r.Session)
		if err != nil {
			return nil, err
		}
		if live {
			out = append(out, r)
		}
	}
	return out, nil
}

// Update implements crus.Store. Based on the revision this Store last
// wrote or read, it writes what changed (the node records that differ,
// the messages added); otherwise, the whole record.
func (st *Store) Update(ctx context.Context, s *crus.Session) error {
	return st.update(ctx, s, nil, false)
}

// UpdateNodes implements crus.NodeUpdater: it writes the head and one
// delta key holding the header, the node records at changed and the
// messages added. Once the deltas outgrow the snapshot, the write is a
// new snapshot instead.
func (st *Store) UpdateNodes(ctx context.Context, s *crus.Session, changed []int) error {
	for _, i := range changed {
		if i < 0 || i >= len(s.Progress.Nodes) {
			return fmt.Errorf("etcdstore: UpdateNodes of session %s: node position %d out of range (%d nodes)", s.UpgradeID, i, len(s.Progress.Nodes))
		}
	}
	return st.update(ctx, s, changed, true)
}

func (st *Store) update(ctx context.Context, s *crus.Session, changed []int, trusted bool) error {
	id := s.UpgradeID
	if err := checkID(id); err != nil {
		return fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st.mu.Lock()
	c := st.cache[id]
	st.mu.Unlock()
	if c == nil || c.rev != s.Revision {
		// Not the revision this Store knows: read it, which tells a
		// conflict and what is stored.
		cur, fresh, err := st.load(ctx, id)
		if err != nil {
			return err
		}
		if cur.Revision != s.Revision {
			return fmt.Errorf("%w: %s is at revision %d, update was based on %d", crus.ErrConflict, id, cur.Revision, s.Revision)
		}
		c = fresh
	}
	var w *writePlan
	if len(c.nodes) == len(s.Progress.Nodes) && appended(c, s) {
		if !trusted {
			changed = changed[:0]
			st.mu.Lock() // c.nodes is updated in place by the writes that follow c
			for i := range s.Progress.Nodes {
				if c.nodes[i] != s.Progress.Nodes[i] {
					changed = append(changed, i)
				}
			}
			st.mu.Unlock()
		}
		var err error
		if w, err = st.delta(s, c, changed); err != nil {
			return err
		}
	}
	if w == nil {
		var err error
		if w, err = st.snapshot(s); err != nil {
			return err
		}
		w.stale = st.genPrefix(id, c.head.Gen)
	}
	cmps := st.sessionCmps(id, c)
	failure := []clientv3.Op{clientv3.OpGet(st.headKey(id), clientv3.WithKeysOnly())}
	fcmps, freads, f, fenced := st.fenceOf(id)
	cmps, failure = append(cmps, fcmps...), append(failure, freads...)
	var ops []clientv3.Op
	if s.Completed {
		ops = append(ops, clientv3.OpDelete(st.activeKey(id))) // released with the write that ends it
	}
	rs, rev, ok, err := st.commit(ctx, id, w, cmps, ops, failure)
	if err != nil {
		st.forget(id)
		return err
	}
	if !ok {
		st.forget(id)
		if fenced {
			if err := lostFence(rs, f); err != nil {
				return err
			}
		}
		if len(rs[0].GetResponseRange().Kvs) == 0 {
			return fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
		}
		return fmt.Errorf("%w: %s changed since revision %d", crus.ErrConflict, id, s.Revision)
	}
	s.Revision = rev
	if w.stale != "" {
		st.mu.Lock()
		st.stats.Snapshots++
		st.mu.Unlock()
	}
	if s.Completed {
		st.forget(id) // finished: it will hardly be written again
		return nil
	}
	n := &cached{rev: rev, headRev: c.headRev, head: w.head, deltas: w.deltas, journal: w.journal, last: w.last,
		messages: slices.Clone(s.Messages), dropped: s.MessagesDropped, hdr: headerOf(s)}
	if w.putHead {
		n.headRev = rev
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if w.stale != "" {
		n.nodes = slices.Clone(s.Progress.Nodes)
	} else {
		n.nodes = c.nodes // c is left behind: its revision is past
		for _, i := range changed {
			n.nodes[i] = s.Progress.Nodes[i]
		}
	}
	st.cache[id] = n
	return nil
}

// appended reports whether s's messages are the cached ones with some
// appended by AddMessages.
func appended(c *cached, s *crus.Session) bool {
	if s.MessagesDropped < c.dropped {
		return false
	}
	was := &crus.Session{Messages: slices.Clone(c.messages), MessagesDropped: c.dropped}
	was.AddMessages(s.MessagesSince(was.MessagesTotal())...)
	return slices.Equal(was.Messages, s.Messages)
}

// Revision implements crus.RevisionReader: a read of the head, and of the
// key of its last delta, without its value.
func (st *Store) Revision(ctx context.Context, id string) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	for attempt := 0; ; attempt++ {
		resp, err := st.c.Get(ctx, st.headKey(id))
		if err != nil {
			return 0, fmt.Errorf("etcdstore: reading session %s: %w", id, err)
		}
		if len(resp.Kvs) == 0 {
			return 0, fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
		}
		h, err := st.decodeHead(id, resp.Kvs[0].Value)
		if err != nil {
			return 0, err
		}
		rev := resp.Kvs[0].ModRevision
		last, err := st.c.Get(ctx, st.genPrefix(id, h.Gen)+"d/", clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1), clientv3.WithRev(resp.Header.Revision))
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
				continue
			}
			return 0, fmt.Errorf("etcdstore: reading session %s: %w", id, err)
		}
		if len(last.Kvs) > 0 {
			rev = max(rev, last.Kvs[0].ModRevision)
		}
		return rev, nil
	}
}

// Revisions implements crus.RevisionLister: one read of the heads (a few
// dozen bytes each), then one transaction per MaxTxnOps sessions that
// reads the key of each one's last delta, without its value, at the
// heads' revision; no record is read. A damaged head fails it, naming
// it, as it fails List.
func (st *Store) Revisions(ctx context.Context) (map[string]int64, error) {
	for attempt := 0; ; attempt++ {
		out, err := st.revisions(ctx)
		if errors.Is(err, errCompacted) && attempt < 3 {
			continue
		}
		return out, err
	}
}

func (st *Store) revisions(ctx context.Context) (map[string]int64, error) {
	resp, err := st.c.Get(ctx, st.headPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: listing sessions: %w", err)
	}
	out := make(map[string]int64, len(resp.Kvs))
	var ids []string
	var ops []clientv3.Op
	var errs []error
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), st.headPrefix())
		h, err := st.decodeHead(id, kv.Value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[id] = kv.ModRevision
		ids = append(ids, id)
		ops = append(ops, clientv3.OpGet(st.genPrefix(id, h.Gen)+"d/", clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1), clientv3.WithRev(resp.Header.Revision)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i := 0; i < len(ops); i += st.cfg.MaxTxnOps {
		j := min(i+st.cfg.MaxTxnOps, len(ops))
		tr, err := st.c.Txn(ctx).Then(ops[i:j]...).Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) || strings.Contains(err.Error(), "compacted") {
				return nil, errCompacted
			}
			return nil, fmt.Errorf("etcdstore: listing sessions: %w", err)
		}
		for k, r := range tr.Responses {
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				out[ids[i+k]] = max(out[ids[i+k]], kvs[0].ModRevision)
			}
		}
	}
	return out, nil
}

// List implements crus.Store. A damaged session fails the List, naming it.
func (st *Store) List(ctx context.Context) ([]*crus.Session, error) {
	for attempt := 0; ; attempt++ {
		out, err := st.list(ctx)
		if errors.Is(err, errCompacted) && attempt < 3 {
			continue
		}
		return out, err
	}
}

func (st *Store) list(ctx context.Context) ([]*crus.Session, error) {
	resp, err := st.c.Get(ctx, st.headPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: listing sessions: %w", err)
	}
	var out []*crus.Session
	var errs []error
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), st.headPrefix())
		s, c, err := st.assemble(ctx, id, kv, resp.Header.Revision)
		if errors.Is(err, errCompacted) {
			return nil, err
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st.remember(id, c)
		out = append(out, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(out, func(a, b *crus.Session) int {
		if c := a.Progress.CreatedAt.Compare(b.Progress.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.UpgradeID, b.UpgradeID)
	})
	return out, nil
}

// Delete implements crus.Store: the head, every record and the
// reservation go in one transaction.
func (st *Store) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(st.headKey(id)), ">", 0)}
	failure := []clientv3.Op{clientv3.OpGet(st.headKey(id), clientv3.WithKeysOnly())}
	fcmps, freads, f, fenced := st.fenceOf(id)
	cmps, failure = append(cmps, fcmps...), append(failure, freads...)
	resp, err := st.c.Txn(ctx).If(cmps...).Then(
		clientv3.OpDelete(st.headKey(id)),
		clientv3.OpDelete(st.recordPrefix(id), clientv3.WithPrefix()),
		clientv3.OpDelete(st.activeKey(id)),
	).Else(failure...).Commit()
	if err != nil {
		if noSpace(err) {
			return fmt.Errorf("%w: deleting session %s: %w", ErrNoSpace, id, err)
		}
		return fmt.Errorf("etcdstore: deleting session %s: %w", id, err)
	}
	st.forget(id)
	if !resp.Succeeded {
		if fenced {
			if err := lostFence(resp.Responses, f); err != nil {
				return err
			}
		}
		return fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
	}
	return nil
}

// setFence makes every later write of session id by this Store conditional
// on key still existing with create revision rev.
func (st *Store) setFence(id, key string, rev int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.fences[id] = fence{key: key, rev: rev}
}

func (st *Store) clearFence(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.fences, id)
}
