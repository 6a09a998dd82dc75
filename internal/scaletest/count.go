package scaletest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/crus-go/crus"
)

// Counting is a crus.Store of any kind (the file or etcd store) that
// counts the reads made through it, as Store does for a MemoryStore. It
// is a crus.RevisionReader and a crus.RevisionLister, whose methods fail
// with errors.ErrUnsupported where the store has none; it shows no record
// in place (crus.Viewer): a read is a Get, which decodes on those stores.
type Counting struct {
	crus.Store

	mu     sync.Mutex
	counts Counts
}

// Count returns a Counting over st.
func Count(st crus.Store) *Counting { return &Counting{Store: st} }

// Counts returns the reads made so far.
func (c *Counting) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts
}

// Reset sets the counts back to zero.
func (c *Counting) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = Counts{}
}

// Get implements crus.Store.
func (c *Counting) Get(ctx context.Context, id string) (*crus.Session, error) {
	out, err := c.Store.Get(ctx, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts.Gets++
	if out != nil {
		c.counts.Nodes += len(out.Progress.Nodes)
	}
	return out, err
}

// List implements crus.Store.
func (c *Counting) List(ctx context.Context) ([]*crus.Session, error) {
	out, err := c.Store.List(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts.Lists++
	for _, x := range out {
		c.counts.Nodes += len(x.Progress.Nodes)
	}
	return out, err
}

// Revision implements crus.RevisionReader.
func (c *Counting) Revision(ctx context.Context, id string) (int64, error) {
	c.mu.Lock()
	c.counts.Revisions++
	c.mu.Unlock()
	rr, ok := c.Store.(crus.RevisionReader)
	if !ok {
		return 0, fmt.Errorf("scaletest: %T is no crus.RevisionReader: %w", c.Store, errors.ErrUnsupported)
	}
	return rr.Revision(ctx, id)
}

// Revisions implements crus.RevisionLister.
func (c *Counting) Revisions(ctx context.Context) (map[string]int64, error) {
	c.mu.Lock()
	c.counts.RevisionLists++
	c.mu.Unlock()
	rl, ok := c.Store.(crus.RevisionLister)
	if !ok {
		return nil, fmt.Errorf("scaletest: %T is no crus.RevisionLister: %w", c.Store, errors.ErrUnsupported)
	}
	return rl.Revisions(ctx)
}
