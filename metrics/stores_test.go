package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/etcdtest"
	"github.com/crus-go/crus/internal/fake"
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

// TestScrapeListsRevisionsOnStores: on the file and etcd stores, a scrape
// that lists the sessions reads their revisions and decodes only the
// records of the sessions that moved or are new; a deleted one goes. A
// listing scrape decoded every record, moved or not: 50 MB and 0.8–2 s
// for one idle 160,000-node session (BenchmarkScrapeListStore).
func TestScrapeListsRevisionsOnStores(t *testing.T) {
	for _, kind := range scaletest.Backends {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			back := scaletest.NewBackend(t, kind)
			st := scaletest.Count(back)
			world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
			ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			a := scaletest.Session("a", 1000, 50)
			if err := back.Create(ctx, a); err != nil {
				t.Fatal(err)
			}
			m := metrics.New(metrics.Config{Now: func() time.Time { return scaletest.Start }, ListEvery: 1})
			m.Watch(ex)
			gather(t, m)
			st.Reset()
			gather(t, m)
			gather(t, m)
			if got, want := st.Counts(), (scaletest.Counts{RevisionLists: 2}); got != want {
				t.Fatalf("two listing scrapes of an idle session read %+v; want %+v", got, want)
			}
			a.Progress.Paused = true
			if err := back.Update(ctx, a); err != nil {
				t.Fatal(err)
			}
			if err := back.Create(ctx, scaletest.Session("b", 10, 5)); err != nil {
				t.Fatal(err)
			}
			st.Reset()
			fams := gather(t, m)
			if got, want := st.Counts(), (scaletest.Counts{RevisionLists: 1, Gets: 2, Nodes: 1010}); got != want {
				t.Fatalf("a listing scrape after one session moved and one was created read %+v; want %+v", got, want)
			}
			if got, _ := value(fams, "crus_session_paused", "session", "a"); got != 1 {
				t.Fatalf("paused %v after the pause", got)
			}
			if got, _ := value(fams, "crus_session_step", "session", "b"); got != 2 {
				t.Fatal("the new session is not shown")
			}
			if err := back.Delete(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			st.Reset()
			fams = gather(t, m)
			if _, ok := value(fams, "crus_session_step", "session", "b"); ok {
				t.Fatal("a deleted session is still shown")
			}
			if got, want := st.Counts(), (scaletest.Counts{RevisionLists: 1}); got != want {
				t.Fatalf("a listing scrape after a delete read %+v; want %+v", got, want)
			}
		})
	}
}
