package crus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/wlm"
)

// Config holds the executor's settings. The zero value of every field is
// usable.
type Config struct {
	// Store keeps the session records. Nil means a new MemoryStore.
	Store Store
	// Mapper turns xnames into workload-manager node names. Nil means
	// NIDMapper on the group store, which must then implement
	// hsm.NIDResolver (the HSM client does).
	Mapper Mapper
	// Clock is the source of time. Nil means the real clock.
	Clock Clock
	// Logger receives structured logs. Nil means no logging.
	Logger *slog.Logger
	// OnEvent, if set, is called synchronously for every Event. It must not
	// block for long; it may call the Executor's methods.
	OnEvent func(Event)

	// WorkloadManagerType is the workload_manager_type this executor's
	// wlm.Manager serves. Empty means "slurm".
	WorkloadManagerType string
	// PollInterval is how often the world is observed while waiting.
	// Default 30s.
	PollInterval time.Duration
	// RetryInitial and RetryMax bound the backoff between retries of a
	// failed call; RetryTimeout bounds the time spent retrying one call.
	// Defaults 1s, 30s and 2m. Errors matching batch.ErrPermanent are not
	// retried.
	RetryInitial, RetryMax, RetryTimeout time.Duration
	// BootTimeSlack is the clock skew allowed when comparing a node's boot
	// time with the time its reboot was requested. Default 3s: Slurm
	// reports whole seconds, and a real slurmd was seen reporting a boot
	// time 1.7 s before it started. A stale boot time is hours old.
	BootTimeSlack time.Duration
	// MaxConcurrentCalls bounds the backend calls made at once while
	// observing. Default 4.
	MaxConcurrentCalls int
	// NewID returns the id of a new session. Nil means a random UUID.
	NewID func() string
}

func (c Config) withDefaults() Config {
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.WorkloadManagerType == "" {
		c.WorkloadManagerType = "slurm"
	}
	if c.PollInterval == 0 {
		c.PollInterval = 30 * time.Second
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = 2 * time.Minute
	}
	if c.BootTimeSlack == 0 {
		c.BootTimeSlack = 3 * time.Second
	}
	if c.MaxConcurrentCalls == 0 {
		c.MaxConcurrentCalls = 4
	}
	if c.NewID == nil {
		c.NewID = uuid.NewString
	}
	return c
}

// Validate reports settings that cannot work (negative durations).
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PollInterval", c.PollInterval}, {"RetryInitial", c.RetryInitial}, {"RetryMax", c.RetryMax},
		{"RetryTimeout", c.RetryTimeout}, {"BootTimeSlack", c.BootTimeSlack},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("crus: Config.%s must not be negative, got %s", d.name, d.v))
		}
	}
	if c.MaxConcurrentCalls < 0 {
		errs = append(errs, fmt.Errorf("crus: Config.MaxConcurrentCalls must not be negative, got %d", c.MaxConcurrentCalls))
	}
	if c.WorkloadManagerType != "" && !wlmTypeRE.MatchString(c.WorkloadManagerType) {
		errs = append(errs, fmt.Errorf("crus: Config.WorkloadManagerType %q is not a workload manager type", c.WorkloadManagerType))
	}
	return errors.Join(errs...)
}

// Executor carries out sessions: it checks and creates them, then drives
// each one through observe → plan → record → act until it completes. All
// I/O of crus happens here; the decisions are Plan's.
//
// An Executor is safe for concurrent use; it runs any number of sessions,
// each in its own call to Run.
type Executor struct {
	groups    hsm.GroupStore
	wlm       wlm.Manager
	boot      bos.Orchestrator
	cfg       Config
	store     Store
	clock     Clock
	log       *slog.Logger
	bootTimes bool
	jobEnder  wlm.JobEnder // nil: the workload manager cannot tell job ends

	mu      sync.Mutex
	running map[string]chan struct{} // wake-up channel of each session Run drives
}

// NewExecutor returns an Executor that drives sessions through the given
// group store, workload manager and boot orchestrator.
func NewExecutor(groups hsm.GroupStore, manager wlm.Manager, boot bos.Orchestrator, cfg Config) (*Executor, error) {
	if groups == nil || manager == nil || boot == nil {
		return nil, errors.New("crus: NewExecutor needs a group store, a workload manager and a boot orchestrator")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Mapper == nil {
		r, ok := groups.(hsm.NIDResolver)
		if !ok {
			return nil, errors.New("crus: Config.Mapper is nil and the group store cannot resolve NIDs (hsm.NIDResolver): give a Mapper")
		}
		cfg.Mapper = NIDMapper{Resolver: r}
	}
	e := &Executor{
		groups: groups, wlm: manager, boot: boot, cfg: cfg,
		store: cfg.Store, clock: cfg.Clock, log: cfg.Logger,
		running: map[string]chan struct{}{},
	}
	if r, ok := manager.(wlm.BootTimeReporter); ok {
		e.bootTimes = r.ReportsBootTime()
	}
	if j, ok := manager.(wlm.JobEnder); ok {
		e.jobEnder = j
	}
	return e, nil
}

// Get returns the session record with this id.
func (e *Executor) Get(ctx context.Context, id string) (*Session, error) {
	return e.store.Get(ctx, id)
}

// List returns every session record in the store.
func (e *Executor) List(ctx context.Context) ([]*Session, error) {
	return e.store.List(ctx)
}

// Create checks spec and the world, then records a new session in state
// CREATED without touching any node. The checks (pre-flight):
//
//   - the spec is valid and names this executor's workload manager type;
//   - the boot session template exists;
//   - the three groups exist, the upgrading group is empty, the failed
//     group is empty (unless Spec.ClearFailed), the starting group is not;
//   - every starting node maps to a workload-manager name the workload
//     manager knows;
//   - if the store is a Reserver, no session in progress holds any of the
//     starting nodes or the upgrading or failed group (ErrReserved names
//     the session and what it holds).
//
// Nodes that are not in service (drained, down, failed: for another reason)
// are recorded as skipped with the reason and never touched. A check that
// fails gives an error matching ErrPreflight (or ErrInvalidSpec) that lists
// every problem found, and nothing is changed anywhere. The starting
// group's members are read once, here: later edits of the group do not
// change the session.
func (e *Executor) Create(ctx context.Context, spec Spec) (*Session, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.WorkloadManagerType != e.cfg.WorkloadManagerType {
		return nil, &FieldError{Field: "workload_manager_type", Value: spec.WorkloadManagerType,
			Problem: fmt.Sprintf("%q is not known here: this executor drives %q", spec.WorkloadManagerType, e.cfg.WorkloadManagerType)}
	}
	log := e.log.With("starting_label", spec.StartingLabel)

	var problems []error
	var mu sync.Mutex
	problem := func(err error) {
		mu.Lock()
		problems = append(problems, err)
		mu.Unlock()
	}
	members := map[string][]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.cfg.MaxConcurrentCalls)
	g.Go(func() error {
		err := e.retry(gctx, "check template", func() error { return e.boot.CheckTemplate(gctx, spec.TemplateID) })
		switch {
		case errors.Is(err, bos.ErrTemplateNotFound):
			problem(fmt.Errorf("boot session template: %w", err))
		case err != nil:
			return fmt.Errorf("checking boot session template %q: %w", spec.TemplateID, err)
		}
		return nil
	})
	for _, l := range []struct{ role, label string }{
		{"starting", spec.StartingLabel}, {"upgrading", spec.UpgradingLabel}, {"failed", spec.FailedLabel},
	} {
		g.Go(func() error {
			var m []string
			err := e.retry(gctx, "read group", func() (err error) {
				m, err = e.groups.Members(gctx, l.label)
				return err
			})
			switch {
			case errors.Is(err, hsm.ErrGroupNotFound):
				problem(fmt.Errorf("%s group: %w", l.role, err))
			case err != nil:
				return fmt.Errorf("reading %s group %q: %w", l.role, l.label, err)
			default:
				mu.Lock()
				members[l.role] = m
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	starting, upgrading, failed := members["starting"], members["upgrading"], members["failed"]
	if len(upgrading) > 0 {
		problem(fmt.Errorf("%w: upgrading group %q must be empty, it has %d members: %s", ErrGroupNotEmpty, spec.UpgradingLabel, len(upgrading), abbreviate(upgrading, 10)))
	}
	if len(failed) > 0 && !spec.ClearFailed {
		problem(fmt.Errorf("%w: failed group %q must be empty (or ask for clear_failed), it has %d members: %s", ErrGroupNotEmpty, spec.FailedLabel, len(failed), abbreviate(failed, 10)))
	}
	if _, ok := members["starting"]; ok && len(starting) == 0 {
		problem(fmt.Errorf("%w: starting group %q is empty", ErrNoNodes, spec.StartingLabel))
	}
	if err := e.checkReserved(ctx, spec, starting, problem); err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, preflightError(problems)
	}
	starting = slices.Clone(starting)
	slices.Sort(starting)
	starting = slices.Compact(starting)

	var names map[string]string
	err := e.retry(ctx, "map node names", func() (err error) {
		names, err = mapNames(ctx, e.cfg.Mapper, starting)
		if perNode, rest := batch.Split(err); rest == nil && len(perNode) > 0 {
			return nil // reported below
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: mapping node names: %w", ErrPreflight, err)
	}
	var unmapped []string
	for _, x := range starting {
		if names[x] == "" {
			unmapped = append(unmapped, x)
		}
	}
	if len(unmapped) > 0 {
		return nil, preflightError([]error{fmt.Errorf("%w: %d starting nodes have no workload-manager name: %s", wlm.ErrNodeNotFound, len(unmapped), abbreviate(unmapped, 20))})
	}
	wnames := make([]string, len(starting))
	for i, x := range starting {
		wnames[i] = names[x]
	}
	var nodes []wlm.Node
	perNode, err := e.call(ctx, "read nodes", func() (err error) {
		nodes, err = e.wlm.Nodes(ctx, wnames)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the starting nodes from the workload manager: %w", err)
	}
	if len(perNode) > 0 {
		var unknown []string
		for _, x := range starting {
			if err, ok := perNode[names[x]]; ok {
				unknown = append(unknown, fmt.Sprintf("%s (%s: %v)", names[x], x, err))
			}
		}
		return nil, preflightError([]error{fmt.Errorf("%w: the workload manager does not know %d starting nodes: %s", wlm.ErrNodeNotFound, len(unknown), abbreviate(unknown, 20))})
	}
	state := make(map[string]wlm.Node, len(nodes))
	for _, n := range nodes {
		state[n.Name] = n
	}

	now := e.clock.Now()
	s := &Session{
		UpgradeID:  e.cfg.NewID(),
		Kind:       Kind,
		APIVersion: APIVersion,
		State:      StateCreated,
		Spec:       spec,
		Progress:   Progress{Stage: StageStarting, StageSince: now, CreatedAt: now},
	}
	if spec.ClearFailed && len(failed) > 0 {
		s.Progress.FailedToClear = slices.Clone(failed)
	}
	s.Progress.Nodes = make([]NodeRecord, len(starting))
	_, stepOf := spec.plannedSteps(len(starting), spec.StepSize)
	taken, skipped := 0, 0
	for i, x := range starting {
		r := NodeRecord{XName: x, Name: names[x], Phase: PhasePending, Since: now}
		w, ok := state[names[x]]
		switch {
		case !ok:
			r.Phase, r.Outcome, r.Finished = PhaseDone, OutcomeSkipped, now
			r.Reason = "not reported by the workload manager at session start"
			skipped++
		case !w.InService():
			r.Phase, r.Outcome, r.Finished = PhaseDone, OutcomeSkipped, now
			r.Reason = "not in service at session start: " + describe(w)
			skipped++
		default:
			if !spec.rolling() { // rolling numbers its batches as it takes them
				r.Step = stepOf(taken)
			}
			taken++
		}
		s.Progress.Nodes[i] = r
	}
	if taken == 0 {
		return nil, preflightError([]error{fmt.Errorf("%w: none of the %d nodes of starting group %q is in service", ErrNoNodes, len(starting), spec.StartingLabel)})
	}
	s.Progress.Steps, _ = spec.plannedSteps(taken, spec.StepSize)
	msg := fmt.Sprintf("Session created: %d nodes to upgrade in %d steps of at most %d", taken, s.Progress.Steps, spec.StepSize)
	if spec.rolling() {
		s.Progress.Steps = 0
		msg = fmt.Sprintf("Session created: %d nodes to upgrade, rolling, at most %d out of service at once", taken, spec.StepSize)
	}
	if skipped > 0 {
		msg += fmt.Sprintf("; %d nodes skipped (not in service)", skipped)
	}
	s.Messages = []string{msg}
	if err := e.createRecord(ctx, s); err != nil {
		return nil, err
	}
	log.Info("session created", "session", s.UpgradeID, "nodes", taken, "skipped", skipped, "steps", s.Progress.Steps)
	e.emit(Event{Time: now, Session: s.UpgradeID, Kind: EventCreated, Steps: s.Progress.Steps, Nodes: taken, Message: msg})
	return s, nil
}

func preflightError(problems []error) error {
	return fmt.Errorf("%w: %w", ErrPreflight, errors.Join(problems...))
}

// Delete cancels a session, as the original DELETE /session/{id} did, but
// without failing the nodes it never touched:
//
//   - nodes whose step had not begun stay in service, outcome untouched;
//   - nodes drained but not yet rebooting are resumed, outcome untouched;
//   - nodes already rebooting are seen through to their outcome;
//   - then the upgrading group is emptied of the session's nodes.
//
// Delete records the request (state DELETING) and returns; the session's
// Run carries it out (a session created but never run is finished at
// once). Deleting a completed session removes its record from the store.
// Delete returns the session record as it stands.
func (e *Executor) Delete(ctx context.Context, id string) (*Session, error) {
	for {
		s, err := e.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		now := e.clock.Now()
		switch {
		case s.Completed:
			if err := e.store.Delete(ctx, id); err != nil {
				return nil, err
			}
			e.log.Info("session record deleted", "session", id)
			return s, nil
		case s.Progress.Cancel:
			return s, nil
		}
		s.Progress.Cancel, s.Progress.CancelledAt, s.State = true, now, StateDeleting
		msg := "Deletion requested: nodes not yet rebooting return to service; nodes rebooting are seen through"
		if s.Progress.StartedAt.IsZero() && !e.isRunning(id) {
			// Nothing was touched: finish at once.
			s.Progress.FailedToClear = nil
			d, err := Plan(s, Observation{Now: now, UpgradingObserved: true})
			if err != nil {
				return nil, err
			}
			s.Apply(d, now)
			msg = "Deleted before it started: every node left untouched"
		}
		s.AddMessages(msg)
		err = e.store.Update(ctx, s)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		e.log.Info("session deletion requested", "session", id)
		e.emit(Event{Time: now, Session: id, Kind: EventCancel, Message: msg})
		e.wake(id)
		return s, nil
	}
}

// Pause stops the session from taking new nodes: nodes in flight finish,
// nothing new starts, until Resume. Pausing a paused session changes
// nothing. It returns the session record as it stands, or
// ErrSessionDone for a completed session.
func (e *Executor) Pause(ctx context.Context, id string) (*Session, error) {
	return e.flag(ctx, id, "pause", func(p *Progress, now time.Time) string {
		if p.Paused {
			return ""
		}
		p.Paused, p.PausedAt = true, now
		return "Pause requested: nodes in flight finish; no new node is taken until the session is resumed"
	})
}

// Resume lets a paused session take new nodes again.
func (e *Executor) Resume(ctx context.Context, id string) (*Session, error) {
	return e.flag(ctx, id, "resume", func(p *Progress, now time.Time) string {
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
	return e.flag(ctx, id, "approve", func(p *Progress, now time.Time) string {
		if p.Approved {
			return ""
		}
		p.Approved = true
		return "Canary approved: the session goes on at full step size"
	})
}

// flag changes the session's progress by f, with a compare-and-swap on the
// store as Delete does, and wakes its Run. f returns the message to record,
// or "" if there is nothing to change.
func (e *Executor) flag(ctx context.Context, id, what string, f func(p *Progress, now time.Time) string) (*Session, error) {
	for {
		s, err := e.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if s.Completed {
			return s, fmt.Errorf("%w: cannot %s %s", ErrSessionDone, what, id)
		}
		now := e.clock.Now()
		msg := f(&s.Progress, now)
		if msg == "" {
			return s, nil
		}
		s.AddMessages(msg)
		err = e.store.Update(ctx, s)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		e.log.Info(msg, "session", id)
		e.emit(Event{Time: now, Session: id, Kind: EventMessage, Message: msg})
		e.wake(id)
		return s, nil
	}
}

func (e *Executor) isRunning(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.running[id]
	return ok
}

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

// maxReplans bounds how many times in a row the executor plans again at
// once (without waiting for the poll interval) after a decision moved the
// session on.
const maxReplans = 64

// run is the state of one Run call.
type run struct {
	s      *Session
	xnames map[string]string // WLM name -> xname
	at     map[string]int    // xname -> position in s.Progress.Nodes (fixed for a session)
	idx    *nodeIndex        // of s; rebuilt whenever s is replaced

	obsNodes map[string]wlm.Node // Observation.Nodes, reused
	log      *slog.Logger
	wakeC    chan struct{}
}

// indexed returns the index of the run's session record.
func (r *run) indexed() *nodeIndex {
	if !r.idx.valid(r.s) {
		r.idx = newNodeIndex(r.s)
	}
	return r.idx
}

// name returns the workload-manager name of the node with this xname.
func (r *run) name(xname string) string {
	if i, ok := r.at[xname]; ok && i < len(r.s.Progress.Nodes) {
		return r.s.Progress.Nodes[i].Name
	}
	return r.s.Node(xname).Name
}

// Run drives the session to completion: it observes the world, plans,
// records the decision, acts, records the results, and waits; again and
// again. It returns the final record once the session has completed (at
// once if it already has), or the record as it stands and ctx's error when
// ctx is cancelled. Cancelling ctx stops the executor between two calls;
// the session stays as recorded and a later Run (by any executor on the
// same store) carries on from there.
//
// Failures of single nodes become those nodes' outcomes; failing backend
// calls are retried; Run itself fails only when the store cannot record
// progress, or the record is corrupt.
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

	s, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	r := &run{s: s, log: e.log.With("session", id), wakeC: wakeC}
	r.index()
	if s.Completed {
		return s, nil
	}
	now := e.clock.Now()
	msg := "Session started"
	if s.State != StateCreated {
		msg = "Session taken up by an executor: observing the world again"
	}
	if err := e.mutate(ctx, r, func(s *Session) {
		if s.State == StateCreated {
			s.State = StateUpdating
		}
		if s.Progress.StartedAt.IsZero() {
			s.Progress.StartedAt = now
		}
		s.AddMessages(msg)
	}); err != nil {
		return r.s, err
	}
	r.log.Info(msg)
	e.emit(Event{Time: now, Session: id, Kind: EventStarted, Step: r.s.Progress.Step, Steps: r.s.Progress.Steps, Stage: r.s.Progress.Stage, Message: msg})

	replans := 0
	for {
		if err := ctx.Err(); err != nil {
			return r.s, err
		}
		obs, err := e.observe(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return r.s, ctx.Err()
			}
			r.log.Warn("observation failed; trying again after the poll interval", "err", err)
			e.emit(Event{Time: e.clock.Now(), Session: id, Kind: EventObserveErr, Err: err})
			if err := e.sleep(ctx, r, e.cfg.PollInterval); err != nil {
				return r.s, err
			}
			if err := e.refresh(ctx, r); err != nil {
				return r.s, err
			}
			continue
		}
		d, err := planWith(r.s, obs, r.indexed())
		if err != nil {
			return r.s, err
		}
		moved := d.Transitions(r.s)
		if d.Changed(r.s) {
			ok, err := e.record(ctx, r, d, obs.Now, false)
			if err != nil {
				return r.s, err
			}
			if !ok {
				continue // someone else changed the session: plan again
			}
		}
		if d.Done {
			c := r.s.Counts()
			r.log.Info("session finished", "result", r.s.Progress.Result, "upgraded", c.Upgraded, "failed", c.Failed, "skipped", c.Skipped, "untouched", c.Untouched)
			e.emit(Event{Time: obs.Now, Session: id, Kind: EventDone, Step: r.s.Progress.Step, Steps: r.s.Progress.Steps, Stage: StageDone, Message: string(r.s.Progress.Result)})
			return r.s, nil
		}
		failed := map[string]bool{}
		for _, a := range d.Actions {
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
		if moved && replans < maxReplans {
			replans++
			continue
		}
		replans = 0
		wait := e.cfg.PollInterval
		if !d.Wake.IsZero() {
			if until := d.Wake.Sub(e.clock.Now()) + time.Millisecond; until < wait {
				wait = max(until, time.Millisecond)
			}
		}
		if err := e.sleep(ctx, r, wait); err != nil {
			return r.s, err
		}
		if err := e.refresh(ctx, r); err != nil {
			return r.s, err
		}
	}
}

// refresh reads the session again if someone else changed it while Run
// waited (a Delete, from this process or another). A store that cannot be
// read is not fatal: Run carries on with its copy, and a stale write would
// be refused anyway. A session removed from the store stops Run.
func (e *Executor) refresh(ctx context.Context, r *run) error {
	if rr, ok := e.store.(RevisionReader); ok {
		rev, err := rr.Revision(ctx, r.s.UpgradeID)
		switch {
		case err == nil && rev == r.s.Revision:
			return nil
		case errors.Is(err, ErrSessionNotFound):
			return err
		}
	}
	fresh, err := e.store.Get(ctx, r.s.UpgradeID)
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

// index builds the run's map of workload-manager names.
func (r *run) index() {
	r.xnames = make(map[string]string, len(r.s.Progress.Nodes))
	r.at = make(map[string]int, len(r.s.Progress.Nodes))
	for i, n := range r.s.Progress.Nodes {
		r.xnames[n.Name] = n.XName
		r.at[n.XName] = i
	}
}

func (e *Executor) sleep(ctx context.Context, r *run, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-e.clock.After(d):
	case <-r.wakeC:
	}
	return nil
}

// record applies a decision to the session and stores it before anything
// it announces is done. If the stored session was changed by someone else
// (ErrConflict), the fresh record is loaded; a settled result (fact) is
// applied to it and stored, while a plan is dropped and record reports
// false, so that the caller plans again from the fresh record.
func (e *Executor) record(ctx context.Context, r *run, d Decision, now time.Time, fact bool) (bool, error) {
	events := e.eventsOf(r.s, d, now)
	for {
		r.s.Apply(d, now)
		if r.idx.valid(r.s) {
			r.idx.update(d)
		}
		update := func() error { return e.store.Update(ctx, r.s) }
		if m, ok := e.store.(NodeUpdater); ok {
			// r.s is the store's record at its revision, changed since
			// only by this Apply.
			changed := make([]int, 0, len(d.Changes))
			for _, c := range d.Changes {
				if i, ok := r.at[c.XName]; ok {
					changed = append(changed, i)
				}
			}
			update = func() error { return m.UpdateNodes(ctx, r.s, changed) }
		}
		err := e.retry(ctx, "store session", update)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrConflict) {
			return false, fmt.Errorf("recording session %s: %w", r.s.UpgradeID, err)
		}
		fresh, gerr := e.store.Get(ctx, r.s.UpgradeID)
		if gerr != nil {
			return false, fmt.Errorf("reloading session %s after a conflict: %w", r.s.UpgradeID, gerr)
		}
		if err := fresh.check(); err != nil {
			return false, err
		}
		r.s = fresh
		r.log.Info("session changed by someone else; reloaded", "revision", fresh.Revision)
		if !fact || fresh.Completed {
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

// mutate changes the session by f and stores it, reloading and applying f
// again on a conflict.
func (e *Executor) mutate(ctx context.Context, r *run, f func(*Session)) error {
	for {
		f(r.s)
		err := e.retry(ctx, "store session", func() error { return e.store.Update(ctx, r.s) })
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return fmt.Errorf("recording session %s: %w", r.s.UpgradeID, err)
		}
		fresh, gerr := e.store.Get(ctx, r.s.UpgradeID)
		if gerr != nil {
			return fmt.Errorf("reloading session %s after a conflict: %w", r.s.UpgradeID, gerr)
		}
		if err := fresh.check(); err != nil {
			return err
		}
		r.s = fresh
	}
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
	for _, c := range d.Changes {
		if n := s.Node(c.XName); n != nil && c.Phase == PhaseDone && n.Phase != PhaseDone {
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

func (e *Executor) emit(ev Event) {
	if e.cfg.OnEvent != nil {
		e.cfg.OnEvent(ev)
	}
}

// observe reads what the plan needs, fanning the calls out.
func (e *Executor) observe(ctx context.Context, r *run) (Observation, error) {
	s := r.s
	sc, pos := scopeWith(s, r.indexed())
	if r.obsNodes == nil {
		r.obsNodes = make(map[string]wlm.Node, len(sc.Nodes))
	}
	clear(r.obsNodes) // reused: the planner keeps nothing of an observation
	obs := Observation{
		Now:           e.clock.Now(),
		Nodes:         r.obsNodes,
		Unknown:       map[string]string{},
		Boots:         make(map[string]bos.Status, len(sc.Boots)),
		MissingBoots:  map[string]bool{},
		BootTimes:     e.bootTimes,
		BootTimeSlack: e.cfg.BootTimeSlack,
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.cfg.MaxConcurrentCalls)
	if len(sc.Nodes) > 0 {
		g.Go(func() error {
			names := make([]string, len(pos))
			for k, i := range pos {
				names[k] = s.Progress.Nodes[i].Name
			}
			var nodes []wlm.Node
			perNode, err := e.call(gctx, "read nodes", func() (err error) {
				nodes, err = e.wlm.Nodes(gctx, names)
				return err
			})
			if err != nil {
				return fmt.Errorf("reading %d nodes from the workload manager: %w", len(names), err)
			}
			mu.Lock()
			defer mu.Unlock()
			// Nodes come back in the order asked, less the unknown ones:
			// match them by position, by name if an adapter reorders.
			k := 0
			for _, n := range nodes {
				for k < len(names) && names[k] != n.Name && perNode[names[k]] != nil {
					k++
				}
				if k < len(names) && names[k] == n.Name {
					obs.Nodes[sc.Nodes[k]] = n
					k++
				} else if x, ok := r.xnames[n.Name]; ok {
					obs.Nodes[x] = n
				}
			}
			for name, err := range perNode {
				if x, ok := r.xnames[name]; ok && errors.Is(err, wlm.ErrNodeNotFound) {
					delete(obs.Nodes, x)
					obs.Unknown[x] = err.Error()
				}
			}
			return nil
		})
	}
	for _, b := range sc.Boots {
		g.Go(func() error {
			var st bos.Status
			err := e.retry(gctx, "boot session status", func() (err error) {
				st, err = e.boot.Status(gctx, b.Name, b.Nodes)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, bos.ErrSessionNotFound):
				obs.MissingBoots[b.Name] = true
			case err != nil:
				return fmt.Errorf("reading boot session %s: %w", b.Name, err)
			default:
				obs.Boots[b.Name] = st
			}
			return nil
		})
	}
	if len(sc.JobEnds) > 0 && e.jobEnder != nil {
		g.Go(func() error {
			names := make([]string, len(sc.JobEnds))
			for i, x := range sc.JobEnds {
				names[i] = r.name(x)
			}
			var ends map[string]time.Time
			_, err := e.call(gctx, "job ends", func() (err error) {
				ends, err = e.jobEnder.JobEnds(gctx, names)
				return err
			})
			if err != nil {
				return fmt.Errorf("reading the job ends of %d nodes: %w", len(names), err)
			}
			byX := make(map[string]time.Time, len(ends))
			for name, t := range ends {
				if x, ok := r.xnames[name]; ok {
					byX[x] = t
				}
			}
			mu.Lock()
			obs.JobEnds = byX
			mu.Unlock()
			return nil
		})
	}
	if sc.Upgrading {
		g.Go(func() error {
			var m []string
			err := e.retry(gctx, "read group", func() (err error) {
				m, err = e.groups.Members(gctx, s.UpgradingLabel)
				return err
			})
			if errors.Is(err, hsm.ErrGroupNotFound) {
				err, m = nil, nil // no group, no members left in it
			}
			if err != nil {
				return fmt.Errorf("reading upgrading group %q: %w", s.UpgradingLabel, err)
			}
			mu.Lock()
			obs.Upgrading, obs.UpgradingObserved = m, true
			mu.Unlock()
			return nil
		})
	}
	return obs, g.Wait()
}

// act carries out one action and reports what came of it. Nodes in failed
// that the action must skip are left out; nodes it fails for are added.
func (e *Executor) act(ctx context.Context, r *run, a Action, failed map[string]bool) (ActionResult, error) {
	res := ActionResult{Action: a}
	for _, x := range a.Nodes {
		if !a.SkipFailed || !failed[x] {
			res.Nodes = append(res.Nodes, x)
		}
	}
	if len(res.Nodes) == 0 {
		return res, nil
	}
	names := func() []string {
		out := make([]string, len(res.Nodes))
		for i, x := range res.Nodes {
			out[i] = r.name(x)
		}
		return out
	}
	byWLMName := func(perNode map[string]error, err error) (map[string]error, error) {
		out := map[string]error{}
		for name, nerr := range perNode {
			x, ok := r.xnames[name]
			if !ok {
				err = errors.Join(err, fmt.Errorf("error for node %s, which the call did not name: %w", name, nerr))
				continue
			}
			out[x] = nerr
		}
		return out, err
	}
	what := string(a.Kind)
	var err error
	switch a.Kind {
	case ActAddMembers:
		res.PerNode, err = e.call(ctx, what, func() error { return e.groups.AddMembers(ctx, a.Label, res.Nodes) })
	case ActRemoveMembers:
		res.PerNode, err = e.call(ctx, what, func() error { return e.groups.RemoveMembers(ctx, a.Label, res.Nodes) })
	case ActDrain:
		res.PerNode, err = byWLMName(e.call(ctx, what, func() error { return e.wlm.Drain(ctx, names(), a.Reason) }))
	case ActResume:
		res.PerNode, err = byWLMName(e.call(ctx, what, func() error { return e.wlm.Resume(ctx, names()) }))
	case ActFail:
		// Both halves, always: a node refused by one is still failed by
		// the other.
		inGroup, gerr := e.call(ctx, what, func() error { return e.groups.AddMembers(ctx, a.Label, res.Nodes) })
		inWLM, werr := byWLMName(e.call(ctx, what, func() error { return e.wlm.Fail(ctx, names(), a.Reason) }))
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
		err = e.retry(ctx, what, func() error { return e.boot.Reboot(ctx, a.Reboot) })
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
func (e *Executor) call(ctx context.Context, what string, f func() error) (map[string]error, error) {
	var perNode map[string]error
	err := e.retry(ctx, what, func() error {
		var rest error
		perNode, rest = batch.Split(f())
		return rest
	})
	return perNode, err
}

// retry runs f until it succeeds, fails permanently (batch.ErrPermanent),
// ctx ends, or RetryTimeout passes, waiting on the executor's clock.
func (e *Executor) retry(ctx context.Context, what string, f func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = e.cfg.RetryInitial
	b.MaxInterval = e.cfg.RetryMax
	b.MaxElapsedTime = e.cfg.RetryTimeout
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
		case batch.IsPermanent(err), errors.Is(err, ErrConflict):
			return backoff.Permanent(err)
		}
		return err
	}
	notify := func(err error, next time.Duration) {
		e.log.Debug("retrying", "call", what, "err", err, "in", next)
	}
	return backoff.RetryNotifyWithTimer(op, backoff.WithContext(b, ctx), notify, &clockTimer{clock: e.clock})
}
