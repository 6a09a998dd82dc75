// Package hsmserver is an in-memory Hardware State Manager for crus's
// tests: an HTTP server with real state (State Components with NIDs, groups
// and their members) that answers the group and component calls of the
// HSM v2 API the way hms-smd does (status codes, RFC 7807 problems, the
// "URI" key of created resources, unsorted member lists, the 400 for a
// member that is no State Component), and checks every request and answer
// against the published API document (internal/apispec).
//
// It serves HPE Cray's HSM by default, which has no bulk member call and
// answers 404 to OpenCHAMI's PUT /groups/{label}/members, or OpenCHAMI's
// HSM (Options.OpenCHAMI) with that PUT.
//
// Authentication, if asked for (Options.Token), is checked in front of
// the validated API, as the API gateway does on a real system.
package hsmserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/apispec"
)

// Options configure a Server.
type Options struct {
	// OpenCHAMI serves OpenCHAMI's HSM, with the bulk member PUT.
	OpenCHAMI bool
	// Token, if set, is the bearer token every request must carry.
	Token string
	// Report receives each request or answer the API document does not
	// allow. Nil collects them for Violations only.
	Report func(apispec.Violation)
}

type group struct {
	description string
	exclusive   string
	members     map[string]bool
}

// Server is the HSM. Its methods are safe for concurrent use.
type Server struct {
	*apispec.Front // request counts, token check, validation, violations
	opts           Options
	spec           *apispec.Spec

	mu         sync.Mutex
	components map[string]int // xname -> NID; -1 for none
	groups     map[string]*group
}

// New returns a Server with no components and no groups.
func New(opts Options) (*Server, error) {
	load := apispec.HSM
	if opts.OpenCHAMI {
		load = apispec.OpenCHAMI
	}
	spec, err := load()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, spec: spec, components: map[string]int{}, groups: map[string]*group{}}
	api := http.NewServeMux()
	b := spec.Base
	api.HandleFunc("GET "+b+"/groups/{label}/members", s.getMembers)
	api.HandleFunc("POST "+b+"/groups/{label}/members", s.postMember)
	api.HandleFunc("PUT "+b+"/groups/{label}/members", s.putMembers)
	api.HandleFunc("DELETE "+b+"/groups/{label}/members/{xname}", s.deleteMember)
	api.HandleFunc("GET "+b+"/groups/{label}", s.getGroup)
	api.HandleFunc("POST "+b+"/groups", s.postGroup)
	api.HandleFunc("POST "+b+"/State/Components/Query", s.query)
	s.Front = spec.Front(api, route, opts.Token, opts.Report)
	return s, nil
}

// NewTest starts a Server on a local port for the test, reporting every
// violation of the API document as a test error. It returns the server and
// the base URL for hsm.Config.BaseURL.
func NewTest(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	opts.Report = func(v apispec.Violation) { t.Errorf("hsmserver: %s", v) }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + s.spec.Base
}

var routeRE = regexp.MustCompile(`^/groups/[^/]+(/members(/[^/]+)?)?$`)

// route names the API operation of a path, for Requests.
func route(p string) string {
	if m := routeRE.FindStringSubmatch(p); m != nil {
		switch {
		case m[2] != "":
			return "/groups/{label}/members/{xname}"
		case m[1] != "":
			return "/groups/{label}/members"
		}
		return "/groups/{label}"
	}
	return p
}

// AddComponent adds a node State Component with a NID (negative: none).
func (s *Server) AddComponent(xname string, nid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.components[hsm.NormalizeXName(xname)] = nid
}

// RemoveComponent deletes a component; like HSM, it leaves every group.
func (s *Server) RemoveComponent(xname string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := hsm.NormalizeXName(xname)
	delete(s.components, x)
	for _, g := range s.groups {
		delete(g.members, x)
	}
}

// SetGroup creates or replaces a group (members need not be components).
func (s *Server) SetGroup(label string, members ...string) {
	s.SetExclusiveGroup(label, "", members...)
}

// SetExclusiveGroup creates or replaces a group with an exclusiveGroup.
func (s *Server) SetExclusiveGroup(label, exclusive string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &group{exclusive: exclusive, members: map[string]bool{}}
	for _, m := range members {
		g.members[hsm.NormalizeXName(m)] = true
	}
	s.groups[strings.ToLower(label)] = g
}

// DeleteGroup removes a group.
func (s *Server) DeleteGroup(label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, strings.ToLower(label))
}

// Group returns a group's members, sorted, and whether it exists.
func (s *Server) Group(label string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[strings.ToLower(label)]
	if !ok {
		return nil, false
	}
	return sorted(g.members), true
}

func sorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var (
	labelRE = regexp.MustCompile(`^[-a-z0-9:._]+$`)
	xnameRE = regexp.MustCompile(`^x([0-9]{1,4})c([0-7])s([0-9]+)b([0-9]+)n([0-9]+)$`)
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// problem answers as hms-base's sendJsonError does: RFC 7807.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "detail": detail, "status": status})
}

// label reads and checks the {label} path value as hms-smd does.
func (s *Server) label(w http.ResponseWriter, r *http.Request) (string, bool) {
	l := strings.ToLower(r.PathValue("label"))
	if !labelRE.MatchString(l) {
		problem(w, http.StatusBadRequest, "Invalid group label.")
		return "", false
	}
	return l, true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, v); err != nil {
		// hms-smd answers malformed JSON with 500.
		problem(w, http.StatusInternalServerError, "error decoding JSON "+err.Error())
		return false
	}
	return true
}

func (s *Server) getMembers(w http.ResponseWriter, r *http.Request) {
	l, ok := s.label(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	g, ok := s.groups[l]
	var ids []string
	if ok {
		for m := range g.members { // map order: unsorted, as HSM's
			ids = append(ids, m)
		}
	}
	s.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound, "No such group: "+l)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ids": ids})
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	l, ok := s.label(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[l]
	if !ok {
		problem(w, http.StatusNotFound, "No such group: "+l)
		return
	}
	out := map[string]any{"label": l, "description": g.description, "tags": []string{}, "members": map[string]any{"ids": sorted(g.members)}}
	if g.exclusive != "" {
		out["exclusiveGroup"] = g.exclusive
	}
	writeJSON(w, http.StatusOK, out)
}

// exclusiveClash reports whether x is in another group with the same
// exclusiveGroup. Callers hold the lock.
func (s *Server) exclusiveClash(label string, g *group, x string) bool {
	if g.exclusive == "" {
		return false
	}
	for l, o := range s.groups {
		if l != label && o.exclusive == g.exclusive && o.members[x] {
			return true
		}
	}
	return false
}

func (s *Server) postMember(w http.ResponseWriter, r *http.Request) {
	l, ok := s.label(w, r)
	if !ok {
		return
	}
	var in struct {
		ID string `json:"id"`
	}
	if !decode(w, r, &in) {
		return
	}
	x := hsm.NormalizeXName(in.ID)
	if !xnameRE.MatchString(x) {
		problem(w, http.StatusBadRequest, "invalid xname ID")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[l]
	switch {
	case !ok:
		problem(w, http.StatusNotFound, "No such group: "+l)
	case g.members[x]:
		problem(w, http.StatusConflict, "operation would conflict with an existing member in the same group.")
	case s.exclusiveClash(l, g, x):
		problem(w, http.StatusConflict, "operation would conflict with an existing member in another exclusive group.")
	default:
		if _, known := s.components[x]; !known {
			problem(w, http.StatusBadRequest, "operation 'POST' failed during store. linked component does not exist")
			return
		}
		g.members[x] = true
		writeJSON(w, http.StatusCreated, []map[string]string{{"URI": "/hsm/v2/groups/" + l + "/members/" + x}})
	}
}

// putMembers is OpenCHAMI's bulk PUT; HPE Cray's HSM has no such route.
func (s *Server) putMembers(w http.ResponseWriter, r *http.Request) {
	if !s.opts.OpenCHAMI {
		// gorilla/mux's answer to an unknown route.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "404 page not found\n")
		return
	}
	l, ok := s.label(w, r)
	if !ok {
		return
	}
	var in struct {
		Group string   `json:"group"`
		IDs   []string `json:"ids"`
	}
	if !decode(w, r, &in) {
		return
	}
	want := map[string]bool{}
	for _, id := range in.IDs {
		x := hsm.NormalizeXName(id)
		if !xnameRE.MatchString(x) {
			problem(w, http.StatusBadRequest, "invalid xname ID: "+id)
			return
		}
		want[x] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[l]
	if !ok {
		problem(w, http.StatusNotFound, "No such group: "+l)
		return
	}
	uris := []map[string]string{}
	for _, x := range sorted(want) {
		if _, known := s.components[x]; !known {
			problem(w, http.StatusBadRequest, "linked component does not exist: "+x)
			return
		}
		if s.exclusiveClash(l, g, x) {
			problem(w, http.StatusConflict, "operation would conflict with an existing member in another exclusive group.")
			return
		}
		uris = append(uris, map[string]string{"URI": "/hsm/v2/groups/" + l + "/members/" + x})
	}
	g.members = want
	writeJSON(w, http.StatusCreated, uris)
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) {
	l, ok := s.label(w, r)
	if !ok {
		return
	}
	x := hsm.NormalizeXName(r.PathValue("xname"))
	if !xnameRE.MatchString(x) {
		problem(w, http.StatusBadRequest, "invalid xname ID")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[l]
	switch {
	case !ok:
		problem(w, http.StatusNotFound, "No such group: "+l)
	case !g.members[x]:
		problem(w, http.StatusNotFound, "group has no such member.")
	default:
		delete(g.members, x)
		writeJSON(w, http.StatusOK, map[string]string{"code": "0", "message": "deleted 1 entry"})
	}
}

func (s *Server) postGroup(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Label          string `json:"label"`
		Description    string `json:"description"`
		ExclusiveGroup string `json:"exclusiveGroup"`
		Members        struct {
			IDs []string `json:"ids"`
		} `json:"members"`
	}
	if !decode(w, r, &in) {
		return
	}
	l := strings.ToLower(in.Label)
	if !labelRE.MatchString(l) {
		problem(w, http.StatusBadRequest, "couldn't validate group: invalid group label")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[l]; ok {
		problem(w, http.StatusConflict, "operation would conflict with an existing group that has the same label.")
		return
	}
	g := &group{description: in.Description, exclusive: strings.ToLower(in.ExclusiveGroup), members: map[string]bool{}}
	for _, id := range in.Members.IDs {
		x := hsm.NormalizeXName(id)
		if _, known := s.components[x]; !known {
			// A refused create leaves no group.
			problem(w, http.StatusBadRequest, "operation 'POST' failed during store. linked component does not exist")
			return
		}
		g.members[x] = true
	}
	s.groups[l] = g
	writeJSON(w, http.StatusCreated, []map[string]string{{"URI": "/hsm/v2/groups/" + l}})
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ComponentIDs []string `json:"ComponentIDs"`
		NIDOnly      bool     `json:"nidonly"`
	}
	if !decode(w, r, &in) {
		return
	}
	if len(in.ComponentIDs) < 1 {
		problem(w, http.StatusBadRequest, "Missing IDs")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	seen := map[string]bool{}
	for _, id := range in.ComponentIDs {
		x := hsm.NormalizeXName(id)
		nid, ok := s.components[x]
		if !ok || seen[x] {
			continue // unknown and invalid ids are left out, without an error
		}
		seen[x] = true
		c := map[string]any{"ID": x, "Type": "Node"}
		if !in.NIDOnly {
			c["State"], c["Flag"], c["Enabled"], c["Role"], c["Arch"], c["Class"] = "Ready", "OK", true, "Compute", "X86", "Mountain"
		}
		if nid >= 0 {
			c["NID"] = nid
		}
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"Components": out})
}

// String describes the server for test logs.
func (s *Server) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("hsmserver(%d components, %d groups)", len(s.components), len(s.groups))
}
