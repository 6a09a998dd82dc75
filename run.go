package crus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/crus-go/crus/wlm"
)

// The run loop: observe → plan → record → act → record the results →
// wait, until the session completes. It is level-triggered: each plan
// starts from a fresh observation, so after a crash, a lost call or a
// change made by someone else, the next round repairs it.

// run is the state of one Run call.
type run struct {
	// acted: the run has carried out a decision of its own
	// (Observation.TakenUp).
	acted bool
	s     *Session
	names *nodeNames // of the session (fixed for a session)
	idx   *nodeIndex // of s; rebuilt whenever s is replaced

	obsNodes map[string]wlm.Node // Observation.Nodes, reused (see keepNodes)
	// obsKeys are the keys obsNodes may hold, sorted (a superset: nodes
	// found unknown are deleted after); obsNew is scratch space.
	obsKeys, obsNew []string
	obsEnds         map[string]time.Time // Observation.JobEnds, reused
	endsAt          []time.Time          // the ends read by position (wlm.JobEndsFiller), reused
	at              observedAt           // Observation.at, reused
	obsNames        []string             // the names of the nodes observed, reused
	endsNames       []string             // the names whose job ends are read, reused
	endsWhere       []int                // where each of endsNames is among the nodes observed, reused
	// boots holds the boot sessions' statuses last read, and when (see
	// observe: a session is read again on news, or when due).
	boots map[string]bootRead
	// booked is the session's reservations as this run last read them,
	// with its own changes since (nil until read): while they cannot be
	// read, the planner keeps moving them on from this, rather than let
	// one begin on nodes whose lane is not free yet.
	booked map[string]Booking
	// bookedNodes: the nodes of each reservation of the session as last
	// read (see bookings).
	bookedNodes map[string]bookedNodes
	// refused is the workload manager's refusal to book for the user crus
	// runs as (wlm.ErrPermissionDenied): the run then stops booking, and
	// the scheduled strategy goes on as without wlm.Scheduler, until a
	// full observation refusalRetry after refusedAt, which tries again
	// (retrying: an administrator may have granted the right meanwhile).
	refused   error
	refusedAt time.Time
	retrying  bool
	// keptAhead: when keepAhead last moved each reservation on.
	keptAhead map[string]time.Time
	// busy measures how long the run works (observes, acts) between two
	// looks at its reservations, to widen the booking lead when its
	// backends are slow (Executor.horizonFor).
	busy busyGaps
	// moveTook is how long keepAhead's last move of a reservation took.
	moveTook time.Duration
	steer    steering // the nodes steered last (steer.go)
	log      *slog.Logger
	wakeC    chan struct{}
	dry      bool // a dry run (Next): no events
}

// indexed returns the index of the run's session record.
func (r *run) indexed() *nodeIndex {
	if !r.idx.valid(r.s) {
		r.idx = newNodeIndex(r.s)
	}
	return r.idx
}

// Next observes the world as Run would for the session s (a record read
// from the store, or one Preview returned) and returns what was observed
// and what crus would do next: a dry run of one round of Run. It acts on
// nothing and writes nothing; s is not changed.
func (e *Executor) Next(ctx context.Context, s *Session) (Observation, Decision, error) {
	if s.Completed {
		return Observation{}, Decision{}, fmt.Errorf("%w: %s", ErrSessionDone, s.UpgradeID)
	}
	s = s.Clone()
	r := &run{s: s, names: newNodeNames(s), log: e.log.With("session", s.UpgradeID, "dry_run", true), dry: true}
	obs, err := e.observe(ctx, r, false)
	if err != nil {
		return obs, Decision{}, err
	}
	// r's maps are reused by a Run, and lack what was read by position;
	// not these.
	r.at.complete(&obs, s)
	d, err := planWith(s, obs, nil)
	return obs, d, err
}

// Run drives the session to completion: it observes the world, plans,
// records the decision, acts, records the results, and waits; again and
// again. It returns the final record once the session has completed (at
// once, writing nothing, if it already has), or the record as it stands
// and ctx's error when ctx is cancelled. Cancelling ctx stops the executor
// between two calls; the session stays as recorded and a later Run (by any
// executor on the same store) carries on from there. On its way out, a
// Run so stopped deletes the reservations its record lists (the scheduled
// strategy's, in one attempt of at most 30 seconds): nothing would move
// them on before the next Run, and one that began would hold its idle
// nodes out of service on top of the nodes in flight. The next Run books
// anew. (A ctx cancelled with a cause matching ErrLeaseLost leaves them:
// another replica may drive the session now.)
//
// Failures of single nodes become those nodes' outcomes; failing backend
// calls are retried; a part of the world that cannot be read is waited
// for while the rest moves on (see Progress.Conditions). Run itself fails
// only when the store cannot record progress (for a RetryTimeout, each
// attempt bounded by CallTimeout), or the record is corrupt; before it
// does, it deletes the reservations its record lists (the scheduled
// strategy's: nothing would move them on before the next run), as it
// does when a Driver stops it for a lease it could not renew.
func (e *Executor) Run(ctx context.Context, id string) (*Session, error) {
	wakeC := make(chan struct{}, 1)
	e.mu.Lock()
	if _, busy := e.running[id]; busy {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrSessionBusy, id)
	}
	e.running[id] = wakeC
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.running, id)
		e.mu.Unlock()
	}()

	// The first read is retried as writes are: a run that cannot take
	// the session up deletes its reservations (below).
	var s *Session
	err := e.retryStore(ctx, nil, "read session", func(ctx context.Context) (err error) {
		s, err = e.store.Get(ctx, id)
		return err
	})
	if errors.Is(err, ErrSessionNotFound) {
		return nil, err
	}
	if err == nil {
		err = s.check()
	}
	if err != nil {
		if ctx.Err() == nil {
			e.dropBookings(ctx, id, nil, e.log.With("session", id), err)
		}
		return nil, err
	}
	taken, started, err := e.casUpdate(ctx, id, s, func(s *Session, now time.Time) string {
		if s.State == StateCreated {
			s.State = StateUpdating
		}
		if s.Progress.StartedAt.IsZero() {
			s.Progress.StartedAt = now
			return "Session started"
		}
		return "Session taken up by an executor: observing the world again"
	})
	switch {
	case err != nil:
		if ctx.Err() == nil && !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrSessionNotFound) {
			e.dropBookings(ctx, id, s, e.log.With("session", id), err)
		}
		return taken, err
	case taken.Completed:
		return taken, nil // completed (or deleted before it started) by someone else
	}
	s = taken
	r := &run{s: s, log: e.log.With("session", id), wakeC: wakeC}
	r.names = newNodeNames(s)
	if started {
		msg := s.Messages[len(s.Messages)-1]
		r.log.Info(msg)
		e.emit(Event{Time: e.clock.Now(), Session: id, Kind: EventStarted, Step: s.Progress.Step, Steps: s.Progress.Steps, Stage: s.Progress.Stage, Message: msg})
	}
	s, err = e.loop(ctx, r)
	var ending *leaseEnding
	switch {
	case err == nil:
	case ctx.Err() != nil:
		switch cause := context.Cause(ctx); {
		case errors.As(cause, &ending):
			// A Driver that could not renew its lease: the lease is
			// still its own until the deadline, and no replica may be
			// able to take the session up. One attempt.
			dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), ending.deadline)
			e.dropBookings(withRetryDeadline(dctx, e.clock.Now()), id, r.s, r.log, cause)
			cancel()
		case errors.Is(cause, ErrLeaseLost):
			// Another replica may drive the session, and its
			// reservations (named alike), now.
		default:
			// Stopped by its caller (a shutdown): no run may take the
			// session up before its reservations begin, and one that
			// began would hold its idle nodes out of service on top of
			// the nodes in flight, which stay out (on a real cluster, 2
			// minutes after a SIGTERM, 3 idle booked nodes and 1 in
			// flight with a step of 2). The next run books anew. One
			// attempt, bounded: a shutdown must not wait on it.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopUnbookTimeout)
			e.dropBookings(withRetryDeadline(dctx, e.clock.Now()), id, r.s, r.log, cause)
			cancel()
		}
	case !errors.Is(err, ErrLeaseLost):
		e.dropBookings(ctx, id, r.s, r.log, err)
	}
	return s, err
}

// loop is Run's loop, once the session is taken up as r.
func (e *Executor) loop(ctx context.Context, r *run) (*Session, error) {
	replans := 0
	light := false         // this round looks at the nodes in flight only
	var nextFull time.Time // when a full observation is due
	for {
		if err := ctx.Err(); err != nil {
			return r.s, err
		}
		if r.s.Completed {
			return r.s, nil // completed by someone else, as read again
		}
		if !light {
			nextFull = e.clock.Now().Add(e.cfg.PollInterval)
		}
		// Before every observation too: a decision that moved the
		// session on plans again at once, and an observation of slow
		// backends takes minutes.
		e.keepAhead(ctx, r)
		obs, err := e.observe(ctx, r, light)
		if err != nil {
			return r.s, err
		}
		e.noticeSteering(r, &obs)
		obs.TakenUp = !r.acted
		d, err := planWith(r.s, obs, r.indexed())
		if err != nil {
			return r.s, err
		}
		if d.Done && !e.steerBeforeEnd(ctx, r, &d) {
			// Not done before every node has its place back in the
			// workload manager's choice: try again shortly.
			if err := e.sleep(ctx, r, e.cfg.PollInterval); err != nil {
				return r.s, err
			}
			continue
		}
		moved := d.Transitions(r.s)
		if d.Changed(r.s) {
			ok, err := e.record(ctx, r, d, obs.Now, false)
			if err != nil {
				return r.s, err
			}
			if !ok {
				continue // the session changed since it was read: plan again
			}
		}
		if d.Done {
			return e.finished(r, obs.Now), nil
		}
		failed := map[string]bool{}
		for _, a := range d.Actions {
			e.keepAhead(ctx, r)
			res, err := e.act(ctx, r, a, failed)
			if err != nil {
				return r.s, err
			}
			settled := Settle(r.s, res)
			moved = moved || settled.Transitions(r.s)
			if settled.Changed(r.s) {
				if _, err := e.record(ctx, r, settled, e.clock.Now(), true); err != nil {
					return r.s, err
				}
			}
		}
		r.acted = true
		e.steer(ctx, r)
		if moved && replans < maxReplans {
			replans++
			continue
		}
		// A replan after a light look is light too: taking new nodes
		// waits for the next full observation.
		replans, light = 0, false
		now := e.clock.Now()
		wait := max(nextFull.Sub(now), time.Millisecond)
		if fast := e.cfg.InFlightPollInterval; fast < wait && r.returning() {
			wait, light = fast, true
		}
		if !d.Wake.IsZero() {
			if until := d.Wake.Sub(now) + time.Millisecond; until < wait {
				wait, light = max(until, time.Millisecond), false
			}
		}
		if err := e.sleep(ctx, r, wait); err != nil {
			return r.s, err
		}
		if err := e.refresh(ctx, r); err != nil {
			return r.s, err
		}
		e.keepAhead(ctx, r)
	}
}

// stopUnbookTimeout bounds how long a run stopped by its caller spends
// deleting its reservations (see Run).
const stopUnbookTimeout = 30 * time.Second

// dropBookings deletes, by name, every reservation the session id may
// hold, when a run stops on an error (the store unreachable for a retry
// timeout, a corrupt record), because its caller stopped it (its ctx
// cancelled: a shutdown), or because its Driver could not renew its
// lease, or cannot take the session up for its store: nothing would move
// them on before a run takes the session up again, and one that began
// would hold its idle nodes out of service on top of the cap. The next
// run books anew. The names are those the record s lists; without a
// record (it could not be read), those the workload manager lists under
// the session's prefix. A crash cannot do this and leaves them, as does
// a run whose lease went to another replica, which drives the session
// and its reservations now.
func (e *Executor) dropBookings(ctx context.Context, id string, s *Session, log *slog.Logger, why error) {
	if e.scheduler == nil {
		return
	}
	unreserve := func(names []string) error { return e.unreserve(ctx, names) }
	var (
		deleted int
		listed  bool
		err     error
	)
	if s != nil {
		deleted, listed, err = unbookListed(s, unreserve)
	} else {
		// No record: the names the workload manager lists as the
		// session's.
		var names []string
		var rs []wlm.Reservation
		err = e.retry(ctx, "read bookings", func(ctx context.Context) (err error) {
			rs, err = e.scheduler.Reservations(ctx, bookingPrefixOf(id))
			return err
		})
		for _, r := range rs {
			if ownBookingOf(id, r.Name) {
				names = append(names, r.Name)
			}
		}
		if err == nil && len(names) > 0 {
			if err = unreserve(names); err == nil {
				deleted = len(names)
			}
		}
		listed = err != nil || len(names) > 0
	}
	switch {
	case !listed:
	case err != nil:
		log.Warn("the run stops, and could not delete the session's reservations: they may begin before a run takes it up", "deleted", deleted, "err", err, "why", why)
	default:
		log.Info("the run stops: deleted the session's reservations, to be booked anew by the next run", "reservations", deleted, "why", why)
	}
}

// finished logs and announces the end of r's session, as recorded.
func (e *Executor) finished(r *run, now time.Time) *Session {
	c := r.s.Counts()
	r.log.Info("session finished", "result", r.s.Progress.Result, "upgraded", c.Upgraded, "failed", c.Failed, "skipped", c.Skipped, "untouched", c.Untouched)
	e.emit(Event{Time: now, Session: r.s.UpgradeID, Kind: EventDone, Step: r.s.Progress.Step, Steps: r.s.Progress.Steps, Stage: StageDone, Message: string(r.s.Progress.Result)})
	return r.s
}

// returning reports whether a node of the session is on its way back
// (drained, rebooting, or rebooted and waiting to be resumed): worth
// looking at more often than the rest. It reads the active nodes only.
func (r *run) returning() bool {
	for _, i := range r.indexed().active {
		if r.s.Progress.Nodes[i].Phase.returning() {
			return true
		}
	}
	return false
}

// refresh reads the session again if someone else changed it while Run
// waited (a Delete, from this process or another). A store that cannot be
// read is not fatal: Run carries on with its copy, and a stale write would
// be refused anyway. A session removed from the store stops Run.
func (e *Executor) refresh(ctx context.Context, r *run) error {
	if rr, ok := e.store.(RevisionReader); ok {
		var rev int64
		err := e.attempt(ctx, "read session revision", func(ctx context.Context) (err error) {
			rev, err = rr.Revision(ctx, r.s.UpgradeID)
			return err
		})
		switch {
		case err == nil && rev == r.s.Revision:
			return nil
		case errors.Is(err, ErrSessionNotFound):
			return err
		}
	}
	fresh, err := e.getSession(ctx, r.s.UpgradeID)
	switch {
	case errors.Is(err, ErrSessionNotFound) || ctx.Err() != nil:
		return err
	case err != nil:
		r.log.Warn("could not read the session again; carrying on with the copy in memory", "err", err)
		return nil
	}
	if fresh.Revision == r.s.Revision {
		return nil
	}
	if err := fresh.check(); err != nil {
		return err
	}
	r.s = fresh
	r.log.Debug("session changed by someone else; reloaded", "revision", fresh.Revision)
	return nil
}

// sleep waits d on the executor's clock, or until the run is woken (a
// command for the session) or ctx ends.
//
// While the session holds reservations, it wakes at least every half a
// lead to keep them from beginning (keepAhead): a poll interval can be
// longer than that.
func (e *Executor) sleep(ctx context.Context, r *run, d time.Duration) error {
	r.busy.rest(e.clock.Now())
	for {
		nap := d
		if len(r.booked) > 0 {
			// A reservation due just beyond half a lead at the last
			// look must be moved on before it begins: wake in time to
			// look and move it, however long that takes.
			nap = min(nap, bookingLead(e.horizonFor(r))/2-r.busy.longest())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.clock.After(nap):
		case <-r.wakeC:
			return nil
		}
		if d -= nap; d <= 0 {
			return nil
		}
		e.keepAhead(ctx, r)
	}
}

// record applies a decision to the session and stores it before anything
// it announces is done. If the stored session was changed since it was
// read (ErrConflict: by someone else, or by a write of this run that
// landed though its attempt was cut short or its answer lost), the fresh
// record is loaded. If it holds this write and nothing else since
// (landed), the decision is recorded. Otherwise a settled result (fact)
// is applied to it and stored, while a plan is dropped and record
// reports false, so that the caller plans again from the fresh record,
// as a run that takes it up would.
func (e *Executor) record(ctx context.Context, r *run, d Decision, now time.Time, fact bool) (bool, error) {
	events := e.eventsOf(r.s, d, now)
	for {
		r.s.Apply(d, now)
		if r.idx.valid(r.s) {
			r.idx.update(d)
		}
		changed := r.names.positions(d.Changes)
		update := func(ctx context.Context) error { return e.store.Update(ctx, r.s) }
		if m, ok := e.store.(NodeUpdater); ok {
			// r.s is the store's record at its revision, changed since
			// only by this Apply.
			update = func(ctx context.Context) error { return m.UpdateNodes(ctx, r.s, changed) }
		}
		err := e.retryStore(ctx, r, "store session", update)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrConflict) {
			return false, fmt.Errorf("recording session %s: %w", r.s.UpgradeID, err)
		}
		fresh, gerr := e.getSession(ctx, r.s.UpgradeID)
		if gerr != nil {
			return false, fmt.Errorf("reloading session %s after a conflict: %w", r.s.UpgradeID, gerr)
		}
		if err := fresh.check(); err != nil {
			return false, err
		}
		if landed(r.s, fresh, changed) {
			// This write landed after all (an attempt cut short, an
			// answer lost), and no other since: recorded.
			r.s = fresh
			r.log.Info("session record written, its answer lost", "revision", fresh.Revision)
			break
		}
		r.s = fresh
		r.log.Info("session changed since it was read (by someone else, or by writes of this run whose answers were lost); reloaded", "revision", fresh.Revision)
		if !fact || fresh.Completed {
			// A write of this run may have landed all the same before
			// someone else's: the fresh record then holds its plan,
			// recorded and not carried out, as a stopped run leaves
			// it. The next round reads it as a record taken up.
			r.acted = false
			return false, nil
		}
	}
	for _, ev := range events {
		e.emit(ev)
		switch ev.Kind {
		case EventMessage, EventStepStarted:
			r.log.Info(ev.Message, "step", ev.Step, "stage", ev.Stage)
		case EventStage:
			r.log.Debug("stage", "step", ev.Step, "stage", ev.Stage)
		case EventNode:
			r.log.Debug("node finished", "node", ev.Node, "outcome", ev.Outcome, "reason", ev.Reason)
		}
	}
	return true, nil
}

// landed reports whether fresh, the record read after a write of tried
// conflicted, is tried as it was to be written: the write landed though
// its attempt was cut short or its answer lost, and nothing else was
// written since. It compares what a write may change (see NodeUpdater):
// the header, the node records at positions (those the write changed),
// and the messages. It costs the encoding of those, only after a
// conflict.
func landed(tried, fresh *Session, positions []int) bool {
	if len(tried.Progress.Nodes) != len(fresh.Progress.Nodes) || !slices.Equal(tried.Messages, fresh.Messages) {
		return false
	}
	for _, i := range positions {
		if !sameJSON(&tried.Progress.Nodes[i], &fresh.Progress.Nodes[i]) {
			return false
		}
	}
	head := func(s *Session) *Session {
		h := *s
		h.Revision, h.Progress.Nodes, h.Messages = 0, nil, nil
		return &h
	}
	return sameJSON(head(tried), head(fresh))
}

// sameJSON reports whether a and b encode the same (times in the same
// instant and offset, whatever their monotonic readings).
func sameJSON(a, b any) bool {
	ja, err := json.Marshal(a)
	if err != nil {
		return false
	}
	jb, err := json.Marshal(b)
	return err == nil && bytes.Equal(ja, jb)
}

// eventsOf lists the events a decision will cause, computed before it is
// applied.
func (e *Executor) eventsOf(s *Session, d Decision, now time.Time) []Event {
	var evs []Event
	base := Event{Time: now, Session: s.UpgradeID, Step: d.Step, Steps: d.Steps, Stage: d.Stage}
	if d.Step != s.Progress.Step {
		ev := base
		ev.Kind, ev.Message = EventStepStarted, fmt.Sprintf("step %d of %d started", d.Step, d.Steps)
		for _, c := range d.Changes {
			if c.Step == d.Step && c.Phase == PhaseQuiescing {
				ev.Nodes++
			}
		}
		evs = append(evs, ev)
	}
	if d.Stage != s.Progress.Stage {
		ev := base
		ev.Kind = EventStage
		evs = append(evs, ev)
	}
	f := recordFinder{nodes: s.Progress.Nodes}
	for _, c := range d.Changes {
		if n := f.record(c.XName); n != nil && c.Phase != "" && c.Phase != PhaseDone && c.Phase != n.Phase {
			ev := base
			ev.Kind, ev.Node, ev.Phase = EventPhase, c.XName, c.Phase
			evs = append(evs, ev)
		}
	}
	for _, c := range d.Changes {
		if n := f.record(c.XName); n != nil && c.Phase == PhaseDone && n.Phase != PhaseDone {
			ev := base
			ev.Kind, ev.Node, ev.Outcome = EventNode, c.XName, c.Outcome
			ev.Reason = c.Reason
			if ev.Reason == "" {
				ev.Reason = n.Reason
			}
			evs = append(evs, ev)
		}
	}
	for _, m := range d.Messages {
		ev := base
		ev.Kind, ev.Message = EventMessage, m
		evs = append(evs, ev)
	}
	return evs
}
