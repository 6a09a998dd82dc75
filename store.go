package crus

import (
	"context"
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

// MemoryStore is a Store that keeps sessions in memory. It is complete and
// safe for concurrent use, but loses everything when the process ends.
type MemoryStore struct {
	mu       sync.Mutex
	sessions map[string]*Session
}

var (
	_ Store          = (*MemoryStore)(nil)
	_ RevisionReader = (*MemoryStore)(nil)
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

// updateNodes is Update for a caller whose copy s was read from the store
// at s.Revision (or stored whole there) and has since changed only the
// node records at positions changed and appended messages: the executor,
// which changes a record only through Session.Apply. It copies just those
// instead of the whole record, so that a step of a 100k-node session does
// not copy 30 MB.
func (m *MemoryStore) updateNodes(ctx context.Context, s *Session, changed []int) error {
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
	if len(cur.Progress.Nodes) != len(s.Progress.Nodes) || len(cur.Messages) > len(s.Messages) {
		s.Revision++
		s.copyInto(cur)
		return nil
	}
	nodes, msgs := cur.Progress.Nodes, cur.Messages
	for _, i := range changed {
		nodes[i] = s.Progress.Nodes[i]
	}
	msgs = append(msgs, s.Messages[len(msgs):]...)
	s.Revision++
	// The header: everything but the nodes and messages, deep-copied.
	hdr := *s
	hdr.Progress.Nodes, hdr.Messages = nil, nil
	hdr.copyInto(cur)
	cur.Progress.Nodes, cur.Messages = nodes, msgs
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
	slices.SortFunc(out, func(a, b *Session) int {
		if c := a.Progress.CreatedAt.Compare(b.Progress.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.UpgradeID, b.UpgradeID)
	})
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
