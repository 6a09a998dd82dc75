package api

import (
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/text"
)

// OpenAPI is the OpenAPI document of the extensions (and of the original
// paths, with the answers this handler adds to them), served at
// GET /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Config configures a Handler. The zero value of every field is usable.
type Config struct {
	// Auth authenticates requests. Nil means Gateway (trust every request).
	Auth Authenticator
	// PublicReads lets GET requests through without authentication (for a
	// status page on a trusted network while writes need a token).
	PublicReads bool
	// Events feeds the event streams; nil serves streams that carry only
	// the session summaries, read every WatchPoll.
	Events *Hub
	// Store is not needed any more and is ignored: the event streams read
	// the sessions' revisions through the executor (Executor.Revision),
	// and read a whole record only when its revision moved.
	Store crus.Store
	// DryRuns enables the dry runs (POST /plan, GET /sessions/{id}/plan:
	// Executor.Preview and Executor.Next, which read the backends and
	// change nothing); without it those answer 501.
	DryRuns bool
	// MaxDryRuns bounds the dry runs in progress at once; one more is
	// answered 503 with Retry-After. Each reads the backends as a create
	// does (every node of the groups from HSM and the workload manager:
	// on Slurm, slurmctld answers for 160,000 nodes), so a client
	// looping on POST /plan could otherwise load the cluster's controllers
	// as many times over as it had connections. Default 2.
	MaxDryRuns int
	// MaxBodyBytes bounds a request body. Default 64 KiB.
	MaxBodyBytes int64
	// BodyReadTimeout bounds the reading of a request body, from the
	// moment the handler starts reading it; a body not in by then is
	// answered 408 and its connection closed. Without it a client
	// trickling a body a byte at a time held its connection, and its
	// file descriptor, for as long as it liked. Default 30s.
	BodyReadTimeout time.Duration
	// WatchPoll is how often an event stream reads the watched sessions'
	// revisions (a stream of every session also lists them every fifth
	// poll, to find new ones, or at the next poll after an event of one
	// it does not know: their revisions, where the store can list them,
	// crus.RevisionLister, and then the records of those that moved or
	// are new only). Default 2s.
	WatchPoll time.Duration
	// KeepAlive is how often an idle event stream sends a comment, so that
	// proxies keep it open. Default 15s.
	KeepAlive time.Duration
	// WriteTimeout bounds the writing of an answer other than an event
	// stream, from when it begins: a client that does not read it within
	// that time is dropped. Without it a client that stopped reading the
	// record of a 160,000-node session held its 50 MB answer in the
	// server's memory for as long as its connection lived. Default 2m.
	WriteTimeout time.Duration
	// MaxStreams bounds the event streams open at once; one more is
	// answered 503 with Retry-After. Each stream holds a connection, a
	// buffer of events and a read of its sessions' revisions at every
	// WatchPoll, and every event is handed to each: without a bound,
	// clients opening thousands of streams grew the server's memory by
	// hundreds of megabytes and slowed the executor's every event.
	// Default 256; the page and `crus watch` open one each.
	MaxStreams int
	// StreamWriteTimeout bounds each write to an event stream: a client
	// that stops reading (its connection open, its window full) is
	// dropped once a write has waited that long, instead of holding its
	// stream, and its slot under MaxStreams, for ever. Default 1m.
	StreamWriteTimeout time.Duration
	// Logger receives a record of every refused or failed request. Nil
	// means no logging.
	Logger *slog.Logger
}

// maxEcho bounds what of a request (its path, a session id in it) an
// answer or a log record repeats; maxLoggedDetail bounds the detail of a
// refusal in the log (a 400 lists every problem of a body of up to
// MaxBodyBytes).
const (
	maxEcho         = 256
	maxLoggedDetail = 4096
)

// DefaultMaxStreams is Config.MaxStreams's default.
const DefaultMaxStreams = 256

// Handler serves the original CRUS API and its extensions.
type Handler struct {
	ex      *crus.Executor
	cfg     Config
	log     *slog.Logger
	closing chan struct{}
	once    sync.Once
	sums    summaries     // for the lists of sessions
	streams atomic.Int64  // event streams open
	dryRuns chan struct{} // a token per dry run in progress
	// origins refuses state-changing requests a browser sends from
	// another site's page (CSRF).
	origins *http.CrossOriginProtection
}

// New returns a Handler for the sessions of ex.
func New(ex *crus.Executor, cfg Config) (*Handler, error) {
	if ex == nil {
		return nil, errors.New("api: New needs an executor")
	}
	if cfg.Auth == nil {
		cfg.Auth = Gateway{}
	}
	if cfg.MaxDryRuns <= 0 {
		cfg.MaxDryRuns = 2
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = 30 * time.Second
	}
	if cfg.WatchPoll <= 0 {
		cfg.WatchPoll = 2 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Minute
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		ex: ex, cfg: cfg, log: log, closing: make(chan struct{}), origins: http.NewCrossOriginProtection(),
		dryRuns: make(chan struct{}, cfg.MaxDryRuns),
	}, nil
}

// Close ends the event streams in progress (give it to
// http.Server.RegisterOnShutdown: Shutdown does not end them otherwise).
func (h *Handler) Close() {
	h.once.Do(func() { close(h.closing) })
}

// route is one operation: a method and a path pattern whose "{}"
// segments are parameters.
type route struct {
	method  string
	pattern []string
	serve   func(h *Handler, w http.ResponseWriter, r *http.Request, params []string)
}

func op(method, pattern string, serve func(h *Handler, w http.ResponseWriter, r *http.Request, params []string)) route {
	return route{method, strings.Split(strings.Trim(pattern, "/"), "/"), serve}
}

var routes = []route{
	// The original API.
	op("POST", "/session", (*Handler).createOriginal),
	op("GET", "/session", (*Handler).listOriginal),
	op("GET", "/session/{}", (*Handler).getOriginal),
	op("DELETE", "/session/{}", (*Handler).deleteOriginal),
	// Extensions.
	op("GET", "/openapi.yaml", (*Handler).openAPI),
	op("POST", "/sessions", (*Handler).create),
	op("GET", "/sessions", (*Handler).list),
	op("GET", "/sessions/{}", (*Handler).get),
	op("DELETE", "/sessions/{}", (*Handler).delete),
	op("POST", "/sessions/{}/pause", (*Handler).pause),
	op("POST", "/sessions/{}/resume", (*Handler).resume),
	op("POST", "/sessions/{}/approve", (*Handler).approve),
	op("GET", "/sessions/{}/nodes", (*Handler).nodes),
	op("GET", "/sessions/{}/description", (*Handler).description),
	op("GET", "/sessions/{}/plan", (*Handler).planSession),
	op("GET", "/sessions/{}/events", (*Handler).events),
	op("POST", "/plan", (*Handler).planCreate),
	op("GET", "/events", (*Handler).allEvents),
}

func match(pattern, segs []string) ([]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var params []string
	for i, p := range pattern {
		switch {
		case p == "{}":
			if segs[i] == "" {
				return nil, false
			}
			params = append(params, segs[i])
		case p != segs[i]:
			return nil, false
		}
	}
	return params, true
}

// ServeHTTP implements http.Handler. It never redirects.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	path := req.URL.Path
	if path == "" {
		path = "/"
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var allow []string
	for _, rt := range routes {
		params, ok := match(rt.pattern, segs)
		if !ok {
			continue
		}
		if rt.method != req.Method && !(rt.method == "GET" && req.Method == "HEAD") {
			allow = append(allow, rt.method)
			continue
		}
		if err := h.origins.Check(req); err != nil {
			// A browser on another site's page: a form or a fetch in
			// no-cors mode (no Content-Type, or text/plain) could
			// otherwise create or cancel sessions with the credentials
			// of an admin's browser, or with none behind the gateway.
			h.fail(w, req, problemf(http.StatusForbidden, "cross-origin request refused: %v", err))
			return
		}
		if !h.authenticate(w, req, path) {
			return
		}
		rt.serve(h, w, req, params)
		return
	}
	if len(allow) > 0 {
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(slices.Compact(allow), ", "))
		h.fail(w, req, problemf(http.StatusMethodNotAllowed, "%s is not allowed on %s", req.Method, path))
		return
	}
	h.fail(w, req, problemf(http.StatusNotFound, "no such resource: %s", text.Cap(path, maxEcho)))
}

// authenticate applies the handler's rule to a request: a read (GET or
// HEAD) passes without a token when PublicReads is set, anything else
// must pass Auth. A request that does not is answered (401, or 503 when
// the keys cannot be had) and authenticate returns false.
func (h *Handler) authenticate(w http.ResponseWriter, req *http.Request, path string) bool {
	if h.cfg.PublicReads && (req.Method == "GET" || req.Method == "HEAD") {
		return true
	}
	caller, err := h.cfg.Auth.Authenticate(req)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, errKeys) {
			status = http.StatusServiceUnavailable
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
		h.fail(w, req, &Problem{Status: status, Detail: err.Error()})
		return false
	}
	if caller != "" && req.Method != "GET" {
		h.log.Info("request", "method", req.Method, "path", path, "caller", caller)
	}
	return true
}

// Guard returns next behind the handler's authentication: what serves a
// session's data outside the API (the page's timeline pictures) is read
// under the API's rule, so a token the API would refuse reads nothing
// there either.
func (h *Handler) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if h.authenticate(w, req, req.URL.Path) {
			next.ServeHTTP(w, req)
		}
	})
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, p *Problem) {
	level := slog.LevelInfo
	if p.Status >= 500 {
		level = slog.LevelWarn
	}
	// A path is as long as a client likes (up to the server's 1 MB of
	// head): each refusal logged it whole.
	h.log.Log(r.Context(), level, "request refused", "method", text.Cap(r.Method, maxEcho), "path", text.Cap(r.URL.Path, maxEcho),
		"status", p.Status, "detail", text.Cap(p.Detail, maxLoggedDetail))
	defer h.writeDeadline(w)()
	writeProblem(w, p)
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	defer h.writeDeadline(w)()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeDeadline gives the answer about to be written WriteTimeout to
// reach the client, and returns what lifts that deadline once it is
// written (the connection may serve other requests, which set their own
// or none). The deadline starts here, not with the request: a create or
// a dry run can wait minutes on slow backends, and its answer must not
// be cut for that.
func (h *Handler) writeDeadline(w http.ResponseWriter) (lift func()) {
	rc := http.NewResponseController(w)
	if rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout)) != nil {
		return func() {}
	}
	return func() { _ = rc.SetWriteDeadline(time.Time{}) }
}

// readSpec reads a request's body as a Spec, with only the given fields
// if fields is not nil; it answers the request itself when it cannot.
func (h *Handler) readSpec(w http.ResponseWriter, r *http.Request, fields []string) (crus.Spec, bool) {
	body, p := readBody(w, r, h.cfg.MaxBodyBytes, h.cfg.BodyReadTimeout)
	if p == nil {
		var spec crus.Spec
		if spec, p = decodeSpec(body, fields); p == nil {
			return spec, true
		}
	}
	h.fail(w, r, p)
	return crus.Spec{}, false
}

// The original API.

func (h *Handler) createOriginal(w http.ResponseWriter, r *http.Request, _ []string) {
	spec, ok := h.readSpec(w, r, originalFields)
	if !ok {
		return
	}
	s, err := h.ex.Create(r.Context(), spec)
	if err != nil {
		h.fail(w, r, createProblem(err))
		return
	}
	h.sums.forget(s.UpgradeID)
	h.writeJSON(w, http.StatusCreated, s.Status())
}

// listOriginal and list read the summaries of the sessions that moved
// since the last list only (summaries), in place when the store can
// (Executor.View): neither answer has a node in it.
func (h *Handler) listOriginal(w http.ResponseWriter, r *http.Request, _ []string) {
	sums, err := h.sums.list(r.Context(), h.ex)
	if err != nil {
		h.fail(w, r, backendProblem(err))
		return
	}
	out := make([]crus.Status, len(sums))
	for i := range sums {
		out[i] = sums[i].Status
	}
	h.writeJSON(w, http.StatusOK, out)
}

// getOriginal reads the record in place when the store can
// (Executor.View): the original record has no node in it, and clients of
// the original API poll it.
func (h *Handler) getOriginal(w http.ResponseWriter, r *http.Request, params []string) {
	var out crus.Status
	err := h.ex.View(r.Context(), params[0], func(s *crus.Session) error {
		out = s.Status()
		return nil
	})
	if err != nil {
		h.fail(w, r, sessionProblem(err, params[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, out)
}

func (h *Handler) deleteOriginal(w http.ResponseWriter, r *http.Request, params []string) {
	h.sums.forget(params[0])
	s, err := h.ex.Delete(r.Context(), params[0])
	h.sums.forget(params[0])
	if err != nil {
		h.fail(w, r, sessionProblem(err, params[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, s.Status())
}

// Extensions.

func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request, _ []string) {
	defer h.writeDeadline(w)()
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, _ []string) {
	spec, ok := h.readSpec(w, r, nil)
	if !ok {
		return
	}
	s, err := h.ex.Create(r.Context(), spec)
	if err != nil {
		h.fail(w, r, createProblem(err))
		return
	}
	h.sums.forget(s.UpgradeID)
	h.writeJSON(w, http.StatusCreated, s)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, _ []string) {
	out, err := h.sums.list(r.Context(), h.ex)
	if err != nil {
		h.fail(w, r, backendProblem(err))
		return
	}
	h.writeJSON(w, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, params []string) {
	s, err := h.ex.Get(r.Context(), params[0])
	if err != nil {
		h.fail(w, r, sessionProblem(err, params[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, s)
}

// act answers an action on one session with the session's summary.
func (h *Handler) act(w http.ResponseWriter, r *http.Request, id string, do func(*http.Request, string) (*crus.Session, error)) {
	s, err := do(r, id)
	if err != nil {
		h.fail(w, r, sessionProblem(err, id))
		return
	}
	h.writeJSON(w, http.StatusOK, SummaryOf(s))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, params []string) {
	h.act(w, r, params[0], func(r *http.Request, id string) (*crus.Session, error) {
		defer h.sums.forget(id)
		return h.ex.Delete(r.Context(), id)
	})
}

func (h *Handler) pause(w http.ResponseWriter, r *http.Request, params []string) {
	h.act(w, r, params[0], func(r *http.Request, id string) (*crus.Session, error) { return h.ex.Pause(r.Context(), id) })
}

func (h *Handler) resume(w http.ResponseWriter, r *http.Request, params []string) {
	h.act(w, r, params[0], func(r *http.Request, id string) (*crus.Session, error) { return h.ex.Resume(r.Context(), id) })
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request, params []string) {
	h.act(w, r, params[0], func(r *http.Request, id string) (*crus.Session, error) { return h.ex.Approve(r.Context(), id) })
}

// nodes and description read the record in place when the store can
// (crus.Executor.View): the page asks for the nodes every second or so,
// and a copy of the record is 50 MB for 160,000 nodes.
func (h *Handler) nodes(w http.ResponseWriter, r *http.Request, params []string) {
	var out Nodes
	names := r.URL.Query().Get("names") == "true"
	err := h.ex.View(r.Context(), params[0], func(s *crus.Session) error {
		out = NodesOf(s, names)
		return nil
	})
	if err != nil {
		h.fail(w, r, sessionProblem(err, params[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, out)
}

func (h *Handler) description(w http.ResponseWriter, r *http.Request, params []string) {
	var out Description
	err := h.ex.View(r.Context(), params[0], func(s *crus.Session) error {
		out = DescriptionOf(s)
		return nil
	})
	if err != nil {
		h.fail(w, r, sessionProblem(err, params[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, out)
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request, params []string) {
	h.stream(w, r, params[0])
}

func (h *Handler) allEvents(w http.ResponseWriter, r *http.Request, _ []string) {
	h.stream(w, r, "")
}
