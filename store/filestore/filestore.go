package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/store/internal/record"
)

// SchemaVersion is the version of the file format this package writes
// and reads. Version 1 (one JSON document per session, <id>.json) is
// still read, and a session of that format is rewritten as a journal by
// its next write.
const SchemaVersion = 2

// LockFile is the name of the lock file in the store directory.
const LockFile = "crus.lock"

// Sentinel errors of package filestore, matched with errors.Is.
var (
	// ErrLocked: another Store (in this process or another) has the
	// directory open.
	ErrLocked = errors.New("filestore: store directory is in use")
	// ErrUnknownSchema: a session file was written in a format this
	// version does not know (a newer crus wrote it). It is left alone.
	ErrUnknownSchema = batch.NewPermanent("filestore: unknown schema version")
	// ErrInvalidID: the session id cannot name a file.
	ErrInvalidID = batch.NewPermanent("filestore: invalid session id")
	// ErrClosed: the Store was closed.
	ErrClosed = batch.NewPermanent("filestore: store is closed")
	// ErrNotWritable: the file system refused a write of a session for a
	// reason that lasts until someone acts on it: it is full (or the
	// user's quota is), mounted read-only, or crus may not write there.
	// Nothing new was stored. The executor stops at once instead of
	// retrying, before acting on what it could not record; a Driver
	// tries again after its RetryAfter.
	//
	// These, like ErrUnknownSchema, ErrInvalidID, ErrClosed and
	// crus.ErrCorruptSession, match batch.ErrPermanent.
	ErrNotWritable = batch.NewPermanent("filestore: the store directory cannot be written")
	// ErrUnsafeDir: the store directory, or its lock file, could let
	// another user replace the sessions or make crus write elsewhere: a
	// directory writable by its group or by others, a lock file that is a
	// symbolic link or not a regular file.
	ErrUnsafeDir = errors.New("filestore: unsafe store directory")
)

// Options tune Open. The zero value is usable.
type Options struct {
	// Create makes the directory (mode 0700, with its parents) if it does
	// not exist. Without it, a missing directory is an error, so that a
	// mistyped path does not start an empty store.
	Create bool
}

// Compaction: a journal is rewritten as one snapshot when the deltas
// appended since its snapshot would pass compactRatio times the snapshot,
// and at least compactMin bytes. Every byte of a delta is then written at
// most 1 + 1/compactRatio times, whatever the size of the session, and a
// read decodes at most 1 + compactRatio snapshots' worth.
const (
	compactRatio = 4
	compactMin   = 256 << 10
)

// Stats counts what a Store wrote since it was opened.
type Stats struct {
	Writes    int64 // creates and updates of sessions
	Bytes     int64 // bytes written to session files
	Snapshots int64 // whole records written (creates, Updates, compactions)
}

// Store is a crus.Store on a directory. It is safe for concurrent use.
type Store struct {
	dir  string
	lock *os.File

	mu     sync.Mutex
	closed bool
	// known caches what this process wrote or read of each session's
	// journal, so that a write need not read the file it appends to. An
	// entry is trusted only while the file's size and modification time
	// are the ones recorded; the lock keeps every other writer out.
	known map[string]*fileState
	// active holds the reservation of each session in progress, once
	// loaded (nil before the first reservation check).
	active map[string]crus.Reservation
	stats  Stats

	// compaction thresholds; tests lower them.
	ratio, min int
}

// fileState is what the Store knows of a session's journal.
type fileState struct {
	revision int64
	size     int64
	modTime  time.Time
	legacy   bool // a schema-1 document, not a journal
	snapshot int  // bytes of magic, header and snapshot
	end      int  // where the next delta goes
	nodes    int
	messages []string // the stored messages (bounded)
	dropped  int
	last     []byte // the header of the last delta, nil after the snapshot (see record.EncodeDelta)
	// rec is the whole record of a session in progress as this Store last
	// wrote it, or read it for Get or View (nil otherwise): while the file
	// is unchanged, View shows it and Get copies it, instead of decoding
	// the file again (160,000 node records at each request).
	rec *crus.Session
}

var (
	_ crus.Store          = (*Store)(nil)
	_ crus.RevisionReader = (*Store)(nil)
	_ crus.RevisionLister = (*Store)(nil)
	_ crus.Reserver       = (*Store)(nil)
	_ crus.NodeUpdater    = (*Store)(nil)
	_ crus.Viewer         = (*Store)(nil)
)

// Open opens the store in dir and locks it. Close releases the lock.
// Errors name the directory: a missing directory (fs.ErrNotExist, unless
// Options.Create), one this process may not write (fs.ErrPermission), one
// that another Store holds (ErrLocked, naming the holder), one writable
// by its group or by others, or whose lock file is a symbolic link
// (ErrUnsafeDir).
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("filestore: no directory given")
	}
	dir = filepath.Clean(dir)
	if opts.Create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("filestore: creating store directory: %w", err)
		}
	}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("filestore: store directory: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("filestore: store directory %s is not a directory", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("%w: %s is writable by its group or by others (mode %04o): anyone who can write there can replace the sessions; make it private (chmod go-w)",
			ErrUnsafeDir, dir, fi.Mode().Perm())
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	st := &Store{dir: dir, lock: lock, known: map[string]*fileState{}, ratio: compactRatio, min: compactMin}
	// Temporary files are only ever left by a crash in the middle of a
	// write, whose rename never happened: the session file still holds
	// the previous record. With the lock held, nobody else is writing.
	tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	for _, tmp := range tmps {
		_ = os.Remove(tmp)
	}
	return st, nil
}

// Dir returns the store's directory.
func (st *Store) Dir() string { return st.dir }

// Stats returns what the Store wrote since it was opened.
func (st *Store) Stats() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stats
}

// Close releases the lock. The Store cannot be used afterwards.
func (st *Store) Close() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil
	}
	st.closed = true
	return unlockDir(st.lock)
}

// checkID refuses an id that could not name a file or key
// (crus.ValidateStoredID).
func checkID(id string) error {
	if err := crus.ValidateStoredID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidID, err)
	}
	return nil
}

func (st *Store) path(id string) string       { return filepath.Join(st.dir, id+".journal") }
func (st *Store) legacyPath(id string) string { return filepath.Join(st.dir, id+".json") }

// beginID checks the id, then does what begin does.
func (st *Store) beginID(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	return st.begin(ctx)
}

// begin checks the context and the store, and takes the lock.
func (st *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// notFound is crus.ErrSessionNotFound, also for an id that cannot name a
// file.
func notFound(err error) error {
	if errors.Is(err, ErrInvalidID) {
		return fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
	}
	return err
}

// readFile reads a whole file, without following a symbolic link.
func readFile(p string) ([]byte, os.FileInfo, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", p)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, nil, err
	}
	return b, fi, nil
}

// read reads and decodes a session's file. A missing file is
// crus.ErrSessionNotFound.
func (st *Store) read(id string) (*crus.Session, *fileState, error) {
	p := st.path(id)
	b, fi, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return st.readLegacy(id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("filestore: reading session %s: %w", id, err)
	}
	j, err := decodeJournal(id, b)
	if err != nil {
		var us errUnknownSchema
		if errors.As(err, &us) {
			return nil, nil, fmt.Errorf("%w %d in file %s (this version reads schema %d); the file is left as it is",
				ErrUnknownSchema, us.schema, p, SchemaVersion)
		}
		return nil, nil, fmt.Errorf("%w: file %s: %v; the file is left as it is: repair or remove it", crus.ErrCorruptSession, p, err)
	}
	fst := &fileState{revision: j.rev, size: fi.Size(), modTime: fi.ModTime(), snapshot: j.snapshot, end: j.end, last: j.last}
	fst.remember(j.s)
	return j.s, fst, nil
}

func (f *fileState) remember(s *crus.Session) {
	f.nodes = len(s.Progress.Nodes)
	f.messages = slices.Clone(s.Messages)
	f.dropped = s.MessagesDropped
}

// readLegacy reads a session file of schema 1.
func (st *Store) readLegacy(id string) (*crus.Session, *fileState, error) {
	p := st.legacyPath(id)
	b, fi, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("filestore: reading session %s: %w", id, err)
	}
	s, rev, err := decodeLegacy(p, id, b)
	if err != nil {
		return nil, nil, err
	}
	s.Revision = rev
	fst := &fileState{revision: rev, size: fi.Size(), modTime: fi.ModTime(), legacy: true}
	fst.remember(s)
	return s, fst, nil
}

// unchanged returns what is known of the session's file if the file is
// the one this process last wrote or read (a stat: its size and
// modification time), else nil.
func (st *Store) unchanged(id string) *fileState {
	k, ok := st.known[id]
	if !ok {
		return nil
	}
	p := st.path(id)
	if k.legacy {
		p = st.legacyPath(id)
	}
	fi, err := os.Lstat(p)
	if err == nil && fi.Size() == k.size && fi.ModTime().Equal(k.modTime) {
		return k
	}
	return nil
}

// current returns what is known of the session's file, from the cache if
// the file is the one this process last wrote or read, else by reading
// it (so that a damaged file is reported, not replaced).
func (st *Store) current(id string) (*fileState, error) {
	if k := st.unchanged(id); k != nil {
		return k, nil
	}
	_, fst, err := st.read(id)
	if err != nil {
		delete(st.known, id)
		return nil, err
	}
	st.known[id] = fst
	return fst, nil
}

// writeNew writes a new journal holding s at revision rev: a temporary
// file, synced, then linked (create: it must not exist) or renamed
// (replace) into place, and the directory synced.
func (st *Store) writeNew(s *crus.Session, rev int64, create bool) (*fileState, error) {
	id := s.UpgradeID
	b, err := newJournal(s, rev)
	if err != nil {
		return nil, fmt.Errorf("filestore: encoding session %s: %w", id, err)
	}
	p := st.path(id)
	tmp, err := os.CreateTemp(st.dir, "."+id+".journal.tmp-*")
	if err != nil {
		return nil, writeErr(id, "", err)
	}
	fail := func(err error) (*fileState, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, writeErr(id, "", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if create {
		err = os.Link(tmp.Name(), p)
		os.Remove(tmp.Name())
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: %s", crus.ErrSessionExists, id)
		}
	} else {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, writeErr(id, "", err)
	}
	st.stats.Writes++
	st.stats.Snapshots++
	st.stats.Bytes += int64(len(b))
	fi, err := os.Lstat(p)
	if err == nil {
		err = syncDir(st.dir)
	}
	if err != nil {
		// The file is in place; whether it survives a power cut is not
		// known. Report it: the caller retries, and the retry is a
		// conflict it resolves by reading the record again.
		return nil, writeErr(id, "syncing the directory: ", err)
	}
	// A session of schema 1 now has its journal: the old file goes.
	if err := os.Remove(st.legacyPath(id)); err == nil {
		if err := syncDir(st.dir); err != nil {
			return nil, writeErr(id, "syncing the directory: ", err)
		}
	}
	fst := &fileState{revision: rev, size: fi.Size(), modTime: fi.ModTime(), snapshot: len(b), end: len(b)}
	fst.remember(s)
	if !s.Completed {
		fst.rec = s.Clone()
		fst.rec.Revision = rev
	}
	return fst, nil
}

// appendDelta appends one delta frame to the session's journal, after
// its last good frame (overwriting a torn tail), and syncs it.
func (st *Store) appendDelta(id string, k *fileState, frame []byte) (*fileState, error) {
	f, err := os.OpenFile(st.path(id), os.O_WRONLY|openNoFollow, 0)
	if err != nil {
		return nil, writeErr(id, "", err)
	}
	fail := func(err error) (*fileState, error) {
		f.Close()
		return nil, writeErr(id, "", err)
	}
	if k.size != int64(k.end) {
		if err := f.Truncate(int64(k.end)); err != nil {
			return fail(err)
		}
	}
	if _, err := f.WriteAt(frame, int64(k.end)); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return nil, writeErr(id, "", err)
	}
	st.stats.Writes++
	st.stats.Bytes += int64(len(frame))
	n := *k
	n.size, n.modTime, n.end = fi.Size(), fi.ModTime(), k.end+len(frame)
	return &n, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Create implements crus.Store.
func (st *Store) Create(ctx context.Context, s *crus.Session) error {
	if err := st.beginID(ctx, s.UpgradeID); err != nil {
		return err
	}
	defer st.mu.Unlock()
	return st.create(s)
}

// exists reports whether the session has a file, of either schema.
func (st *Store) exists(id string) (bool, error) {
	for _, p := range []string{st.path(id), st.legacyPath(id)} {
		if _, err := os.Lstat(p); err == nil {
			return true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("filestore: session %s: %w", id, err)
		}
	}
	return false, nil
}

func (st *Store) create(s *crus.Session) error {
	if ok, err := st.exists(s.UpgradeID); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: %s", crus.ErrSessionExists, s.UpgradeID)
	}
	fst, err := st.writeNew(s, 1, true)
	if err != nil {
		return err
	}
	s.Revision = 1
	st.known[s.UpgradeID] = fst
	if st.active != nil && !s.Completed {
		st.active[s.UpgradeID] = crus.ReservationOf(s)
	}
	return nil
}

// Get implements crus.Store. A session in progress whose file is the one
// this Store last wrote or read for Get or View is copied from the record
// it keeps (a stat of the file, and a copy), not decoded again.
func (st *Store) Get(ctx context.Context, id string) (*crus.Session, error) {
	if err := st.beginID(ctx, id); err != nil {
		return nil, notFound(err)
	}
	defer st.mu.Unlock()
	if k := st.unchanged(id); k != nil && k.rec != nil {
		return k.rec.Clone(), nil
	}
	s, err := st.readKept(id)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// readKept reads the session's file, and keeps a copy of the record if
// the session is in progress (fileState.rec).
func (st *Store) readKept(id string) (*crus.Session, error) {
	s, fst, err := st.read(id)
	if err != nil {
		delete(st.known, id)
		return nil, err
	}
	if !s.Completed {
		fst.rec = s.Clone()
	}
	st.known[id] = fst
	return s, nil
}

// View implements crus.Viewer: as Get, but fn sees the record this Store
// keeps, under its lock (the Store's other calls wait for fn), or the one
// it read.
func (st *Store) View(ctx context.Context, id string, fn func(s *crus.Session) error) error {
	if err := st.beginID(ctx, id); err != nil {
		return notFound(err)
	}
	defer st.mu.Unlock()
	if k := st.unchanged(id); k != nil && k.rec != nil {
		return fn(k.rec)
	}
	s, err := st.readKept(id)
	if err != nil {
		return err
	}
	return fn(s)
}

// ViewAll implements crus.Viewer: fn sees copies, as List returns them.
func (st *Store) ViewAll(ctx context.Context, fn func(s *crus.Session) error) error {
	return crus.ViewList(ctx, st, fn)
}

// Update implements crus.Store. It writes the whole record: a new
// journal holding it as its snapshot.
func (st *Store) Update(ctx context.Context, s *crus.Session) error {
	if err := st.beginID(ctx, s.UpgradeID); err != nil {
		return notFound(err)
	}
	defer st.mu.Unlock()
	k, err := st.current(s.UpgradeID)
	if err != nil {
		return err
	}
	if k.revision != s.Revision {
		return conflict(s, k.revision)
	}
	return st.replace(s, k.revision+1)
}

func conflict(s *crus.Session, rev int64) error {
	return fmt.Errorf("%w: %s is at revision %d, update was based on %d", crus.ErrConflict, s.UpgradeID, rev, s.Revision)
}

// replace writes s whole at revision rev.
func (st *Store) replace(s *crus.Session, rev int64) error {
	fst, err := st.writeNew(s, rev, false)
	if err != nil {
		delete(st.known, s.UpgradeID) // read the file again next time
		return err
	}
	st.wrote(s, rev, fst)
	return nil
}

func (st *Store) wrote(s *crus.Session, rev int64, fst *fileState) {
	s.Revision = rev
	st.known[s.UpgradeID] = fst
	if st.active != nil {
		if s.Completed {
			delete(st.active, s.UpgradeID)
		} else {
			st.active[s.UpgradeID] = crus.ReservationOf(s)
		}
	}
}

// UpdateNodes implements crus.NodeUpdater: it appends to the session's
// journal a delta of the header, the node records at changed and the new
// messages, and syncs it; once the deltas outgrow the snapshot, it
// writes the whole record as a new journal instead.
func (st *Store) UpdateNodes(ctx context.Context, s *crus.Session, changed []int) error {
	id := s.UpgradeID
	if err := st.beginID(ctx, id); err != nil {
		return notFound(err)
	}
	defer st.mu.Unlock()
	for _, i := range changed {
		if i < 0 || i >= len(s.Progress.Nodes) {
			return fmt.Errorf("filestore: UpdateNodes of session %s: node position %d out of range (%d nodes)", id, i, len(s.Progress.Nodes))
		}
	}
	k, err := st.current(id)
	if err != nil {
		return err
	}
	if k.revision != s.Revision {
		return conflict(s, k.revision)
	}
	rev := k.revision + 1
	if k.legacy || k.nodes != len(s.Progress.Nodes) || !appended(k, s) {
		return st.replace(s, rev) // not what UpdateNodes promises: write it all
	}
	d, err := record.MakeDelta(s, changed, len(k.messages)+k.dropped)
	if err != nil {
		return fmt.Errorf("filestore: encoding session %s: %w", id, err)
	}
	payload, err := record.EncodeDelta(d, k.last)
	if err != nil {
		return fmt.Errorf("filestore: encoding session %s: %w", id, err)
	}
	frame := appendFrame(nil, typeDelta, rev, payload)
	if k.end-k.snapshot+len(frame) > max(st.min, st.ratio*k.snapshot) {
		return st.replace(s, rev) // compaction
	}
	fst, err := st.appendDelta(id, k, frame)
	if err != nil {
		delete(st.known, id)
		return err
	}
	fst.revision = rev
	fst.last = d.Header
	fst.messages = append(fst.messages[:0:0], s.Messages...)
	fst.dropped = s.MessagesDropped
	if rec := fst.rec; rec != nil && !s.Completed {
		// The kept record follows the write in place: its header and
		// messages replaced, the changed node records copied.
		nodes := rec.Progress.Nodes
		h := *s
		h.Progress.Nodes, h.Messages = nil, nil
		*rec = *h.Clone()
		rec.Progress.Nodes, rec.Messages, rec.Revision = nodes, slices.Clone(s.Messages), rev
		for _, i := range changed {
			nodes[i] = s.Progress.Nodes[i]
		}
	} else {
		fst.rec = nil
	}
	st.wrote(s, rev, fst)
	return nil
}

// appended reports whether s's messages are the stored ones with some
// appended by AddMessages.
func appended(k *fileState, s *crus.Session) bool {
	if s.MessagesDropped < k.dropped {
		return false
	}
	was := &crus.Session{Messages: slices.Clone(k.messages), MessagesDropped: k.dropped}
	was.AddMessages(s.MessagesSince(was.MessagesTotal())...)
	return slices.Equal(was.Messages, s.Messages)
}

// Revision implements crus.RevisionReader.
func (st *Store) Revision(ctx context.Context, id string) (int64, error) {
	if err := st.beginID(ctx, id); err != nil {
		return 0, notFound(err)
	}
	defer st.mu.Unlock()
	k, err := st.current(id)
	if err != nil {
		return 0, err
	}
	return k.revision, nil
}

// Revisions implements crus.RevisionLister: it lists the directory and
// takes each session's revision from what this Store wrote or read of
// its file, if the file's size and modification time are still the ones
// it recorded (a stat), and otherwise from the file's frames, without
// inflating its records. A damaged file fails it, naming the file, as it
// fails List.
func (st *Store) Revisions(ctx context.Context) (map[string]int64, error) {
	if err := st.begin(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	ids, err := st.ids()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(ids))
	var errs []error
	for _, id := range ids {
		rev, err := st.revision(id)
		switch {
		case errors.Is(err, crus.ErrSessionNotFound):
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		out[id] = rev
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// revision returns the session's revision, from the cache if the file is
// the one this process last wrote or read, else from the file's frames.
func (st *Store) revision(id string) (int64, error) {
	if k := st.unchanged(id); k != nil {
		return k.revision, nil
	}
	p := st.path(id)
	b, _, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		_, fst, err := st.readLegacy(id)
		if err != nil {
			return 0, err
		}
		return fst.revision, nil
	}
	if err != nil {
		return 0, fmt.Errorf("filestore: reading session %s: %w", id, err)
	}
	rev, err := journalRevision(id, b)
	if err != nil {
		var us errUnknownSchema
		if errors.As(err, &us) {
			return 0, fmt.Errorf("%w %d in file %s (this version reads schema %d); the file is left as it is",
				ErrUnknownSchema, us.schema, p, SchemaVersion)
		}
		return 0, fmt.Errorf("%w: file %s: %v; the file is left as it is: repair or remove it", crus.ErrCorruptSession, p, err)
	}
	return rev, nil
}

// List implements crus.Store. A damaged file fails the whole List, naming
// every damaged file: a session that cannot be read might be one in
// progress.
func (st *Store) List(ctx context.Context) ([]*crus.Session, error) {
	if err := st.begin(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	return st.list()
}

func (st *Store) list() ([]*crus.Session, error) {
	ids, err := st.ids()
	if err != nil {
		return nil, err
	}
	var out []*crus.Session
	var errs []error
	for _, id := range ids {
		s, fst, err := st.read(id)
		switch {
		case errors.Is(err, crus.ErrSessionNotFound):
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		st.known[id] = fst
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

// ids lists the session ids that have a file, of either schema, sorted.
func (st *Store) ids() ([]string, error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: listing %s: %w", st.dir, err)
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".journal")
		if !ok {
			id, ok = strings.CutSuffix(e.Name(), ".json")
		}
		if !ok || e.IsDir() || checkID(id) != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// Delete implements crus.Store. It removes the file whatever it holds, so
// that an administrator can drop a damaged record.
func (st *Store) Delete(ctx context.Context, id string) error {
	if err := st.beginID(ctx, id); err != nil {
		return notFound(err)
	}
	defer st.mu.Unlock()
	removed := false
	for _, p := range []string{st.path(id), st.legacyPath(id)} {
		err := os.Remove(p)
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("filestore: deleting session %s: %w", id, err)
		}
	}
	if !removed {
		return fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
	}
	delete(st.known, id)
	if st.active != nil {
		delete(st.active, id)
	}
	if err := syncDir(st.dir); err != nil {
		return fmt.Errorf("filestore: deleting session %s: syncing the directory: %w", id, err)
	}
	return nil
}

// loadActive builds the index of reservations from the files, once.
// Callers hold the lock.
func (st *Store) loadActive() error {
	if st.active != nil {
		return nil
	}
	all, err := st.list()
	if err != nil {
		return fmt.Errorf("filestore: cannot tell which sessions are in progress: %w", err)
	}
	st.active = map[string]crus.Reservation{}
	for _, s := range all {
		if !s.Completed {
			st.active[s.UpgradeID] = crus.ReservationOf(s)
		}
	}
	return nil
}

func (st *Store) reservations() []crus.Reservation {
	out := make([]crus.Reservation, 0, len(st.active))
	for _, r := range st.active {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b crus.Reservation) int { return strings.Compare(a.Session, b.Session) })
	return out
}

// Reservations implements crus.Reserver: every session whose record is
// not completed holds its reservation. The first call reads every file.
func (st *Store) Reservations(ctx context.Context) ([]crus.Reservation, error) {
	if err := st.begin(ctx); err != nil {
		return nil, err
	}
	defer st.mu.Unlock()
	if err := st.loadActive(); err != nil {
		return nil, err
	}
	return st.reservations(), nil
}

// CreateReserved implements crus.Reserver. A damaged session file makes
// it fail (naming the file): the damaged session might hold the nodes.
func (st *Store) CreateReserved(ctx context.Context, s *crus.Session) error {
	if err := st.beginID(ctx, s.UpgradeID); err != nil {
		return err
	}
	defer st.mu.Unlock()
	if ok, err := st.exists(s.UpgradeID); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: %s", crus.ErrSessionExists, s.UpgradeID)
	}
	if err := st.loadActive(); err != nil {
		return err
	}
	if err := crus.CheckReservations(crus.ReservationOf(s), st.reservations()); err != nil {
		return err
	}
	return st.create(s)
}

// writeErr wraps an error of writing session id (what says which step, if
// not the write itself), marking with ErrNotWritable the refusals that
// writing again will not cure.
func writeErr(id, what string, err error) error {
	if notWritable(err) {
		return fmt.Errorf("filestore: writing session %s: %s%w: %w", id, what, ErrNotWritable, err)
	}
	return fmt.Errorf("filestore: writing session %s: %s%w", id, what, err)
}

// notWritable reports whether err says the file system will refuse writes
// until someone acts: no space or quota left, a read-only mount, no
// permission.
func notWritable(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission)
}
