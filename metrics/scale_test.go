package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/crus-go/crus/internal/scaletest"
	"github.com/crus-go/crus/metrics"
)

// BenchmarkScrape: a scrape of the metrics of a store holding one session
// of 10,000 or 160,000 nodes that did not move since the last scrape.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		b.Run(n.name, func(b *testing.B) {
			st := scaletest.NewStore()
			if err := st.Create(context.Background(), scaletest.Session("scale", n.nodes, 500)); err != nil {
				b.Fatal(err)
			}
			m := metrics.New(metrics.Config{Now: func() time.Time { return scaletest.Start }})
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
