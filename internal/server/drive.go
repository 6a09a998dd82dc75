package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/crus-go/crus"
)

// Driver runs every session in progress of one executor's store, each in
// its own call to Executor.Run: on start the sessions a previous process
// left, then each new one as it is created (Kick, from the executor's
// EventCreated) or found by a rescan. It is for stores one process holds
// (the memory and file stores); on etcd, etcdstore.Replica does this job
// among several replicas.
type Driver struct {
	ex *crus.Executor
	// Rescan is how often the store is listed for sessions to run that
	// were not kicked (created by another tool while this one ran).
	// Default 30s.
	Rescan time.Duration
	// RetryAfter is how long to wait before running again a session whose
	// Run failed (the store unreachable). Default 30s.
	RetryAfter time.Duration
	Logger     *slog.Logger

	mu      sync.Mutex
	ctx     context.Context
	running map[string]bool
	wg      sync.WaitGroup
	kick    chan string
}

// NewDriver returns a Driver of ex's sessions.
func NewDriver(ex *crus.Executor, logger *slog.Logger) *Driver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{ex: ex, Logger: logger, running: map[string]bool{}, kick: make(chan string, 64)}
}

// Kick asks for the session to be run now. It never blocks, so it may be
// called from crus.Config.OnEvent.
func (d *Driver) Kick(id string) {
	select {
	case d.kick <- id:
	default: // the next rescan finds it
	}
}

// OnEvent kicks the sessions the executor creates: give it to
// crus.Config.OnEvent (or call it from yours).
func (d *Driver) OnEvent(ev crus.Event) {
	if ev.Kind == crus.EventCreated {
		d.Kick(ev.Session)
	}
}

// Running returns how many sessions are being run.
func (d *Driver) Running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.running)
}

// Run drives sessions until ctx is cancelled, then waits for their Runs
// to stop (between two calls: each record stays consistent) and returns
// ctx's error.
func (d *Driver) Run(ctx context.Context) error {
	rescan, retry := d.Rescan, d.RetryAfter
	if rescan <= 0 {
		rescan = 30 * time.Second
	}
	if retry <= 0 {
		retry = 30 * time.Second
	}
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	defer d.wg.Wait()
	d.scan(ctx, retry)
	t := time.NewTicker(rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case id := <-d.kick:
			d.start(ctx, id, retry)
		case <-t.C:
			d.scan(ctx, retry)
		}
	}
}

func (d *Driver) scan(ctx context.Context, retry time.Duration) {
	list, err := d.ex.List(ctx)
	if err != nil {
		d.Logger.Warn("listing sessions to drive", "err", err)
		return
	}
	for _, s := range list {
		if !s.Completed {
			d.start(ctx, s.UpgradeID, retry)
		}
	}
}

func (d *Driver) start(ctx context.Context, id string, retry time.Duration) {
	d.mu.Lock()
	if d.running[id] || ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	d.running[id] = true
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.running, id)
			d.mu.Unlock()
		}()
		for {
			d.Logger.Info("driving session", "session", id)
			_, err := d.ex.Run(ctx, id)
			switch {
			case err == nil:
				d.Logger.Info("session complete", "session", id)
				return
			case ctx.Err() != nil:
				d.Logger.Info("stopped driving session", "session", id)
				return
			case errors.Is(err, crus.ErrSessionNotFound), errors.Is(err, crus.ErrSessionBusy), errors.Is(err, crus.ErrSessionDone):
				return
			}
			d.Logger.Error("session run failed; trying again", "session", id, "err", err, "after", retry)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
		}
	}()
}
