package crus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/etcdstore"
)

// replicaTTL is the lease TTL of the replica tests: etcd's minimum.
const replicaTTL = 2 * time.Second

// slowClock is the World's virtual clock, with each wait also taking some
// real time (per virtual minute), so that a session lasts long enough in
// wall time for leases to matter.
type slowClock struct {
	w   *fake.World
	per time.Duration
}

func (c slowClock) Now() time.Time { return c.w.Now() }
func (c slowClock) After(d time.Duration) <-chan time.Time {
	time.Sleep(max(time.Millisecond, time.Duration(float64(c.per)*d.Minutes())))
	return c.w.After(d)
}

// replicaProc is one controller process: its own etcd client, store,
// executor and replica. Its backends and store go through a crasher, so
// that killing it stops every call it makes.
type replicaProc struct {
	name   string
	client *clientv3.Client
	store  *etcdstore.Store
	rep    *crus.Driver
	c      *crasher
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	starts []start // when its executor took a session up (EventStarted)
	events []crus.Event
}

type start struct {
	session string
	at      time.Time
}

func startReplica(t testing.TB, e *env, srv *etcdtest.Server, prefix, name string, clock crus.Clock, lease func(clientv3.Lease) clientv3.Lease) *replicaProc {
	t.Helper()
	client, err := srv.NewClient()
	require.NoError(t, err)
	if lease != nil {
		client.Lease = lease(client.Lease)
	}
	p := &replicaProc{name: name, client: client, c: newCrasher(0, false, nil), done: make(chan struct{})}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("proc", name)
	p.store, err = etcdstore.New(client, etcdstore.Config{Prefix: prefix, Logger: logger})
	require.NoError(t, err)
	cfg := e.cfg
	cfg.Store = crashStore{p.c, p.store}
	cfg.Clock = clock
	cfg.Logger = logger
	cfg.OnEvent = func(ev crus.Event) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.events = append(p.events, ev)
		if ev.Kind == crus.EventStarted {
			p.starts = append(p.starts, start{ev.Session, time.Now()})
		}
	}
	ex, err := crus.NewExecutor(crashHSM{p.c, e.w.HSM()}, crashWLM{p.c, e.w.WLM()}, crashBOS{p.c, e.w.BOS()}, cfg)
	require.NoError(t, err)
	// The fenced store is the one the executor writes through: the
	// crasher only counts and stops calls.
	p.rep, err = crus.NewDriver(ex, p.store, crus.DriverConfig{Name: name, TTL: replicaTTL, Logger: logger})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		_ = p.rep.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		close(p.c.release)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("replica %s did not stop", name)
		}
		client.Close()
	})
	return p
}

// startedAfter returns when the replica first took a session up after t
// (zero if it has not).
func (p *replicaProc) startedAfter(t time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.starts {
		if s.at.After(t) {
			return s.at
		}
	}
	return time.Time{}
}

// drivingStep reports whether the replica's executor has reached the
// stage of the step.
func (p *replicaProc) reached(step int, stage crus.Stage) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range p.events {
		if ev.Kind == crus.EventStage && ev.Step == step && ev.Stage == stage {
			return true
		}
	}
	return false
}

// waitCompleted waits until the session's record is completed.
// creatorExecutor returns an executor on its own etcd client and store
// under prefix (returned too, to watch sessions), used to create sessions
// that replicas then drive. It is not a replica: it never runs a session.
func creatorExecutor(t testing.TB, e *env, srv *etcdtest.Server, prefix string) (*crus.Executor, *etcdstore.Store) {
	t.Helper()
	client, err := srv.NewClient()
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	creator, err := etcdstore.New(client, etcdstore.Config{Prefix: prefix})
	require.NoError(t, err)
	cfg := e.cfg
	cfg.Store = creator
	ex, err := crus.NewExecutor(e.w.HSM(), e.w.WLM(), e.w.BOS(), cfg)
	require.NoError(t, err)
	return ex, creator
}

func waitCompleted(t testing.TB, st crus.Store, id string, timeout time.Duration) *crus.Session {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := st.Get(context.Background(), id)
		require.NoError(t, err)
		if s.Completed {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s not completed after %s: stage %s of step %d", id, timeout, s.Progress.Stage, s.Progress.Step)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// takeover runs a session on two replicas, kills the one driving it when
// step 2 is booting (in the middle of a boot session), and returns how
// long the other took to take it up.
func takeover(t testing.TB) time.Duration {
	srv := etcdtest.SharedServer(t)
	_, prefix := etcdtest.Shared(t)
	e := newEnv(t, fake.ClusterOptions{Nodes: 9, Busy: 0.6, MaxJob: time.Hour}, 3)
	clock := slowClock{w: e.w, per: 2 * time.Millisecond}

	a := startReplica(t, e, srv, prefix, "a", clock, nil)
	b := startReplica(t, e, srv, prefix, "b", clock, nil)
	ex, creator := creatorExecutor(t, e, srv, prefix)
	s, err := ex.Create(context.Background(), e.spec)
	require.NoError(t, err)

	// Kill the replica driving the session when step 2's boot session is
	// under way: every call it would make from then on never happens, and
	// its etcd client is closed without revoking its lease, as when a
	// process dies.
	var dead, other *replicaProc
	deadline := time.Now().Add(time.Minute)
	for dead == nil {
		for _, p := range []*replicaProc{a, b} {
			if p.reached(2, crus.StageBooting) {
				dead = p
			}
		}
		require.True(t, time.Now().Before(deadline), "step 2 never booted")
		time.Sleep(time.Millisecond)
	}
	dead.c.kill()
	dead.client.Close()
	killed := time.Now()
	other = a
	if dead == a {
		other = b
	}
	final := waitCompleted(t, creator, s.UpgradeID, time.Minute)
	took := other.startedAfter(killed).Sub(killed)
	require.False(t, other.startedAfter(killed).IsZero(), "the other replica took the session up")

	e.check(final)
	assert.Equal(t, 9, final.Counts().Upgraded)
	for _, x := range e.w.XNames() {
		ws, _ := e.w.Node(x)
		assert.Equal(t, 1, ws.Reboots, "%s rebooted once", x)
	}
	assert.Contains(t, final.Messages, "Session taken up by an executor: observing the world again")
	held, err := creator.Reservations(context.Background())
	require.NoError(t, err)
	assert.Empty(t, held, "the finished session holds nothing")
	return took
}

// TestReplicasTakeOver: two replicas on one etcd; the one driving the
// session dies in the middle of a step; the other finishes it. The
// takeover time is reported (about the lease TTL).
func TestReplicasTakeOver(t *testing.T) {
	took := takeover(t)
	t.Logf("takeover after the leader died: %s (lease TTL %s)", took.Round(time.Millisecond), replicaTTL)
}

// BenchmarkTakeover measures the takeover time, as a metric:
//
//	go test -run '^$' -bench Takeover -benchtime 5x .
func BenchmarkTakeover(b *testing.B) {
	var total time.Duration
	for range b.N {
		total += takeover(b)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "takeover-s")
	b.ReportMetric(replicaTTL.Seconds(), "ttl-s")
}

// pausableLease lets a test stop a replica's lease renewals while the rest
// of its etcd traffic goes on (a partition of the lease stream, or a
// process stalled between renewals).
type pausableLease struct {
	clientv3.Lease
	mu     sync.Mutex
	paused bool
}

func (l *pausableLease) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paused = true
}

func (l *pausableLease) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	l.mu.Lock()
	paused := l.paused
	l.mu.Unlock()
	if paused {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return l.Lease.KeepAliveOnce(ctx, id)
}

// Grant fails while paused: no new lease either.
func (l *pausableLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	l.mu.Lock()
	paused := l.paused
	l.mu.Unlock()
	if paused {
		return nil, errors.New("test: lease traffic cut")
	}
	return l.Lease.Grant(ctx, ttl)
}

// Revoke fails while paused: the lease can only expire.
func (l *pausableLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	l.mu.Lock()
	paused := l.paused
	l.mu.Unlock()
	if paused {
		return nil, errors.New("test: lease traffic cut")
	}
	return l.Lease.Revoke(ctx, id)
}

// TestReplicaStopsBeforeItsLeaseExpires: the replica driving a session
// can still reach etcd but can no longer renew, revoke or get a lease. It
// must stop acting before its lease expires; another replica, which can
// only take the session once the lease has expired in etcd, then
// finishes it. No call of the first comes after the second's first.
func TestReplicaStopsBeforeItsLeaseExpires(t *testing.T) {
	srv := etcdtest.SharedServer(t)
	_, prefix := etcdtest.Shared(t)
	e := newEnv(t, fake.ClusterOptions{Nodes: 6, Busy: 0.8, MaxJob: 3 * time.Hour}, 2)
	clock := slowClock{w: e.w, per: 10 * time.Millisecond}
	var lease *pausableLease
	a := startReplica(t, e, srv, prefix, "a", clock, func(l clientv3.Lease) clientv3.Lease {
		lease = &pausableLease{Lease: l}
		return lease
	})
	// The session cannot end before B has taken it over: one of its nodes
	// runs a job until then.
	last := e.w.XNames()[5]
	require.NoError(t, e.w.StartJob(last, 10000*time.Hour, 10000*time.Hour))
	ex, creator := creatorExecutor(t, e, srv, prefix)
	s, err := ex.Create(context.Background(), e.spec)
	require.NoError(t, err)
	for a.startedAfter(time.Time{}).IsZero() {
		time.Sleep(5 * time.Millisecond)
	}
	b := startReplica(t, e, srv, prefix, "b", clock, nil)
	time.Sleep(replicaTTL / 2) // a renewal goes through
	paused := time.Now()
	lease.pause() // from now on A can get no lease: B must finish
	for deadline := time.Now().Add(time.Minute); b.startedAfter(paused).IsZero(); time.Sleep(5 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "B never took the session over")
	}
	e.w.EndJobs(last)

	final := waitCompleted(t, creator, s.UpgradeID, time.Minute)
	e.check(final)
	assert.Equal(t, 6, final.Counts().Upgraded)
	_, lastA := a.c.span()
	firstB := b.c.firstAfter(paused)
	require.False(t, firstB.IsZero(), "B drove the session")
	t.Logf("renewals stopped at 0s; A's last call ended at %s; B's first call at %s",
		lastA.Sub(paused).Round(time.Millisecond), firstB.Sub(paused).Round(time.Millisecond))
	assert.True(t, lastA.Before(firstB), "A stopped acting before B began")
	// A's executor saw its context cancelled, not a refused write: it
	// stopped before its lease could expire.
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ev := range a.events {
		if ev.Kind == crus.EventActionError {
			assert.False(t, errors.Is(ev.Err, crus.ErrLeaseLost), "A acted after losing its lease: %v", ev.Err)
		}
	}
}

// TestReplicasShareSessions: three replicas, three sessions on disjoint
// nodes. When the replica driving the first session dies, live replicas
// finish every session, each node rebooted once.
func TestReplicasShareSessions(t *testing.T) {
	srv := etcdtest.SharedServer(t)
	_, prefix := etcdtest.Shared(t)
	e := newEnv(t, fake.ClusterOptions{Nodes: 12, Busy: 0.5, MaxJob: time.Hour}, 2)
	clock := slowClock{w: e.w, per: time.Millisecond}
	xs := e.w.XNames()
	var specs []crus.Spec
	for i := range 3 {
		sp := e.spec
		sp.StartingLabel, sp.UpgradingLabel, sp.FailedLabel = fmt.Sprintf("s%d-start", i), fmt.Sprintf("s%d-up", i), fmt.Sprintf("s%d-failed", i)
		sp.TemplateID = fmt.Sprintf("t%d", i)
		e.w.AddGroup(sp.StartingLabel, xs[i*4:i*4+4]...)
		e.w.AddGroup(sp.UpgradingLabel)
		e.w.AddGroup(sp.FailedLabel)
		e.w.AddTemplate(sp.TemplateID, sp.UpgradingLabel)
		specs = append(specs, sp)
	}
	procs := []*replicaProc{
		startReplica(t, e, srv, prefix, "r0", clock, nil),
		startReplica(t, e, srv, prefix, "r1", clock, nil),
		startReplica(t, e, srv, prefix, "r2", clock, nil),
	}
	ex, creator := creatorExecutor(t, e, srv, prefix)
	var ids []string
	for _, sp := range specs {
		s, err := ex.Create(context.Background(), sp)
		require.NoError(t, err)
		ids = append(ids, s.UpgradeID)
	}
	// The fourth session overlaps the first: refused, naming it.
	_, err := ex.Create(context.Background(), specs[0])
	require.ErrorIs(t, err, crus.ErrReserved)
	assert.ErrorContains(t, err, "session "+ids[0]+" holds")

	// Kill whoever drives the first session once it is under way.
	drivers := func(id string) (names []string) {
		var all []start
		for _, p := range procs {
			p.mu.Lock()
			for _, s := range p.starts {
				if s.session == id {
					all = append(all, start{p.name, s.at})
				}
			}
			p.mu.Unlock()
		}
		slices.SortFunc(all, func(a, b start) int { return a.at.Compare(b.at) })
		for _, s := range all {
			names = append(names, s.session) // the replica's name
		}
		return names
	}
	deadline := time.Now().Add(time.Minute)
	for len(drivers(ids[0])) == 0 {
		require.True(t, time.Now().Before(deadline), "nobody drives the first session")
		time.Sleep(5 * time.Millisecond)
	}
	d := drivers(ids[0])
	killed := d[len(d)-1] // the replica driving it now
	for _, p := range procs {
		if p.name == killed {
			p.c.kill()
			p.client.Close()
		}
	}
	for i, id := range ids {
		final := waitCompleted(t, creator, id, time.Minute)
		assert.Equal(t, 4, final.Counts().Upgraded, "session %d", i)
		d := drivers(id)
		require.NotEmpty(t, d)
		assert.NotEqual(t, killed, d[len(d)-1], "session %d finished by a live replica (drivers in turn: %v)", i, d)
	}
	for _, x := range xs {
		ws, _ := e.w.Node(x)
		assert.Equal(t, 1, ws.Reboots, "%s rebooted once", x)
	}
	held, err := creator.Reservations(context.Background())
	require.NoError(t, err)
	assert.Empty(t, held)
}
