package crus_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/store/storetest"
)

func fakeCluster(n int) fake.ClusterOptions { return fake.ClusterOptions{Nodes: n} }

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	st := crus.NewMemoryStore()
	a := &crus.Session{UpgradeID: "a", Progress: crus.Progress{CreatedAt: time.Unix(2, 0)}}
	b := &crus.Session{UpgradeID: "b", Progress: crus.Progress{CreatedAt: time.Unix(1, 0)}}
	require.NoError(t, st.Create(ctx, a))
	require.NoError(t, st.Create(ctx, b))
	assert.Equal(t, int64(1), a.Revision)
	assert.ErrorIs(t, st.Create(ctx, &crus.Session{UpgradeID: "a"}), crus.ErrSessionExists)

	// Copies in and out: the caller's value is never shared.
	a.Messages = append(a.Messages, "not stored")
	got, err := st.Get(ctx, "a")
	require.NoError(t, err)
	assert.Empty(t, got.Messages)
	got.Messages = []string{"changed"}
	again, _ := st.Get(ctx, "a")
	assert.Empty(t, again.Messages)

	// Compare-and-swap on the revision.
	stale, _ := st.Get(ctx, "a")
	got.Messages = []string{"first"}
	require.NoError(t, st.Update(ctx, got))
	assert.Equal(t, int64(2), got.Revision)
	stale.Messages = []string{"second"}
	assert.ErrorIs(t, st.Update(ctx, stale), crus.ErrConflict)
	now, _ := st.Get(ctx, "a")
	assert.Equal(t, []string{"first"}, now.Messages, "the stale writer lost")

	list, err := st.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "b", list[0].UpgradeID, "ordered by creation time")

	require.NoError(t, st.Delete(ctx, "a"))
	assert.ErrorIs(t, st.Delete(ctx, "a"), crus.ErrSessionNotFound)
	_, err = st.Get(ctx, "a")
	assert.ErrorIs(t, err, crus.ErrSessionNotFound)
	assert.ErrorIs(t, st.Update(ctx, got), crus.ErrSessionNotFound)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = st.Get(canceled, "b")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestMemoryStoreConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	st := crus.NewMemoryStore()
	require.NoError(t, st.Create(ctx, &crus.Session{UpgradeID: "s"}))
	var wg sync.WaitGroup
	const writers, each = 8, 50
	for w := range writers {
		wg.Go(func() {
			for range each {
				for { // read, change, write; on conflict read again
					s, err := st.Get(ctx, "s")
					require.NoError(t, err)
					s.Messages = append(s.Messages, string(rune('a'+w)))
					if err := st.Update(ctx, s); err == nil {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	s, _ := st.Get(ctx, "s")
	assert.Len(t, s.Messages, writers*each, "no update lost")
	assert.Equal(t, int64(1+writers*each), s.Revision)
}

func TestMemoryStoreConformance(t *testing.T) {
	storetest.RunConformanceTests(t, func(t *testing.T) crus.Store { return crus.NewMemoryStore() })
}

// TestAddMessagesBounded: a record keeps the first and the last messages
// and counts the others; Status shows the gap as one line.
func TestAddMessagesBounded(t *testing.T) {
	s := &crus.Session{}
	total := crus.MessagesFirst + crus.MessagesLast + 7700
	for i := range total {
		s.AddMessages(fmt.Sprintf("m%d", i))
	}
	require.Len(t, s.Messages, crus.MessagesFirst+crus.MessagesLast)
	assert.Equal(t, 7700, s.MessagesDropped)
	assert.Equal(t, total, s.MessagesTotal())
	assert.Equal(t, "m0", s.Messages[0])
	assert.Equal(t, fmt.Sprintf("m%d", crus.MessagesFirst-1), s.Messages[crus.MessagesFirst-1])
	assert.Equal(t, fmt.Sprintf("m%d", crus.MessagesFirst+7700), s.Messages[crus.MessagesFirst], "the oldest kept of the tail")
	assert.Equal(t, fmt.Sprintf("m%d", total-1), s.Messages[len(s.Messages)-1])

	st := s.Status()
	require.Len(t, st.Messages, len(s.Messages)+1)
	assert.Equal(t, "… 7,700 messages omitted …", st.Messages[crus.MessagesFirst])
	assert.Equal(t, s.Messages[crus.MessagesFirst], st.Messages[crus.MessagesFirst+1])
	assert.Len(t, s.Messages, crus.MessagesFirst+crus.MessagesLast, "Status does not change the record")

	// A record of an older version, with every message, is trimmed by the
	// next append.
	old := &crus.Session{Messages: make([]string, 500)}
	old.AddMessages("new")
	assert.Len(t, old.Messages, crus.MessagesFirst+crus.MessagesLast)
	assert.Equal(t, 301, old.MessagesDropped)
	assert.Equal(t, "new", old.Messages[len(old.Messages)-1])
	assert.Equal(t, 501, old.MessagesTotal())
}

// TestMessagesSinceReplay: what MessagesSince returns, appended to the
// record as it was, gives the record as it is, for appends of any size
// from any starting point: the promise stores rely on to write only the
// new messages.
func TestMessagesSinceReplay(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		s := &crus.Session{}
		n := 0
		for range 1 + r.IntN(8) {
			before := s.Clone()
			k := r.IntN(5)
			switch r.IntN(6) {
			case 0:
				k = r.IntN(3 * (crus.MessagesFirst + crus.MessagesLast))
			case 1:
				k = crus.MessagesLast + r.IntN(3)
			}
			for range k {
				s.AddMessages(fmt.Sprintf("m%d", n))
				n++
			}
			since := s.MessagesSince(before.MessagesTotal())
			replay := before.Clone()
			replay.AddMessages(since...)
			replay.MessagesDropped = s.MessagesDropped
			require.Equal(t, s.Messages, replay.Messages, "trial %d: %d messages, then %d more", trial, before.MessagesTotal(), k)
			assert.Equal(t, n, s.MessagesTotal())
		}
	}
}

// TestRecordBoundedRun: a long rolling session keeps a bounded record,
// while the event stream carries every message.
func TestRecordBoundedRun(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 300, Busy: 0.3}, 2)
	e.spec.Strategy = crus.StrategyRolling
	e.spec.BootBatchSize = 1
	final := e.run()
	assert.Equal(t, 300, final.Counts().Upgraded)
	assert.LessOrEqual(t, len(final.Messages), crus.MessagesFirst+crus.MessagesLast)
	require.Positive(t, final.MessagesDropped, "the session had more messages than a record keeps")
	msgs := 0
	for _, ev := range e.eventsOf(crus.EventMessage) {
		if ev.Session == final.UpgradeID {
			msgs++
		}
	}
	// Every message of the record came with an event (the creation and
	// start messages are events of their own kinds).
	assert.GreaterOrEqual(t, msgs+2, final.MessagesTotal(), "the event stream has the whole history")
	assert.Equal(t, final.Messages[len(final.Messages)-1], final.Status().Messages[len(final.Messages)])
	assert.Contains(t, final.Status().Messages[crus.MessagesFirst], "messages omitted")
}
