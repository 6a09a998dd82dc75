package crus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/wlm"
)

// cutLeaser is a crus.Leaser of one replica whose lease can be cut off:
// from then on no renewal, grant or acquisition goes through (etcd gone,
// or this replica cut off from it). It lists the sessions it is given as
// in progress. It fences nothing: the tests using it run one replica.
type cutLeaser struct {
	mu  sync.Mutex
	ids []string
	cut bool
}

var errLeaseCut = errors.New("test: lease traffic cut")

func (l *cutLeaser) isCut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut
}

func (l *cutLeaser) Grant(_ context.Context, ttl time.Duration) (crus.Lease, error) {
	if l.isCut() {
		return nil, errLeaseCut
	}
	return cutLease{l, ttl}, nil
}

func (l *cutLeaser) Active(context.Context) ([]string, error) {
	if l.isCut() {
		return nil, errLeaseCut
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...), nil
}

func (l *cutLeaser) WatchFree(ctx context.Context) <-chan string {
	c := make(chan string)
	go func() {
		<-ctx.Done()
		close(c)
	}()
	return c
}

type cutLease struct {
	l   *cutLeaser
	ttl time.Duration
}

func (c cutLease) TTL() time.Duration { return c.ttl }

func (c cutLease) KeepAlive(ctx context.Context) error {
	if c.l.isCut() {
		<-ctx.Done() // no answer
		return ctx.Err()
	}
	return nil
}

func (c cutLease) Acquire(context.Context, string) (bool, error) {
	if c.l.isCut() {
		return false, errLeaseCut
	}
	return true, nil
}

func (c cutLease) Release(context.Context, string) error { return nil }
func (c cutLease) Revoke(context.Context) error          { return nil }

// TestLeaseCutDeletesReservations: the only replica, driving a scheduled
// session that holds reservations, can no longer renew its lease. Its
// Driver stops the run Margin before the lease may expire; the run then
// deletes the session's reservations, within the lease: nothing would
// move them on while no replica can take the session up, and they would
// begin on idle nodes on top of the cap.
func TestLeaseCutDeletesReservations(t *testing.T) {
	// In a synctest bubble: the Driver's timers, the World's RealClock
	// and the waits below run on the bubble's time, not the machine's.
	synctest.Test(t, func(t *testing.T) {
		w := crustest.New(crustest.Options{Nodes: 16, Busy: 0.8, Seed: 3, RealClock: true})
		sched := w.WLM().(wlm.Scheduler)
		ours := func() []wlm.Reservation {
			rs, err := sched.Reservations(context.Background(), "crus-")
			require.NoError(t, err)
			return rs
		}
		ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
		require.NoError(t, err)
		spec := w.Spec(3)
		spec.Rollout = crus.Rollout{Strategy: crus.StrategyScheduled}
		s, err := ex.Create(context.Background(), spec)
		require.NoError(t, err)
		leaser := &cutLeaser{ids: []string{s.UpgradeID}}
		const ttl = 10 * time.Second
		d, err := crus.NewDriver(ex, leaser, crus.DriverConfig{TTL: ttl})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- d.Run(ctx) }()

		start := time.Now()
		for len(ours()) == 0 {
			require.Less(t, time.Since(start), 24*time.Hour, "the session never booked a node")
			time.Sleep(time.Second)
		}
		require.Equal(t, []string{s.UpgradeID}, d.Driving())
		leaser.mu.Lock()
		leaser.cut = true
		leaser.mu.Unlock()
		cut := time.Now()
		// The last renewal went through at most TTL/3 before the cut;
		// the lease expires TTL after it.
		for len(ours()) > 0 {
			require.Less(t, time.Since(cut), ttl, "reservations left when the lease may have expired: %v", ours())
			time.Sleep(10 * time.Millisecond)
		}
		synctest.Wait()
		assert.Empty(t, d.Driving(), "the run stopped")
		// Nothing books them again while the lease is cut.
		time.Sleep(time.Hour)
		assert.Empty(t, ours())
		cancel()
		<-done
	})
}
