package crus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
func bookingPrefix(s *Session) string { return bookingPrefixOf(s.UpgradeID) }

// bookingPrefixOf is bookingPrefix of the session with this id.
func bookingPrefixOf(id string) string { return "crus-" + id + "-" }

// ownBooking reports whether a reservation name is one of the session's:
// its prefix followed by decimal digits alone. A prefix is not enough:
// session "7"'s prefix "crus-7-" also begins the names of session "7-1"'s
// reservations ("crus-7-1-3"), which are not its to move or delete.
func ownBooking(s *Session, name string) bool { return ownBookingOf(s.UpgradeID, name) }

// ownBookingOf is ownBooking of the session with this id.
func ownBookingOf(id, name string) bool {
	rest, ok := strings.CutPrefix(name, bookingPrefixOf(id))
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
	err := e.retry(ctx, "read bookings", func(ctx context.Context) (err error) {
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
		if last, ok := r.bookedNodes[res.Name]; ok && slices.Equal(last.names, res.Nodes) {
			// Its nodes as last read: their xnames too (a booking keeps
			// its nodes from one poll to the next; a look-up each in the
			// session-wide map was most of the cost at 100,000 nodes).
			b.Nodes = last.xnames
		} else {
			for _, name := range res.Nodes {
				if x, ok := r.names.xname(name); ok {
					b.Nodes = append(b.Nodes, x)
				}
			}
			slices.Sort(b.Nodes)
			if r.bookedNodes == nil {
				r.bookedNodes = map[string]bookedNodes{}
			}
			r.bookedNodes[res.Name] = bookedNodes{names: slices.Clone(res.Nodes), xnames: b.Nodes}
		}
		out[res.Name] = b
	}
	for name := range r.bookedNodes {
		if _, ok := out[name]; !ok {
			delete(r.bookedNodes, name)
		}
	}
	return out, nil
}

// bookedNodes are the nodes of a reservation as last read: the workload
// manager's names, and the xnames they give, sorted (shared by the
// Bookings read since: never changed in place).
type bookedNodes struct {
	names, xnames []string
}

// forgetBookings deletes every reservation the session may hold, by name
// (see Progress.Booked), for a run that cannot read them and has not read
// them yet: one that began during the outage. Without it, the
// reservations the last run made would be left as they stand, neither
// moved on nor deleted, and would begin at their old starts, perhaps while
// their nodes' lanes are still busy: their idle nodes would be out on top
// of the cap. Once they are all deleted, the run knows that none is left
// (run.booked is empty) and the planner books anew the nodes it wants
// booked. If the deletion fails too, the run stays as it was: it waits to
// read them.
//
// It costs Unreserve calls of the names listed (the Slurm CLI adapter runs
// scontrol once per name, about 8 ms each on an idle controller), made
// once per run; a record of an older version, which holds only a bound
// (Progress.BookedUpTo), costs one name per number below it, in calls of
// at most forgetChunk names.
func (e *Executor) forgetBookings(ctx context.Context, r *run) {
	deleted, listed, err := unbookListed(r.s, func(names []string) error { return e.unreserve(ctx, names) })
	if !listed {
		return // none may exist; wait to read them (a record of an older version may not say)
	}
	if err != nil {
		r.log.Warn("could not delete the session's reservations by name while they cannot be read", "deleted", deleted, "err", err)
		return
	}
	r.log.Info("deleted the session's reservations by name: they could not be read", "reservations", deleted)
	r.booked = map[string]Booking{}
}

// unbookListed deletes by name, through unreserve, every reservation the
// record of s says the session may hold (Progress.Booked; every number
// below Progress.BookedUpTo for a record of an older version, in calls of
// at most forgetChunk names), and returns how many names it deleted, and
// whether the record lists any. It stops at the first error.
func unbookListed(s *Session, unreserve func(names []string) error) (deleted int, listed bool, err error) {
	p := &s.Progress
	if len(p.Booked) == 0 && p.BookedUpTo <= 0 {
		return 0, false, nil
	}
	prefix := bookingPrefix(s)
	nums := slices.Clone(p.Booked)
	flush := func() error {
		names := make([]string, len(nums))
		for k, n := range nums {
			names[k] = prefix + strconv.FormatInt(n, 10)
		}
		err := unreserve(names)
		if err == nil {
			deleted += len(names)
		}
		nums = nums[:0]
		return err
	}
	for n := int64(0); n < p.BookedUpTo && err == nil; n++ {
		if _, listed := slices.BinarySearch(p.Booked, n); !listed {
			nums = append(nums, n)
		}
		if len(nums) >= forgetChunk {
			err = flush()
		}
	}
	if err == nil && len(nums) > 0 {
		err = flush()
	}
	return deleted, true, err
}

// refusalRetry is how long after the workload manager refused to book
// (wlm.ErrPermissionDenied) a run asks again: an administrator who grants
// crus's user the right (a Slurm operator) need not restart the run, and
// a refused run makes one refused call per refusalRetry.
const refusalRetry = 10 * time.Minute

// forgetChunk is the most names forgetBookings deletes in one call.
const forgetChunk = 1024

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
	if r.refused != nil && !r.retrying {
		return nil, nil // refused (run.refused): the rest of the decision's bookings are dropped, said once
	}
	if earliest := e.clock.Now().Add(bookingLead(e.horizonFor(r))); a.Booking.Start.Before(earliest) {
		// Planned from an observation that took a while: a booking never
		// starts sooner than a lead from when it is made, or it could
		// begin before the executor looks again.
		length := a.Booking.End.Sub(a.Booking.Start)
		a.Booking.Start = earliest.Truncate(time.Second).Add(time.Second)
		a.Booking.End = a.Booking.Start.Add(length)
	}
	res := wlm.Reservation{Name: a.Booking.Name, Nodes: r.names.names(nodes), Start: a.Booking.Start, End: a.Booking.End}
	perNode, err := r.names.byXName(e.call(ctx, string(a.Kind), func(ctx context.Context) error { return e.scheduler.Reserve(ctx, res) }))
	if errors.Is(err, wlm.ErrPermissionDenied) && !r.dry {
		// Nothing was made, and nothing will be until a retry
		// (refusalRetry) finds the right granted.
		if r.refused == nil {
			r.log.Warn("the workload manager refuses reservations to the user crus runs as: the scheduled strategy goes on as rolling by expected job ends, and asks again every "+refusalRetry.String(), "err", err)
			r.refusedAt = e.clock.Now()
		}
		r.refused, r.retrying = err, false
		return perNode, err
	}
	if r.refused != nil && (err == nil || len(perNode) > 0) {
		// A retry the workload manager took: the right was granted.
		r.log.Info("the workload manager accepts reservations again: the scheduled strategy books its slots", "reservation", a.Booking.Name)
		r.refused, r.retrying = nil, false
	}
	if err != nil && ctx.Err() == nil {
		if derr := e.unbook(ctx, r, []string{a.Booking.Name}); derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting it instead: %w", derr))
		} else {
			return perNode, fmt.Errorf("%w (deleted it instead, until it can be made again)", err)
		}
	}
	r.remember(a.Booking, nodes, perNode, err)
	return perNode, err
}

// keepAhead moves on every reservation of the session that would begin
// before the executor is sure to have decided again: a reservation of
// crus's never begins while the session runs (slotParams.lead). The
// planner moves them on at every full decision, but a decision can come
// late: outages make calls retry, and a decision's actions run one after
// the other. And a reservation the workload manager refuses to delete is
// left as it stands. So the executor looks before every action and every
// observation, and pushes any reservation due within half a lead on to a
// lead from now (one the workload manager refuses to move is deleted
// instead, as book does). A reservation whose state is not known (its last
// change failed) is moved on too, at most once per half a lead. In a
// healthy run nothing is due: nodes are taken, and their reservations
// deleted, before their slots come.
func (e *Executor) keepAhead(ctx context.Context, r *run) {
	if e.scheduler == nil || r.dry {
		return
	}
	now := e.clock.Now()
	r.busy.look(now)
	if len(r.booked) == 0 || r.refused != nil {
		return
	}
	lead := bookingLead(e.horizonFor(r))
	var due []Booking
	for _, name := range sortedKeys(r.booked) {
		b := r.booked[name]
		if len(b.Nodes) == 0 || !b.Start.IsZero() && b.Start.After(now.Add(lead/2)) {
			continue
		}
		if tried, ok := r.keptAhead[name]; ok && b.Start.IsZero() && now.Sub(tried) < lead/2 {
			continue // its state is not known: at most once per half a lead
		}
		due = append(due, b)
	}
	// The soonest first (those in an unknown state, with no start, before
	// all).
	slices.SortStableFunc(due, func(a, b Booking) int { return a.Start.Compare(b.Start) })
	// A look must be short: the next one is due within a stretch of work
	// (horizonFor), and every move is a call. Moves that each take
	// minutes, one after the other, made looks of half an hour, which
	// widened the lead, which made more reservations due at each look.
	start := now
	est := r.moveTook // how long a move takes, as the last one did
	deleting := true  // while the workload manager deletes them
	for i, b := range due {
		if ctx.Err() != nil {
			return
		}
		t := e.clock.Now()
		if deleting && est > 0 && (i > 0 && t.Sub(start)+est > lead/8 || !b.Start.After(t.Add(2*est))) {
			// Slow moves: the rest would take too long, or begin before
			// their turn came. Delete them at once, in one call; the
			// planner books them again, a lead on, at its next decision.
			names := make([]string, 0, len(due)-i)
			for _, b := range due[i:] {
				names = append(names, b.Name)
			}
			err := e.unbook(ctx, r, names)
			if err == nil {
				r.log.Info("deleted reservations about to begin: moving them one by one takes too long", "reservations", names, "move", est)
				return
			}
			// Moved one by one after all: the soonest may still be in
			// time.
			r.log.Warn("could not delete reservations about to begin; moving them on one by one", "reservations", names, "err", err)
			deleting = false
		}
		if r.keptAhead == nil {
			r.keptAhead = map[string]time.Time{}
		}
		r.keptAhead[b.Name] = t
		b.Start = t.Add(lead).Truncate(time.Second).Add(time.Second)
		b.End = b.Start.Add(bookingLength(lead))
		if _, err := e.book(ctx, r, Action{Kind: ActBook, Booking: b}, b.Nodes); err != nil {
			r.log.Warn("could not move on a reservation about to begin", "reservation", b.Name, "err", err)
		} else {
			r.log.Debug("moved on a reservation about to begin", "reservation", b.Name, "start", b.Start)
		}
		r.moveTook = e.clock.Now().Sub(t)
		est = max(est, r.moveTook)
	}
}

// unbook deletes reservations of the session's, in one call.
func (e *Executor) unbook(ctx context.Context, r *run, names []string) error {
	if e.scheduler == nil {
		return fmt.Errorf("%w: the workload manager cannot book nodes", wlm.ErrUnsupported)
	}
	err := e.unreserve(ctx, names)
	if err == nil {
		for _, name := range names {
			delete(r.booked, name)
			delete(r.keptAhead, name)
		}
	}
	return err
}

// unreserve deletes reservations by name, in one call, retried.
func (e *Executor) unreserve(ctx context.Context, names []string) error {
	return e.retry(ctx, string(ActUnbook), func(ctx context.Context) error { return e.scheduler.Unreserve(ctx, names) })
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
