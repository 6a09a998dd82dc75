package fake

import (
	"context"
	"errors"
	"fmt"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
)

// HSM is the World's Hardware State Manager: groups and components.
type HSM struct{ w *World }

var (
	_ hsm.GroupStore   = (*HSM)(nil)
	_ hsm.GroupCreator = (*HSM)(nil)
	_ hsm.NIDResolver  = (*HSM)(nil)
)

// HSM returns the World's Hardware State Manager.
func (w *World) HSM() *HSM { return &HSM{w} }

func (h *HSM) begin(ctx context.Context, op string) (*World, error) { return h.w.begin(ctx, op) }

// Members implements hsm.GroupStore.
func (h *HSM) Members(ctx context.Context, label string) ([]string, error) {
	w, err := h.begin(ctx, "hsm.Members")
	if err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	g, ok := w.groups[label]
	if !ok {
		return nil, fmt.Errorf("%w: %q", hsm.ErrGroupNotFound, label)
	}
	return sortedSet(g), nil
}

// AddMembers implements hsm.GroupStore. Like the real HSM it refuses
// malformed xnames and components it does not know.
func (h *HSM) AddMembers(ctx context.Context, label string, xnames []string) (err error) {
	w, err := h.begin(ctx, "hsm.AddMembers")
	if err != nil {
		return err
	}
	defer w.end("hsm.AddMembers", &err)
	g, ok := w.groups[label]
	if !ok {
		return fmt.Errorf("%w: %q", hsm.ErrGroupNotFound, label)
	}
	var errs []error
	for _, x := range xnames {
		if err := hsm.ValidateXName(x); err != nil {
			errs = append(errs, &batch.NodeError{Node: x, Err: err})
			continue
		}
		if _, ok := w.nodes[x]; !ok {
			errs = append(errs, &batch.NodeError{Node: x, Err: hsm.ErrComponentNotFound})
			continue
		}
		w.touch(x)
		g[x] = true
	}
	return joinErrs(errs)
}

// RemoveMembers implements hsm.GroupStore.
func (h *HSM) RemoveMembers(ctx context.Context, label string, xnames []string) (err error) {
	w, err := h.begin(ctx, "hsm.RemoveMembers")
	if err != nil {
		return err
	}
	defer w.end("hsm.RemoveMembers", &err)
	g, ok := w.groups[label]
	if !ok {
		return fmt.Errorf("%w: %q", hsm.ErrGroupNotFound, label)
	}
	for _, x := range xnames {
		if g[x] {
			w.touch(x)
			delete(g, x)
		}
	}
	return nil
}

// CreateGroup implements hsm.GroupCreator.
func (h *HSM) CreateGroup(ctx context.Context, label, _ string) error {
	w, err := h.begin(ctx, "hsm.CreateGroup")
	if err != nil {
		return err
	}
	defer w.mu.Unlock()
	if err := hsm.ValidateLabel(label); err != nil {
		return err
	}
	if _, ok := w.groups[label]; ok {
		return fmt.Errorf("%w: %q", hsm.ErrGroupExists, label)
	}
	w.groups[label] = map[string]bool{}
	return nil
}

// NIDs implements hsm.NIDResolver.
func (h *HSM) NIDs(ctx context.Context, xnames []string) (map[string]int, error) {
	w, err := h.begin(ctx, "hsm.NIDs")
	if err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	out := make(map[string]int, len(xnames))
	var errs []error
	for _, x := range xnames {
		n, ok := w.nodes[x]
		if !ok {
			errs = append(errs, &batch.NodeError{Node: x, Err: hsm.ErrComponentNotFound})
			continue
		}
		out[x] = n.nid
	}
	return out, joinErrs(errs)
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
