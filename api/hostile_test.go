package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/internal/fake"
)

// TestCrossSiteWritesRefused: a page on another site cannot make an
// admin's browser create, pause or cancel a session. A fetch in no-cors
// mode sends a JSON body without a Content-Type (a simple request, no
// preflight); behind the gateway every request is trusted, so such a
// POST created a session — a rolling reboot of the starting group.
func TestCrossSiteWritesRefused(t *testing.T) {
	h := newHarness(t, 12)
	spec := original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4)
	for _, hdr := range [][]string{
		{"Content-Type", "", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
		{"Content-Type", "", "Sec-Fetch-Site", "same-site", "Origin", "https://other.cluster.example"},
		{"Content-Type", "", "Origin", "https://evil.example"}, // a browser without Sec-Fetch-Site
	} {
		h.expect(http.StatusForbidden, h.url, "POST", "/session", spec, hdr...)
		h.expect(http.StatusForbidden, h.url, "POST", "/sessions", spec, hdr...)
		h.expect(http.StatusForbidden, h.url, "POST", "/sessions/x/pause", nil, hdr...)
		h.expect(http.StatusForbidden, h.url, "DELETE", "/session/x", nil, hdr...)
	}
	if n := h.sessions(); n != 0 {
		t.Fatalf("%d sessions created cross-site", n)
	}
	h.untouched("cross-site requests")
	// Reads stay open to any page (they change nothing), and the page's
	// own requests, and clients that are not browsers, go through.
	h.expect(http.StatusOK, h.url, "GET", "/session", nil, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	h.expect(http.StatusCreated, h.url, "POST", "/session", spec, "Sec-Fetch-Site", "same-origin")
	h.expect(http.StatusNotFound, h.url, "POST", "/sessions/x/pause", nil)
}

// crossSite sends each request ("METHOD path") as a browser on another
// site's page would, and expects it refused.
func (h *harness) crossSite(requests ...string) {
	h.t.Helper()
	for _, r := range requests {
		method, path, _ := strings.Cut(r, " ")
		h.expect(http.StatusForbidden, h.url, method, path, "{}", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	}
}

// flushWriter records whether anything was flushed to the client.
type flushWriter struct {
	header  http.Header
	status  int
	flushed atomic.Bool
}

func (w *flushWriter) Header() http.Header              { return w.header }
func (w *flushWriter) WriteHeader(status int)           { w.status = status }
func (w *flushWriter) Write(p []byte) (int, error)      { return len(p), nil }
func (w *flushWriter) Flush()                           { w.flushed.Store(true) }
func (w *flushWriter) SetWriteDeadline(time.Time) error { return nil }

// TestEmptyStreamAnswersAtOnce: the stream of every session, when there
// is none, sends its head at once; it waited for the first keep-alive
// (15 s by default), the client not knowing meanwhile whether it was
// connected.
func TestEmptyStreamAnswersAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		world := fake.NewCluster(fake.ClusterOptions{Nodes: 2})
		ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{})
		if err != nil {
			t.Fatal(err)
		}
		handler, err := api.New(ex, api.Config{Events: api.NewHub(), KeepAlive: time.Hour, WatchPoll: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		w := &flushWriter{header: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			handler.ServeHTTP(w, httptest.NewRequest("GET", "/events", nil))
		}()
		synctest.Wait()
		if !w.flushed.Load() || w.status != http.StatusOK {
			t.Errorf("an open stream with nothing to send yet: status %d, flushed %v; want 200, flushed", w.status, w.flushed.Load())
		}
		handler.Close()
		<-done
	})
}
