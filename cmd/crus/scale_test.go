package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

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
