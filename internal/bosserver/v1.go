package bosserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
)

// v1Session is a BOS v1 session: BOS names it with a UUID, and a BOA job
// boots its nodes (shutdown, then boot) once it starts.
type v1Session struct {
	id, template, limit, operation string
	created, start, stop           time.Time
	started, complete              bool
	nodes                          []string
	results                        map[string]string // xname -> failure ("" for success)
}

func (v *v1Session) key() string { return "v1-" + v.id }

func (s *Server) advanceV1(v *v1Session, now time.Time) {
	switch {
	case v.complete:
	case !v.started:
		if now.Before(v.created.Add(s.opts.PendingDelay)) {
			return
		}
		v.started, v.start = true, now
		v.nodes = s.resolve(s.templates[v.template], v.limit)
		if len(v.nodes) == 0 {
			v.complete, v.stop = true, now
			return
		}
		s.booter.Reboot(v.key(), v.nodes)
	default:
		for _, x := range v.nodes {
			if _, done := v.results[x]; done {
				continue
			}
			if ok, failure := s.booter.Result(v.key(), x); ok {
				v.results[x] = failure
			}
		}
		if len(v.results) == len(v.nodes) {
			v.complete, v.stop = true, now
		}
	}
}

func (s *Server) postV1Session(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Operation    string `json:"operation"`
		TemplateName string `json:"templateName"`
		Limit        string `json:"limit"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		problem(w, http.StatusBadRequest, "Bad Request", "Post must be in JSON format")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	if _, ok := s.templates[in.TemplateName]; !ok {
		// BOS v1 answers an unknown template with 404.
		problem(w, http.StatusNotFound, "The resource was not found", "Session Template ID invalid: "+in.TemplateName)
		return
	}
	now := s.opts.Now()
	v := &v1Session{id: uuid.NewString(), template: in.TemplateName, limit: in.Limit, operation: in.Operation, created: now, results: map[string]string{}}
	s.v1[v.id] = v
	s.v1order = append(s.v1order, v.id)
	out := map[string]any{
		"operation": in.Operation, "templateName": in.TemplateName, "job": "boa-" + v.id,
		"links": []map[string]any{
			{"rel": "session", "href": "/v1/session/" + v.id, "jobId": "boa-" + v.id, "type": "GET"},
			{"rel": "status", "href": "/v1/session/" + v.id + "/status", "type": "GET"},
		},
	}
	if in.Limit != "" {
		out["limit"] = in.Limit
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listV1Sessions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, append([]string{}, s.v1order...))
}

// v1Get finds a v1 session, answering 404 if there is none.
func (s *Server) v1Get(w http.ResponseWriter, r *http.Request) (*v1Session, bool) {
	v, ok := s.v1[r.PathValue("id")]
	if !ok {
		problem(w, http.StatusNotFound, "The resource was not found", "Session "+r.PathValue("id")+" could not be found")
	}
	return v, ok
}

func (v *v1Session) failures() int {
	n := 0
	for _, f := range v.results {
		if f != "" {
			n++
		}
	}
	return n
}

func (v *v1Session) metadata() map[string]any {
	m := map[string]any{"complete": v.complete, "in_progress": v.started && !v.complete, "error_count": v.failures(), "start_time": timestamp(v.created), "stop_time": nil}
	if v.complete {
		m["stop_time"] = timestamp(v.stop)
	}
	return m
}

func (s *Server) getV1Session(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	v, ok := s.v1Get(w, r)
	if !ok {
		return
	}
	out := map[string]any{
		"operation": v.operation, "templateName": v.template, "job": "boa-" + v.id, "status_link": "/v1/session/" + v.id + "/status",
		// BOS v1 answers "" for metadata BOA has not reported yet.
		"start_time": "", "stop_time": "", "complete": "", "in_progress": "", "error_count": "",
	}
	if v.started {
		for k, val := range v.metadata() {
			if val != nil {
				out[k] = val
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getV1Status(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	v, ok := s.v1Get(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"metadata": v.metadata(), "boot_sets": []string{"compute"}, "id": v.id,
		"links": []map[string]any{{"href": "/v1/session/" + v.id + "/status/compute", "rel": "Boot Set"}},
	})
}

func (s *Server) getV1BootSet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	v, ok := s.v1Get(w, r)
	if !ok {
		return
	}
	if r.PathValue("bs") != "compute" || !v.started {
		problem(w, http.StatusNotFound, "The resource was not found", "Boot set "+r.PathValue("bs")+" has no status")
		return
	}
	list := func(keep func(x string) bool) []string {
		out := []string{}
		for _, x := range v.nodes {
			if keep(x) {
				out = append(out, x)
			}
		}
		return out
	}
	done := func(x string) bool { _, ok := v.results[x]; return ok }
	errs := map[string][]string{}
	for _, x := range v.nodes {
		if f := v.results[x]; f != "" {
			errs[f] = append(errs[f], x)
		}
	}
	for _, l := range errs {
		slices.Sort(l)
	}
	cat := func(name string, nodes []string) map[string]any {
		return map[string]any{"name": name, "node_list": nodes}
	}
	none := func(string) bool { return false }
	phases := []map[string]any{
		{"name": "shutdown", "metadata": v.metadata(), "errors": map[string][]string{}, "categories": []map[string]any{
			cat("not_started", list(none)), cat("in_progress", list(func(x string) bool { return !done(x) })),
			cat("succeeded", list(done)), cat("failed", list(none)), cat("excluded", list(none)),
		}},
		{"name": "boot", "metadata": v.metadata(), "errors": errs, "categories": []map[string]any{
			cat("not_started", list(func(x string) bool { return !done(x) })), cat("in_progress", list(none)),
			cat("succeeded", list(func(x string) bool { return done(x) && v.results[x] == "" })),
			cat("failed", list(func(x string) bool { return v.results[x] != "" })), cat("excluded", list(none)),
		}},
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": "compute", "session": v.id, "metadata": v.metadata(), "phases": phases})
}
