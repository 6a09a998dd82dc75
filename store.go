package crus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/crus-go/crus/batch"
)

// Store keeps session records. Every change of a session is written to the
// Store before the action it announces is taken, so that a new executor
// can always carry on from the record.
//
// Implementations must be safe for concurrent use and must give each
// caller its own copy: a *Session passed in or returned is never shared.
type Store interface {
	// Create stores a new session. It returns ErrSessionExists if the id
	// is taken. On success it sets s.Revision.
	Create(ctx context.Context, s *Session) error

	// Get returns the session with this id, or ErrSessionNotFound.
	Get(ctx context.Context, id string) (*Session, error)

	// Update replaces the stored session if its revision is still
	// s.Revision, and sets s.Revision to the new one. If the stored
	// revision moved on (another writer), it returns ErrConflict and
	// stores nothing: the caller reads the session again. It returns
	// ErrSessionNotFound if the session is gone. A store that fences
	// writes (one replica drives each session) returns ErrLeaseLost, and
	// stores nothing, once this process no longer holds the session.
	Update(ctx context.Context, s *Session) error

	// List returns every session, ordered by creation time then id.
	List(ctx context.Context) ([]*Session, error)

	// Delete removes the session. Deleting a missing session returns
	// ErrSessionNotFound.
	Delete(ctx context.Context, id string) error
}

// ErrLeaseLost: this process no longer holds the lease that lets it drive
// the session (another replica may have taken it over); the write was
// refused and nothing was stored. It matches batch.ErrPermanent, so the
// executor stops instead of retrying.
var ErrLeaseLost = batch.NewPermanent("crus: lease on the session lost to another replica")

// RevisionReader is implemented by a Store that can tell a session's
// current revision without reading the whole record. The executor uses it
// after each wait to notice changes made by others (a Delete) cheaply;
// without it, it reads the whole record.
type RevisionReader interface {
	// Revision returns the session's current revision, or
	// ErrSessionNotFound.
	Revision(ctx context.Context, id string) (int64, error)
}

// RevisionLister is implemented by a Store that can tell every session's
// id and current revision without reading their records. The surfaces
// that list the sessions again and again (the metrics' scrapes, the
// stream of every session's events) use it through Executor.Revisions to
// read again only the sessions that moved, new ones included: without
// it, each list reads and decodes every node record of every session
// (some 50 MB for 160,000 nodes). MemoryStore, store/filestore and
// store/etcdstore implement it.
type RevisionLister interface {
	// Revisions returns the current revision of every session, by id. A
	// session created or deleted meanwhile may or may not be in it.
	Revisions(ctx context.Context) (map[string]int64, error)
}

// Viewer is implemented by a Store that can show a session's stored
// record without copying it. A surface that reads a few fields of every
// node (the page's grid, a description, a timeline) uses it through
// Executor.View instead of Get, which copies every node record: 50 MB
// for 160,000 nodes, at each request.
type Viewer interface {
	// View calls fn with the stored record of the session and returns
	// fn's error, or returns ErrSessionNotFound. fn must not change the
	// record, nor keep it or any of its slices after it returns (its
	// strings, which never change, it may keep); it should be quick:
	// writers of the session may wait for it. fn must not call the store
	// (MemoryStore holds its lock while fn runs).
	View(ctx context.Context, id string, fn func(s *Session) error) error
	// ViewAll calls fn with the stored record of every session, in List's
	// order, on the same terms, and stops at fn's first error, which it
	// returns.
	ViewAll(ctx context.Context, fn func(s *Session) error) error
}

// NodeUpdater is implemented by a Store that can store a change of a few
// node records at a cost proportional to the change, not to the session:
// the executor changes a record only through Session.Apply, which touches
// the header, some node records and appends messages, and uses
// UpdateNodes instead of Update when the Store has it. MemoryStore,
// store/filestore and store/etcdstore implement it.
type NodeUpdater interface {
	// UpdateNodes stores s as Update does — the same compare-and-swap on
	// s.Revision, which it sets to the new revision; the same errors
	// (ErrConflict and nothing stored if the stored revision moved on,
	// ErrSessionNotFound, ErrLeaseLost) — but may write only what the
	// caller says changed. The caller guarantees that s was returned by
	// this store's Get or List, or stored whole by its Create, Update or
	// UpdateNodes, at s.Revision, and that since then it has changed only:
	//
	//   - header fields: everything but Progress.Nodes, Messages and
	//     MessagesDropped;
	//   - the node records at the positions in changed (in any order,
	//     repeated or not); the list itself (its length, its order) is
	//     the same;
	//   - its messages, only by appending with Session.AddMessages.
	//
	// A store may check these promises and write the whole record when
	// one does not hold; it never stores a record other than s. A
	// position outside s.Progress.Nodes is an error, and nothing is
	// stored.
	UpdateNodes(ctx context.Context, s *Session, changed []int) error
}

// errNoID refuses a record without an id: nothing could read it back.
var errNoID = errors.New("crus: a session without an upgrade_id cannot be stored")

// MemoryStore is a Store that keeps sessions in memory. It is complete and
// safe for concurrent use, but loses everything when the process ends.
type MemoryStore struct {
	mu       sync.Mutex
	sessions map[string]*Session
}

var (
	_ Store          = (*MemoryStore)(nil)
	_ RevisionReader = (*MemoryStore)(nil)
	_ RevisionLister = (*MemoryStore)(nil)
	_ NodeUpdater    = (*MemoryStore)(nil)
	_ Viewer         = (*MemoryStore)(nil)
	_ Reserver       = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{sessions: map[string]*Session{}}
}

// Create implements Store.
func (m *MemoryStore) Create(ctx context.Context, s *Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.UpgradeID == "" {
		return errNoID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.UpgradeID]; ok {
		return fmt.Errorf("%w: %s", ErrSessionExists, s.UpgradeID)
	}
	s.Revision = 1
	m.sessions[s.UpgradeID] = s.Clone()
	return nil
}

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, id string) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrSessionNotFound, id)
	}
	return s.Clone(), nil
}

// Update implements Store.
func (m *MemoryStore) Update(ctx context.Context, s *Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.sessions[s.UpgradeID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrSessionNotFound, s.UpgradeID)
	}
	if cur.Revision != s.Revision {
		return fmt.Errorf("%w: %s is at revision %d, update was based on %d", ErrConflict, s.UpgradeID, cur.Revision, s.Revision)
	}
	s.Revision++
	s.copyInto(cur) // in place: no other copy of cur is ever handed out
	return nil
}

// UpdateNodes implements NodeUpdater: it copies the header, the node
// records at changed and the messages (which are bounded) instead of the
// whole record, so that a step of a 100k-node session does not copy 30 MB.
func (m *MemoryStore) UpdateNodes(ctx context.Context, s *Session, changed []int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.sessions[s.UpgradeID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrSessionNotFound, s.UpgradeID)
	}
	if cur.Revision != s.Revision {
		return fmt.Errorf("%w: %s is at revision %d, update was based on %d", ErrConflict, s.UpgradeID, cur.Revision, s.Revision)
	}
	if err := checkChanged(s, changed); err != nil {
		return err
	}
	if len(cur.Progress.Nodes) != len(s.Progress.Nodes) {
		s.Revision++
		s.copyInto(cur)
		return nil
	}
	nodes := cur.Progress.Nodes
	for _, i := range changed {
		nodes[i] = s.Progress.Nodes[i]
	}
	s.Revision++
	// The header and the messages: everything but the nodes, deep-copied.
	hdr := *s
	hdr.Progress.Nodes = nil
	hdr.copyInto(cur)
	cur.Progress.Nodes = nodes
	return nil
}

// checkChanged returns an error if a position in changed is not one of
// s's node records.
func checkChanged(s *Session, changed []int) error {
	for _, i := range changed {
		if i < 0 || i >= len(s.Progress.Nodes) {
			return fmt.Errorf("crus: UpdateNodes of session %s: node position %d out of range (%d nodes)", s.UpgradeID, i, len(s.Progress.Nodes))
		}
	}
	return nil
}

// List implements Store.
func (m *MemoryStore) List(ctx context.Context) ([]*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	out := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s.Clone())
	}
	m.mu.Unlock()
	sortSessions(out)
	return out, nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[id]; !ok {
		return fmt.Errorf("%w: %s", ErrSessionNotFound, id)
	}
	delete(m.sessions, id)
	return nil
}

// View implements Viewer: fn sees the stored record under the store's
// lock.
func (m *MemoryStore) View(ctx context.Context, id string, fn func(s *Session) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrSessionNotFound, id)
	}
	return fn(s)
}

// ViewAll implements Viewer: fn sees each stored record under the
// store's lock.
func (m *MemoryStore) ViewAll(ctx context.Context, fn func(s *Session) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	sortSessions(all)
	for _, s := range all {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// sortSessions orders sessions by creation time, then id.
func sortSessions(list []*Session) {
	slices.SortFunc(list, func(a, b *Session) int {
		if c := a.Progress.CreatedAt.Compare(b.Progress.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.UpgradeID, b.UpgradeID)
	})
}

// Revision implements RevisionReader.
func (m *MemoryStore) Revision(ctx context.Context, id string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrSessionNotFound, id)
	}
	return s.Revision, nil
}

// Revisions implements RevisionLister.
func (m *MemoryStore) Revisions(ctx context.Context) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.sessions))
	for id, s := range m.sessions {
		out[id] = s.Revision
	}
	return out, nil
}

// Reservations implements Reserver: every session not completed holds its
// reservation.
func (m *MemoryStore) Reservations(ctx context.Context) ([]Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reservations(), nil
}

func (m *MemoryStore) reservations() []Reservation {
	var out []Reservation
	for _, s := range m.sessions {
		if !s.Completed {
			out = append(out, ReservationOf(s))
		}
	}
	slices.SortFunc(out, func(a, b Reservation) int { return strings.Compare(a.Session, b.Session) })
	return out
}

// CreateReserved implements Reserver.
func (m *MemoryStore) CreateReserved(ctx context.Context, s *Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.UpgradeID == "" {
		return errNoID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[s.UpgradeID]; ok {
		return fmt.Errorf("%w: %s", ErrSessionExists, s.UpgradeID)
	}
	if err := CheckReservations(ReservationOf(s), m.reservations()); err != nil {
		return err
	}
	s.Revision = 1
	m.sessions[s.UpgradeID] = s.Clone()
	return nil
}
