package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"text/tabwriter"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/scaletest"
)

// countingWriter counts the bytes of the answers.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.ResponseWriter.Write(p)
}

// scaleServer serves the API over a store holding one session of n
// nodes (scaletest.Session), counting the bytes it answers.
func scaleServer(tb testing.TB, n int) (srv *httptest.Server, st *scaletest.Store, id string, sent *atomic.Int64) {
	return scaleServerOf(tb, n, nil)
}

// scaleServerOf is scaleServer, calling seen with each request first; a
// seen that returns false answers 404 (a path an older server lacks).
func scaleServerOf(tb testing.TB, n int, seen func(*http.Request) bool) (srv *httptest.Server, st *scaletest.Store, id string, sent *atomic.Int64) {
	tb.Helper()
	st = scaletest.NewStore()
	s := scaletest.Session("scale", n, 500)
	if err := st.Create(context.Background(), s); err != nil {
		tb.Fatal(err)
	}
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := api.New(ex, api.Config{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	sent = &atomic.Int64{}
	srv = httptest.NewServer(http.StripPrefix("/apis/crus", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil && !seen(r) {
			http.Error(w, `{"status":404,"title":"Not Found","detail":"no such resource"}`, http.StatusNotFound)
			return
		}
		h.ServeHTTP(countingWriter{w, sent}, r)
	})))
	tb.Cleanup(srv.Close)
	return srv, st, s.UpgradeID, sent
}

// BenchmarkDescribe: `crus describe` of a session of 10,000 and 160,000
// nodes against a server in this process (the server's work included),
// and the bytes the server sent for it.
func BenchmarkDescribe(b *testing.B) {
	for _, n := range []struct {
		name  string
		nodes int
	}{{"10k", 10_000}, {"160k", 160_000}} {
		b.Run(n.name, func(b *testing.B) {
			srv, _, id, sent := scaleServer(b, n.nodes)
			was := stdout
			defer func() { stdout = was }()
			stdout = io.Discard
			b.ReportAllocs()
			sent.Store(0)
			for b.Loop() {
				if code := run([]string{"describe", "--server", srv.URL, id}); code != exitOK {
					b.Fatalf("describe: exit %d", code)
				}
			}
			b.ReportMetric(float64(sent.Load())/float64(b.N), "sent-B/op")
		})
	}
}

// TestDescribeReadsNoNodeRecords: describe's table asks the server for the
// summary with the failed and skipped nodes (GET .../description), not
// for the full record, whose every node record it does not show: 32 MB of
// JSON for 160,000 nodes. The table is the same. A server without that
// path (an older one) is asked for the full record.
func TestDescribeReadsNoNodeRecords(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	older := false
	srv, st, id, sent := scaleServerOf(t, 10_000, func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		return !(older && strings.HasSuffix(r.URL.Path, "/description"))
	})
	was := stdout
	defer func() { stdout = was }()
	var out bytes.Buffer
	stdout = &out
	if code := run([]string{"describe", "--server", srv.URL, id}); code != exitOK {
		t.Fatalf("describe: exit %d", code)
	}
	if want := []string{"/sessions/" + id + "/description"}; !slices.Equal(paths, want) {
		t.Errorf("describe asked for %q; want %q", paths, want)
	}
	if n := sent.Load(); n > 64<<10 {
		t.Errorf("describe of 10,000 nodes was sent %d bytes; want at most 64 KiB", n)
	}
	// The table is what the full record gives.
	s, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	describe(tw, api.DescriptionOf(s))
	tw.Flush()
	if out.String() != table.String() {
		t.Errorf("describe printed:\n%s\nwant:\n%s", out.String(), table.String())
	}
	if c := s.Counts(); strings.Count(out.String(), "boot session reported the node failed") != c.Failed || c.Failed == 0 {
		t.Errorf("describe shows %d failed nodes; want %d", strings.Count(out.String(), "boot session reported the node failed"), c.Failed)
	}
	// An older server: the full record, the same table.
	mu.Lock()
	older, paths = true, nil
	mu.Unlock()
	out.Reset()
	if code := run([]string{"describe", "--server", srv.URL, id}); code != exitOK {
		t.Fatalf("describe from an older server: exit %d", code)
	}
	if want := []string{"/sessions/" + id + "/description", "/sessions/" + id}; !slices.Equal(paths, want) {
		t.Errorf("describe from an older server asked for %q; want %q", paths, want)
	}
	if out.String() != table.String() {
		t.Errorf("describe from an older server printed:\n%s\nwant:\n%s", out.String(), table.String())
	}
}

// TestLocalWatchReadsRevisions: watching a session through a store
// (--store) reads its revision every two seconds and its record only
// when it moved; it read the whole record every two seconds. In a
// bubble: the two seconds are the bubble's.
func TestLocalWatchReadsRevisions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := scaletest.NewStore()
		s := scaletest.Session("w", 1000, 50)
		if err := st.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		world := fake.NewCluster(fake.ClusterOptions{Nodes: 1})
		ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: st})
		if err != nil {
			t.Fatal(err)
		}
		l := &local{ex: ex}
		var mu sync.Mutex
		var seen []api.Summary
		done := make(chan error)
		go func() {
			done <- l.Watch(ctx, "w", func(sum *api.Summary, _ *api.Event) bool {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, *sum)
				return !sum.Completed
			})
		}()
		synctest.Wait()
		st.Reset()
		time.Sleep(20 * time.Second) // ten polls, nothing moves
		synctest.Wait()
		if got := st.Counts(); got.Nodes != 0 || got.Views != 0 || got.Revisions != 10 {
			t.Errorf("ten polls of a session that did not move read %+v; want 10 revisions only", got)
		}
		s.Completed = true
		if err := st.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 2 || seen[0].Completed || !seen[1].Completed || seen[1].Counts.Nodes != 1000 {
			t.Errorf("the watch saw %d summaries: %+v; want the first and the completed one", len(seen), seen)
		}
	})
}
