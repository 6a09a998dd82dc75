package crus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/wlm"
)

// The executor's side of the scheduled strategy: the session's
// reservations (wlm.Scheduler) are read and changed here, named after the
// session so that any executor finds them again after a restart and never
// touches anyone else's.

// bookingPrefix is the name prefix of the session's reservations: they
// are named prefix + a bucket number (see slotParams.bucket).
func bookingPrefix(s *Session) string { return "crus-" + s.UpgradeID + "-" }

// ownBooking reports whether a reservation name is one of the session's:
// its prefix followed by decimal digits alone. A prefix is not enough:
// session "7"'s prefix "crus-7-" also begins the names of session "7-1"'s
// reservations ("crus-7-1-3"), which are not its to move or delete.
func ownBooking(s *Session, name string) bool {
	rest, ok := strings.CutPrefix(name, bookingPrefix(s))
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// bookings reads the session's reservations, their nodes as xnames (a
// node crus does not know by that name is left out).
func (e *Executor) bookings(ctx context.Context, r *run) (map[string]Booking, error) {
	var rs []wlm.Reservation
	err := e.retry(ctx, "read bookings", func() (err error) {
		rs, err = e.scheduler.Reservations(ctx, bookingPrefix(r.s))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the session's reservations: %w", err)
	}
	out := make(map[string]Booking, len(rs))
	for _, res := range rs {
		if !ownBooking(r.s, res.Name) {
			continue // another session's whose id begins like this one's
		}
		b := Booking{Name: res.Name, Start: res.Start, End: res.End}
		for _, name := range res.Nodes {
			if x, ok := r.names.xname(name); ok {
				b.Nodes = append(b.Nodes, x)
			}
		}
		slices.Sort(b.Nodes)
		out[res.Name] = b
	}
	return out, nil
}

// book makes or moves a reservation (its nodes are the action's), and
// keeps the run's memory of the session's reservations (run.booked) in
// line.
//
// A reservation the workload manager refuses to move on would begin at
// its old start, maybe while its nodes' lane is still busy: its idle
// nodes would then be out on top of the cap. It is deleted instead (a
// long job may start there) until it can be made again.
func (e *Executor) book(ctx context.Context, r *run, a Action, nodes []string) (map[string]error, error) {
	if e.scheduler == nil {
		return nil, fmt.Errorf("%w: the workload manager cannot book nodes", wlm.ErrUnsupported)
	}
	res := wlm.Reservation{Name: a.Booking.Name, Nodes: r.names.names(nodes), Start: a.Booking.Start, End: a.Booking.End}
	perNode, err := r.names.byXName(e.call(ctx, string(a.Kind), func() error { return e.scheduler.Reserve(ctx, res) }))
	if err != nil && ctx.Err() == nil {
		if derr := e.unbook(ctx, r, a); derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting it instead: %w", derr))
		} else {
			return perNode, fmt.Errorf("%w (deleted it instead, until it can be made again)", err)
		}
	}
	r.remember(a.Booking, nodes, perNode, err)
	return perNode, err
}

// unbook deletes a reservation of the session's.
func (e *Executor) unbook(ctx context.Context, r *run, a Action) error {
	if e.scheduler == nil {
		return fmt.Errorf("%w: the workload manager cannot book nodes", wlm.ErrUnsupported)
	}
	err := e.retry(ctx, string(ActUnbook), func() error { return e.scheduler.Unreserve(ctx, []string{a.Booking.Name}) })
	if err == nil {
		delete(r.booked, a.Booking.Name)
	}
	return err
}

// remember records what a booking action did in the run's memory of the
// session's reservations (see run.booked): the nodes the workload manager
// took, from the times asked. After a failed call the reservation may or
// may not have changed: it is remembered with no start, which differs from
// every booking wanted, so the next decision sends it again (and the
// session's end deletes it).
func (r *run) remember(b Booking, nodes []string, perNode map[string]error, err error) {
	if r.booked == nil {
		return // not read yet in this run
	}
	b.Nodes = slices.DeleteFunc(slices.Clone(nodes), func(x string) bool { return perNode[x] != nil })
	if err != nil {
		b.Start = time.Time{}
	}
	r.booked[b.Name] = b
}
