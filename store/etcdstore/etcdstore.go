package etcdstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
)

// SchemaVersion is the version of the layout this package writes and reads.
const SchemaVersion = 1

// Sentinel errors of package etcdstore, matched with errors.Is.
var (
	// ErrUnknownSchema: a head was written in a layout this version does
	// not know (a newer crus wrote it). It is left alone.
	ErrUnknownSchema = errors.New("etcdstore: unknown schema version")
	// ErrInvalidID: the session id cannot be part of a key.
	ErrInvalidID = errors.New("etcdstore: invalid session id")
)

// Config tunes a Store. The zero value of every field is usable.
type Config struct {
	// Prefix is the key prefix of everything the store keeps. Default
	// "/crus/"; a trailing "/" is added if missing.
	Prefix string
	// ChunkSize is the number of node records per key. Default 128.
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
		c.ChunkSize = 128
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

// Store is a crus.Store on etcd. It is safe for concurrent use.
type Store struct {
	c   *clientv3.Client
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// cache keeps, per session, the node records at one revision as this
	// Store last wrote or read them, so that an Update based on that
	// revision writes only the chunks that differ. Chunks are never
	// rewritten in place, so an entry never goes stale: at worst its
	// revision is not the one asked about, and Update rewrites more.
	cache map[string]*cached
	// fences holds, per session this process drives, the lease key that
	// every write of it must still find (see lease.go).
	fences map[string]fence
	// gzip keeps compressors for reuse: a new one allocates some hundreds
	// of kilobytes of state.
	gzip sync.Pool
}

type cached struct {
	rev   int64
	nodes []crus.NodeRecord
	refs  []chunkRef
}

type fence struct {
	key string
	rev int64 // the key's CreateRevision
}

var (
	_ crus.Store          = (*Store)(nil)
	_ crus.RevisionReader = (*Store)(nil)
	_ crus.Reserver       = (*Store)(nil)
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
		gzip: sync.Pool{New: newGzipWriter}}, nil
}

// Prefix returns the key prefix of the store.
func (st *Store) Prefix() string { return st.cfg.Prefix }

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

func checkID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w %q: letters, digits and ._- only, not starting with . or -", ErrInvalidID, id)
	}
	return nil
}

func (st *Store) headKey(id string) string     { return st.cfg.Prefix + "sessions/" + id }
func (st *Store) headPrefix() string           { return st.cfg.Prefix + "sessions/" }
func (st *Store) chunkPrefix(id string) string { return st.cfg.Prefix + "nodes/" + id + "/" }
func (st *Store) activeKey(id string) string   { return st.cfg.Prefix + "active/" + id }
func (st *Store) activePrefix() string         { return st.cfg.Prefix + "active/" }
func (st *Store) activeRevKey() string         { return st.cfg.Prefix + "active-rev" }
func (st *Store) leaderKey(id string) string   { return st.cfg.Prefix + "leaders/" + id }
func (st *Store) leaderPrefix() string         { return st.cfg.Prefix + "leaders/" }

// head is the JSON form of a session's head key.
type head struct {
	Schema  int             `json:"schema"`
	Session json.RawMessage `json:"session"` // the record, without its nodes
	Nodes   int             `json:"nodes"`
	Chunks  []chunkRef      `json:"chunks"`
}

// chunkRef names one chunk of node records.
type chunkRef struct {
	Key string `json:"key"` // under nodes/<id>/
	N   int    `json:"n"`
}

func newGen() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newGzipWriter() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}

// compress encodes v as gzip-compressed JSON.
func (st *Store) compress(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := st.gzip.Get().(*gzip.Writer)
	defer st.gzip.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(j); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decompress(b []byte, v any) error {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	j, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	return json.Unmarshal(j, v)
}

func (st *Store) corrupt(id, format string, args ...any) error {
	return fmt.Errorf("%w: %s under %s: %s; left as it is", crus.ErrCorruptSession, id, st.cfg.Prefix, fmt.Sprintf(format, args...))
}

// decodeHead checks and decodes a head key's value.
func (st *Store) decodeHead(id string, b []byte) (*crus.Session, *head, error) {
	var h head
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, nil, st.corrupt(id, "head is not a JSON document: %v", err)
	}
	if h.Schema != SchemaVersion {
		return nil, nil, fmt.Errorf("%w %d in session %s under %s (this version reads schema %d); left as it is",
			ErrUnknownSchema, h.Schema, id, st.cfg.Prefix, SchemaVersion)
	}
	var s crus.Session
	if err := json.Unmarshal(h.Session, &s); err != nil {
		return nil, nil, st.corrupt(id, "bad session record: %v", err)
	}
	if s.UpgradeID != id {
		return nil, nil, st.corrupt(id, "head holds session %q", s.UpgradeID)
	}
	total := 0
	for _, r := range h.Chunks {
		total += r.N
	}
	if total != h.Nodes {
		return nil, nil, st.corrupt(id, "chunks hold %d nodes, head says %d", total, h.Nodes)
	}
	return &s, &h, nil
}

// chunks splits nodes into the store's chunks.
func (st *Store) chunks(nodes []crus.NodeRecord) [][]crus.NodeRecord {
	var out [][]crus.NodeRecord
	for i := 0; i < len(nodes); i += st.cfg.ChunkSize {
		out = append(out, nodes[i:min(i+st.cfg.ChunkSize, len(nodes))])
	}
	return out
}

// Get implements crus.Store. It reads the head, then the chunks it names
// at the head's revision, so the record is consistent even while it is
// being written.
func (st *Store) Get(ctx context.Context, id string) (*crus.Session, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	for attempt := 0; ; attempt++ {
		resp, err := st.c.Get(ctx, st.headKey(id))
		if err != nil {
			return nil, fmt.Errorf("etcdstore: reading session %s: %w", id, err)
		}
		if len(resp.Kvs) == 0 {
			return nil, fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
		}
		s, err := st.assemble(ctx, id, resp.Kvs[0].Value, resp.Kvs[0].ModRevision, resp.Header.Revision)
		if errors.Is(err, errCompacted) && attempt < 3 {
			continue
		}
		return s, err
	}
}

var errCompacted = errors.New("etcdstore: revision compacted while reading")

// assemble decodes a head and reads its chunks at revision at.
func (st *Store) assemble(ctx context.Context, id string, value []byte, modRev, at int64) (*crus.Session, error) {
	s, h, err := st.decodeHead(id, value)
	if err != nil {
		return nil, err
	}
	s.Revision = modRev
	if h.Nodes > 0 {
		vals, err := st.rangeAll(ctx, st.chunkPrefix(id), at)
		if err != nil {
			return nil, err
		}
		s.Progress.Nodes = make([]crus.NodeRecord, 0, h.Nodes)
		for _, r := range h.Chunks {
			v, ok := vals[st.chunkPrefix(id)+r.Key]
			if !ok {
				return nil, st.corrupt(id, "chunk %s named by the head is missing", r.Key)
			}
			var part []crus.NodeRecord
			if err := decompress(v, &part); err != nil {
				return nil, st.corrupt(id, "chunk %s: %v", r.Key, err)
			}
			if len(part) != r.N {
				return nil, st.corrupt(id, "chunk %s holds %d nodes, the head says %d", r.Key, len(part), r.N)
			}
			s.Progress.Nodes = append(s.Progress.Nodes, part...)
		}
	}
	if !s.Completed {
		st.remember(id, modRev, s.Progress.Nodes, h.Chunks)
	}
	return s, nil
}

// rangeAll reads every key under prefix at revision rev, a page at a time.
func (st *Store) rangeAll(ctx context.Context, prefix string, rev int64) (map[string][]byte, error) {
	out := map[string][]byte{}
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		resp, err := st.c.Get(ctx, key, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(64),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			if strings.Contains(err.Error(), "compacted") {
				return nil, errCompacted
			}
			return nil, fmt.Errorf("etcdstore: reading %s: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = kv.Value
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (st *Store) remember(id string, rev int64, nodes []crus.NodeRecord, refs []chunkRef) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if c, ok := st.cache[id]; ok && c.rev > rev {
		return
	}
	st.cache[id] = &cached{rev: rev, nodes: slices.Clone(nodes), refs: slices.Clone(refs)}
}

func (st *Store) forget(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.cache, id)
}

// writePlan is what one write of a session puts and deletes.
type writePlan struct {
	head   []byte
	refs   []chunkRef
	puts   []clientv3.Op // new chunks
	bytes  int           // of puts
	stale  []string      // chunk keys the write replaces
	staged []string      // chunk keys written before the final transaction
}

// plan encodes s for writing, reusing the chunks of prev (the record at
// the revision s is based on) that did not change.
func (st *Store) plan(s *crus.Session, prev *cached) (*writePlan, error) {
	id := s.UpgradeID
	gen := newGen()
	w := &writePlan{}
	for i, part := range st.chunks(s.Progress.Nodes) {
		if prev != nil && i < len(prev.refs) && prev.refs[i].N == len(part) {
			a := i * st.cfg.ChunkSize
			if len(prev.nodes) >= a+len(part) && slices.Equal(prev.nodes[a:a+len(part)], part) {
				w.refs = append(w.refs, prev.refs[i])
				continue
			}
		}
		v, err := st.compress(part)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
		}
		ref := chunkRef{Key: fmt.Sprintf("%06d.%s", i, gen), N: len(part)}
		w.refs = append(w.refs, ref)
		key := st.chunkPrefix(id) + ref.Key
		w.puts = append(w.puts, clientv3.OpPut(key, string(v)))
		w.bytes += len(key) + len(v) + 16
	}
	if prev != nil {
		keep := map[string]bool{}
		for _, r := range w.refs {
			keep[r.Key] = true
		}
		for _, r := range prev.refs {
			if !keep[r.Key] {
				w.stale = append(w.stale, st.chunkPrefix(id)+r.Key)
			}
		}
	}
	rec := *s
	rec.Progress.Nodes = nil
	sj, err := json.Marshal(&rec)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
	}
	w.head, err = json.Marshal(head{Schema: SchemaVersion, Session: sj, Nodes: len(s.Progress.Nodes), Chunks: w.refs})
	if err != nil {
		return nil, fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
	}
	return w, nil
}

// commit runs the final transaction of a write: cmps, then the head and
// extra ops, with the new chunks if they fit (else they are written first,
// in transactions of their own guarded by the same cmps), and the stale
// chunks' deletion if it fits (else afterwards). When the cmps fail, ok is
// false and the responses are those of the failure reads.
func (st *Store) commit(ctx context.Context, id string, w *writePlan, cmps []clientv3.Cmp, ops, failure []clientv3.Op) (responses []*etcdserverpb.ResponseOp, rev int64, ok bool, err error) {
	ops = append([]clientv3.Op{clientv3.OpPut(st.headKey(id), string(w.head))}, ops...)
	size := len(w.head) + 256
	room := st.cfg.MaxTxnOps - len(ops)
	if len(w.puts) <= room && size+w.bytes <= st.cfg.MaxTxnBytes {
		ops = append(ops, w.puts...)
		room -= len(w.puts)
	} else {
		// Stage the chunks: fresh keys no head names yet.
		for i := 0; i < len(w.puts); {
			j, b := i, 0
			for j < len(w.puts) && j-i < st.cfg.MaxTxnOps && (j == i || b+opSize(w.puts[j]) <= st.cfg.MaxTxnBytes) {
				b += opSize(w.puts[j])
				j++
			}
			resp, err := st.c.Txn(ctx).If(cmps...).Then(w.puts[i:j]...).Else(failure...).Commit()
			if err != nil {
				st.unstage(id, w)
				return nil, 0, false, fmt.Errorf("etcdstore: writing session %s: %w", id, err)
			}
			if !resp.Succeeded {
				st.unstage(id, w)
				return resp.Responses, 0, false, nil
			}
			for _, op := range w.puts[i:j] {
				w.staged = append(w.staged, string(op.KeyBytes()))
			}
			i = j
		}
	}
	var later []string
	for _, k := range w.stale {
		if room > 0 {
			ops = append(ops, clientv3.OpDelete(k))
			room--
		} else {
			later = append(later, k)
		}
	}
	resp, err := st.c.Txn(ctx).If(cmps...).Then(ops...).Else(failure...).Commit()
	if err != nil {
		// The write may or may not have happened: a retry based on the
		// same revision tells (ErrConflict if it did).
		return nil, 0, false, fmt.Errorf("etcdstore: writing session %s: %w", id, err)
	}
	if !resp.Succeeded {
		st.unstage(id, w)
		return resp.Responses, 0, false, nil
	}
	for i := 0; i < len(later); i += st.cfg.MaxTxnOps {
		var dels []clientv3.Op
		for _, k := range later[i:min(i+st.cfg.MaxTxnOps, len(later))] {
			dels = append(dels, clientv3.OpDelete(k))
		}
		if _, err := st.c.Txn(ctx).Then(dels...).Commit(); err != nil {
			st.log.Warn("could not delete replaced chunks; they are removed with the session", "session", id, "err", err)
			break
		}
	}
	return resp.Responses, resp.Header.Revision, true, nil
}

func opSize(op clientv3.Op) int { return len(op.KeyBytes()) + len(op.ValueBytes()) + 16 }

// unstage deletes, as well as it can, chunks written for a write that did
// not happen.
func (st *Store) unstage(id string, w *writePlan) {
	for i := 0; i < len(w.staged); i += st.cfg.MaxTxnOps {
		var dels []clientv3.Op
		for _, k := range w.staged[i:min(i+st.cfg.MaxTxnOps, len(w.staged))] {
			dels = append(dels, clientv3.OpDelete(k))
		}
		if _, err := st.c.Txn(context.Background()).Then(dels...).Commit(); err != nil {
			st.log.Warn("could not delete chunks of a failed write; they are removed with the session", "session", id, "err", err)
			return
		}
	}
	w.staged = nil
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
	w, err := st.plan(s, nil)
	if err != nil {
		return err
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
		if !s.Completed {
			res, err := st.compress(crus.ReservationOf(s))
			if err != nil {
				return fmt.Errorf("etcdstore: encoding session %s: %w", id, err)
			}
			ops = append(ops, clientv3.OpPut(st.activeKey(id), string(res)))
		}
		rs, rev, ok, err := st.commit(ctx, id, w, cmps, ops, []clientv3.Op{clientv3.OpGet(st.headKey(id), clientv3.WithKeysOnly())})
		if err != nil {
			return err
		}
		if ok {
			s.Revision = rev
			st.remember(id, s.Revision, s.Progress.Nodes, w.refs)
			return nil
		}
		if len(rs[0].GetResponseRange().Kvs) > 0 {
			return fmt.Errorf("%w: %s", crus.ErrSessionExists, id)
		}
		// Another session was created meanwhile: check again.
		w.staged = nil
	}
	return fmt.Errorf("etcdstore: creating session %s: too many concurrent creations, try again", id)
}

func (st *Store) decodeActive(kvs []*mvccpb.KeyValue) ([]crus.Reservation, error) {
	var out []crus.Reservation
	for _, kv := range kvs {
		var r crus.Reservation
		if err := decompress(kv.Value, &r); err != nil {
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
	s, _, err := st.decodeHead(id, resp.Kvs[0].Value)
	if err != nil {
		return true, nil
	}
	return !s.Completed, nil
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

// Update implements crus.Store.
func (st *Store) Update(ctx context.Context, s *crus.Session) error {
	id := s.UpgradeID
	if err := checkID(id); err != nil {
		return fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st.mu.Lock()
	prev := st.cache[id]
	st.mu.Unlock()
	if prev == nil || prev.rev != s.Revision {
		// Not the revision this Store knows: learn which chunks it has,
		// so that the write can replace them (it rewrites them all).
		resp, err := st.c.Get(ctx, st.headKey(id))
		if err != nil {
			return fmt.Errorf("etcdstore: reading session %s: %w", id, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
		}
		if rev := resp.Kvs[0].ModRevision; rev != s.Revision {
			return fmt.Errorf("%w: %s is at revision %d, update was based on %d", crus.ErrConflict, id, rev, s.Revision)
		}
		_, h, err := st.decodeHead(id, resp.Kvs[0].Value)
		if err != nil {
			return err
		}
		prev = &cached{rev: s.Revision, refs: h.Chunks}
	}
	w, err := st.plan(s, prev)
	if err != nil {
		return err
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(st.headKey(id)), "=", s.Revision)}
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
		if fenced {
			if err := lostFence(rs, f); err != nil {
				return err
			}
		}
		kvs := rs[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
		}
		return fmt.Errorf("%w: %s is at revision %d, update was based on %d", crus.ErrConflict, id, kvs[0].ModRevision, s.Revision)
	}
	s.Revision = rev
	if s.Completed {
		st.forget(id) // finished: it will hardly be written again
	} else {
		st.remember(id, s.Revision, s.Progress.Nodes, w.refs)
	}
	return nil
}

// Revision implements crus.RevisionReader: one read of the head's key,
// without its value.
func (st *Store) Revision(ctx context.Context, id string) (int64, error) {
	if err := checkID(id); err != nil {
		return 0, fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	resp, err := st.c.Get(ctx, st.headKey(id), clientv3.WithKeysOnly())
	if err != nil {
		return 0, fmt.Errorf("etcdstore: reading session %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
	}
	return resp.Kvs[0].ModRevision, nil
}

// List implements crus.Store. A damaged session fails the List, naming it.
func (st *Store) List(ctx context.Context) ([]*crus.Session, error) {
	resp, err := st.c.Get(ctx, st.headPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: listing sessions: %w", err)
	}
	var out []*crus.Session
	var errs []error
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), st.headPrefix())
		s, err := st.assemble(ctx, id, kv.Value, kv.ModRevision, resp.Header.Revision)
		if err != nil {
			errs = append(errs, err)
			continue
		}
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

// Delete implements crus.Store: the head, every chunk and the reservation
// go in one transaction.
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
		clientv3.OpDelete(st.chunkPrefix(id), clientv3.WithPrefix()),
		clientv3.OpDelete(st.activeKey(id)),
	).Else(failure...).Commit()
	if err != nil {
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
