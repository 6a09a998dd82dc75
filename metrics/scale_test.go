package metrics_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crus-go/crus"

	"github.com/crus-go/crus/internal/scaletest"
	"github.com/crus-go/crus/metrics"
)

// BenchmarkScrape: a scrape of the metrics of a store holding one session
// of 10,000 or 160,000 nodes that did not move since the last scrape:
// listing at every scrape (as every scrape did before ListEvery), at the
// default ListEvery (one scrape in four lists), and never (the scrapes
// between two lists).
func BenchmarkScrape(b *testing.B) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		for _, every := range []struct {
			name string
			n    int
		}{{"list", 1}, {"default", 0}, {"revisions", 1 << 30}} {
			b.Run(n.name+"/"+every.name, func(b *testing.B) {
				st := scaletest.NewStore()
				if err := st.Create(context.Background(), scaletest.Session("scale", n.nodes, 500)); err != nil {
					b.Fatal(err)
				}
				m := metrics.New(metrics.Config{Now: func() time.Time { return scaletest.Start }, ListEvery: every.n})
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

// gather scrapes m and indexes the families by name.
func gather(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// TestScrapeReadsOnlyWhatMoved: a scrape reads the revision of each
// session, and its record only if it moved; it lists the sessions only
// every ListEvery scrapes. At 160,000 nodes a scrape that read every
// record copied 52 MB each time, whether anything moved or not. What a
// scrape shows is still current: a change shows at the next scrape, a
// deleted session goes at the next one, a new session shows within
// ListEvery scrapes.
func TestScrapeReadsOnlyWhatMoved(t *testing.T) {
	ctx := context.Background()
	st := scaletest.NewStore()
	a := scaletest.Session("a", 1000, 50)
	if err := st.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Config{Now: func() time.Time { return scaletest.Start }, ListEvery: 3})
	m.Watch(st)
	fams := gather(t, m) // lists
	if got, _ := value(fams, "crus_session_paused", "session", "a"); got != 0 {
		t.Fatalf("paused %v before the pause", got)
	}
	st.Reset()
	gather(t, m)
	gather(t, m)
	if got, want := st.Counts(), (scaletest.Counts{Revisions: 2}); got != want {
		t.Fatalf("two scrapes of a session that did not move read %+v; want %+v", got, want)
	}
	// It moves: read again at the next scrape, which also lists (the third).
	a.Progress.Paused = true
	if err := st.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := scaletest.Session("b", 10, 5)
	if err := st.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	st.Reset()
	fams = gather(t, m)
	// The list is of the revisions; the records read are of the session
	// that moved and of the new one.
	if got, want := st.Counts(), (scaletest.Counts{RevisionLists: 1, Views: 2}); got != want {
		t.Fatalf("the scrape that lists read %+v; want %+v", got, want)
	}
	if got, _ := value(fams, "crus_session_paused", "session", "a"); got != 1 {
		t.Fatalf("paused %v after the pause", got)
	}
	if _, ok := value(fams, "crus_session_step", "session", "b"); !ok {
		t.Fatal("the new session is not shown after a list")
	}
	// Moved again, between lists: that session only is read, in place.
	a.Progress.Paused = false
	if err := st.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	st.Reset()
	fams = gather(t, m)
	if got, want := st.Counts(), (scaletest.Counts{Revisions: 2, Views: 1}); got != want {
		t.Fatalf("a scrape after one session moved read %+v; want %+v", got, want)
	}
	if got, _ := value(fams, "crus_session_paused", "session", "a"); got != 0 {
		t.Fatalf("paused %v after the resume", got)
	}
	// Deleted between lists: gone at the next scrape.
	if err := st.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	fams = gather(t, m)
	if _, ok := value(fams, "crus_session_step", "session", "b"); ok {
		t.Fatal("a deleted session is still shown")
	}
	if got, _ := value(fams, "crus_sessions", "state", "UPDATING"); got != 1 {
		t.Fatalf("crus_sessions{state=UPDATING} %v; want 1", got)
	}
}

// noView is a source that cannot show a record in place: it reads copies.
type noView struct{ st *scaletest.Store }

func (n noView) List(ctx context.Context) ([]*crus.Session, error) { return n.st.List(ctx) }
func (n noView) Get(ctx context.Context, id string) (*crus.Session, error) {
	return n.st.Get(ctx, id)
}
func (n noView) Revision(ctx context.Context, id string) (int64, error) {
	return n.st.Revision(ctx, id)
}

// BenchmarkScrapeMoved: a scrape between two lists of a store holding one
// session of 10,000 or 160,000 nodes that moved since the last scrape (as
// one in progress does), read from a copy (Get) or in place (View).
func BenchmarkScrapeMoved(b *testing.B) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		for _, read := range []string{"copy", "view"} {
			b.Run(n.name+"/"+read, func(b *testing.B) {
				ctx := context.Background()
				st := scaletest.NewStore()
				s := scaletest.Session("scale", n.nodes, 500)
				if err := st.Create(ctx, s); err != nil {
					b.Fatal(err)
				}
				m := metrics.New(metrics.Config{Now: func() time.Time { return scaletest.Start }, ListEvery: 1 << 30})
				if read == "copy" {
					m.Watch(noView{st})
				} else {
					m.Watch(st)
				}
				if _, err := m.Gather(); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := st.UpdateNodes(ctx, s, nil); err != nil { // moves its revision
						b.Fatal(err)
					}
					if _, err := m.Gather(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
