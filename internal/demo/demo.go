// Package demo runs crus's service on the in-memory backends of
// internal/fake: a simulated cluster with jobs and a few faulty nodes,
// whose virtual clock runs Speed times faster than real time, and a
// session always in progress (a new one starts a little after the last
// ends). It is what `crus demo` serves, and what the tests of the page and
// the metrics watch.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/server"
	"github.com/crus-go/crus/metrics"
)

// Options tune the demo. A zero field takes the default noted; New
// refuses a value out of its range rather than replacing it.
type Options struct {
	Nodes int     // 1 to MaxNodes; default 512
	Step  int     // at least 1; default 32
	Speed float64 // virtual seconds per real second, MinSpeed to MaxSpeed; default 120
	Seed  uint64
	// Tick is how often (real time) the virtual clock is moved on.
	// Default 50ms.
	Tick time.Duration
	// Keep is how many of its own ended sessions the demo keeps for the
	// page and the API; it deletes the records of older ones as it
	// starts new sessions (one ended record of 160,000 nodes is some
	// 50 MB, and the demo runs sessions back to back for as long as it
	// runs). Default 3; negative keeps them all. Sessions created
	// through the API are never deleted.
	Keep   int
	Logger *slog.Logger
}

// The bounds of Options.
const (
	// MaxNodes is the largest simulated cluster, the size of the largest
	// machines crus is for: every node, its jobs and its record are kept
	// in memory (160,000 nodes take some 170 MB and a second to build;
	// the demo serving them, its page open, peaks near 600 MB).
	MaxNodes = 160000
	// MinSpeed and MaxSpeed bound the clock: slower than a thousandth of
	// real time nothing visibly moves, and at a million times real time
	// each 50ms tick already moves the cluster on by some 14 hours, a
	// session of hundreds of nodes at once. So fast, the cluster can
	// outrun the executor: on a loaded machine it may fall a few ticks
	// behind and see a boot or return timeout pass that no node really
	// took, failing nodes a slower clock would have upgraded.
	MinSpeed = 0.001
	MaxSpeed = 1e6
)

// check refuses the options out of range: a bad speed once froze the
// clock (a NaN or overflowing one turned into a negative duration), and a
// bad count was silently replaced by its default.
func (o Options) check() error {
	var errs []error
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		errs = append(errs, fmt.Errorf("demo: %d nodes: want 1 to %d", o.Nodes, MaxNodes))
	}
	if o.Step < 1 {
		errs = append(errs, fmt.Errorf("demo: step %d: want at least 1", o.Step))
	}
	// Written so that NaN, which every comparison fails, is refused.
	if !(o.Speed >= MinSpeed && o.Speed <= MaxSpeed) {
		errs = append(errs, fmt.Errorf("demo: speed %g: want %g to %g", o.Speed, MinSpeed, MaxSpeed))
	}
	if o.Tick <= 0 {
		errs = append(errs, fmt.Errorf("demo: tick %v: want a positive duration", o.Tick))
	}
	return errors.Join(errs...)
}

// Demo is a running demo.
type Demo struct {
	World    *fake.World
	Clock    *Paced
	Store    *crus.MemoryStore
	Executor *crus.Executor
	Metrics  *metrics.Metrics
	Handler  *server.Handler

	opts   Options
	driver *crus.Driver
	log    *slog.Logger

	mu      sync.Mutex
	current string
	ended   map[string]bool // sessions whose "done" event came
	started []string        // the demo's own sessions still kept, oldest first
}

// New builds the demo; Run starts it. It returns an error for options
// out of range.
func New(opts Options) (*Demo, error) {
	if opts.Nodes == 0 {
		opts.Nodes = 512
	}
	if opts.Step == 0 {
		opts.Step = 32
	}
	if opts.Speed == 0 {
		opts.Speed = 120
	}
	if opts.Tick == 0 {
		opts.Tick = 50 * time.Millisecond
	}
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	world := fake.NewCluster(fake.ClusterOptions{
		Options: fake.Options{Seed: opts.Seed, Start: time.Now().UTC().Truncate(time.Minute)},
		Nodes:   opts.Nodes, Busy: 0.7, MaxJob: 90 * time.Minute,
	})
	world.KeepBusy(0.5, 90*time.Minute, 10*time.Minute, time.Time{})
	injectFaults(world, opts.Nodes, opts.Seed)

	d := &Demo{World: world, Clock: NewPaced(world, opts.Speed), Store: crus.NewMemoryStore(), opts: opts, log: log,
		ended: map[string]bool{}}
	d.Metrics = metrics.New(metrics.Config{Now: world.Now, Logger: log})
	hub := api.NewHub()
	groups, manager, boot := d.Metrics.WrapGroups(world.HSM()), d.Metrics.WrapManager(world.WLM()), d.Metrics.WrapBoot(world.BOS())
	var driver *crus.Driver
	cfg := crus.Config{
		Store: d.Store, Clock: d.Clock, Logger: log, PollInterval: time.Minute,
		OnEvent: func(ev crus.Event) {
			hub.Publish(ev)
			if ev.Kind == crus.EventCreated && driver != nil {
				driver.Kick()
			}
			if ev.Kind == crus.EventDone {
				d.mu.Lock()
				d.ended[ev.Session] = true
				d.mu.Unlock()
			}
		},
	}
	ex, err := crus.NewExecutor(groups, manager, boot, cfg)
	if err != nil {
		return nil, err
	}
	if driver, err = crus.NewDriver(ex, nil, crus.DriverConfig{Logger: log, Rescan: 10 * time.Second}); err != nil {
		return nil, err
	}
	d.Executor, d.driver = ex, driver
	d.Metrics.Watch(ex)
	d.Handler, err = server.New(server.Options{
		Executor: ex, Store: d.Store, Hub: hub, Metrics: d.Metrics, Logger: log, Now: world.Now,
		DryRuns: true,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// injectFaults makes about 1% of the nodes fail to boot and a few never
// come back, and takes two out of service before the first session.
func injectFaults(w *fake.World, nodes int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed^0xde30, seed))
	pick := rng.Perm(nodes)
	n := 0
	take := func() string { x := fake.XName(pick[n%len(pick)]); n++; return x }
	for range max(1, nodes/100) {
		w.SetFaults(take(), fake.NodeFaults{BootFails: true, BootError: "kernel panic - not syncing: VFS: unable to mount root fs"})
	}
	for range max(1, nodes/250) {
		w.SetFaults(take(), fake.NodeFaults{NeverReturns: true})
	}
	if nodes > 8 {
		w.AdminDrain(take(), "hardware ticket HW-4711: DIMM errors")
		w.SetDown(take(), true)
	}
}

// Session returns the id of the session the demo started last.
func (d *Demo) Session() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

// specs are the sessions the demo runs in turn.
func (d *Demo) spec(i int) crus.Spec {
	s := crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: d.opts.Step, TemplateID: fake.Template, WorkloadManagerType: "slurm",
		ClearFailed: true,
	}
	if i%2 == 0 {
		// Canary batches of 1 node, then 4, each within the step: a
		// batch larger than the step is refused.
		canary := []int{1}
		if d.opts.Step > 1 {
			canary = append(canary, min(4, d.opts.Step))
		}
		s.Rollout = crus.Rollout{Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd, Canary: canary}
	}
	return s
}

// Start creates the first session. Run must be running (or run later)
// for it to move.
func (d *Demo) Start(ctx context.Context) (string, error) {
	return d.next(ctx, 0)
}

func (d *Demo) next(ctx context.Context, i int) (string, error) {
	s, err := d.Executor.Create(ctx, d.spec(i))
	if err != nil {
		return "", fmt.Errorf("demo: creating a session: %w", err)
	}
	d.mu.Lock()
	d.current = s.UpgradeID
	clear(d.ended)
	d.started = append(d.started, s.UpgradeID)
	d.mu.Unlock()
	d.prune(ctx)
	return s.UpgradeID, nil
}

// DefaultKeep is Options.Keep's default.
const DefaultKeep = 3

// prune deletes the records of the demo's own ended sessions past the
// Keep most recent, the current one aside. A session not ended (an
// operator paused it through the API) is kept until it ends, and one
// already deleted is forgotten.
func (d *Demo) prune(ctx context.Context) {
	if d.opts.Keep < 0 {
		return
	}
	d.mu.Lock()
	old := slices.Clone(d.started[:len(d.started)-1]) // the last is the current one
	d.mu.Unlock()
	gone, kept := map[string]bool{}, 0
	for _, id := range slices.Backward(old) {
		var ended bool
		err := d.Executor.View(ctx, id, func(s *crus.Session) error {
			ended = s.Completed
			return nil
		})
		switch {
		case errors.Is(err, crus.ErrSessionNotFound):
			gone[id] = true
		case err != nil || !ended:
			// Kept, and not counted: deleted once it ended.
		case kept < d.opts.Keep:
			kept++
		default:
			if _, err := d.Executor.Delete(ctx, id); err == nil || errors.Is(err, crus.ErrSessionNotFound) {
				gone[id] = true
			} else {
				d.log.Warn("demo: deleting an ended session", "session", id, "err", err)
			}
		}
	}
	d.mu.Lock()
	d.started = slices.DeleteFunc(d.started, func(id string) bool { return gone[id] })
	d.mu.Unlock()
}

// fullReadEvery is how often, in seconds of Run's loop, it reads the
// current session's whole record to see whether it ended, in case its
// "done" event was missed; the other seconds read its revision only.
const fullReadEvery = 30

// hasEnded reports whether the session ended (and whether it is gone). It
// reads the session's revision only, unless full (then the record, in
// place where the store can: a copy of 160,000 node records is 50 MB).
func (d *Demo) hasEnded(ctx context.Context, id string, full bool) (ended, gone bool) {
	if full {
		err := d.Executor.View(ctx, id, func(s *crus.Session) error {
			ended = s.Completed
			return nil
		})
		return ended, errors.Is(err, crus.ErrSessionNotFound)
	}
	if _, err := d.Executor.Revision(ctx, id); err != nil {
		return false, errors.Is(err, crus.ErrSessionNotFound)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ended[id], false
}

// Run moves the virtual clock, drives the sessions and starts a new
// session pause (real time) after the last one ends, until ctx is
// cancelled. The first session must have been started (Start). A
// negative pause starts none: the sessions are the user's.
func (d *Demo) Run(ctx context.Context, pause time.Duration) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.Clock.Run(ctx, d.opts.Tick) }()
	go func() { defer wg.Done(); _ = d.driver.Run(ctx) }()
	defer wg.Wait()
	if pause < 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var doneAt time.Time
	for i, tick := 1, 0; ; tick++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		ended, gone := d.hasEnded(ctx, d.Session(), tick%fullReadEvery == fullReadEvery-1)
		if gone { // deleted after it ended
			doneAt = time.Time{}
			if _, err := d.next(ctx, i); err == nil {
				i++
			}
			continue
		}
		if !ended {
			continue
		}
		if doneAt.IsZero() {
			doneAt = time.Now()
		}
		if time.Since(doneAt) >= pause {
			doneAt = time.Time{}
			if _, err := d.next(ctx, i); err != nil {
				d.log.Warn("demo: next session", "err", err)
				continue
			}
			i++
		}
	}
}
