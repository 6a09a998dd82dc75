package web_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/crus-go/crus/internal/scaletest"
	"github.com/crus-go/crus/web"
)

// BenchmarkTimeline: the timeline of a session of 10,000 or 160,000 nodes
// in steps of 32, halfway through (157 and 2,501 steps drawn), with the
// size of the picture.
func BenchmarkTimeline(b *testing.B) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		b.Run(n.name, func(b *testing.B) {
			s := scaletest.Session("scale", n.nodes, 32)
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := web.Timeline(&buf, s, web.TimelineOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "svg-B")
			b.ReportMetric(float64(strings.Count(buf.String(), `class="step"`)), "rows")
		})
	}
}
