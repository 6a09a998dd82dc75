package crus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// act carries out one action and reports what came of it. Nodes in failed
// that the action must skip are left out; nodes it fails for are added.
func (e *Executor) act(ctx context.Context, r *run, a Action, failed map[string]bool) (ActionResult, error) {
	res := ActionResult{Action: a}
	for _, x := range a.Nodes {
		if !a.SkipFailed || !failed[x] {
			res.Nodes = append(res.Nodes, x)
		}
	}
	if len(res.Nodes) == 0 && a.Kind != ActUnbook {
		return res, nil
	}
	names := func() []string { return r.names.names(res.Nodes) }
	byWLMName := r.names.byXName
	what := string(a.Kind)
	var err error
	switch a.Kind {
	case ActAddMembers:
		res.PerNode, err = e.call(ctx, what, func(ctx context.Context) error { return e.groups.AddMembers(ctx, a.Label, res.Nodes) })
	case ActRemoveMembers:
		res.PerNode, err = e.call(ctx, what, func(ctx context.Context) error { return e.groups.RemoveMembers(ctx, a.Label, res.Nodes) })
	case ActDrain:
		res.PerNode, err = byWLMName(e.call(ctx, what, func(ctx context.Context) error { return e.wlm.Drain(ctx, names(), a.Reason) }))
	case ActResume:
		res.PerNode, err = byWLMName(e.call(ctx, what, func(ctx context.Context) error { return e.wlm.Resume(ctx, names()) }))
	case ActFail:
		// Both halves, always: a node refused by one is still failed by
		// the other.
		inGroup, gerr := e.call(ctx, what, func(ctx context.Context) error { return e.groups.AddMembers(ctx, a.Label, res.Nodes) })
		inWLM, werr := byWLMName(e.call(ctx, what, func(ctx context.Context) error { return e.wlm.Fail(ctx, names(), a.Reason) }))
		res.PerNode = map[string]error{}
		for x, nerr := range inGroup {
			res.PerNode[x] = fmt.Errorf("failed group %q: %w", a.Label, nerr)
		}
		for x, nerr := range inWLM {
			res.PerNode[x] = errors.Join(res.PerNode[x], fmt.Errorf("workload manager: %w", nerr))
		}
		if gerr != nil {
			gerr = fmt.Errorf("failed group %q: %w", a.Label, gerr)
		}
		if werr != nil {
			werr = fmt.Errorf("workload manager: %w", werr)
		}
		err = errors.Join(gerr, werr)
	case ActReboot:
		if err = e.stillDrained(ctx, r, res.Nodes); err == nil {
			err = e.retry(ctx, what, func(ctx context.Context) error { return e.boot.Reboot(ctx, a.Reboot) })
		}
	case ActBook:
		res.PerNode, err = e.book(ctx, r, a, res.Nodes)
	case ActUnbook:
		err = e.unbook(ctx, r, a.Unbook)
	default:
		return res, fmt.Errorf("crus: unknown action %q", a.Kind)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.Err = err
	for x := range res.PerNode {
		failed[x] = true
	}
	if err != nil {
		for _, x := range res.Nodes {
			failed[x] = true
		}
	}
	if err != nil || len(res.PerNode) > 0 {
		errs := []error{err}
		for _, x := range sortedKeys(res.PerNode) {
			errs = append(errs, &batch.NodeError{Node: x, Err: res.PerNode[x]})
		}
		all := errors.Join(errs...)
		r.log.Warn("action failed", "action", a.Kind, "nodes", len(res.Nodes), "label", a.Label, "err", all)
		e.emit(Event{Time: e.clock.Now(), Session: r.s.UpgradeID, Kind: EventActionError, Step: r.s.Progress.Step,
			Steps: r.s.Progress.Steps, Stage: r.s.Progress.Stage, Nodes: len(res.Nodes), Message: what, Err: all})
	} else {
		r.log.Debug("action done", "action", a.Kind, "nodes", len(res.Nodes), "label", a.Label, "why", a.Why)
	}
	return res, nil
}

// call runs a batch call, retrying failures of the whole call (not those
// of single nodes) with backoff. It returns the per-node failures and the
// call's error, if it still failed.
func (e *Executor) call(ctx context.Context, what string, f func(ctx context.Context) error) (map[string]error, error) {
	var perNode map[string]error
	err := e.retry(ctx, what, func(ctx context.Context) error {
		var rest error
		perNode, rest = batch.Split(f(ctx))
		return rest
	})
	return perNode, err
}

// retryDeadlineKey carries, in a context, a time on the executor's clock
// after which retry makes no more attempts (see withRetryDeadline).
type retryDeadlineKey struct{}

// withRetryDeadline bounds every retry under ctx to end by t on the
// executor's clock (a context deadline would run on the wall clock).
func withRetryDeadline(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, retryDeadlineKey{}, t)
}

// retry runs the backend call f until it succeeds, fails permanently
// (batch.ErrPermanent), ctx ends, or RetryTimeout passes, waiting on the
// executor's clock. Under a retry deadline (withRetryDeadline), it makes
// no attempt after it passes but the first. Each attempt gets a ctx that
// ends after CallTimeout (see attempt).
func (e *Executor) retry(ctx context.Context, what string, f func(ctx context.Context) error) error {
	return e.retryAttempts(ctx, what, func() error { return e.attempt(ctx, what, f) })
}

// retryStore retries a call to the store as retry does a backend call,
// each attempt under CallTimeout too: a store that does not answer (an
// etcd cut off behind a connection that never closes) would otherwise
// hold the run, and with it the reservations it must move on. Cutting a
// write short is safe because every write is a compare-and-swap on the
// record's revision: a write that landed all the same makes the next
// attempt fail with ErrConflict, and the caller reads the record again
// and finds it written (landed). Between attempts, r's reservations are
// kept from beginning (keepAhead), as between the run's other calls; r
// may be nil.
func (e *Executor) retryStore(ctx context.Context, r *run, what string, f func(ctx context.Context) error) error {
	var between func()
	if r != nil {
		between = func() { e.keepAhead(ctx, r) }
	}
	return e.retryAttemptsThen(ctx, what, func() error { return e.attempt(ctx, what, f) }, between)
}

// isStoreAnswer reports whether err is a store's answer rather than a
// failure to reach it: the record changed (ErrConflict), is missing, is
// taken, or holds what another session holds. Asking again changes
// nothing, so it is not retried.
func isStoreAnswer(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrSessionNotFound) ||
		errors.Is(err, ErrSessionExists) || errors.Is(err, ErrReserved)
}

// getSession reads a session from the store in one attempt under
// CallTimeout (see retryStore).
func (e *Executor) getSession(ctx context.Context, id string) (s *Session, err error) {
	err = e.attempt(ctx, "read session", func(ctx context.Context) (err error) {
		s, err = e.store.Get(ctx, id)
		return err
	})
	return s, err
}

func (e *Executor) retryAttempts(ctx context.Context, what string, f func() error) error {
	return e.retryAttemptsThen(ctx, what, f, nil)
}

// retryAttemptsThen is retryAttempts that calls between, if not nil,
// after each failed attempt that is to be retried, before the wait.
func (e *Executor) retryAttemptsThen(ctx context.Context, what string, f func() error, between func()) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = e.cfg.RetryInitial
	b.MaxInterval = e.cfg.RetryMax
	b.MaxElapsedTime = e.cfg.RetryTimeout
	if t, ok := ctx.Value(retryDeadlineKey{}).(time.Time); ok {
		// Zero would mean no bound at all: a nanosecond allows one
		// attempt.
		b.MaxElapsedTime = max(min(b.MaxElapsedTime, t.Sub(e.clock.Now())), time.Nanosecond)
	}
	// No jitter: one controller is not a thundering herd, and exact waits
	// keep simulations on a virtual clock deterministic.
	b.RandomizationFactor = 0
	b.Clock = e.clock
	b.Reset()
	op := func() error {
		err := f()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return backoff.Permanent(ctx.Err())
		case batch.IsPermanent(err), isStoreAnswer(err):
			return backoff.Permanent(err)
		}
		return err
	}
	notify := func(err error, next time.Duration) {
		e.log.Debug("retrying", "call", what, "err", err, "in", next)
		if between != nil {
			between()
		}
	}
	return backoff.RetryNotifyWithTimer(op, backoff.WithContext(b, ctx), notify, &clockTimer{clock: e.clock})
}

// attempt makes one attempt of a backend call: f runs under a ctx that
// ends after CallTimeout, so that an adapter that does not answer cannot
// hold the run (and with it the cap's guards: reservations moved on in
// time, timeouts counted) for longer. The deadline runs on the wall
// clock, not the executor's: it bounds how long a call really blocks,
// and a virtual clock that moves only while the executor waits would
// never end it. An attempt cut short returns an error that wraps
// ErrCallTimeout and what f returned.
func (e *Executor) attempt(ctx context.Context, what string, f func(ctx context.Context) error) error {
	actx, cancel := context.WithTimeoutCause(ctx, e.cfg.CallTimeout, ErrCallTimeout)
	defer cancel()
	err := f(actx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), ErrCallTimeout) {
		return fmt.Errorf("%s: %w after %s: %w", what, ErrCallTimeout, e.cfg.CallTimeout, err)
	}
	return err
}

// errBootStale: a boot request's nodes were read again just before it
// was sent, and some run jobs or are in service again (an administrator
// resumed them since the observation the decision came from).
var errBootStale = errors.New("not sent: nodes back in service or running jobs since they were seen drained")

// stillDrained reads the nodes of a boot request again just before it is
// sent, and returns an error (a transient one: the request is not sent,
// and the next decision sends it again naming only the nodes it sees
// drained) if any of them runs jobs or is in service. The decision comes
// from an observation that, with slow backends, can be minutes old, and
// an administrator may have resumed a node since: the orchestrator would
// reboot it under its new job. A node the workload manager no longer
// knows is left to the planner. If the nodes cannot be read, the
// request is not sent either, and that is transient too, whatever the
// read's error: the orchestrator refused nothing.
func (e *Executor) stillDrained(ctx context.Context, r *run, xnames []string) error {
	var nodes []wlm.Node
	// Nodes the workload manager no longer knows (per-node errors) are
	// left to the planner.
	_, err := e.call(ctx, "read nodes before booting them", func(ctx context.Context) (err error) {
		nodes, err = e.wlm.Nodes(ctx, r.names.names(xnames))
		return err
	})
	if err != nil {
		// %v: a permanent refusal of the read must not read as the
		// orchestrator's permanent refusal of the request, which aborts
		// the session.
		return fmt.Errorf("not sent: reading its nodes first: %v", err)
	}
	var back []string
	for _, n := range nodes {
		if n.Busy() || n.InService() {
			back = append(back, n.Name+" ("+n.Condition()+")")
		}
	}
	if len(back) > 0 {
		return fmt.Errorf("%w: %s", errBootStale, abbreviate(back, 5))
	}
	return nil
}
