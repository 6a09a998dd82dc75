package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/scaletest"
	"github.com/crus-go/crus/metrics"
)

func TestMain(m *testing.M) { etcdtest.Main(m) }

// BenchmarkScrapeListStore: a scrape that lists the sessions (one in
// Config.ListEvery) of a file or etcd store — what `crus serve` runs
// with — holding one session of 10,000 or 160,000 nodes that did not
// move since the last scrape.
func BenchmarkScrapeListStore(b *testing.B) {
	for _, kind := range scaletest.Backends {
		for _, n := range []struct {
			name  string
			nodes int
		}{{"10k", 10_000}, {"160k", 160_000}} {
			b.Run(kind+"/"+n.name, func(b *testing.B) {
				st := scaletest.NewBackend(b, kind)
				if err := st.Create(context.Background(), scaletest.Session("scale", n.nodes, 500)); err != nil {
					b.Fatal(err)
				}
				m := metrics.New(metrics.Config{Now: func() time.Time { return scaletest.Start }, ListEvery: 1})
				m.Watch(st)
				if _, err := m.Gather(); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Gather(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
