package crus_test

import (
	"context"
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
