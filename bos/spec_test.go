package bos_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
)

// stubBOS answers as a BOS v2 may by its OpenAPI document, in ways
// bosserver does not: each test sets what it needs. Requests are counted
// by "METHOD path".
type stubBOS struct {
	mu      sync.Mutex
	calls   map[string]int
	handler func(w http.ResponseWriter, r *http.Request) bool // true: answered
}

func (s *stubBOS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[r.Method+" "+r.URL.Path]++
	s.mu.Unlock()
	if s.handler != nil && s.handler(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"type":"about:blank","title":"Not Found","status":404,"detail":"no such thing"}`))
}

func (s *stubBOS) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func stubClient(t *testing.T, s *stubBOS) *bos.Client {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	c, err := bos.New(bos.Config{BaseURL: ts.URL, RetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A 429 to POST /v2/sessions refused the create unprocessed: the client
// returns at once with an error crus retries later, rather than sending
// the create again and again without the wait the server asked for.
func TestCreateTooManyRequests(t *testing.T) {
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v2/sessions" {
			w.Header().Set("Retry-After", "30")
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"title": "Too Many Requests", "status": 429})
			return true
		}
		return false
	}}
	c := stubClient(t, s)
	err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: "tmpl", Limit: []string{"x3000c0s1b0n0"}})
	var apiErr *bos.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || errors.Is(err, batch.ErrPermanent) {
		t.Errorf("Reboot answered 429: %v; want a 429 APIError that is not permanent", err)
	}
	if n := s.count("POST /v2/sessions"); n != 1 {
		t.Errorf("%d creates sent after a 429; want 1", n)
	}
}

// The spec requires only name, operation and template_name of a session
// (V2Session): one read back without limit or status is neither another
// session nor a failure.
func TestSessionWithoutLimitOrStatus(t *testing.T) {
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && r.URL.Path == "/v2/sessions/s1" {
			writeJSON(w, http.StatusOK, map[string]any{"name": "s1", "operation": "reboot", "template_name": "tmpl"})
			return true
		}
		return false
	}}
	c := stubClient(t, s)
	if err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: "tmpl", Limit: []string{"x3000c0s1b0n0"}}); err != nil {
		t.Errorf("Reboot of a session that exists without a limit shown: %v; want nil", err)
	}
	if n := s.count("POST /v2/sessions"); n != 0 {
		t.Errorf("%d creates sent for a session that exists", n)
	}
	st, err := c.Status(t.Context(), "s1", []string{"x3000c0s1b0n0"})
	if err != nil || st.Phase != bos.PhasePending {
		t.Errorf("Status of a session without status: %+v, %v; want pending", st, err)
	}
}

// V2ComponentStatus: "status_override: If set, this will override the
// status value."
func TestStatusOverride(t *testing.T) {
	const a, b, c3 = "x3000c0s1b0n0", "x3000c0s2b0n0", "x3000c0s3b0n0"
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v2/sessions/s1":
			writeJSON(w, http.StatusOK, map[string]any{"name": "s1", "operation": "reboot", "template_name": "tmpl",
				"limit":  a + "," + b + "," + c3,
				"status": map[string]any{"status": "complete", "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:10:00Z", "error": nil}})
		case r.Method == http.MethodGet && r.URL.Path == "/v2/components":
			writeJSON(w, http.StatusOK, []map[string]any{
				{"id": a, "session": "s1", "error": "", "status": map[string]any{"phase": "", "status": "stable", "status_override": "failed"}},
				{"id": b, "session": "s1", "error": "", "status": map[string]any{"phase": "", "status": "failed", "status_override": "stable"}},
				{"id": c3, "session": "s1", "error": "", "status": map[string]any{"phase": "", "status": "stable", "status_override": ""}},
			})
		default:
			return false
		}
		return true
	}}
	c := stubClient(t, s)
	st, err := c.Status(t.Context(), "s1", []string{a, b, c3})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bos.Result{a: bos.ResultFailed, b: bos.ResultSucceeded, c3: bos.ResultSucceeded}
	for x, r := range want {
		if st.Nodes[x].Result != r {
			t.Errorf("node %s: %+v; want %q", x, st.Nodes[x], r)
		}
	}
}

// The same for BOS v1: a 429 to POST /v1/session is returned at once.
func TestV1CreateTooManyRequests(t *testing.T) {
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/session":
			writeJSON(w, http.StatusOK, []string{})
		case r.Method == http.MethodPost && r.URL.Path == "/v1/session":
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"title": "Too Many Requests", "status": 429})
		default:
			return false
		}
		return true
	}}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	c, err := bos.NewV1(bos.V1Config{Config: bos.Config{BaseURL: ts.URL, RetryWait: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Reboot(t.Context(), bos.Request{Name: "s1", Template: "tmpl", Limit: []string{"x3000c0s1b0n0"}})
	var apiErr *bos.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || errors.Is(err, batch.ErrPermanent) {
		t.Errorf("Reboot answered 429: %v; want a 429 APIError that is not permanent", err)
	}
	if n := s.count("POST /v1/session"); n != 1 {
		t.Errorf("%d creates sent after a 429; want 1", n)
	}
}

// POST /v2/sessions answers with the session (V2Session), whose name is
// BOS's to give: the client follows the session under that name, and
// never creates it again under its own.
func TestSessionNamedByBOS(t *testing.T) {
	const x = "x3000c0s1b0n0"
	var mu sync.Mutex
	created := false
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		session := map[string]any{"name": "tenant-a-s1", "operation": "reboot", "template_name": "tmpl", "limit": x,
			"status": map[string]any{"status": "complete", "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:10:00Z"}}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v2/sessions":
			if created {
				writeJSON(w, http.StatusConflict, map[string]any{"title": "Conflict", "status": 409})
				return true
			}
			created = true
			session["status"] = map[string]any{"status": "pending", "start_time": "2026-01-01T00:00:00Z"}
			writeJSON(w, http.StatusCreated, session)
		case r.Method == http.MethodGet && r.URL.Path == "/v2/sessions/tenant-a-s1" && created:
			writeJSON(w, http.StatusOK, session)
		case r.Method == http.MethodGet && r.URL.Path == "/v2/components" && r.URL.Query().Get("ids") == x:
			writeJSON(w, http.StatusOK, []map[string]any{{"id": x, "session": "tenant-a-s1", "status": map[string]any{"status": "stable"}}})
		default:
			return false
		}
		return true
	}}
	c := stubClient(t, s)
	req := bos.Request{Name: "s1", Template: "tmpl", Limit: []string{x}}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(t.Context(), "s1", []string{x})
	if err != nil || st.Phase != bos.PhaseComplete || st.Nodes[x].Result != bos.ResultSucceeded {
		t.Errorf("Status of the session BOS named tenant-a-s1: %+v, %v; want complete, %s succeeded", st, err, x)
	}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Errorf("Reboot again: %v; want nil, nothing created", err)
	}
	if n := s.count("POST /v2/sessions"); n != 1 {
		t.Errorf("%d creates; want 1", n)
	}
}

// A session BOS accepted and then deleted (DELETE /v2/sessions/{name}: 204)
// is over with no known outcome: it is not ErrSessionNotFound, which crus
// takes for a boot never accepted and sends again, rebooting the nodes a
// second time. A 404 for a session never seen is still ErrSessionNotFound.
func TestDeletedSessionIsNotCreatedAgain(t *testing.T) {
	const x = "x3000c0s1b0n0"
	var mu sync.Mutex
	exists := false
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v2/sessions":
			exists = true
			writeJSON(w, http.StatusCreated, map[string]any{"name": "s1", "operation": "reboot", "template_name": "tmpl", "limit": x,
				"status": map[string]any{"status": "pending", "start_time": "2026-01-01T00:00:00Z"}})
		case r.Method == http.MethodGet && r.URL.Path == "/v2/sessions/s1" && exists:
			writeJSON(w, http.StatusOK, map[string]any{"name": "s1", "operation": "reboot", "template_name": "tmpl", "limit": x,
				"status": map[string]any{"status": "running", "start_time": "2026-01-01T00:00:00Z"}})
		case r.Method == http.MethodGet && r.URL.Path == "/v2/components":
			writeJSON(w, http.StatusOK, []map[string]any{})
		default:
			return false
		}
		return true
	}}
	c := stubClient(t, s)
	if _, err := c.Status(t.Context(), "s1", []string{x}); !errors.Is(err, bos.ErrSessionNotFound) {
		t.Errorf("Status before any create: %v; want ErrSessionNotFound", err)
	}
	req := bos.Request{Name: "s1", Template: "tmpl", Limit: []string{x}}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(t.Context(), "s1", []string{x}); err != nil || st.Phase != bos.PhaseRunning {
		t.Fatalf("Status: %+v, %v; want running", st, err)
	}
	mu.Lock()
	exists = false // deleted by an admin
	mu.Unlock()
	st, err := c.Status(t.Context(), "s1", []string{x})
	if err != nil || st.Phase != bos.PhaseComplete || st.Error == "" {
		t.Errorf("Status of the deleted session: %+v, %v; want complete with an error", st, err)
	}
	if err := c.Reboot(t.Context(), req); err != nil {
		t.Errorf("Reboot of the deleted session: %v; want nil, nothing created", err)
	}
	if n := s.count("POST /v2/sessions"); n != 1 {
		t.Errorf("%d creates; want 1", n)
	}
}

// The same for BOS v1 (DELETE /v1/session/{session_id}: 204): a recorded
// session that BOS no longer has was deleted.
func TestV1DeletedSession(t *testing.T) {
	const x = "x3000c0s1b0n0"
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		return false // every session is gone
	}}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	store := &bos.MemoryV1Store{}
	if err := store.Put(t.Context(), bos.V1Record{Name: "s1", ID: "0d4d8b8c-1111-2222-3333-444455556666", Template: "tmpl", Limit: []string{x}}); err != nil {
		t.Fatal(err)
	}
	c, err := bos.NewV1(bos.V1Config{Config: bos.Config{BaseURL: ts.URL, RetryWait: time.Millisecond}, Sessions: store})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(t.Context(), "s1", []string{x})
	if err != nil || st.Phase != bos.PhaseComplete || st.Error == "" {
		t.Errorf("Status of the deleted session: %+v, %v; want complete with an error", st, err)
	}
	if _, err := c.Status(t.Context(), "never", []string{x}); !errors.Is(err, bos.ErrSessionNotFound) {
		t.Errorf("Status of a session never created: %v; want ErrSessionNotFound", err)
	}
}

// BOS deletes complete sessions itself after cleanup_completed_session_ttl
// (V2Options): a session deleted before crus read it complete still has
// its outcomes in its components, and they count.
func TestDeletedSessionOutcomesFromComponents(t *testing.T) {
	const a, b = "x3000c0s1b0n0", "x3000c0s2b0n0"
	var mu sync.Mutex
	exists := true
	s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v2/sessions/s1" && exists:
			writeJSON(w, http.StatusOK, map[string]any{"name": "s1", "operation": "reboot", "template_name": "tmpl", "limit": a + "," + b,
				"status": map[string]any{"status": "pending", "start_time": "2026-01-01T00:00:00Z"}})
		case r.Method == http.MethodGet && r.URL.Path == "/v2/components":
			writeJSON(w, http.StatusOK, []map[string]any{
				{"id": a, "session": "s1", "status": map[string]any{"status": "stable"}},
				{"id": b, "session": "s1", "error": "power on failed", "status": map[string]any{"status": "failed"}},
			})
		default:
			return false
		}
		return true
	}}
	c := stubClient(t, s)
	if st, err := c.Status(t.Context(), "s1", []string{a, b}); err != nil || st.Phase != bos.PhasePending {
		t.Fatalf("Status: %+v, %v; want pending", st, err)
	}
	mu.Lock()
	exists = false // complete, and cleaned up by BOS
	mu.Unlock()
	st, err := c.Status(t.Context(), "s1", []string{a, b})
	if err != nil || st.Phase != bos.PhaseComplete || st.Error != "" || st.Nodes[a].Result != bos.ResultSucceeded || st.Nodes[b].Result != bos.ResultFailed {
		t.Errorf("Status of the session cleaned up: %+v, %v; want complete, %s succeeded, %s failed", st, err, a, b)
	}
}

// include_disabled (V2SessionCreate, default false) arrived in BOS 2.0.10:
// it is sent only when set, so that an older BOS v2 is not sent a field
// it does not know.
func TestIncludeDisabledSentOnlyWhenSet(t *testing.T) {
	for _, set := range []bool{false, true} {
		var mu sync.Mutex
		var body map[string]any
		s := &stubBOS{handler: func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPost || r.URL.Path != "/v2/sessions" {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			_ = json.NewDecoder(r.Body).Decode(&body)
			writeJSON(w, http.StatusCreated, map[string]any{"name": "s1", "operation": "reboot", "template_name": "tmpl"})
			return true
		}}
		ts := httptest.NewServer(s)
		t.Cleanup(ts.Close)
		c, err := bos.New(bos.Config{BaseURL: ts.URL, RetryWait: time.Millisecond, IncludeDisabled: set})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Reboot(t.Context(), bos.Request{Name: "s1", Template: "tmpl", Limit: []string{"x3000c0s1b0n0"}}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		v, sent := body["include_disabled"]
		mu.Unlock()
		if sent != set || set && v != true {
			t.Errorf("IncludeDisabled %v: body %v", set, body)
		}
	}
}
