package fake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// This file gives the fake workload manager reservations (wlm.Scheduler),
// as Slurm's maintenance reservations behave: before its start, a job may
// start on a reserved node only if its time limit ends by then; from its
// start to its end, the node takes no new job (jobs running go on). A
// reservation whose name begins with the World's reason prefix without its
// trailing blank ("crus") is crus's: while it is active its nodes count as
// out of service because of crus, and an idle node in service that one of
// them will take counts as capacity lost (waiting), whether or not a
// queued job would have used it — an upper bound.

var _ wlm.Scheduler = (*WLM)(nil)

type reservation struct {
	name       string
	nodes      []*node
	start, end time.Time
	gen        int // bumped by each change, to drop stale start and end events
	crus       bool
}

// reservationState is the World's part of it (in simWorld).
type reservationState struct {
	byName   map[string]*reservation
	reserved map[*node]bool // nodes with at least one reservation
}

// active reports whether r keeps new work off its nodes at t.
func (r *reservation) active(t time.Time) bool { return !t.Before(r.start) && t.Before(r.end) }

// refreshResv recomputes the node's reservation flags and its place in
// the free-node accounting. Callers hold the lock.
func (w *World) refreshResv(n *node) {
	n.sim.blocked, n.sim.held, n.sim.pending = false, false, false
	for _, r := range n.sim.resv {
		switch {
		case r.active(w.now):
			n.sim.blocked = true
			n.sim.held = n.sim.held || r.crus
		case w.now.Before(r.start):
			n.sim.pending = n.sim.pending || r.crus
		}
	}
	if len(n.sim.resv) > 0 {
		w.sim.resv.reserved[n] = true
	} else {
		delete(w.sim.resv.reserved, n)
	}
	w.update(n)
}

// fits reports whether a job on n from now until end keeps clear of its
// reservations. Callers hold the lock.
func (w *World) fits(n *node, end time.Time) bool {
	for _, r := range n.sim.resv {
		if r.end.After(w.now) && end.After(r.start) {
			return false
		}
	}
	return true
}

// nextBlock returns the start of the first reservation of n that has not
// ended by t (t itself if one is active then), and that reservation's end;
// zero times if there is none. Callers hold the lock.
func nextBlock(n *node, t time.Time) (start, end time.Time) {
	for _, r := range n.sim.resv {
		if !r.end.After(t) {
			continue
		}
		s := later(r.start, t)
		if start.IsZero() || s.Before(start) {
			start, end = s, r.end
		}
	}
	return start, end
}

// windows appends to out the stretches in which a node free from from on
// is available, between its reservations. Callers hold the lock.
func windows(n *node, from time.Time, out []Avail) []Avail {
	t := from
	for range len(n.sim.resv) + 1 {
		s, e := nextBlock(n, t)
		switch {
		case s.IsZero():
			return append(out, Avail{From: t, Nodes: 1})
		case s.After(t):
			out = append(out, Avail{From: t, Until: s, Nodes: 1})
		}
		t = e
	}
	return out
}

// setReservation installs r on its nodes and schedules its start and end.
// Callers hold the lock.
func (w *World) setReservation(r *reservation) {
	if w.sim.resv.byName == nil {
		w.sim.resv.byName, w.sim.resv.reserved = map[string]*reservation{}, map[*node]bool{}
	}
	w.sim.resv.byName[r.name] = r
	for _, n := range r.nodes {
		n.sim.resv = append(n.sim.resv, r)
		w.refreshResv(n)
	}
	gen := r.gen
	for _, at := range []time.Time{r.start, r.end} {
		if at.After(w.now) {
			w.schedule(at, func() {
				w.locked(func() {
					if w.sim.resv.byName[r.name] == r && r.gen == gen {
						for _, n := range r.nodes {
							w.refreshResv(n)
						}
						w.kick = true
					}
				})
			})
		}
	}
	w.kick = true
}

// dropReservation removes r from its nodes. Callers hold the lock.
func (w *World) dropReservation(r *reservation) {
	delete(w.sim.resv.byName, r.name)
	r.gen++
	for _, n := range r.nodes {
		n.sim.resv = slices.DeleteFunc(n.sim.resv, func(x *reservation) bool { return x == r })
		w.refreshResv(n)
	}
	w.kick = true
}

// Reserve implements wlm.Scheduler.
func (m *WLM) Reserve(ctx context.Context, r wlm.Reservation) (err error) {
	w, err := m.w.begin(ctx, "wlm.Reserve")
	if err != nil {
		return err
	}
	defer w.end("wlm.Reserve", &err)
	if err := wlm.ValidateReservation(r); err != nil {
		return err
	}
	var errs []error
	var nodes []*node
	for _, name := range r.Nodes {
		n, ok := w.lookup(name)
		if !ok {
			errs = append(errs, &batch.NodeError{Node: name, Err: wlm.ErrNodeNotFound})
			continue
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return joinErrs(errs)
	}
	// In name order, each node once (a node named twice counts once).
	slices.SortFunc(nodes, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	nodes = slices.Compact(nodes)
	for _, n := range nodes {
		n.touched++
	}
	gen := 0
	if old, ok := w.sim.resv.byName[r.Name]; ok {
		if slices.Equal(old.nodes, nodes) && old.start.Equal(later(r.Start, w.now)) && old.end.Equal(r.End) {
			return joinErrs(errs) // as asked already
		}
		w.dropReservation(old)
		gen = old.gen + 1
	}
	prefix := strings.TrimSpace(w.opts.ReasonPrefix)
	w.setReservation(&reservation{name: r.Name, nodes: nodes, start: later(r.Start, w.now), end: r.End, gen: gen,
		crus: prefix != "" && strings.HasPrefix(r.Name, prefix)})
	return joinErrs(errs)
}

// Unreserve implements wlm.Scheduler.
func (m *WLM) Unreserve(ctx context.Context, names []string) (err error) {
	w, err := m.w.begin(ctx, "wlm.Unreserve")
	if err != nil {
		return err
	}
	defer w.end("wlm.Unreserve", &err)
	for _, name := range names {
		if r, ok := w.sim.resv.byName[name]; ok {
			w.dropReservation(r)
		}
	}
	return nil
}

// Reservations implements wlm.Scheduler. Reservations that have ended
// are gone, as in Slurm.
func (m *WLM) Reservations(ctx context.Context, prefix string) ([]wlm.Reservation, error) {
	w, err := m.w.begin(ctx, "wlm.Reservations")
	if err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	if prefix == "" {
		return nil, fmt.Errorf("%w: listing reservations needs a name prefix", wlm.ErrInvalidArgument)
	}
	return w.reservations(prefix), nil
}

// Reservations returns the reservations whose names begin with prefix,
// as WLM.Reservations does but as a test sees the world: no fault
// injected, no call counted.
func (w *World) Reservations(prefix string) []wlm.Reservation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reservations(prefix)
}

// reservations lists the reservations not over whose names begin with
// prefix. Callers hold the lock.
func (w *World) reservations(prefix string) []wlm.Reservation {
	var out []wlm.Reservation
	for name, r := range w.sim.resv.byName {
		if !strings.HasPrefix(name, prefix) || !r.end.After(w.now) {
			continue
		}
		res := wlm.Reservation{Name: name, Start: r.start, End: r.end, Nodes: make([]string, 0, len(r.nodes))}
		for _, n := range r.nodes {
			res.Nodes = append(res.Nodes, n.name)
		}
		out = append(out, res)
	}
	slices.SortFunc(out, func(a, b wlm.Reservation) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// TryStartJob starts a job on a node if a scheduler could start it there
// now: the node in service and idle, and the job's limit clear of the
// node's reservations. It reports whether it did.
func (w *World) TryStartJob(xname string, runFor, limit time.Duration) (bool, error) {
	w.mu.Lock()
	n, ok := w.nodes[xname]
	if !ok {
		w.mu.Unlock()
		return false, fmt.Errorf("fake: no node %s", xname)
	}
	can := n.free && w.fits(n, w.now.Add(limit))
	w.mu.Unlock()
	if !can {
		return false, nil
	}
	if err := w.StartJob(xname, runFor, limit); err != nil {
		return false, err
	}
	return true, nil
}
