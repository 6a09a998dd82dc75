package crus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

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
	// InFlightPollInterval is how often, between two full observations,
	// the nodes in flight alone are looked at (one workload-manager call;
	// a boot session is read only when one of its nodes shows a new boot
	// time), so that a node back from its reboot is resumed within
	// seconds. Default PollInterval / 2 (at least 1s); equal to
	// PollInterval, or more, turns it off.
	InFlightPollInterval time.Duration
	// RetryInitial and RetryMax bound the backoff between retries of a
	// failed call; RetryTimeout bounds the time spent retrying one call,
	// and all the calls of one observation together (a part that cannot
	// be read by then is left out of it, and the plan acts on the rest).
	// Defaults 1s, 30s and 2m. Errors matching batch.ErrPermanent are not
	// retried.
	RetryInitial, RetryMax, RetryTimeout time.Duration
	// CallTimeout bounds each attempt of a call to HSM, BOS or the
	// workload manager, and of a run's calls to the Store: an attempt
	// still running after it has its ctx cancelled (with cause
	// ErrCallTimeout) and counts as failed, to be retried within
	// RetryTimeout (a store write cut short that landed all the same
	// shows as ErrConflict at the next attempt: every write is a
	// compare-and-swap). It runs on the wall clock, whatever
	// Clock is: it bounds how long a call really blocks the run. An
	// adapter must return soon after its ctx ends. Default 10m: above any
	// call that is only slow (the clients of this module bound theirs
	// lower), so it ends only calls that hang. With the scheduled
	// strategy, a call longer than half the reservations' lead (6 min at
	// the defaults) can let one begin while the run waits for it: set it
	// below that if an adapter may hang.
	CallTimeout time.Duration
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
	if c.InFlightPollInterval == 0 {
		c.InFlightPollInterval = max(c.PollInterval/2, time.Second)
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
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
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

// Validate reports settings that cannot work: negative durations or
// MaxConcurrentCalls, a PollInterval, InFlightPollInterval, RetryInitial
// or CallTimeout set below its minimum (MinPollInterval, MinRetryInitial,
// MinCallTimeout), and a malformed WorkloadManagerType.
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PollInterval", c.PollInterval}, {"InFlightPollInterval", c.InFlightPollInterval}, {"RetryInitial", c.RetryInitial}, {"RetryMax", c.RetryMax},
		{"RetryTimeout", c.RetryTimeout}, {"CallTimeout", c.CallTimeout}, {"BootTimeSlack", c.BootTimeSlack},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("crus: Config.%s must not be negative, got %s", d.name, d.v))
		}
	}
	// A poll reads the workload manager and the boot orchestrator; a
	// retry calls a backend that just failed. Below these, a typo (a
	// number of nanoseconds) would flood them.
	for _, d := range []struct {
		name     string
		v, least time.Duration
	}{
		{"PollInterval", c.PollInterval, MinPollInterval}, {"InFlightPollInterval", c.InFlightPollInterval, MinPollInterval},
		{"RetryInitial", c.RetryInitial, MinRetryInitial}, {"CallTimeout", c.CallTimeout, MinCallTimeout},
	} {
		if d.v > 0 && d.v < d.least {
			errs = append(errs, fmt.Errorf("crus: Config.%s must be at least %s (0: the default), got %s", d.name, d.least, d.v))
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

// The shortest Config.PollInterval and InFlightPollInterval, the
// shortest Config.RetryInitial and the shortest Config.CallTimeout that
// Validate accepts.
const (
	MinPollInterval = 100 * time.Millisecond
	MinRetryInitial = time.Millisecond
	MinCallTimeout  = time.Second
)

// DefaultCallTimeout is Config.CallTimeout's default.
const DefaultCallTimeout = 10 * time.Minute

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
	jobEnder  wlm.JobEnder  // nil: the workload manager cannot tell job ends
	words     wlm.Describer // the workload manager's words for nodes' conditions
	scheduler wlm.Scheduler // nil: the workload manager cannot book nodes
	steerer   wlm.Steerer   // nil: cannot book, or cannot steer (see steer.go)

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
	e.words = wlm.DescriberOf(manager)
	if sch, ok := manager.(wlm.Scheduler); ok {
		e.scheduler = sch
		if st, ok := manager.(wlm.Steerer); ok {
			e.steerer = st
		}
	}
	return e, nil
}

// Get returns the session record with this id.
func (e *Executor) Get(ctx context.Context, id string) (*Session, error) {
	return e.store.Get(ctx, id)
}

// Revision returns the revision of the session with this id (see
// Session.Revision), or ErrSessionNotFound. It reads only the revision
// when the store can tell it (RevisionReader), and the whole record
// otherwise: a surface that polls a session (an event stream, a scrape)
// reads the record again only when this moved.
func (e *Executor) Revision(ctx context.Context, id string) (int64, error) {
	if rr, ok := e.store.(RevisionReader); ok {
		return rr.Revision(ctx, id)
	}
	s, err := e.store.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	return s.Revision, nil
}

// Revisions returns the revision of every session, by id, when the store
// can tell them without reading the records (RevisionLister); otherwise
// it returns an error matching errors.ErrUnsupported, and the caller
// lists the records (List, ViewAll). A surface that lists the sessions
// again and again reads again, with Get or View, only those whose
// revision moved and those it did not know.
func (e *Executor) Revisions(ctx context.Context) (map[string]int64, error) {
	if rl, ok := e.store.(RevisionLister); ok {
		return rl.Revisions(ctx)
	}
	return nil, fmt.Errorf("crus: the store cannot list revisions (RevisionLister): %w", errors.ErrUnsupported)
}

// View calls fn with the record of the session with this id and returns
// fn's error, or returns ErrSessionNotFound. fn must not change the
// record, nor keep it or any of its slices after it returns (its strings
// it may keep). When the store is a Viewer, fn sees the stored record,
// not a copy, and should be quick and must not call the store nor the
// Executor; otherwise it gets a copy (Get).
func (e *Executor) View(ctx context.Context, id string, fn func(s *Session) error) error {
	if v, ok := e.store.(Viewer); ok {
		return v.View(ctx, id, fn)
	}
	s, err := e.store.Get(ctx, id)
	if err != nil {
		return err
	}
	return fn(s)
}

// ViewAll calls fn with the record of every session, in List's order, on
// View's terms, and stops at fn's first error, which it returns. When
// the store is a Viewer, fn sees the stored records, not copies;
// otherwise it gets copies (List).
func (e *Executor) ViewAll(ctx context.Context, fn func(s *Session) error) error {
	if v, ok := e.store.(Viewer); ok {
		return v.ViewAll(ctx, fn)
	}
	return ViewList(ctx, e.store, fn)
}

// ViewList calls fn with a copy of every session of st, as List returns
// them, and stops at fn's first error, which it returns: Viewer.ViewAll
// for a store that cannot list its records in place.
func ViewList(ctx context.Context, st Store, fn func(s *Session) error) error {
	list, err := st.List(ctx)
	if err != nil {
		return err
	}
	for _, s := range list {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// List returns every session record in the store.
func (e *Executor) List(ctx context.Context) ([]*Session, error) {
	return e.store.List(ctx)
}

// maxReplans bounds how many times in a row the executor plans again at
// once (without waiting for the poll interval) after a decision moved the
// session on.
const maxReplans = 64

func (e *Executor) emit(ev Event) {
	if e.cfg.OnEvent != nil {
		e.cfg.OnEvent(ev)
	}
}
