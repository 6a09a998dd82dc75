package filestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crus-go/crus"
)

// SchemaVersion is the version of the document format this package
// writes and reads.
const SchemaVersion = 1

// LockFile is the name of the lock file in the store directory.
const LockFile = "crus.lock"

// Sentinel errors of package filestore, matched with errors.Is.
var (
	// ErrLocked: another Store (in this process or another) has the
	// directory open.
	ErrLocked = errors.New("filestore: store directory is in use")
	// ErrUnknownSchema: a session file was written in a format this
	// version does not know (a newer crus wrote it). It is left alone.
	ErrUnknownSchema = errors.New("filestore: unknown schema version")
	// ErrInvalidID: the session id cannot name a file.
	ErrInvalidID = errors.New("filestore: invalid session id")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("filestore: store is closed")
)

// Options tune Open. The zero value is usable.
type Options struct {
	// Create makes the directory (mode 0700, with its parents) if it does
	// not exist. Without it, a missing directory is an error, so that a
	// mistyped path does not start an empty store.
	Create bool
}

// Store is a crus.Store on a directory. It is safe for concurrent use.
type Store struct {
	dir  string
	lock *os.File

	mu     sync.Mutex
	closed bool
	// known caches what this process wrote or read of each session file,
	// so that an Update need not parse the file it replaces. The cache is
	// trusted only while the file's size and modification time are the
	// ones recorded; the lock keeps every other writer out.
	known map[string]fileState
	// active holds the reservation of each session in progress, once
	// loaded (nil before the first reservation check).
	active map[string]crus.Reservation
}

type fileState struct {
	revision int64
	size     int64
	modTime  time.Time
}

var (
	_ crus.Store          = (*Store)(nil)
	_ crus.RevisionReader = (*Store)(nil)
	_ crus.Reserver       = (*Store)(nil)
)

// Open opens the store in dir and locks it. Close releases the lock.
// Errors name the directory: a missing directory (fs.ErrNotExist, unless
// Options.Create), one this process may not write (fs.ErrPermission), one
// that another Store holds (ErrLocked, naming the holder).
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
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	st := &Store{dir: dir, lock: lock, known: map[string]fileState{}}
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

// idRE is what a session id may look like to be a file name: crus's ids
// are UUIDs; anything with a path separator, or starting with a dot, is
// refused.
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

func checkID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w %q: letters, digits and ._- only, not starting with . or -", ErrInvalidID, id)
	}
	return nil
}

func (st *Store) path(id string) string { return filepath.Join(st.dir, id+".json") }

// document is the JSON form of a session file.
type document struct {
	Schema   int             `json:"schema"`
	Revision int64           `json:"revision"`
	Session  json.RawMessage `json:"session"`
}

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

// read reads and decodes a session file. A missing file is
// crus.ErrSessionNotFound.
func (st *Store) read(id string) (*crus.Session, fileState, error) {
	p := st.path(id)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileState{}, fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
	}
	if err != nil {
		return nil, fileState{}, fmt.Errorf("filestore: reading session %s: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileState{}, fmt.Errorf("filestore: reading session %s: %w", id, err)
	}
	b := make([]byte, fi.Size())
	if _, err := readFull(f, b); err != nil {
		return nil, fileState{}, fmt.Errorf("filestore: reading session %s: %w", id, err)
	}
	s, rev, err := decode(p, id, b)
	if err != nil {
		return nil, fileState{}, err
	}
	s.Revision = rev
	return s, fileState{revision: rev, size: fi.Size(), modTime: fi.ModTime()}, nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// decode checks and decodes the contents of a session file.
func decode(path, id string, b []byte) (*crus.Session, int64, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: file %s: %s; the file is left as it is: repair or remove it",
			crus.ErrCorruptSession, path, fmt.Sprintf(format, args...))
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, 0, corrupt("empty")
	}
	var doc document
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, 0, corrupt("not a JSON document (torn or damaged): %v", err)
	}
	if doc.Schema != SchemaVersion {
		return nil, 0, fmt.Errorf("%w %d in file %s (this version reads schema %d); the file is left as it is",
			ErrUnknownSchema, doc.Schema, path, SchemaVersion)
	}
	if doc.Revision < 1 {
		return nil, 0, corrupt("revision %d", doc.Revision)
	}
	if len(doc.Session) == 0 || string(doc.Session) == "null" {
		return nil, 0, corrupt("no session record")
	}
	var s crus.Session
	if err := json.Unmarshal(doc.Session, &s); err != nil {
		return nil, 0, corrupt("bad session record: %v", err)
	}
	if s.UpgradeID != id {
		return nil, 0, corrupt("holds session %q", s.UpgradeID)
	}
	return &s, doc.Revision, nil
}

// write replaces the session's file atomically: a temporary file, synced,
// renamed over it, and the directory synced.
func (st *Store) write(s *crus.Session, rev int64) (fileState, error) {
	rec, err := json.Marshal(s)
	if err != nil {
		return fileState{}, fmt.Errorf("filestore: encoding session %s: %w", s.UpgradeID, err)
	}
	b, err := json.Marshal(document{Schema: SchemaVersion, Revision: rev, Session: rec})
	if err != nil {
		return fileState{}, fmt.Errorf("filestore: encoding session %s: %w", s.UpgradeID, err)
	}
	b = append(b, '\n')
	p := st.path(s.UpgradeID)
	tmp, err := os.CreateTemp(st.dir, "."+s.UpgradeID+".json.tmp-*")
	if err != nil {
		return fileState{}, fmt.Errorf("filestore: writing session %s: %w", s.UpgradeID, err)
	}
	fail := func(err error) (fileState, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return fileState{}, fmt.Errorf("filestore: writing session %s: %w", s.UpgradeID, err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fileState{}, fmt.Errorf("filestore: writing session %s: %w", s.UpgradeID, err)
	}
	if err := syncDir(st.dir); err != nil {
		// The rename happened; whether it survives a power cut is not
		// known. Report it: the caller retries, and the retry is a
		// conflict it resolves by reading the record again.
		return fileState{}, fmt.Errorf("filestore: writing session %s: syncing the directory: %w", s.UpgradeID, err)
	}
	return fileState{revision: rev, size: fi.Size(), modTime: fi.ModTime()}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// current returns the revision of the session's file, from the cache if
// the file is the one this process last wrote or read, else by reading
// it (so that a damaged file is reported, not replaced).
func (st *Store) current(id string) (int64, error) {
	if k, ok := st.known[id]; ok {
		fi, err := os.Stat(st.path(id))
		if errors.Is(err, fs.ErrNotExist) {
			delete(st.known, id)
			return 0, fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
		}
		if err == nil && fi.Size() == k.size && fi.ModTime().Equal(k.modTime) {
			return k.revision, nil
		}
	}
	_, fst, err := st.read(id)
	if err != nil {
		delete(st.known, id)
		return 0, err
	}
	st.known[id] = fst
	return fst.revision, nil
}

// Create implements crus.Store.
func (st *Store) Create(ctx context.Context, s *crus.Session) error {
	if err := st.beginID(ctx, s.UpgradeID); err != nil {
		return err
	}
	defer st.mu.Unlock()
	return st.create(s)
}

func (st *Store) create(s *crus.Session) error {
	if _, err := os.Lstat(st.path(s.UpgradeID)); err == nil {
		return fmt.Errorf("%w: %s", crus.ErrSessionExists, s.UpgradeID)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("filestore: creating session %s: %w", s.UpgradeID, err)
	}
	fst, err := st.write(s, 1)
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

// Get implements crus.Store.
func (st *Store) Get(ctx context.Context, id string) (*crus.Session, error) {
	if err := st.beginID(ctx, id); err != nil {
		if errors.Is(err, ErrInvalidID) {
			return nil, fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
		}
		return nil, err
	}
	defer st.mu.Unlock()
	s, fst, err := st.read(id)
	if err != nil {
		delete(st.known, id)
		return nil, err
	}
	st.known[id] = fst
	return s, nil
}

// Update implements crus.Store.
func (st *Store) Update(ctx context.Context, s *crus.Session) error {
	if err := st.beginID(ctx, s.UpgradeID); err != nil {
		if errors.Is(err, ErrInvalidID) {
			return fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
		}
		return err
	}
	defer st.mu.Unlock()
	rev, err := st.current(s.UpgradeID)
	if err != nil {
		return err
	}
	if rev != s.Revision {
		return fmt.Errorf("%w: %s is at revision %d, update was based on %d", crus.ErrConflict, s.UpgradeID, rev, s.Revision)
	}
	fst, err := st.write(s, rev+1)
	if err != nil {
		delete(st.known, s.UpgradeID) // read the file again next time
		return err
	}
	s.Revision = rev + 1
	st.known[s.UpgradeID] = fst
	if st.active != nil {
		if s.Completed {
			delete(st.active, s.UpgradeID)
		} else {
			st.active[s.UpgradeID] = crus.ReservationOf(s)
		}
	}
	return nil
}

// Revision implements crus.RevisionReader.
func (st *Store) Revision(ctx context.Context, id string) (int64, error) {
	if err := st.beginID(ctx, id); err != nil {
		if errors.Is(err, ErrInvalidID) {
			return 0, fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
		}
		return 0, err
	}
	defer st.mu.Unlock()
	return st.current(id)
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

// ids lists the session ids that have a file, sorted.
func (st *Store) ids() ([]string, error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: listing %s: %w", st.dir, err)
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || checkID(id) != nil {
			continue
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Delete implements crus.Store. It removes the file whatever it holds, so
// that an administrator can drop a damaged record.
func (st *Store) Delete(ctx context.Context, id string) error {
	if err := st.beginID(ctx, id); err != nil {
		if errors.Is(err, ErrInvalidID) {
			return fmt.Errorf("%w: %w", crus.ErrSessionNotFound, err)
		}
		return err
	}
	defer st.mu.Unlock()
	err := os.Remove(st.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", crus.ErrSessionNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("filestore: deleting session %s: %w", id, err)
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
	if _, err := os.Lstat(st.path(s.UpgradeID)); err == nil {
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
