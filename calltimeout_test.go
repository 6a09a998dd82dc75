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
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/wlm"
)

// hangs makes the first n calls of each named operation of an adapter
// block until their ctx ends, as a backend that takes a request and never
// answers; after acts, the call is carried out before it blocks (the
// answer is lost, not the request).
type hangs struct {
	mu    sync.Mutex
	left  map[string]int
	after bool
	// causes records, per operation, the cause of each ctx that ended a
	// hung call.
	causes map[string][]error
}

func (h *hangs) hang(ctx context.Context, op string, do func() error) error {
	h.mu.Lock()
	n := h.left[op]
	if n > 0 {
		h.left[op] = n - 1
	}
	h.mu.Unlock()
	if n == 0 {
		return do()
	}
	if h.after {
		if err := do(); err != nil {
			return err
		}
	}
	<-ctx.Done()
	h.mu.Lock()
	h.causes[op] = append(h.causes[op], context.Cause(ctx))
	h.mu.Unlock()
	return ctx.Err()
}

type hangingWLM struct {
	wlm.Manager
	h *hangs
}

func (m hangingWLM) ReportsBootTime() bool {
	r, ok := m.Manager.(wlm.BootTimeReporter)
	return ok && r.ReportsBootTime()
}

func (m hangingWLM) Nodes(ctx context.Context, names []string) (nodes []wlm.Node, err error) {
	err = m.h.hang(ctx, "Nodes", func() error {
		nodes, err = m.Manager.Nodes(ctx, names)
		return err
	})
	return nodes, err
}

func (m hangingWLM) Drain(ctx context.Context, names []string, reason string) error {
	return m.h.hang(ctx, "Drain", func() error { return m.Manager.Drain(ctx, names, reason) })
}

func (m hangingWLM) Resume(ctx context.Context, names []string) error {
	return m.h.hang(ctx, "Resume", func() error { return m.Manager.Resume(ctx, names) })
}

type hangingBOS struct {
	bos.Orchestrator
	h *hangs
}

func (b hangingBOS) Reboot(ctx context.Context, req bos.Request) error {
	return b.h.hang(ctx, "Reboot", func() error { return b.Orchestrator.Reboot(ctx, req) })
}

func (b hangingBOS) Status(ctx context.Context, name string, nodes []string) (st bos.Status, err error) {
	err = b.h.hang(ctx, "Status", func() error {
		st, err = b.Orchestrator.Status(ctx, name, nodes)
		return err
	})
	return st, err
}

// hangingStore is a MemoryStore whose calls may hang. A write that hangs
// after it acts is carried out on a copy of the record: the caller keeps
// the revision it had, as a client of a remote store whose answer never
// came.
type hangingStore struct {
	*crus.MemoryStore
	h *hangs
}

func (st hangingStore) Get(ctx context.Context, id string) (s *crus.Session, err error) {
	err = st.h.hang(ctx, "store.Get", func() error {
		s, err = st.MemoryStore.Get(ctx, id)
		return err
	})
	return s, err
}

func (st hangingStore) Revision(ctx context.Context, id string) (rev int64, err error) {
	err = st.h.hang(ctx, "store.Revision", func() error {
		rev, err = st.MemoryStore.Revision(ctx, id)
		return err
	})
	return rev, err
}

func (st hangingStore) UpdateNodes(ctx context.Context, s *crus.Session, changed []int) error {
	st.h.mu.Lock()
	remote := st.h.after && st.h.left["store.UpdateNodes"] > 0
	st.h.mu.Unlock()
	if remote {
		s = s.Clone()
	}
	return st.h.hang(ctx, "store.UpdateNodes", func() error { return st.MemoryStore.UpdateNodes(ctx, s, changed) })
}

// TestCallTimeoutEndsHungCalls: backends that take a request and never
// answer (before acting on it, or after) do not hold a session: every
// such call is cancelled after Config.CallTimeout, with ErrCallTimeout as
// its ctx's cause, retried like any failed call, and the session
// completes with every node upgraded once, within its bounds.
func TestCallTimeoutEndsHungCalls(t *testing.T) {
	for _, c := range []struct {
		name        string
		after       bool
		callTimeout time.Duration
		ops         []string
		rebootTime  time.Duration
	}{
		{"request lost", false, 30 * time.Second, []string{"Nodes", "Drain", "Resume", "Reboot", "Status"}, 0},
		{"answer lost", true, 30 * time.Second, []string{"Nodes", "Drain", "Resume", "Reboot", "Status"}, 0},
		// The store too: a write that landed though its answer never
		// came makes the next attempt conflict, and the run reads the
		// record again.
		{"store, request lost", false, 30 * time.Second, []string{"store.UpdateNodes", "store.Revision", "store.Get"}, 0},
		{"store, answer lost", true, 30 * time.Second, []string{"store.UpdateNodes", "store.Revision", "store.Get"}, 0},
		// The nodes reboot (in about a minute) while the boot request's
		// answer is awaited (90 s, within one RetryTimeout): their boot
		// times are earlier than the orchestrator's acceptance of the
		// request sent again, and still prove the reboot.
		{"answer lost, rebooted before it was sent again", true, 90 * time.Second, []string{"Reboot"}, time.Minute},
	} {
		after := c.after
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := crustest.New(crustest.Options{Nodes: 6, Busy: 0.5, Seed: 5, RealClock: true, RebootTime: c.rebootTime})
				ops := c.ops
				h := &hangs{left: map[string]int{}, after: after, causes: map[string][]error{}}
				for _, op := range ops {
					h.left[op] = 1
				}
				cfg := w.Config()
				cfg.CallTimeout = c.callTimeout
				cfg.Store = hangingStore{crus.NewMemoryStore(), h}
				ex, err := crus.NewExecutor(w.HSM(), hangingWLM{w.WLM(), h}, hangingBOS{w.BOS(), h}, cfg)
				require.NoError(t, err)
				ctx := context.Background()
				s, err := ex.Create(ctx, w.Spec(2))
				require.NoError(t, err)
				start := time.Now()
				final, err := ex.Run(ctx, s.UpgradeID)
				require.NoError(t, err)
				assert.True(t, final.Completed)
				for _, op := range ops {
					if assert.Len(t, h.causes[op], 1, "%s hung once and was cancelled", op) {
						assert.ErrorIs(t, h.causes[op][0], crus.ErrCallTimeout, op)
					}
				}
				require.NoError(t, w.Check(ctx, final))
				for _, x := range w.XNames() {
					assert.Equal(t, crus.OutcomeUpgraded, final.Node(x).Outcome, "%s: no node fails for a call that hung", x)
					assert.Equal(t, 1, w.Reboots(x), "%s rebooted once", x)
				}
				// Five hung calls, and the session's own pace: far from
				// the days a hang would hold it.
				assert.Less(t, time.Since(start), 3*time.Hour)
			})
		})
	}
}

// TestCallTimeoutSaysWhichCall: a call that outlives CallTimeout and
// fails is reported wrapping both ErrCallTimeout and what the adapter
// returned; a call whose run's ctx ends is ended by that, not a timeout.
func TestCallTimeoutSaysWhichCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := crustest.New(crustest.Options{Nodes: 2, RealClock: true})
		h := &hangs{left: map[string]int{"Nodes": 1000}, causes: map[string][]error{}}
		cfg := w.Config()
		cfg.CallTimeout = 10 * time.Second
		var events []crus.Event
		var mu sync.Mutex
		cfg.OnEvent = func(ev crus.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		}
		ex, err := crus.NewExecutor(w.HSM(), hangingWLM{w.WLM(), h}, w.BOS(), cfg)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := ex.Create(ctx, w.Spec(1))
		// Create reads the nodes too: its read hangs, times out and is
		// refused with both errors.
		require.Error(t, err)
		assert.ErrorIs(t, err, crus.ErrCallTimeout)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Nil(t, s)
		require.NotEmpty(t, h.causes["Nodes"], "the read hung and was cancelled")
		for _, c := range h.causes["Nodes"] {
			assert.True(t, errors.Is(c, crus.ErrCallTimeout), "cause %v", c)
		}
		// A cancelled Create is cancelled, not timed out.
		h.mu.Lock()
		h.causes = map[string][]error{}
		h.mu.Unlock()
		cctx, ccancel := context.WithCancel(ctx)
		go func() { time.Sleep(time.Second); ccancel() }()
		_, err = ex.Create(cctx, w.Spec(1))
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, crus.ErrCallTimeout)
	})
}
