// Package bosserver is an in-memory Boot Orchestration Service for crus's
// tests: an HTTP server with real state (session templates, v2 sessions
// that go pending → running → complete, components whose status moves
// through on_hold, powering off and on to stable or failed, and v1
// sessions with boot-set phases) that answers as BOS does and checks every
// request and answer against the published API document
// (internal/apispec).
//
// Time is the server's clock (Options.Now): a session stays pending for
// PendingDelay, then chooses its nodes by reading HSM group membership
// (Options.Groups) at that moment, as BOS's session-setup operator does,
// and hands them to a Booter. State moves on when requests come, so a test
// drives it by advancing its clock and asking.
//
// The server serves the current BOS document (v2 only) by default, or the
// BOS 2.16 document with v1 as well (Options.V1). Authentication, if asked
// for (Options.Token), is checked in front of the validated API, as the
// API gateway does on a real system.
package bosserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/crus-go/crus/internal/apispec"
)

// Booter reboots the nodes of sessions: the hardware behind the server.
// Its methods are called with the server's lock held.
type Booter interface {
	// Reboot starts rebooting the nodes for the session.
	Reboot(session string, xnames []string)
	// Result reports how a node's boot went: done is false while it boots;
	// failure is empty for a success.
	Result(session, xname string) (done bool, failure string)
}

// Options configure a Server.
type Options struct {
	// V1 serves the BOS 2.16 document, with v1 as well as v2.
	V1 bool
	// Now is the server's clock; nil means time.Now.
	Now func() time.Time
	// PendingDelay is how long a session stays pending before it reads
	// group membership and chooses its nodes.
	PendingDelay time.Duration
	// StatusDelay is how long BOS leaves a component on_hold after a
	// session sets it up, before its status operator evaluates it.
	// Default 1s.
	StatusDelay time.Duration
	// Groups looks up HSM group membership (nil: no groups).
	Groups func(label string) ([]string, bool)
	// Booter reboots nodes; nil means the built-in one, whose boots take
	// BootTime (default 1m) and fail for nodes given to FailBoot.
	Booter   Booter
	BootTime time.Duration
	// Token, if set, is the bearer token every request must carry.
	Token string
	// Report receives each request or answer the API document does not
	// allow. Nil collects them for Violations only.
	Report func(apispec.Violation)
}

type template struct {
	nodeGroups, nodeList []string
}

type session struct {
	name, tenant, operation, template, limit string
	stage, includeDisabled                   bool
	status                                   string // pending, running, complete
	start, end, created                      time.Time
	err                                      string
	components                               []string
	forceComplete                            bool
}

type component struct {
	id         string
	enabled    bool
	err        string
	session    string
	phase      string
	override   string
	lastAction string
	lastFailed bool
	setupAt    time.Time
	evaluated  bool
}

// Server is BOS. Its methods are safe for concurrent use.
type Server struct {
	*apispec.Front // request counts, token check, validation, violations
	opts           Options
	spec           *apispec.Spec
	booter         Booter
	builtin        *builtinBooter

	mu         sync.Mutex
	templates  map[string]*template
	sessions   map[string]*session // by tenant + "/" + name
	order      []string            // session keys in creation order
	components map[string]*component
	held       map[string]bool
	v1         map[string]*v1Session
	v1order    []string
}

// New returns a Server with no templates and no sessions.
func New(opts Options) (*Server, error) {
	load := apispec.BOS
	if opts.V1 {
		load = apispec.BOSv1
	}
	spec, err := load()
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StatusDelay == 0 {
		opts.StatusDelay = time.Second
	}
	if opts.BootTime == 0 {
		opts.BootTime = time.Minute
	}
	s := &Server{
		opts: opts, spec: spec,
		templates: map[string]*template{}, sessions: map[string]*session{}, components: map[string]*component{},
		held: map[string]bool{}, v1: map[string]*v1Session{},
	}
	s.booter = opts.Booter
	if s.booter == nil {
		s.builtin = &builtinBooter{s: s, started: map[string]time.Time{}, failures: map[string]string{}, reboots: map[string]int{}}
		s.booter = s.builtin
	}
	api := http.NewServeMux()
	b := spec.Base
	api.HandleFunc("GET "+b+"/v2/sessiontemplates/{name}", s.getTemplate)
	api.HandleFunc("POST "+b+"/v2/sessions", s.postSession)
	api.HandleFunc("GET "+b+"/v2/sessions/{name}", s.getSession)
	api.HandleFunc("GET "+b+"/v2/components", s.getComponents)
	if opts.V1 {
		api.HandleFunc("GET "+b+"/v1/sessiontemplate/{name}", s.getTemplate)
		api.HandleFunc("POST "+b+"/v1/session", s.postV1Session)
		api.HandleFunc("GET "+b+"/v1/session", s.listV1Sessions)
		api.HandleFunc("GET "+b+"/v1/session/{id}", s.getV1Session)
		api.HandleFunc("GET "+b+"/v1/session/{id}/status", s.getV1Status)
		api.HandleFunc("GET "+b+"/v1/session/{id}/status/{bs}", s.getV1BootSet)
	}
	s.Front = spec.Front(api, route, opts.Token, opts.Report)
	return s, nil
}

// NewTest starts a Server on a local port for the test, reporting every
// violation of the API document as a test error. It returns the server and
// the base URL for bos.Config.BaseURL.
func NewTest(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	opts.Report = func(v apispec.Violation) { t.Errorf("bosserver: %s", v) }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + s.spec.Base
}

// route names the API operation of a path, for Requests.
func route(p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "v2":
		return "/v2/" + parts[1] + "/{name}"
	case len(parts) == 3 && parts[0] == "v1":
		return "/v1/" + parts[1] + "/{id}"
	case len(parts) == 4 && parts[0] == "v1":
		return "/v1/session/{id}/status"
	case len(parts) == 5 && parts[0] == "v1":
		return "/v1/session/{id}/status/{bs}"
	}
	return p
}

// AddTemplate creates a session template with one boot set targeting the
// HSM groups and the xnames given.
func (s *Server) AddTemplate(name string, nodeGroups []string, nodeList []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.templates[name] = &template{nodeGroups: slices.Clone(nodeGroups), nodeList: slices.Clone(nodeList)}
}

// FailBoot makes the built-in booter fail every later boot of the node
// with the given reason ("" makes its boots succeed again).
func (s *Server) FailBoot(xname, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.builtin != nil {
		s.builtin.failures[xname] = reason
	}
}

// Reboots returns how many times the built-in booter rebooted the node.
func (s *Server) Reboots(xname string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.builtin == nil {
		return 0
	}
	return s.builtin.reboots[xname]
}

// HoldNode leaves the node's component on_hold, as BOS does when it cannot
// read the node's power or configuration state.
func (s *Server) HoldNode(xname string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[xname] = true
}

// CompleteNow marks a v2 session complete at the next request, whatever
// its components' state.
func (s *Server) CompleteNow(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.name == name {
			ss.forceComplete = true
		}
	}
}

// Sessions returns the names of the v2 sessions, in creation order.
func (s *Server) Sessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.sessions[k].name)
	}
	return out
}

// Pending returns the names of the v2 sessions and ids of the v1 sessions
// that are pending as last recorded (BOS may still read group membership
// for them), without moving time on.
func (s *Server) Pending() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.order {
		if s.sessions[k].status == "pending" {
			out = append(out, s.sessions[k].name)
		}
	}
	for _, id := range s.v1order {
		if !s.v1[id].started {
			out = append(out, id)
		}
	}
	return out
}

// V1Sessions returns the ids of the v1 sessions, in creation order.
func (s *Server) V1Sessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.v1order)
}

// SessionTenant returns the tenant a v2 session was created for.
func (s *Server) SessionTenant(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.name == name {
			return ss.tenant, true
		}
	}
	return "", false
}

// builtinBooter boots nodes in BootTime, failing those given to FailBoot.
type builtinBooter struct {
	s        *Server
	started  map[string]time.Time // session/xname
	failures map[string]string
	reboots  map[string]int
}

func (b *builtinBooter) Reboot(session string, xnames []string) {
	for _, x := range xnames {
		b.started[session+"/"+x] = b.s.opts.Now()
		b.reboots[x]++
	}
}

func (b *builtinBooter) Result(session, xname string) (bool, string) {
	start, ok := b.started[session+"/"+xname]
	if !ok || b.s.opts.Now().Before(start.Add(b.s.opts.BootTime)) {
		return false, ""
	}
	return true, b.failures[xname]
}

// timestamp formats a time as BOS does: ISO 8601 to the second, no zone.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// problem answers as connexion.problem does: RFC 7807.
func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "detail": detail, "status": status})
}

// resolve chooses a session's nodes as BOS's session-setup operator does:
// the template's boot-set nodes (node_list and node_groups members),
// limited by the comma-separated limit (xnames or group labels; "&"
// intersects, "!" removes). Callers hold the lock.
func (s *Server) resolve(tmpl *template, limit string) []string {
	members := func(label string) ([]string, bool) {
		if s.opts.Groups == nil {
			return nil, false
		}
		return s.opts.Groups(label)
	}
	nodes := map[string]bool{}
	for _, x := range tmpl.nodeList {
		nodes[x] = true
	}
	for _, g := range tmpl.nodeGroups {
		m, _ := members(g)
		for _, x := range m {
			nodes[x] = true
		}
	}
	if limit != "" && limit != "*" {
		sel := map[string]bool{}
		for _, item := range strings.Split(limit, ",") {
			op := byte(0)
			if item != "" && (item[0] == '&' || item[0] == '!') {
				op, item = item[0], item[1:]
			}
			set := map[string]bool{item: true}
			if item == "all" || item == "*" {
				set = nodes
			} else if m, ok := members(item); ok {
				set = map[string]bool{}
				for _, x := range m {
					set[x] = true
				}
			}
			switch op {
			case '&':
				for x := range sel {
					if !set[x] {
						delete(sel, x)
					}
				}
			case '!':
				for x := range set {
					delete(sel, x)
				}
			default:
				for x := range set {
					sel[x] = true
				}
			}
		}
		for x := range nodes {
			if !sel[x] {
				delete(nodes, x)
			}
		}
	}
	out := make([]string, 0, len(nodes))
	for x := range nodes {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

// advance moves every session on to now. Callers hold the lock.
func (s *Server) advance() {
	now := s.opts.Now()
	for _, k := range s.order {
		s.advanceV2(s.sessions[k], now)
	}
	for _, id := range s.v1order {
		s.advanceV1(s.v1[id], now)
	}
}

func (s *Server) advanceV2(ss *session, now time.Time) {
	switch ss.status {
	case "pending":
		if now.Before(ss.created.Add(s.opts.PendingDelay)) {
			return
		}
		nodes := s.resolve(s.templates[ss.template], ss.limit)
		if len(nodes) == 0 {
			// BOS's session-setup operator: "_mark_failed".
			ss.err, ss.status, ss.end = "No nodes were found to act upon.", "complete", now
			return
		}
		for _, x := range nodes {
			c := s.components[x]
			if c == nil {
				c = &component{id: x}
				s.components[x] = c
			}
			*c = component{id: x, enabled: true, session: ss.name, lastAction: "session_setup", override: "on_hold", setupAt: now}
		}
		ss.components, ss.status = nodes, "running"
		s.booter.Reboot(ss.name, nodes)
	case "running":
		for _, x := range ss.components {
			c := s.components[x]
			if c.session != ss.name || !c.enabled {
				continue // taken over by another session, or finished
			}
			switch {
			case s.held[x]:
				c.override, c.err = "on_hold", "Component information was not returned by CAPMC"
			case !c.evaluated:
				if !now.Before(c.setupAt.Add(s.opts.StatusDelay)) {
					c.evaluated, c.override, c.phase, c.lastAction = true, "", "powering_off", "powering_off_gracefully"
				}
			default:
				ok, failure := s.booter.Result(ss.name, x)
				switch {
				case !ok:
					c.phase, c.lastAction = "powering_on", "powering_on"
				case failure == "":
					c.phase, c.enabled = "", false
				default:
					c.phase, c.override, c.err, c.enabled, c.lastFailed = "powering_on", "failed", failure, false, true
				}
			}
		}
		// BOS's session-completion operator: complete once every
		// component is disabled or managed by another session.
		done := true
		for _, x := range ss.components {
			if c := s.components[x]; c.session == ss.name && c.enabled {
				done = false
			}
		}
		if done || ss.forceComplete {
			ss.status, ss.end = "complete", now
		}
	}
}

// status computes a component's status as BOS's components controller
// does (_calculate_status).
func (c *component) status() string {
	if c.override != "" {
		return c.override
	}
	switch c.phase {
	case "powering_on":
		return "power_on_called"
	case "powering_off":
		return "power_off_gracefully_called"
	case "configuring":
		return "configuring"
	}
	return "stable"
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	t, ok := s.templates[name]
	s.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound, "The resource was not found", "Sessiontemplate '"+name+"' does not exist")
		return
	}
	bs := map[string]any{
		"path": "s3://boot-images/9e3c75e1-ac42-42c7-873c-e758048897d6/manifest.json", "type": "s3",
		"kernel_parameters": "console=ttyS0,115200 ip=dhcp",
	}
	if len(t.nodeGroups) > 0 {
		bs["node_groups"] = t.nodeGroups
	}
	if len(t.nodeList) > 0 {
		bs["node_list"] = t.nodeList
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "enable_cfs": false, "boot_sets": map[string]any{"compute": bs}})
}

func (ss *session) json() map[string]any {
	st := map[string]any{"status": ss.status, "start_time": timestamp(ss.start)}
	if !ss.end.IsZero() {
		st["end_time"] = timestamp(ss.end)
	}
	if ss.err != "" {
		st["error"] = ss.err
	}
	out := map[string]any{
		"name": ss.name, "operation": ss.operation, "template_name": ss.template, "limit": ss.limit,
		"stage": ss.stage, "include_disabled": ss.includeDisabled, "components": strings.Join(ss.components, ","), "status": st,
	}
	if ss.tenant != "" {
		out["tenant"] = ss.tenant
	}
	return out
}

func (s *Server) postSession(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name            string  `json:"name"`
		Operation       string  `json:"operation"`
		TemplateName    string  `json:"template_name"`
		Limit           *string `json:"limit"`
		Stage           bool    `json:"stage"`
		IncludeDisabled bool    `json:"include_disabled"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		problem(w, http.StatusBadRequest, "Bad Request", "Error parsing the data provided: "+err.Error())
		return
	}
	tenant := r.Header.Get("Cray-Tenant-Name")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	if _, ok := s.templates[in.TemplateName]; !ok {
		// BOS answers an unknown template with 400, not 404.
		problem(w, http.StatusBadRequest, "Bad Request", "Session Template Name invalid: "+in.TemplateName)
		return
	}
	if in.Name == "" {
		in.Name = uuid.NewString()
	}
	key := tenant + "/" + in.Name
	if _, ok := s.sessions[key]; ok {
		problem(w, http.StatusConflict, "The resource to be created already exists", "Session '"+in.Name+"' already exists")
		return
	}
	now := s.opts.Now()
	ss := &session{
		name: in.Name, tenant: tenant, operation: in.Operation, template: in.TemplateName, stage: in.Stage,
		includeDisabled: in.IncludeDisabled, status: "pending", start: now, created: now,
	}
	if in.Limit != nil {
		ss.limit = *in.Limit
	}
	s.sessions[key] = ss
	s.order = append(s.order, key)
	writeJSON(w, http.StatusCreated, ss.json())
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	ss, ok := s.sessions[r.Header.Get("Cray-Tenant-Name")+"/"+name]
	if !ok {
		problem(w, http.StatusNotFound, "The resource was not found", "Session '"+name+"' does not exist")
		return
	}
	writeJSON(w, http.StatusOK, ss.json())
}

func (s *Server) getComponents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	var ids []string
	if v := q.Get("ids"); v != "" {
		ids = strings.Split(v, ",")
	} else {
		for id := range s.components {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	// Paging (start_after_id, page_size; 0 or absent: no limit). The
	// parameters are validated against the document before this runs.
	after := q.Get("start_after_id")
	size, _ := strconv.Atoi(q.Get("page_size"))
	out := []map[string]any{}
	for _, id := range slices.Compact(ids) {
		c, ok := s.components[id]
		if !ok || (q.Get("session") != "" && c.session != q.Get("session")) || (after != "" && id <= after) {
			continue
		}
		if size > 0 && len(out) == size {
			break
		}
		out = append(out, map[string]any{
			"id": c.id, "enabled": c.enabled, "error": c.err, "session": c.session,
			"status":      map[string]any{"phase": c.phase, "status": c.status(), "status_override": c.override},
			"last_action": map[string]any{"action": c.lastAction, "failed": c.lastFailed},
		})
	}
	writeJSON(w, http.StatusOK, out)
}
