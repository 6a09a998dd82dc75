package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/fake"
)

// flakyStore is a MemoryStore that fails every call while down is set
// (a store that cannot be reached).
type flakyStore struct {
	*crus.MemoryStore
	down atomic.Bool
}

var errStoreDown = errors.New("store unreachable")

func (f *flakyStore) err() error {
	if f.down.Load() {
		return errStoreDown
	}
	return nil
}

func (f *flakyStore) Create(ctx context.Context, s *crus.Session) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.MemoryStore.Create(ctx, s)
}
func (f *flakyStore) CreateReserved(ctx context.Context, s *crus.Session) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.MemoryStore.CreateReserved(ctx, s)
}
func (f *flakyStore) Get(ctx context.Context, id string) (*crus.Session, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.MemoryStore.Get(ctx, id)
}
func (f *flakyStore) View(ctx context.Context, id string, fn func(*crus.Session) error) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.MemoryStore.View(ctx, id, fn)
}
func (f *flakyStore) ViewAll(ctx context.Context, fn func(*crus.Session) error) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.MemoryStore.ViewAll(ctx, fn)
}
func (f *flakyStore) List(ctx context.Context) ([]*crus.Session, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.MemoryStore.List(ctx)
}
func (f *flakyStore) Update(ctx context.Context, s *crus.Session) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.MemoryStore.Update(ctx, s)
}
func (f *flakyStore) Delete(ctx context.Context, id string) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.MemoryStore.Delete(ctx, id)
}
func (f *flakyStore) Reservations(ctx context.Context) ([]crus.Reservation, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.MemoryStore.Reservations(ctx)
}
func (f *flakyStore) Revision(ctx context.Context, id string) (int64, error) {
	if err := f.err(); err != nil {
		return 0, err
	}
	return f.MemoryStore.Revision(ctx, id)
}

type harness struct {
	t      *testing.T
	world  *fake.World
	store  *flakyStore
	ex     *crus.Executor
	hub    *api.Hub
	url    string // the server with gateway auth and dry runs
	bare   string // a server with neither dry runs nor event hub
	jwtURL string // a server verifying tokens
	client *http.Client
	check  *checker
	signer jose.Signer // signs tokens the JWT server accepts
	other  jose.Signer // signs with a key the JWKS does not hold
}

const (
	issuer   = "https://keycloak.test/realms/shasta"
	audience = "crus"
)

func newHarness(t *testing.T, nodes int) *harness {
	t.Helper()
	h := &harness{t: t, store: &flakyStore{MemoryStore: crus.NewMemoryStore()}, hub: api.NewHub()}
	h.world = fake.NewCluster(fake.ClusterOptions{Options: fake.Options{Seed: 3}, Nodes: nodes, Busy: 0.5, MaxJob: time.Hour})
	h.world.AddGroup("other-upgrading")
	h.world.AddGroup("other-failed")
	// The template boots either upgrading group (pre-flight checks it can
	// boot the session's nodes).
	h.world.AddTemplate(fake.Template, fake.UpgradingLabel, "other-upgrading")
	cfg := crus.Config{
		Store: h.store, Clock: h.world, OnEvent: h.hub.Publish,
		RetryTimeout: time.Second, RetryInitial: time.Millisecond, RetryMax: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	var err error
	if h.ex, err = crus.NewExecutor(h.world.HSM(), h.world.WLM(), h.world.BOS(), cfg); err != nil {
		t.Fatal(err)
	}
	mount := func(c api.Config) string {
		handler, err := api.New(h.ex, c)
		if err != nil {
			t.Fatal(err)
		}
		// No ServeMux in front: it redirects unclean paths ("//session").
		srv := httptest.NewServer(http.StripPrefix("/apis/crus", handler))
		t.Cleanup(srv.Close)
		t.Cleanup(handler.Close)
		return srv.URL
	}
	// A body is given a second (h.stalled).
	h.url = mount(api.Config{Events: h.hub, Store: h.store, DryRuns: true, MaxBodyBytes: 4096, WatchPoll: 20 * time.Millisecond, BodyReadTimeout: time.Second})
	h.bare = mount(api.Config{})

	// A JWKS endpoint with one RSA key, and a signer for it.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	t.Cleanup(keys.Close)
	h.jwtURL = mount(api.Config{Auth: &api.JWT{JWKSURL: keys.URL, Issuer: issuer, Audience: audience}})
	if h.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1")); err != nil {
		t.Fatal(err)
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if h.other, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: otherKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1")); err != nil {
		t.Fatal(err)
	}

	h.check = newChecker(t)
	h.client = &http.Client{
		Transport: h.check,
		// Any redirect is a failure: a redirected POST becomes a GET.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			t.Errorf("redirected from %s to %s", via[len(via)-1].URL, req.URL)
			return http.ErrUseLastResponse
		},
	}
	return h
}

func (h *harness) token(signer jose.Signer, claims jwt.Claims) string {
	h.t.Helper()
	tok, err := jwt.Signed(signer).Claims(claims).Claims(map[string]any{"preferred_username": "admin"}).Serialize()
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func validClaims() jwt.Claims {
	now := time.Now()
	return jwt.Claims{Issuer: issuer, Audience: jwt.Audience{audience}, Subject: "admin-client",
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}
}

// do sends a request and returns the status and body.
func (h *harness) do(base, method, path string, body any, header ...string) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+"/apis/crus"+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, out
}

func (h *harness) expect(want int, base, method, path string, body any, header ...string) []byte {
	h.t.Helper()
	status, out := h.do(base, method, path, body, header...)
	if status != want {
		h.t.Fatalf("%s %s: %d %s; want %d", method, path, status, out, want)
	}
	return out
}

func original(starting, upgrading, failed string, step int) map[string]any {
	return map[string]any{
		"starting_label": starting, "upgrading_label": upgrading, "failed_label": failed,
		"upgrade_step_size": step, "upgrade_template_id": fake.Template, "workload_manager_type": "slurm",
	}
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

// untouched fails the test if any call changed a node or a group.
func (h *harness) untouched(what string) {
	h.t.Helper()
	if touched := h.world.Touched(); len(touched) > 0 {
		h.t.Errorf("%s touched nodes: %v", what, touched)
	}
	for _, l := range []string{fake.UpgradingLabel, fake.FailedLabel} {
		if m := h.world.Members(l); len(m) > 0 {
			h.t.Errorf("%s changed group %s: %v", what, l, m)
		}
	}
}

func (h *harness) sessions() int {
	list, err := h.ex.List(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return len(list)
}

// TestOriginalAPI drives every path of the original API through every
// answer it can give, checking each request and answer against the
// original CRUS document (and crus's own).
func TestOriginalAPI(t *testing.T) {
	h := newHarness(t, 12)
	h.check.strict = false

	// 400: every problem of the body at once; nothing created.
	bad := original("crus-starting", "BAD LABEL", "crus-starting", 0)
	bad["upgrade_template_id"] = 7
	bad["strategy"] = "rolling" // an extension: not on the original path
	out := h.expect(400, h.url, "POST", "/session", bad)
	p := decode[api.Problem](t, out)
	var fields []string
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	slices.Sort(fields)
	want := []string{"failed_label", "strategy", "upgrade_step_size", "upgrade_template_id", "upgrading_label"}
	if !slices.Equal(fields, want) {
		t.Errorf("400 lists fields %v; want %v (%s)", fields, want, out)
	}
	if p.Title == "" || p.Detail == "" || p.Status != 400 {
		t.Errorf("problem %+v lacks title, detail or status", p)
	}
	// crus's own option says where it belongs; a field of neither API
	// does not.
	for _, e := range p.Errors {
		if e.Field == "strategy" && !strings.Contains(e.Problem, "POST /sessions") {
			t.Errorf("strategy sent to the original create: %q; want it to name the endpoint that takes it", e.Problem)
		}
	}
	p = decode[api.Problem](t, h.expect(400, h.url, "POST", "/session", map[string]any{"no_such_field": 1}))
	for _, e := range p.Errors {
		if e.Field == "no_such_field" && strings.Contains(e.Problem, "POST /sessions") {
			t.Errorf("an unknown field: %q; want no hint of another endpoint", e.Problem)
		}
	}
	h.expect(400, h.url, "POST", "/session", `{"starting_label": "a"`)
	h.expect(400, h.url, "POST", "/session", `[1, 2]`)
	h.expect(400, h.url, "POST", "/session", map[string]any{"upgrade_step_size": "5"})
	// 413 and 415.
	huge := original("crus-starting", "crus-upgrading", "crus-failed", 2)
	huge["starting_label"] = strings.Repeat("a", 5000)
	h.expect(413, h.url, "POST", "/session", huge)
	h.expect(415, h.url, "POST", "/session", "x", "Content-Type", "text/plain")
	// 422: a pre-flight refusal.
	out = h.expect(422, h.url, "POST", "/session", original("no-such-group", "crus-upgrading", "crus-failed", 2))
	if !strings.Contains(string(out), "no-such-group") {
		t.Errorf("422 does not name the missing group: %s", out)
	}
	if n := h.sessions(); n != 0 {
		t.Fatalf("refused requests created %d sessions", n)
	}
	h.untouched("refused creates")

	// 201, 200.
	h.check.strict = true
	out = h.expect(201, h.url, "POST", "/session", original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4))
	st := decode[crus.Status](t, out)
	if st.State != crus.StateCreated || st.StepSize != 4 || st.UpgradeID == "" || len(st.Messages) == 0 {
		t.Errorf("created %+v", st)
	}
	list := decode[[]crus.Status](t, h.expect(200, h.url, "GET", "/session", nil))
	if len(list) != 1 || list[0].UpgradeID != st.UpgradeID {
		t.Errorf("list %+v", list)
	}
	got := decode[crus.Status](t, h.expect(200, h.url, "GET", "/session/"+st.UpgradeID, nil))
	if got.UpgradeID != st.UpgradeID {
		t.Errorf("get %+v", got)
	}

	// 409: the same nodes are held by the session in progress; the answer
	// names it, and nothing changes.
	h.check.strict = false
	out = h.expect(409, h.url, "POST", "/session", original(fake.StartingLabel, "other-upgrading", "other-failed", 4))
	p = decode[api.Problem](t, out)
	if !strings.Contains(p.Detail, st.UpgradeID) || len(p.Conflicts) != 1 || p.Conflicts[0].Session != st.UpgradeID || len(p.Conflicts[0].Nodes) != 12 {
		t.Errorf("409 does not name the holder: %s", out)
	}
	if n := h.sessions(); n != 1 {
		t.Errorf("a refused create left %d sessions", n)
	}
	h.untouched("a refused create")

	// 404.
	unknown := uuid.NewString()
	h.check.strict = true
	h.expect(404, h.url, "GET", "/session/"+unknown, nil)
	h.expect(404, h.url, "DELETE", "/session/"+unknown, nil)
	// 405, and no redirect for a trailing slash or an odd path.
	h.check.strict = false
	h.expect(405, h.url, "PUT", "/session", "{}")
	h.expect(404, h.url, "POST", "/session/", original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4))
	h.expect(404, h.url, "GET", "//session", nil)

	// 401 from a server that verifies tokens; the same request with a
	// valid token is served.
	h.expect(401, h.jwtURL, "GET", "/session", nil)
	h.expect(401, h.jwtURL, "POST", "/session", "{}")
	h.expect(401, h.jwtURL, "GET", "/session/"+st.UpgradeID, nil)
	h.expect(401, h.jwtURL, "DELETE", "/session/"+st.UpgradeID, nil)
	h.expect(200, h.jwtURL, "GET", "/session", nil, "Authorization", "Bearer "+h.token(h.signer, validClaims()))

	// 200: delete cancels (a session never run finishes at once).
	h.check.strict = true
	del := decode[crus.Status](t, h.expect(200, h.url, "DELETE", "/session/"+st.UpgradeID, nil))
	if del.State != crus.StateDeleting {
		t.Errorf("deleted: %+v", del)
	}
	h.untouched("a cancelled session never run")

	// 503: the store cannot be reached.
	h.store.down.Store(true)
	h.check.strict = false
	h.expect(503, h.url, "GET", "/session", nil)
	h.expect(503, h.url, "GET", "/session/"+st.UpgradeID, nil)
	h.expect(503, h.url, "DELETE", "/session/"+st.UpgradeID, nil)
	h.expect(503, h.url, "POST", "/session", original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4))
	h.store.down.Store(false)

	// 403: a write a browser sends from another site's page.
	h.crossSite("POST /session", "DELETE /session/"+st.UpgradeID)
	// 408: a body that does not arrive.
	h.stalled(h.url, "POST", "/session")

	// Every answer the original document lists was given.
	seen := h.check.covered()
	for _, d := range []*document{h.check.crus, h.check.ext} {
		for path, item := range d.doc.Paths.Map() {
			if path != "/session" && path != "/session/{upgrade_id}" {
				continue
			}
			for method, op := range item.Operations() {
				for code := range op.Responses.Map() {
					if key := d.name + " " + method + " " + path + " " + code; !seen[key] {
						t.Errorf("never given: %s", key)
					}
				}
			}
		}
	}
}

// TestCreateAsTheOriginalClient: what the original cray CLI sends — the six
// fields, the step size as an integer — reaches Create and comes back as
// the original record, at the exact path, without a redirect.
func TestCreateAsTheOriginalClient(t *testing.T) {
	h := newHarness(t, 4)
	body := `{"starting_label":"crus-starting","upgrading_label":"crus-upgrading","failed_label":"crus-failed","upgrade_step_size":2,"upgrade_template_id":"compute-upgrade","workload_manager_type":"slurm"}`
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Post(h.url+"/apis/crus/session", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		t.Fatalf("POST /apis/crus/session: %d %s", resp.StatusCode, out)
	}
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"api_version", "completed", "failed_label", "kind", "messages", "starting_label", "state",
		"upgrade_id", "upgrade_step_size", "upgrade_template_id", "upgrading_label", "workload_manager_type"}
	if !slices.Equal(keys, want) {
		t.Errorf("record keys %v; want exactly the original's %v", keys, want)
	}
}

// TestExtensions drives every extension path through its answers,
// checking each exchange against crus's document.
func TestExtensions(t *testing.T) {
	h := newHarness(t, 16)
	ctx := context.Background()
	h.check.strict = true

	// The document itself.
	h.expect(200, h.url, "GET", "/openapi.yaml", nil)

	spec := original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4)
	spec["strategy"] = "rolling"
	spec["order"] = "idle_first"
	spec["canary"] = []int{1}
	spec["canary_approval"] = true
	spec["drain_timeout"] = "2h"

	// A dry run stores nothing and touches nothing.
	prev := decode[api.Preview](t, h.expect(200, h.url, "POST", "/plan", spec))
	if prev.Session == nil || len(prev.Session.Progress.Nodes) != 16 || prev.Session.Strategy != crus.StrategyRolling {
		t.Fatalf("dry run: %+v", prev)
	}
	if len(prev.Next.Actions) == 0 {
		t.Errorf("dry run plans nothing: %+v", prev.Next)
	}
	if n := h.sessions(); n != 0 {
		t.Fatalf("a dry run stored %d sessions", n)
	}
	h.untouched("a dry run")
	h.expect(501, h.bare, "POST", "/plan", spec)

	// Create with rollout options: the full record.
	s := decode[crus.Session](t, h.expect(201, h.url, "POST", "/sessions", spec))
	if s.Strategy != crus.StrategyRolling || len(s.Canary) != 1 || !s.CanaryApproval || len(s.Progress.Nodes) != 16 {
		t.Fatalf("created %+v", s.Spec)
	}
	id := s.UpgradeID
	// A dry run of the same spec now conflicts with it, as a create would.
	h.check.strict = false
	out := h.expect(409, h.url, "POST", "/plan", spec)
	if !strings.Contains(string(out), id) {
		t.Errorf("dry-run conflict does not name %s: %s", id, out)
	}
	h.expect(409, h.url, "POST", "/sessions", spec)
	h.check.strict = true

	sums := decode[[]api.Summary](t, h.expect(200, h.url, "GET", "/sessions", nil))
	if len(sums) != 1 || sums[0].Counts.Nodes != 16 || sums[0].Strategy != crus.StrategyRolling {
		t.Errorf("summaries %+v", sums)
	}
	full := decode[crus.Session](t, h.expect(200, h.url, "GET", "/sessions/"+id, nil))
	if len(full.Progress.Nodes) != 16 {
		t.Errorf("full record has %d nodes", len(full.Progress.Nodes))
	}
	nodes := decode[api.Nodes](t, h.expect(200, h.url, "GET", "/sessions/"+id+"/nodes?names=true", nil))
	if len(nodes.Codes) != 16 || len(nodes.XNames) != 16 || nodes.XNames[0] != full.Progress.Nodes[0].XName {
		t.Errorf("nodes %+v", nodes)
	}
	desc := decode[api.Description](t, h.expect(200, h.url, "GET", "/sessions/"+id+"/description", nil))
	if desc.Counts != sums[0].Counts || desc.UpgradeID != id || desc.Failed == nil || desc.Skipped == nil {
		t.Errorf("description %+v", desc)
	}
	next := decode[api.Preview](t, h.expect(200, h.url, "GET", "/sessions/"+id+"/plan", nil))
	if next.Session != nil || len(next.Next.Actions) == 0 {
		t.Errorf("session plan %+v", next)
	}
	h.expect(501, h.bare, "GET", "/sessions/"+id+"/plan", nil)

	// Pause, resume.
	paused := decode[api.Summary](t, h.expect(200, h.url, "POST", "/sessions/"+id+"/pause", nil))
	if !paused.Paused {
		t.Errorf("pause: %+v", paused)
	}
	resumed := decode[api.Summary](t, h.expect(200, h.url, "POST", "/sessions/"+id+"/resume", nil))
	if resumed.Paused {
		t.Errorf("resume: %+v", resumed)
	}

	// Watch the session while it runs: the stream starts with the summary,
	// carries the executor's events, and ends with "done" once approved.
	events := h.stream(ctx, id)
	runDone := make(chan error, 1)
	go func() { _, err := h.ex.Run(ctx, id); runDone <- err }()
	kinds := map[string]int{}
	approved := false
	for ev := range events {
		kinds[ev.name]++
		if ev.name == "stage" && strings.Contains(ev.data, `"awaiting_approval"`) && !approved {
			decode[api.Summary](t, h.expect(200, h.url, "POST", "/sessions/"+id+"/approve", nil))
			approved = true
		}
		if ev.name == "done" {
			break
		}
	}
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, k := range []string{"session", "started", "node", "stage", "done"} {
		if kinds[k] == 0 {
			t.Errorf("no %q event in the stream (%v)", k, kinds)
		}
	}
	if !approved {
		t.Errorf("the session never waited for approval (%v)", kinds)
	}

	// A completed session: 409 for the actions.
	h.check.strict = false
	for _, a := range []string{"pause", "resume", "approve"} {
		h.expect(409, h.url, "POST", "/sessions/"+id+"/"+a, nil)
	}
	h.expect(409, h.url, "GET", "/sessions/"+id+"/plan", nil)

	// Bad input: every problem listed; unknown fields refused.
	bad := original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4)
	bad["strategy"] = "fastest"
	bad["canary"] = "1"
	bad["colour"] = "blue"
	p := decode[api.Problem](t, h.expect(400, h.url, "POST", "/sessions", bad))
	if len(p.Errors) != 3 {
		t.Errorf("400 lists %d problems; want 3: %+v", len(p.Errors), p.Errors)
	}
	h.expect(400, h.url, "POST", "/plan", bad)
	// A timeout as a bare number (seconds? nanoseconds?) or below a
	// minute: refused, the field named, nothing created.
	for _, v := range []any{3600, "30s"} {
		bad = original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4)
		bad["boot_timeout"] = v
		out := h.expect(400, h.url, "POST", "/sessions", bad)
		if !strings.Contains(string(out), "boot_timeout") {
			t.Errorf("boot_timeout %v: 400 does not name the field: %s", v, out)
		}
	}
	h.expect(413, h.url, "POST", "/sessions", strings.Repeat(" ", 5000))
	h.expect(413, h.url, "POST", "/plan", strings.Repeat(" ", 5000))
	h.expect(415, h.url, "POST", "/sessions", "x", "Content-Type", "text/plain")
	h.expect(415, h.url, "POST", "/plan", "x", "Content-Type", "text/plain")
	missing := original("nope", fake.UpgradingLabel, fake.FailedLabel, 4)
	h.expect(422, h.url, "POST", "/sessions", missing)
	h.expect(422, h.url, "POST", "/plan", missing)

	// Delete a completed session: its record goes.
	h.check.strict = true
	h.expect(200, h.url, "DELETE", "/sessions/"+id, nil)
	h.check.strict = false
	for _, path := range []string{"/sessions/" + id, "/sessions/" + id + "/nodes", "/sessions/" + id + "/description", "/sessions/" + id + "/plan", "/sessions/" + id + "/events"} {
		h.expect(404, h.url, "GET", path, nil)
	}
	for _, a := range []string{"pause", "resume", "approve"} {
		h.expect(404, h.url, "POST", "/sessions/"+id+"/"+a, nil)
	}
	h.expect(404, h.url, "DELETE", "/sessions/"+id, nil)

	// 401 on every path of a server that verifies tokens.
	for _, rt := range []struct{ method, path string }{
		{"GET", "/sessions"}, {"POST", "/sessions"}, {"GET", "/sessions/x"}, {"DELETE", "/sessions/x"},
		{"POST", "/sessions/x/pause"}, {"POST", "/sessions/x/resume"}, {"POST", "/sessions/x/approve"},
		{"GET", "/sessions/x/nodes"}, {"GET", "/sessions/x/description"}, {"GET", "/sessions/x/plan"}, {"GET", "/sessions/x/events"},
		{"POST", "/plan"}, {"GET", "/events"}, {"POST", "/session"}, {"GET", "/session/" + uuid.NewString()}, {"DELETE", "/session/" + uuid.NewString()},
	} {
		var body any
		if rt.method == "POST" {
			body = "{}"
		}
		h.expect(401, h.jwtURL, rt.method, rt.path, body)
	}

	// 503 on every path when the store cannot be reached.
	created := decode[crus.Session](t, h.expect(201, h.url, "POST", "/sessions", original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 4)))
	h.store.down.Store(true)
	for _, rt := range []struct{ method, path string }{
		{"GET", "/sessions"}, {"GET", "/sessions/" + created.UpgradeID}, {"DELETE", "/sessions/" + created.UpgradeID},
		{"POST", "/sessions/" + created.UpgradeID + "/pause"}, {"POST", "/sessions/" + created.UpgradeID + "/resume"},
		{"POST", "/sessions/" + created.UpgradeID + "/approve"}, {"GET", "/sessions/" + created.UpgradeID + "/nodes"},
		{"GET", "/sessions/" + created.UpgradeID + "/description"},
		{"GET", "/sessions/" + created.UpgradeID + "/plan"}, {"GET", "/sessions/" + created.UpgradeID + "/events"},
	} {
		h.expect(503, h.url, rt.method, rt.path, nil)
	}
	h.expect(503, h.url, "POST", "/sessions", original(fake.StartingLabel, "other-upgrading", "other-failed", 4))
	h.expect(503, h.url, "POST", "/plan", original(fake.StartingLabel, "other-upgrading", "other-failed", 4))
	h.store.down.Store(false)
	// The stream of every session cannot list them either.
	h.store.down.Store(true)
	h.expect(503, h.url, "GET", "/events", nil)
	h.store.down.Store(false)

	// 403: a write a browser sends from another site's page.
	h.crossSite("POST /sessions", "POST /plan", "DELETE /sessions/"+created.UpgradeID,
		"POST /sessions/"+created.UpgradeID+"/pause", "POST /sessions/"+created.UpgradeID+"/resume",
		"POST /sessions/"+created.UpgradeID+"/approve")
	h.stalled(h.url, "POST", "/sessions")
	h.stalled(h.url, "POST", "/plan")

	// Every answer of every extension path was given (the streams' 200s
	// are checked by h.stream, not by the checker).
	seen := h.check.covered()
	for path, item := range h.check.ext.doc.Paths.Map() {
		if path == "/session" || path == "/session/{upgrade_id}" {
			continue // TestOriginalAPI
		}
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				key := "api/openapi.yaml " + method + " " + path + " " + code
				if !seen[key] && !(strings.HasSuffix(path, "/events") && code == "200") {
					t.Errorf("never given: %s", key)
				}
			}
		}
	}
}

type sse struct{ name, data string }

// stream opens the event stream of a session and checks each event's
// data against the document's schema.
func (h *harness) stream(ctx context.Context, id string) <-chan sse {
	h.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	h.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", h.url+"/apis/crus/sessions/"+id+"/events", nil)
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		h.t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	schemas := h.check.ext.doc.Components.Schemas
	out := make(chan sse, 4096)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				schema := "Event"
				if ev.name == "session" {
					schema = "Summary"
				}
				var v any
				if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
					h.t.Errorf("event %s: %v", ev.name, err)
				} else if ev.name != "lagged" && ev.name != "gone" {
					if err := schemas[schema].Value.VisitJSON(v); err != nil {
						h.t.Errorf("event %s does not match %s: %v\n%s", ev.name, schema, err, ev.data)
					}
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
				ev = sse{}
			}
		}
	}()
	return out
}

// TestJWT: tokens signed by a key of the JWKS, unexpired, from the right
// issuer and for the right audience, are accepted; anything else is 401.
// With PublicReads, GETs need no token but writes do.
func TestJWT(t *testing.T) {
	h := newHarness(t, 4)
	ok := h.token(h.signer, validClaims())
	h.expect(200, h.jwtURL, "GET", "/sessions", nil, "Authorization", "Bearer "+ok)
	for name, tok := range map[string]string{
		"wrong key": h.token(h.other, validClaims()),
		"expired": h.token(h.signer, func() jwt.Claims {
			c := validClaims()
			c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Hour))
			return c
		}()),
		"wrong issuer": h.token(h.signer, func() jwt.Claims { c := validClaims(); c.Issuer = "https://elsewhere"; return c }()),
		"wrong audience": h.token(h.signer, func() jwt.Claims {
			c := validClaims()
			c.Audience = jwt.Audience{"other"}
			return c
		}()),
		"no expiry": h.token(h.signer, func() jwt.Claims { c := validClaims(); c.Expiry = nil; return c }()),
		"garbage":   "not.a.token",
		"tampered":  ok[:len(ok)-4] + "AAAA",
	} {
		status, out := h.do(h.jwtURL, "GET", "/sessions", nil, "Authorization", "Bearer "+tok)
		if status != 401 {
			t.Errorf("%s: %d %s; want 401", name, status, out)
		}
	}

	// PublicReads: a status page may read without a token.
	handler, err := api.New(h.ex, api.Config{PublicReads: true, Auth: &api.JWT{JWKSURL: "http://127.0.0.1:1/unused"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/apis/crus", handler))
	defer srv.Close()
	h.expect(200, srv.URL, "GET", "/sessions", nil)
	// A write still needs one, and the keys cannot be fetched: 503.
	h.expect(503, srv.URL, "POST", "/sessions", "{}", "Authorization", "Bearer "+ok)
}

// TestGatewayTrusts: behind the gateway every request is served.
func TestGatewayTrusts(t *testing.T) {
	h := newHarness(t, 4)
	h.expect(201, h.url, "POST", "/session", original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 2))
	h.expect(200, h.url, "GET", "/session", nil, "Authorization", "Bearer whatever")
}

// TestBackendDown: a create whose pre-flight cannot read a backend is 503,
// not a refusal of the spec, and creates nothing.
func TestBackendDown(t *testing.T) {
	h := newHarness(t, 4)
	h.world.FailNext("hsm.Members", 3, batch.NewPermanent("hsm: connection refused"))
	out := h.expect(503, h.url, "POST", "/session", original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 2))
	if !strings.Contains(string(out), "connection refused") {
		t.Errorf("503 does not say why: %s", out)
	}
	if n := h.sessions(); n != 0 {
		t.Errorf("created %d sessions", n)
	}
	h.untouched("a create refused for a backend outage")
}

// TestExtensionsScheduled: a scheduled session through the API, every
// request and answer checked against the document: its options are
// accepted, a dry run shows the reservations it would make (name and
// times), and a record holding conditions and reservation numbers is
// answered as the document says.
func TestExtensionsScheduled(t *testing.T) {
	h := newHarness(t, 16)
	h.check.strict = true
	spec := original(fake.StartingLabel, fake.UpgradingLabel, fake.FailedLabel, 2)
	spec["strategy"] = "scheduled"
	spec["reboot_time"] = "12m"
	spec["booking_slack"] = "1h"
	spec["retry_failed"] = true

	prev := decode[api.Preview](t, h.expect(200, h.url, "POST", "/plan", spec))
	if prev.Session == nil || prev.Session.Strategy != crus.StrategyScheduled || prev.Session.RebootTime != crus.Duration(12*time.Minute) {
		t.Fatalf("dry run: %+v", prev.Session)
	}
	s := decode[crus.Session](t, h.expect(201, h.url, "POST", "/sessions", spec))
	next := decode[api.Preview](t, h.expect(200, h.url, "GET", "/sessions/"+s.UpgradeID+"/plan", nil))
	var booked []api.Action
	for _, a := range next.Next.Actions {
		if a.Kind == crus.ActBook {
			booked = append(booked, a)
		}
	}
	if len(booked) == 0 {
		t.Fatalf("the dry run of a busy cluster books nothing: %+v", next.Next.Actions)
	}
	for _, a := range booked {
		if !strings.HasPrefix(a.Reservation, "crus-"+s.UpgradeID+"-") || a.Start.IsZero() || !a.End.After(a.Start) || len(a.Nodes) == 0 {
			t.Errorf("book action without its reservation: %+v", a)
		}
	}

	// A record as it stands in an outage of the reservations.
	stored, err := h.store.Get(context.Background(), s.UpgradeID)
	if err != nil {
		t.Fatal(err)
	}
	stored.Progress.Booked, stored.Progress.BookedUpTo = []int64{3, 4}, 5
	stored.Progress.Conditions = []crus.Condition{{Kind: crus.CondBookingsUnreadable, Since: h.world.Now(), Message: "reading reservations: refused"}}
	if err := h.store.Update(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	full := decode[crus.Session](t, h.expect(200, h.url, "GET", "/sessions/"+s.UpgradeID, nil))
	if len(full.Progress.Booked) != 2 || len(full.Progress.Conditions) != 1 {
		t.Errorf("record %+v", full.Progress)
	}
	sums := decode[[]api.Summary](t, h.expect(200, h.url, "GET", "/sessions", nil))
	if len(sums) != 1 || sums[0].Strategy != crus.StrategyScheduled || len(sums[0].Conditions) != 1 || sums[0].Conditions[0].Kind != crus.CondBookingsUnreadable {
		t.Errorf("summaries %+v", sums)
	}
}

// A phase event says which phase the node entered: without it the event
// stream and `crus watch` showed "phase: x1000c0s0b0n0" and nothing more.
func TestEventOfCarriesThePhase(t *testing.T) {
	e := api.EventOf(crus.Event{Kind: crus.EventPhase, Node: "x1000c0s0b0n0", Phase: crus.PhaseBooting})
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if e.Phase != crus.PhaseBooting || !strings.Contains(string(b), `"phase":"booting"`) {
		t.Errorf("EventOf gives %s; want the phase", b)
	}
}
