package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
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
// API's list) on a file or etcd store holding one session of 10,000 or
// 160,000 nodes, idle since the list before.
func BenchmarkListRequestStore(b *testing.B) {
	for _, path := range []string{"/sessions", "/session"} {
		for _, kind := range scaletest.Backends {
			for _, n := range storeSizes {
				b.Run(path[1:]+"/"+kind+"/"+n.name, func(b *testing.B) {
					h := storeHandler(b, kind, n.nodes)
					get := func() {
						w := httptest.NewRecorder()
						h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
						if w.Code != 200 {
							b.Fatal(w.Code, w.Body.String())
						}
					}
					get() // a list before: the session is idle since
					b.ReportAllocs()
					for b.Loop() {
						get()
					}
				})
			}
		}
	}
}

// TestStreamListReadsRevisionsOnStores: on the file and etcd stores, the
// poll of the stream of every session that lists them reads their
// revisions and decodes only the records of those that moved or are new,
// and sends their summaries in the order of a list; a deleted one is
// forgotten. That poll decoded every record: 50 MB and 0.7 s for one idle
// 160,000-node session (BenchmarkStreamListStore).
func TestStreamListReadsRevisionsOnStores(t *testing.T) {
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
			h, err := New(ex, Config{})
			if err != nil {
				t.Fatal(err)
			}
			b := scaletest.Session("b", 1000, 50)
			if err := back.Create(ctx, b); err != nil {
				t.Fatal(err)
			}
			sw := &watch{h: h, revs: map[string]int64{}}
			if _, err := sw.summaries(ctx, recorderSSE(), true); err != nil {
				t.Fatal(err)
			}
			poll := func() string {
				t.Helper()
				st.Reset()
				sse := recorderSSE()
				sw.listNext = true
				if _, err := sw.summaries(ctx, sse, false); err != nil {
					t.Fatal(err)
				}
				return sse.w.(*httptest.ResponseRecorder).Body.String()
			}
			if body := poll(); body != "" {
				t.Fatalf("a listing poll of an idle session sent:\n%s", body)
			}
			if got, want := st.Counts(), (scaletest.Counts{RevisionLists: 1}); got != want {
				t.Fatalf("a listing poll of an idle session read %+v; want %+v", got, want)
			}
			// b moves, a and c are created: three summaries, in the
			// order of a list (created at the same instant: by id).
			b.Progress.Paused = true
			if err := back.Update(ctx, b); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"c", "a"} {
				if err := back.Create(ctx, scaletest.Session(id, 10, 5)); err != nil {
					t.Fatal(err)
				}
			}
			body := poll()
			if got, want := st.Counts(), (scaletest.Counts{RevisionLists: 1, Gets: 3, Nodes: 1020}); got != want {
				t.Fatalf("a listing poll after changes read %+v; want %+v", got, want)
			}
			ia, ib, ic := strings.Index(body, `"upgrade_id":"a"`), strings.Index(body, `"upgrade_id":"b"`), strings.Index(body, `"upgrade_id":"c"`)
			if strings.Count(body, "event: session") != 3 || ia < 0 || !(ia < ib && ib < ic) || !strings.Contains(body, `"paused":true`) {
				t.Fatalf("a listing poll after changes sent:\n%s", body)
			}
			if err := back.Delete(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if body := poll(); body != "" {
				t.Fatalf("a listing poll after a delete sent:\n%s", body)
			}
			if _, ok := sw.revs["c"]; ok || len(sw.revs) != 2 {
				t.Fatalf("after a delete the stream knows %v", sw.revs)
			}
		})
	}
}

// TestListsReadOnlyWhatMovedOnStores: on the file and etcd stores, GET
// /sessions and GET /session (the original API's list) read the
// sessions' revisions and decode only the records of those that moved or
// are new since the last list, and answer what a list of every record
// answered, byte for byte, through creates, updates and deletes. Each
// request decoded every record: 385-462 MB and 1.0-1.6 s for one idle
// 160,000-node session (BenchmarkListRequestStore).
func TestListsReadOnlyWhatMovedOnStores(t *testing.T) {
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
			h, err := New(ex, Config{})
			if err != nil {
				t.Fatal(err)
			}
			// want is the answer from a list of every record.
			want := func(path string) string {
				t.Helper()
				list, err := back.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				if path == "/sessions" {
					sums := []Summary{}
					for _, s := range list {
						sums = append(sums, SummaryOf(s))
					}
					v = sums
				} else {
					out := []crus.Status{}
					for _, s := range list {
						out = append(out, s.Status())
					}
					v = out
				}
				var b bytes.Buffer
				if err := json.NewEncoder(&b).Encode(v); err != nil {
					t.Fatal(err)
				}
				return b.String()
			}
			get := func(step string, reads scaletest.Counts) {
				t.Helper()
				for i, path := range []string{"/sessions", "/session"} {
					st.Reset()
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
					if w.Code != 200 {
						t.Fatalf("%s: GET %s: %d %s", step, path, w.Code, w.Body)
					}
					if got, want := w.Body.String(), want(path); got != want {
						t.Fatalf("%s: GET %s answered\n%s\nwhere a list of the records answers\n%s", step, path, got, want)
					}
					if i == 1 {
						reads = scaletest.Counts{RevisionLists: 1} // the first one read what moved
					}
					if got := st.Counts(); got != reads {
						t.Fatalf("%s: GET %s read %+v; want %+v", step, path, got, reads)
					}
				}
			}
			get("empty", scaletest.Counts{RevisionLists: 1})
			b := scaletest.Session("b", 1000, 50)
			if err := back.Create(ctx, b); err != nil {
				t.Fatal(err)
			}
			get("one session", scaletest.Counts{RevisionLists: 1, Gets: 1, Nodes: 1000})
			get("idle", scaletest.Counts{RevisionLists: 1})
			b.Progress.Paused = true
			b.AddMessages("paused")
			if err := back.Update(ctx, b); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"c", "a"} {
				if err := back.Create(ctx, scaletest.Session(id, 10, 5)); err != nil {
					t.Fatal(err)
				}
			}
			get("one moved, two new", scaletest.Counts{RevisionLists: 1, Gets: 3, Nodes: 1020})
			if err := back.Delete(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			get("one deleted", scaletest.Counts{RevisionLists: 1})
		})
	}
}
