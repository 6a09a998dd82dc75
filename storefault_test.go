package crus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
)

// The store as a backend that fails: it cannot be reached for a while, or
// it carries out a write and its answer is lost (a connection cut after
// the request went, as a remote store's can be).

// errStoreDown and errStoreAnswerLost are the errors of faultyStore.
var (
	errStoreDown       = errors.New("test: the store cannot be reached")
	errStoreAnswerLost = errors.New("test: the store's answer was lost (the write was carried out)")
)

// storeFault is a window of virtual time in which the store fails.
type storeFault struct {
	// kind: "write" (writes fail, storing nothing), "read" (reads fail),
	// "down" (both), "lost" (writes are carried out, then fail).
	kind        string
	from, until time.Time
}

// innerStore is what faultyStore needs of the store it wraps.
type innerStore interface {
	crus.Store
	crus.RevisionReader
	crus.Reserver
}

// faultyStore is a store that fails in windows of the World's virtual
// time. It forwards Store, RevisionReader and Reserver only, so the
// executor writes through Update. A write whose answer is lost is carried
// out on a copy: the caller's record keeps its revision, as a client that
// never had the answer.
type faultyStore struct {
	inner innerStore
	w     *fake.World

	mu     sync.Mutex
	faults []storeFault
	failed map[string]int // calls failed, by kind
}

var (
	_ crus.Store          = (*faultyStore)(nil)
	_ crus.Reserver       = (*faultyStore)(nil)
	_ crus.RevisionReader = (*faultyStore)(nil)
)

func newFaultyStore(inner innerStore, w *fake.World, faults ...storeFault) *faultyStore {
	return &faultyStore{inner: inner, w: w, faults: faults, failed: map[string]int{}}
}

// add adds a window of faults.
func (fs *faultyStore) add(f storeFault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.faults = append(fs.faults, f)
}

// fault returns the kind of the fault under way now for a read or a
// write, or "".
func (fs *faultyStore) fault(write bool) string {
	now := fs.w.Now()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.faults {
		if now.Before(f.from) || !now.Before(f.until) {
			continue
		}
		switch {
		case f.kind == "down", f.kind == "write" && write, f.kind == "read" && !write:
			fs.failed["down"]++
			return "down"
		case f.kind == "lost" && write:
			fs.failed["lost"]++
			return "lost"
		}
	}
	return ""
}

func (fs *faultyStore) failures(kind string) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.failed[kind]
}

func (fs *faultyStore) read() error {
	if fs.fault(false) != "" {
		return errStoreDown
	}
	return nil
}

// write carries out do on s, or on a copy of s whose answer is lost, or
// fails.
func (fs *faultyStore) write(s *crus.Session, do func(s *crus.Session) error) error {
	switch fs.fault(true) {
	case "down":
		return errStoreDown
	case "lost":
		if err := do(s.Clone()); err != nil {
			return err
		}
		return errStoreAnswerLost
	}
	return do(s)
}

func (fs *faultyStore) Create(ctx context.Context, s *crus.Session) error {
	return fs.write(s, func(s *crus.Session) error { return fs.inner.Create(ctx, s) })
}

func (fs *faultyStore) Get(ctx context.Context, id string) (*crus.Session, error) {
	if err := fs.read(); err != nil {
		return nil, err
	}
	return fs.inner.Get(ctx, id)
}

func (fs *faultyStore) Update(ctx context.Context, s *crus.Session) error {
	return fs.write(s, func(s *crus.Session) error { return fs.inner.Update(ctx, s) })
}

func (fs *faultyStore) List(ctx context.Context) ([]*crus.Session, error) {
	if err := fs.read(); err != nil {
		return nil, err
	}
	return fs.inner.List(ctx)
}

func (fs *faultyStore) Delete(ctx context.Context, id string) error {
	if fs.fault(true) == "down" {
		return errStoreDown
	}
	return fs.inner.Delete(ctx, id)
}

func (fs *faultyStore) Revision(ctx context.Context, id string) (int64, error) {
	if err := fs.read(); err != nil {
		return 0, err
	}
	return fs.inner.Revision(ctx, id)
}

func (fs *faultyStore) Reservations(ctx context.Context) ([]crus.Reservation, error) {
	if err := fs.read(); err != nil {
		return nil, err
	}
	return fs.inner.Reservations(ctx)
}

func (fs *faultyStore) CreateReserved(ctx context.Context, s *crus.Session) error {
	return fs.write(s, func(s *crus.Session) error { return fs.inner.CreateReserved(ctx, s) })
}

// runAsDriver runs the session as a crus.Driver would: a Run that fails
// on the store is run again after retryAfter of the World's time, until
// the session completes (at most tries runs). It returns the final record
// and how many runs failed.
func runAsDriver(t tb, w *fake.World, ex *crus.Executor, id string, retryAfter time.Duration, tries int) (*crus.Session, int) {
	t.Helper()
	for failed := 0; failed < tries; failed++ {
		final, err := ex.Run(context.Background(), id)
		if err == nil {
			return final, failed
		}
		require.True(t, errors.Is(err, errStoreDown) || errors.Is(err, errStoreAnswerLost), "a run fails only for the store: %v", err)
		<-w.After(retryAfter)
	}
	t.Fatalf("the session did not complete in %d runs", tries)
	return nil, tries
}

// TestStoreFaults: the store cannot be reached for a while (for writes,
// for reads or both; shorter and longer than a retry timeout), or it
// carries out writes whose answers are lost. The session completes with
// every node upgraded once and its invariants held: a write whose answer
// was lost reads as a conflict at its next attempt, and the record read
// again shows it written.
func TestStoreFaults(t *testing.T) {
	for _, kind := range []string{"write", "read", "down", "lost"} {
		// Windows of a minute every seven (within a retry timeout), or
		// two of 90 minutes.
		for _, c := range []struct{ span, every time.Duration }{{time.Minute, 7 * time.Minute}, {90 * time.Minute, 2 * time.Hour}} {
			t.Run(fmt.Sprint(kind, "/", c.span), func(t *testing.T) {
				for seed := range uint64(8) {
					e := newEnv(t, fake.ClusterOptions{Nodes: 10, Busy: 0.6, MaxJob: 2 * time.Hour, Options: fake.Options{Seed: seed}}, 3)
					start := e.w.Now()
					var faults []storeFault
					for at := 2 * time.Minute; at < 4*time.Hour; at += c.every {
						faults = append(faults, storeFault{kind: kind, from: start.Add(at), until: start.Add(at + c.span)})
					}
					fs := newFaultyStore(e.store, e.w, faults...)
					e.cfg.Store = fs
					e.ex = e.executor()
					s := e.create()
					final, _ := runAsDriver(t, e.w, e.ex, s.UpgradeID, 30*time.Second, 1000)
					require.True(t, final.Completed)
					e.check(final)
					assert.Equal(t, 10, final.Counts().Upgraded, "seed %d", seed)
					for _, x := range e.w.XNames() {
						ns, _ := e.w.Node(x)
						assert.Equal(t, 1, ns.Reboots, "seed %d: %s rebooted once", seed, x)
					}
					assert.Positive(t, fs.failures(map[bool]string{true: "lost", false: "down"}[kind == "lost"]), "seed %d: the store failed", seed)
					// A write whose answer was lost is found recorded
					// when the record is read again: it is not applied
					// and written again, and again, for as long as
					// answers are lost (about 7,800 writes a seed over
					// the 90-minute windows before).
					assert.Less(t, fs.failures("lost"), 200, "seed %d: writes whose answers were lost", seed)
				}
			})
		}
	}
}

// TestScheduledStoreDown: the store cannot be reached for two hours
// while the scheduled strategy holds reservations. The run gives up on
// recording after a retry timeout; before it stops it deletes the
// session's reservations (nothing would move them on: one that began
// would hold its idle nodes out on top of the cap), and the next run,
// once the store is back, books anew. While a write is retried, the
// reservations are kept from beginning as between any other calls.
//
// With "read" faults, the run is stopped first (a crash, leaving its
// reservations): the runs that follow cannot read the record, and delete
// the reservations the workload manager lists under the session's name.
func TestScheduledStoreDown(t *testing.T) {
	stopped := 0
	for seed := range uint64(30) {
		kind := []string{"write", "down", "read"}[seed%3]
		t.Run(fmt.Sprint(kind, "/seed", seed), func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 16, Busy: 0.8, MaxJob: 3 * time.Hour, Options: fake.Options{Seed: seed}}, 3)
			e.w.KeepBusy(0.6, 3*time.Hour, 10*time.Minute, e.w.Now().Add(12*time.Hour))
			e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyScheduled}
			start := e.w.Now()
			fs := newFaultyStore(e.store, e.w, storeFault{kind: kind, from: start.Add(20 * time.Minute), until: start.Add(140 * time.Minute)})
			e.cfg.Store = fs
			e.ex = e.executor()
			s := e.create()
			if kind == "read" {
				// A crash: the run stops and cannot delete its
				// reservations on its way out (a stopped run would).
				ctx, cancel := context.WithCancel(context.Background())
				crashAt(e.w, start.Add(19*time.Minute), cancel)
				_, err := e.ex.Run(ctx, s.UpgradeID)
				require.ErrorIs(t, err, context.Canceled)
				require.NotEmpty(t, e.w.Reservations("crus-"), "the crashed run left reservations")
				<-e.w.After(5 * time.Minute) // down until the store cannot be read
				e.ex = e.executor()
			}
			// Run again 20 minutes after a run stops (a Driver's
			// RetryAfter, or an operator): longer than half the
			// reservations' lead, so that the stopped run must delete
			// them itself.
			final, failed := runAsDriver(t, e.w, e.ex, s.UpgradeID, 20*time.Minute, 1000)
			if failed > 0 {
				stopped++
			}
			e.check(final)
			assert.Equal(t, 16, final.Counts().Upgraded+final.Counts().Failed)
			assert.LessOrEqual(t, e.w.MaxOut(), 3, "the cap")
			assert.Empty(t, e.w.Reservations("crus-"))
		})
	}
	assert.Positive(t, stopped, "some runs stopped on the store")
}

// TestTakeUpWhileAnswersLost: a run takes a session up while the store
// carries out writes and loses their answers for two hours. Its first
// write (the take-up's message) is found recorded when it conflicts: it
// used to be applied again, conflict again, and so on for the two hours,
// the run taking nothing up meanwhile (a property case had a crashed
// run's reservations begin on top of the cap while it looped).
func TestTakeUpWhileAnswersLost(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 8, Busy: 0.6, MaxJob: 2 * time.Hour}, 2)
	start := e.w.Now()
	fs := newFaultyStore(e.store, e.w, storeFault{kind: "lost", from: start.Add(10 * time.Minute), until: start.Add(130 * time.Minute)})
	e.cfg.Store = fs
	e.ex = e.executor()
	s := e.create()
	ctx, cancel := context.WithCancel(context.Background())
	e.w.Schedule(start.Add(20*time.Minute), cancel)
	_, err := e.ex.Run(ctx, s.UpgradeID)
	require.ErrorIs(t, err, context.Canceled)
	final, err := e.executor().Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	assert.Len(t, messagesWith(final, "Session taken up"), 1)
	assert.Less(t, fs.failures("lost"), 200, "writes whose answers were lost")
}

// TestCreateThroughStoreFaults: a session created while the store loses
// the answers of the writes it carries out, or refuses writes for a
// minute, is created once, and Create says so: it used to report the
// failure of a record that existed (and that a Driver would run), and
// creating it again was refused with the nodes held by it.
func TestCreateThroughStoreFaults(t *testing.T) {
	for _, kind := range []string{"lost", "write"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 6, Busy: 0.5, MaxJob: time.Hour}, 2)
			start := e.w.Now()
			fs := newFaultyStore(e.store, e.w, storeFault{kind: kind, from: start, until: start.Add(time.Minute)})
			e.cfg.Store = fs
			e.ex = e.executor()
			s := e.create()
			all, err := e.store.List(context.Background())
			require.NoError(t, err)
			require.Len(t, all, 1)
			assert.Equal(t, s.UpgradeID, all[0].UpgradeID)
			assert.Equal(t, all[0].Revision, s.Revision, "Create returns the record as stored")
			assert.Positive(t, fs.failures(map[bool]string{true: "lost", false: "down"}[kind == "lost"]))
			final, err := e.ex.Run(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			e.check(final)
			assert.Equal(t, 6, final.Counts().Upgraded)
		})
	}
}

// corruptStore answers every read of a whole record with damage, as a
// store does for a record an old bug or a disk wrote wrong.
type corruptStore struct {
	innerStore
	reads atomic.Int64
}

func (cs *corruptStore) Get(ctx context.Context, id string) (*crus.Session, error) {
	cs.reads.Add(1)
	return nil, fmt.Errorf("%w %s: chunk 3: unexpected end of JSON input", crus.ErrCorruptSession, id)
}

// TestCorruptRecordStopsAtOnce: a damaged record reads the same however
// often it is read, so Run stops at its first read with the store's
// error, rather than reading it again for a retry timeout; it touches no
// node. (A Driver runs it again after its RetryAfter, in case an
// operator repaired the record.)
func TestCorruptRecordStopsAtOnce(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	s := e.create()
	cs := &corruptStore{innerStore: e.store}
	e.cfg.Store = cs
	e.ex = e.executor()
	start, before := e.w.Now(), e.w.Calls()
	_, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.ErrorIs(t, err, crus.ErrCorruptSession)
	assert.ErrorContains(t, err, "chunk 3")
	assert.Equal(t, int64(1), cs.reads.Load(), "read once")
	assert.Less(t, e.w.Now().Sub(start), time.Second, "no retry timeout waited")
	for op, n := range e.w.Calls() {
		assert.False(t, fake.IsWrite(op) && n != before[op], "%s called: a node touched", op)
	}
}
