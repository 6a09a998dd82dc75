package crus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Lifecycle commands: Delete, Pause, Resume and Approve record a request in
// the session with the store's compare-and-swap and wake the session's Run,
// which carries it out. Any executor on the same store may call them, at
// any moment.

// Delete cancels a session, as the original DELETE /session/{id} did, but
// without failing the nodes it never touched:
//
//   - nodes whose step had not begun stay in service, outcome untouched;
//   - nodes drained but not yet rebooting are resumed, outcome untouched
//     (so are nodes whose boot request the boot orchestrator never
//     accepted);
//   - nodes already rebooting are seen through to their outcome;
//   - then the upgrading group is emptied of the session's nodes.
//
// Delete records the request (state DELETING) and returns; the session's
// Run carries it out (a session created but never run is finished at
// once). If no Run of this executor carries the session, Delete also
// deletes the reservations its record lists (strategy scheduled) at
// once: they would otherwise wait for a Run to take the session up.
// Deleting a completed session removes its record from the store. Delete
// returns the session record as it stands.
func (e *Executor) Delete(ctx context.Context, id string) (*Session, error) {
	s, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.Completed {
		if err := e.store.Delete(ctx, id); err != nil {
			return nil, err
		}
		e.log.Info("session record deleted", "session", id)
		return s, nil
	}
	s, err = e.command(ctx, id, "delete", EventCancel, func(s *Session, now time.Time) string {
		p := &s.Progress
		if p.Cancel {
			return ""
		}
		p.Cancel, p.CancelledAt, s.State = true, now, StateDeleting
		if p.StartedAt.IsZero() && !e.isRunning(id) {
			// Nothing was touched: finish at once.
			p.FailedToClear = nil
			if d, err := Plan(s, Observation{Now: now, UpgradingObserved: true}); err == nil {
				s.Apply(d, now)
			}
			return "Deleted before it started: every node left untouched"
		}
		return "Deletion requested: nodes not yet rebooting return to service; nodes rebooting are seen through"
	})
	if errors.Is(err, ErrSessionDone) {
		return e.Delete(ctx, id) // completed meanwhile: delete its record
	}
	if err == nil && !s.Completed && !e.isRunning(id) {
		e.unbookUnrun(ctx, s)
	}
	return s, err
}

// unbookUnrun deletes, by the names its record lists, the reservations of
// a session deleted while no run of this executor carries it. A run
// elsewhere may carry it, or none: until one takes it up, nothing would
// move its reservations on or delete them, and a reservation of crus's
// that begins holds its idle nodes out of service, on top of the cap.
// One attempt: a failure is logged and left to the run that carries out
// the deletion, which deletes whatever is left (as it would anyway).
func (e *Executor) unbookUnrun(ctx context.Context, s *Session) {
	if e.scheduler == nil {
		return
	}
	deleted, listed, err := unbookListed(s, func(names []string) error {
		return e.attempt(ctx, string(ActUnbook), func(ctx context.Context) error { return e.scheduler.Unreserve(ctx, names) })
	})
	switch {
	case !listed:
	case err != nil:
		e.log.Warn("could not delete the reservations of a deleted session no run carries here; the run that carries out the deletion will", "session", s.UpgradeID, "deleted", deleted, "err", err)
	default:
		e.log.Info("deleted the reservations of a deleted session no run carries here", "session", s.UpgradeID, "reservations", deleted)
	}
}

// Pause stops the session from taking new nodes: nodes in flight finish,
// nothing new starts, until Resume. It holds in every strategy, the
// original one included. Pausing a paused session changes nothing. It
// returns the session record as it stands, or ErrSessionDone for a
// completed session.
func (e *Executor) Pause(ctx context.Context, id string) (*Session, error) {
	return e.command(ctx, id, "pause", EventMessage, func(s *Session, now time.Time) string {
		p := &s.Progress
		if p.Paused {
			return ""
		}
		p.Paused, p.PausedAt = true, now
		return "Pause requested: nodes in flight finish; no new node is taken until the session is resumed"
	})
}

// Resume lets a paused session take new nodes again.
func (e *Executor) Resume(ctx context.Context, id string) (*Session, error) {
	return e.command(ctx, id, "resume", EventMessage, func(s *Session, now time.Time) string {
		p := &s.Progress
		if !p.Paused {
			return ""
		}
		p.Paused, p.PausedAt = false, time.Time{}
		return "Resumed: new nodes are taken again"
	})
}

// Approve lets a session whose spec asks for canary approval go on past
// its canary batches. Approving before the canary batches are over is
// allowed: the session then does not stop after them.
func (e *Executor) Approve(ctx context.Context, id string) (*Session, error) {
	return e.command(ctx, id, "approve", EventMessage, func(s *Session, now time.Time) string {
		p := &s.Progress
		if p.Approved {
			return ""
		}
		p.Approved = true
		return "Canary approved: the session goes on at full step size"
	})
}

// command changes the stored session by f with a compare-and-swap, again
// on each conflict, records f's message, emits an event of kind and wakes
// the session's Run. f returns the message to record, or "" if there is
// nothing to change (nothing is written then). A completed session is
// returned as it is with ErrSessionDone.
func (e *Executor) command(ctx context.Context, id, what string, kind EventKind, f func(s *Session, now time.Time) string) (*Session, error) {
	s, changed, err := e.casUpdate(ctx, id, nil, f)
	switch {
	case err != nil:
		return nil, err
	case s.Completed && !changed:
		return s, fmt.Errorf("%w: cannot %s %s", ErrSessionDone, what, id)
	case !changed:
		return s, nil
	}
	msg := s.Messages[len(s.Messages)-1]
	e.log.Info(msg, "session", id)
	e.emit(Event{Time: e.clock.Now(), Session: id, Kind: kind, Step: s.Progress.Step, Steps: s.Progress.Steps, Stage: s.Progress.Stage, Message: msg})
	e.wake(id)
	return s, nil
}

// casUpdate applies f to the session and stores it with the store's
// compare-and-swap, reading it again and applying f again on a conflict.
// It starts from s if given (a copy read from the store), else reads it.
// It writes nothing, and reports false, when the session has completed or
// f has nothing to change.
func (e *Executor) casUpdate(ctx context.Context, id string, s *Session, f func(s *Session, now time.Time) string) (*Session, bool, error) {
	for {
		if s == nil {
			var err error
			if s, err = e.getSession(ctx, id); err != nil {
				return nil, false, err
			}
			if err := s.check(); err != nil {
				return nil, false, err
			}
		}
		if s.Completed {
			return s, false, nil
		}
		msg := f(s, e.clock.Now())
		if msg == "" {
			return s, false, nil
		}
		s.AddMessages(msg)
		err := e.retryStore(ctx, nil, "store session", func(ctx context.Context) error { return e.store.Update(ctx, s) })
		switch {
		case err == nil:
			return s, true, nil
		case !errors.Is(err, ErrConflict):
			return nil, false, fmt.Errorf("recording session %s: %w", id, err)
		}
		// Changed since it was read: read it again. The write may have
		// landed all the same (its answer lost), and nothing else since:
		// then it is recorded (applying f again would add its message
		// again, and again while answers are lost).
		tried := s
		if s, err = e.getSession(ctx, id); err != nil {
			return nil, false, err
		}
		if err := s.check(); err != nil {
			return nil, false, err
		}
		if landed(tried, s, nil) {
			return s, true, nil
		}
	}
}

func (e *Executor) isRunning(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.running[id]
	return ok
}

// wake makes the session's Run, if this executor runs it, plan again now.
func (e *Executor) wake(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.running[id]; ok {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
