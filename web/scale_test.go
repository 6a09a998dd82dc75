package web_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
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

// TestTimelineRowsBounded: a session of thousands of steps draws at most
// MaxTimelineRows rows, each a run of consecutive steps, together all of
// them and all their nodes; it drew one row per step, 2,501 rows and
// 1.4 MB of SVG for 160,000 nodes in steps of 32. A session of fewer steps
// still draws one row per step.
func TestTimelineRowsBounded(t *testing.T) {
	for _, tc := range []struct {
		nodes, step, rows int
		first, last       string
	}{
		{10_000, 32, 157, "step 1:", "step 157:"},
		{160_000, 32, 179, "steps 1–14:", "steps 2493–2501:"},
		{160_000, 1000, 81, "step 1:", "step 81:"},
	} {
		s := scaletest.Session("scale", tc.nodes, tc.step)
		var buf bytes.Buffer
		if err := web.Timeline(&buf, s, web.TimelineOptions{}); err != nil {
			t.Fatal(err)
		}
		svg := buf.String()
		titles := regexp.MustCompile(`class="step"[^>]*><title>([^<]*)</title>`).FindAllStringSubmatch(svg, -1)
		if len(titles) != tc.rows || len(titles) > web.MaxTimelineRows {
			t.Errorf("%d nodes in steps of %d: %d rows; want %d", tc.nodes, tc.step, len(titles), tc.rows)
			continue
		}
		if first, last := titles[0][1], titles[len(titles)-1][1]; !strings.HasPrefix(first, tc.first) || !strings.HasPrefix(last, tc.last) {
			t.Errorf("%d nodes in steps of %d: rows from %q to %q; want %q to %q", tc.nodes, tc.step, first, last, tc.first, tc.last)
		}
		nodes := 0
		for _, m := range titles {
			var n int
			_, after, _ := strings.Cut(m[1], ": ")
			if _, err := fmt.Sscanf(after, "%d nodes", &n); err != nil {
				t.Fatalf("row title %q: %v", m[1], err)
			}
			nodes += n
		}
		want := 0
		for _, n := range s.Progress.Nodes {
			if n.Step > 0 && !n.DrainRequested.IsZero() {
				want++
			}
		}
		if nodes != want {
			t.Errorf("%d nodes in steps of %d: the rows count %d nodes; want %d", tc.nodes, tc.step, nodes, want)
		}
	}
}

// TestTimelineReadInPlace: the page's timeline is drawn from the record
// in place when the Getter can show it (a store that is a crus.Viewer, or
// the executor), not from a copy of every node record.
func TestTimelineReadInPlace(t *testing.T) {
	st := scaletest.NewStore()
	if err := st.Create(context.Background(), scaletest.Session("scale", 1000, 32)); err != nil {
		t.Fatal(err)
	}
	h := web.Handler(web.Config{Sessions: st})
	st.Reset()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/timeline/scale.svg", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "<svg") {
		t.Fatalf("GET /timeline/scale.svg: %d %.200s", w.Code, w.Body)
	}
	if got, want := st.Counts(), (scaletest.Counts{Views: 1}); got != want {
		t.Errorf("the timeline read %+v; want %+v", got, want)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/timeline/none.svg", nil))
	if w.Code != 404 {
		t.Errorf("the timeline of no session: %d; want 404", w.Code)
	}
}
