package api

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/scaletest"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// storeHandler is a Handler over a store of a kind of scaletest.Backends
// holding one session of n nodes that does not move.
func storeHandler(b *testing.B, kind string, n int) *Handler {
	b.Helper()
	st := scaletest.NewBackend(b, kind)
	if err := st.Create(context.Background(), scaletest.Session("scale", n, 500)); err != nil {
		b.Fatal(err)
	}
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(ex, Config{})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

var storeSizes = []struct {
	name  string
	nodes int
}{{"10k", 10_000}, {"160k", 160_000}}

// BenchmarkStreamListStore: a poll of the stream of every session (the
// page's) that lists them (one poll in listEvery), on a file or etcd store
// — what `crus serve` runs with — holding one idle session of 10,000 or
// 160,000 nodes.
func BenchmarkStreamListStore(b *testing.B) {
	for _, kind := range scaletest.Backends {
		for _, n := range storeSizes {
			b.Run(kind+"/"+n.name, func(b *testing.B) {
				h := storeHandler(b, kind, n.nodes)
				ctx := context.Background()
				sw := &watch{h: h, revs: map[string]int64{}}
				if _, err := sw.summaries(ctx, recorderSSE(), true); err != nil {
					b.Fatal(err)
				}
				sse := recorderSSE()
				b.ReportAllocs()
				for b.Loop() {
					sw.listNext = true
					if _, err := sw.summaries(ctx, sse, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkListRequestStore: GET /sessions and GET /session (the original
// API's list) on a file or etcd store holding one idle session of 10,000
// or 160,000 nodes.
func BenchmarkListRequestStore(b *testing.B) {
	for _, path := range []string{"/sessions", "/session"} {
		for _, kind := range scaletest.Backends {
			for _, n := range storeSizes {
				b.Run(path[1:]+"/"+kind+"/"+n.name, func(b *testing.B) {
					h := storeHandler(b, kind, n.nodes)
					b.ReportAllocs()
					for b.Loop() {
						w := httptest.NewRecorder()
						h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
						if w.Code != 200 {
							b.Fatal(w.Code, w.Body.String())
						}
					}
				})
			}
		}
	}
}
