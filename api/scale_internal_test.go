package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/scaletest"
)

// scaleHandler is a Handler over a counting store holding sessions of the
// given sizes (scaletest.Session), with their ids.
func scaleHandler(tb testing.TB, sizes ...int) (*Handler, *scaletest.Store, []string) {
	tb.Helper()
	st := scaletest.NewStore()
	var ids []string
	for i, n := range sizes {
		s := scaletest.Session(string(rune('a'+i))+"-scale", n, 500)
		if err := st.Create(context.Background(), s); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, s.UpgradeID)
	}
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(ex, Config{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	return h, st, ids
}

func recorderSSE() *sseWriter {
	w := httptest.NewRecorder()
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

// BenchmarkStreamPoll: one poll (every WatchPoll, 2 s by default) of an
// event stream of one session (the command's watch) and of all sessions
// (the page) when no session moved; the store holds one session of
// 10,000 or 160,000 nodes.
func BenchmarkStreamPoll(b *testing.B) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		for _, which := range []string{"one", "all"} {
			b.Run(which+"/"+n.name, func(b *testing.B) {
				h, _, ids := scaleHandler(b, n.nodes)
				id := ids[0]
				if which == "all" {
					id = ""
				}
				ctx := context.Background()
				sw := &watch{h: h, id: id, revs: map[string]int64{}}
				if _, err := sw.summaries(ctx, recorderSSE(), true); err != nil {
					b.Fatal(err)
				}
				sse := recorderSSE()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := sw.summaries(ctx, sse, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
