package api_test

import (
	"net/http"
	"strings"
	"testing"

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
