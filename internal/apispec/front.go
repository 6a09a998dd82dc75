package apispec

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Front is what a test server puts in front of its API handler, as the API
// gateway and the server's own validation do on a real system: it counts
// requests per operation, checks the bearer token (if one is set), and
// checks every request and answer against the document, keeping the
// violations. Its methods are safe for concurrent use.
type Front struct {
	spec    *Spec
	route   func(path string) string
	report  func(Violation)
	handler http.Handler

	mu         sync.Mutex
	token      string
	requests   map[string]int
	violations []Violation
}

// Front wraps api, the handler of the operations under s.Base. route names
// the operation of a path below s.Base (for Requests); token, if not
// empty, is the bearer token every request must carry; report, if not nil,
// is also called with each violation.
func (s *Spec) Front(api http.Handler, route func(path string) string, token string, report func(Violation)) *Front {
	f := &Front{spec: s, route: route, report: report, token: token, requests: map[string]int{}}
	f.handler = s.Validate(api, f.violation)
	return f
}

// ServeHTTP counts the request, checks its token and passes it on
// validated.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	tok := f.token
	f.requests[r.Method+" "+f.route(strings.TrimPrefix(r.URL.Path, f.spec.Base))]++
	f.mu.Unlock()
	if tok != "" && r.Header.Get("Authorization") != "Bearer "+tok {
		problem(w, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	f.handler.ServeHTTP(w, r)
}

// Base is the path the API is served under.
func (f *Front) Base() string { return f.spec.Base }

// SetToken changes the bearer token requests must carry ("" for none), as
// when a token expires.
func (f *Front) SetToken(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = tok
}

// Requests returns how many requests each operation got, keyed like
// "POST /groups/{label}/members".
func (f *Front) Requests() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.requests)
}

// Violations returns the traffic the document did not allow so far.
func (f *Front) Violations() []Violation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

func (f *Front) violation(v Violation) {
	f.mu.Lock()
	f.violations = append(f.violations, v)
	f.mu.Unlock()
	if f.report != nil {
		f.report(v)
	}
}
