package crus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Leaser is implemented by a Store that several controller processes
// (replicas) share, and that gives each session in progress to one of them
// at a time: a replica holds a lease, renewed while it lives, and acquires
// sessions under it; every write of an acquired session through that
// Store is fenced to the lease, so that once the lease is gone the write
// is refused with ErrLeaseLost and stores nothing. store/etcdstore
// implements it. A Driver given a Leaser runs as one replica of several.
type Leaser interface {
	// Grant starts a lease that expires ttl after its last renewal.
	Grant(ctx context.Context, ttl time.Duration) (Lease, error)
	// Active lists the ids of the sessions in progress, sorted.
	Active(ctx context.Context) ([]string, error)
	// WatchFree sends the ids of sessions in progress that may have become
	// free to take: new sessions, and sessions whose holder let go or
	// died. The channel is closed when ctx ends or the watch breaks (the
	// caller then lists Active again and watches anew).
	WatchFree(ctx context.Context) <-chan string
}

// Lease is a replica's hold on the sessions it drives, granted by a
// Leaser. All methods are safe for concurrent use.
type Lease interface {
	// TTL is the lease's time to live, as granted.
	TTL() time.Duration
	// KeepAlive renews the lease once. It returns an error matching
	// ErrLeaseLost when the lease is gone, and another error when the
	// renewal could not be made (try again; the lease runs out TTL after
	// the last renewal that went through).
	KeepAlive(ctx context.Context) error
	// Acquire takes the session under this lease if no one holds it, and
	// reports whether it did. From then on every write of the session
	// through the Store that granted the lease is fenced to it.
	Acquire(ctx context.Context, id string) (bool, error)
	// Release lets go of a session this lease holds.
	Release(ctx context.Context, id string) error
	// Revoke ends the lease now: its sessions are free at once.
	Revoke(ctx context.Context) error
}

// DriverConfig tunes a Driver. The zero value of every field is usable.
type DriverConfig struct {
	// Name identifies the driver (the replica) in logs and lease holders.
	// Empty means a random name.
	Name string
	// TTL is the lease's time to live: how long after this replica dies
	// (stops renewing its lease) another one takes its sessions over.
	// Default 10s; whole seconds. Only with a Leaser.
	TTL time.Duration
	// Margin is how long before its lease could expire, as last renewed,
	// the driver stops acting on its sessions if it could not renew it.
	// It covers the call in flight and the drift between the clocks'
	// rates. Default TTL/4; less than TTL/2. Only with a Leaser.
	Margin time.Duration
	// Rescan is how often the driver looks for sessions to drive even
	// without a sign of one. Default TTL with a Leaser, 30s without.
	Rescan time.Duration
	// RetryAfter is how long the driver waits before running a session
	// again whose Run failed (the store unreachable, a corrupt record).
	// Default 30s.
	RetryAfter time.Duration
	// Logger receives structured logs. Nil means no logging.
	Logger *slog.Logger
}

func (c DriverConfig) withDefaults(leased bool) DriverConfig {
	if c.Name == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.Name = "driver-" + hex.EncodeToString(b)
	}
	if c.TTL == 0 {
		c.TTL = 10 * time.Second
	}
	c.TTL = c.TTL.Round(time.Second)
	if c.Margin == 0 {
		c.Margin = c.TTL / 4
	}
	if c.Rescan == 0 {
		c.Rescan = 30 * time.Second
		if leased {
			c.Rescan = c.TTL
		}
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Driver runs every session in progress of an Executor's store: what a
// controller process (crus serve) does. On a store that is not a Leaser it
// drives them all, from this process alone (the file store's lock keeps
// other processes out); given a Leaser it is one replica of several: for
// each session in progress exactly one replica holds it and drives it,
// and when a replica dies another takes its sessions over after the
// lease's TTL.
//
// With a Leaser, the lease is renewed every TTL/3; a driver that could not
// renew it stops acting on its sessions (their Run's context is
// cancelled) Margin before the lease could expire as last renewed: the
// time is counted from the moment the renewal was sent, which is before
// the store received it, so the driver's deadline is never later than the
// store's. Stopping Run revokes the lease, so that another replica takes
// over at once.
type Driver struct {
	ex     *Executor
	leaser Leaser
	cfg    DriverConfig
	log    *slog.Logger
	kick   chan struct{}

	mu      sync.Mutex
	driving map[string]bool
}

// NewDriver returns a Driver that runs the sessions of ex's store with ex.
// leaser may be nil; if not, it must be the store ex writes to (or the
// store below a wrapper of it), since the fencing of writes lives there.
func NewDriver(ex *Executor, leaser Leaser, cfg DriverConfig) (*Driver, error) {
	if ex == nil {
		return nil, errors.New("crus: NewDriver needs an Executor")
	}
	if cfg.TTL < 0 || cfg.Margin < 0 || cfg.Rescan < 0 || cfg.RetryAfter < 0 {
		return nil, errors.New("crus: DriverConfig durations must not be negative")
	}
	cfg = cfg.withDefaults(leaser != nil)
	if leaser != nil {
		if cfg.TTL < 2*time.Second {
			return nil, fmt.Errorf("crus: DriverConfig.TTL %s is below the least lease of 2s", cfg.TTL)
		}
		if cfg.Margin >= cfg.TTL/2 {
			return nil, fmt.Errorf("crus: DriverConfig.Margin %s must be less than half the TTL (%s)", cfg.Margin, cfg.TTL)
		}
	}
	return &Driver{ex: ex, leaser: leaser, cfg: cfg, log: cfg.Logger.With("driver", cfg.Name),
		kick: make(chan struct{}, 1), driving: map[string]bool{}}, nil
}

// Name returns the driver's name.
func (d *Driver) Name() string { return d.cfg.Name }

// Kick makes the driver look for sessions to drive now (for example, right
// after Executor.Create) rather than at its next rescan.
func (d *Driver) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run drives sessions until ctx is cancelled, then stops them (each Run
// stops between two calls, its record consistent) and, with a Leaser,
// revokes the lease. It returns ctx's error. When the lease is lost (the
// store unreachable for longer than the TTL allows), it stops its sessions
// and starts again with a new lease.
func (d *Driver) Run(ctx context.Context) error {
	if d.leaser == nil {
		return d.runLocal(ctx)
	}
	for {
		err := d.term(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.log.Warn("lease lost; starting again with a new one", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.cfg.TTL / 4):
		}
	}
}

// runLocal drives every session in progress of the store.
func (d *Driver) runLocal(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait() // every session's Run has returned: nothing acts any more
	rescan := time.NewTicker(d.cfg.Rescan)
	defer rescan.Stop()
	for {
		ids, err := d.inProgress(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("could not list the sessions in progress", "err", err)
		}
		for _, id := range ids {
			if d.claim(id) {
				wg.Go(func() {
					defer d.unclaim(id)
					d.drive(ctx, id, nil)
				})
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-rescan.C:
		case <-d.kick:
		}
	}
}

// inProgress lists the sessions of the store that have not completed.
func (d *Driver) inProgress(ctx context.Context) ([]string, error) {
	if rs, ok := d.ex.store.(Reserver); ok {
		held, err := rs.Reservations(ctx)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(held))
		for i, r := range held {
			ids[i] = r.Session
		}
		return ids, nil
	}
	all, err := d.ex.store.List(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range all {
		if !s.Completed {
			ids = append(ids, s.UpgradeID)
		}
	}
	return ids, nil
}

// term holds one lease: it drives sessions until the lease is lost or ctx
// ends.
func (d *Driver) term(ctx context.Context) error {
	sent := time.Now()
	lease, err := d.leaser.Grant(ctx, d.cfg.TTL)
	if err != nil {
		return fmt.Errorf("granting a lease: %w", err)
	}
	tctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait() // every session's Run has returned: nothing acts any more
		rctx, rcancel := context.WithTimeout(context.Background(), d.cfg.TTL/2)
		defer rcancel()
		if err := lease.Revoke(rctx); err != nil {
			d.log.Debug("could not revoke the lease; it expires by itself", "err", err)
		}
	}()
	log := d.log
	log.Info("lease granted", "ttl", lease.TTL())
	wg.Go(func() { d.keepAlive(tctx, cancel, lease, sent.Add(lease.TTL())) })

	try := func(id string) {
		if !d.claim(id) {
			return
		}
		ok, err := lease.Acquire(tctx, id)
		if err != nil || !ok {
			if err != nil && tctx.Err() == nil {
				log.Warn("could not campaign for a session", "session", id, "err", err)
			}
			d.unclaim(id)
			return
		}
		wg.Go(func() {
			defer d.unclaim(id)
			d.drive(tctx, id, lease)
		})
	}
	scan := func() {
		ids, err := d.leaser.Active(tctx)
		if err != nil {
			if tctx.Err() == nil {
				log.Warn("could not list the sessions in progress", "err", err)
			}
			return
		}
		for _, id := range ids {
			try(id)
		}
	}
	free := d.leaser.WatchFree(tctx)
	rescan := time.NewTicker(d.cfg.Rescan)
	defer rescan.Stop()
	scan()
	for {
		select {
		case <-tctx.Done():
			return context.Cause(tctx)
		case <-rescan.C:
			scan()
		case <-d.kick:
			scan()
		case id, ok := <-free:
			if !ok {
				free = d.leaser.WatchFree(tctx)
				scan()
				continue
			}
			try(id)
		}
	}
}

// keepAlive renews the lease every TTL/3. It cancels the term when the
// lease is gone, or when it could not renew it in time: Margin before
// validUntil, the lease's end counted from when the last successful
// renewal was sent.
func (d *Driver) keepAlive(ctx context.Context, cancel context.CancelCauseFunc, lease Lease, validUntil time.Time) {
	ttl := lease.TTL()
	stop := time.NewTimer(time.Until(validUntil.Add(-d.cfg.Margin)))
	defer stop.Stop()
	next := time.NewTimer(ttl / 3)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop.C:
			cancel(&leaseEnding{margin: d.cfg.Margin, deadline: validUntil.Add(-d.cfg.Margin / 2)})
			return
		case <-next.C:
		}
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, validUntil.Add(-d.cfg.Margin))
		err := lease.KeepAlive(rctx)
		rcancel()
		switch {
		case err == nil:
			validUntil = sent.Add(ttl)
			stop.Reset(time.Until(validUntil.Add(-d.cfg.Margin)))
			next.Reset(ttl / 3)
		case errors.Is(err, ErrLeaseLost):
			cancel(fmt.Errorf("lease expired: %w", err))
			return
		default:
			next.Reset(ttl / 20) // try again soon; stop fires if it is too late
		}
	}
}

// leaseEnding is the cause with which a Driver stops its runs when it
// could not renew its lease in time, Margin before it may expire. A run
// so stopped may still delete its reservations until deadline, half the
// margin later (see Executor.Run): nothing else would move them on while
// no replica can take the session, and the lease is still this
// replica's, with half the margin left for a call in flight.
type leaseEnding struct {
	margin   time.Duration
	deadline time.Time // on the wall clock
}

func (e *leaseEnding) Error() string {
	return fmt.Sprintf("lease not renewed within %s of its expiry", e.margin)
}

// claim marks the session as being campaigned for or driven here, and
// reports whether it was not already.
func (d *Driver) claim(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.driving[id] {
		return false
	}
	d.driving[id] = true
	return true
}

func (d *Driver) unclaim(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.driving, id)
}

// Driving returns the ids of the sessions this driver drives now, sorted.
func (d *Driver) Driving() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedKeys(d.driving)
}

// drive runs the session while this driver holds it (lease nil: always).
func (d *Driver) drive(ctx context.Context, id string, lease Lease) {
	log := d.log.With("session", id)
	log.Info("driving the session")
	for {
		s, err := d.ex.Run(ctx, id)
		switch {
		case err == nil && s != nil && s.Completed,
			errors.Is(err, ErrSessionNotFound), errors.Is(err, ErrSessionDone):
			// Done: let go of the session at once.
			if lease != nil {
				rctx, cancel := context.WithTimeout(context.Background(), d.cfg.TTL/2)
				if rerr := lease.Release(rctx, id); rerr != nil {
					log.Debug("could not release the session; it goes with the lease", "err", rerr)
				}
				cancel()
			}
			log.Info("session finished; released", "err", err)
			return
		case ctx.Err() != nil:
			log.Info("stopped driving the session", "why", context.Cause(ctx))
			return
		case errors.Is(err, ErrLeaseLost):
			log.Warn("lost the session to another replica", "err", err)
			return
		case errors.Is(err, ErrSessionBusy):
			log.Debug("the session is run by this executor already")
			return
		}
		log.Error("running the session failed; trying again later", "err", err, "in", d.cfg.RetryAfter)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.cfg.RetryAfter):
		}
	}
}
