// Package redirtest helps test that crus's HTTP clients refuse redirects:
// a [Trap] is the server a hostile or misconfigured service redirects to,
// and records every request that reaches it (none must), and [Redirect]
// is the service's answer.
package redirtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Statuses are the redirect statuses Go's client follows: 301, 302 and
// 303 (sent again as GET) and 307 and 308 (sent again with the body).
var Statuses = []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect}

// Seen is one request the trap received.
type Seen struct {
	Method, URL string
	Header      http.Header
	Body        string
}

// Trap is a plain-HTTP server that answers 200 "{}" to anything and
// records what it got.
type Trap struct {
	*httptest.Server
	mu   sync.Mutex
	seen []Seen
}

// NewTrap starts a trap, closed at the end of the test.
func NewTrap(t testing.TB) *Trap {
	tr := &Trap{}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tr.mu.Lock()
		tr.seen = append(tr.seen, Seen{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone(), Body: string(body)})
		tr.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"trap-token","token_type":"Bearer","expires_in":300}`)
	}))
	t.Cleanup(tr.Close)
	return tr
}

// Seen returns the requests received so far.
func (tr *Trap) Seen() []Seen {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]Seen(nil), tr.seen...)
}

// Check fails the test if the trap received any request, and says which
// of the secrets it would have leaked.
func (tr *Trap) Check(t testing.TB, secrets ...string) {
	t.Helper()
	for _, s := range tr.Seen() {
		var leaked []string
		all := s.URL + " " + s.Body
		for k, v := range s.Header {
			all += " " + k + ": " + strings.Join(v, ",")
		}
		for _, sec := range secrets {
			if sec != "" && strings.Contains(all, sec) {
				leaked = append(leaked, sec)
			}
		}
		t.Errorf("the redirect was followed: %s %s reached the redirect's target (secrets sent: %q)", s.Method, s.URL, leaked)
	}
}

// Redirect answers every request with status and a Location of target
// followed by the request's path and query.
func Redirect(status int, target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", strings.TrimRight(target, "/")+r.URL.RequestURI())
		w.WriteHeader(status)
	})
}
