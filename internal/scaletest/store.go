// Package scaletest helps the tests and benchmarks of the surfaces (api,
// metrics, web, the demo and the command) at the scale of the largest
// machines: a store that counts what is read through it, to check that a
// poll or a scrape of a session that has not moved reads its revision
// only, not its node records; and session records of any size.
package scaletest

import (
	"context"
	"sync"

	"github.com/crus-go/crus"
)

// Store is a crus.MemoryStore (a crus.Store, crus.RevisionReader,
// crus.RevisionLister, crus.Viewer, crus.NodeUpdater and crus.Reserver)
// that counts the reads
// made through it.
type Store struct {
	*crus.MemoryStore

	mu     sync.Mutex
	counts Counts
}

// Counts are the reads made through a Store.
type Counts struct {
	Gets, Lists, Revisions int
	// RevisionLists counts the lists of every session's revision
	// (crus.RevisionLister).
	RevisionLists int
	// Views and ViewAlls count the calls that show records without a
	// copy (crus.Viewer).
	Views, ViewAlls int
	// Nodes counts the node records handed out by Get and List.
	Nodes int
}

// NewStore returns a Store over a new crus.MemoryStore.
func NewStore() *Store { return &Store{MemoryStore: crus.NewMemoryStore()} }

// Counts returns the reads made so far.
func (s *Store) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Reset sets the counts back to zero.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = Counts{}
}

// Get implements crus.Store.
func (s *Store) Get(ctx context.Context, id string) (*crus.Session, error) {
	out, err := s.MemoryStore.Get(ctx, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.Gets++
	if out != nil {
		s.counts.Nodes += len(out.Progress.Nodes)
	}
	return out, err
}

// List implements crus.Store.
func (s *Store) List(ctx context.Context) ([]*crus.Session, error) {
	out, err := s.MemoryStore.List(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.Lists++
	for _, x := range out {
		s.counts.Nodes += len(x.Progress.Nodes)
	}
	return out, err
}

// View implements crus.Viewer.
func (s *Store) View(ctx context.Context, id string, fn func(*crus.Session) error) error {
	s.mu.Lock()
	s.counts.Views++
	s.mu.Unlock()
	return s.MemoryStore.View(ctx, id, fn)
}

// ViewAll implements crus.Viewer.
func (s *Store) ViewAll(ctx context.Context, fn func(*crus.Session) error) error {
	s.mu.Lock()
	s.counts.ViewAlls++
	s.mu.Unlock()
	return s.MemoryStore.ViewAll(ctx, fn)
}

// Revision implements crus.RevisionReader.
func (s *Store) Revision(ctx context.Context, id string) (int64, error) {
	s.mu.Lock()
	s.counts.Revisions++
	s.mu.Unlock()
	return s.MemoryStore.Revision(ctx, id)
}

// Revisions implements crus.RevisionLister.
func (s *Store) Revisions(ctx context.Context) (map[string]int64, error) {
	s.mu.Lock()
	s.counts.RevisionLists++
	s.mu.Unlock()
	return s.MemoryStore.Revisions(ctx)
}
