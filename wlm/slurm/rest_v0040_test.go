package slurm_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
)

// TestRESTv0040Writes covers the write path of slurmrestd v0.0.39+ (Slurm
// 23.02 and later), which cannot run here: Debian 12 ships 22.05. The
// server below answers as the published v0.0.40 schema says (node lists
// with state lists and {set,number} times; POST /node/{name} taking
// {"state":[...],"reason":...}); it checks the requests the adapter makes
// for that version, not what a real 23.11 server would do with them.
func TestRESTv0040Writes(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	states := map[string][]string{
		"nid000001": {"IDLE"},
		"nid000002": {"IDLE", "DRAIN"},
		"nid000003": {"ALLOCATED"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi/v3", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"paths":{"/slurm/v0.0.39/nodes/":{},"/slurm/v0.0.40/nodes/":{},"/slurm/v0.0.40/node/{node_name}":{},"/slurm/v0.0.99/nodes/":{}}}`)
	})
	mux.HandleFunc("GET /slurm/v0.0.40/nodes", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-SLURM-USER-TOKEN") != "tok" || r.Header.Get("X-SLURM-USER-NAME") != "root" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		var nodes []map[string]any
		for _, n := range []string{"nid000001", "nid000002", "nid000003"} {
			nodes = append(nodes, map[string]any{"name": n, "state": states[n],
				"boot_time": map[string]any{"set": true, "infinite": false, "number": 1700000000}})
		}
		json.NewEncoder(w).Encode(map[string]any{"nodes": nodes, "errors": []any{}, "warnings": []any{}})
	})
	mux.HandleFunc("POST /slurm/v0.0.40/node/{name}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		name := r.PathValue("name")
		mu.Lock()
		posts = append(posts, name+" "+string(b))
		mu.Unlock()
		if name == "nid000003" {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"errors":[{"description":"Failure to update node nid000003","error_number":2016,"error":"Invalid node state specified","source":"slurm_update_node"}]}`)
			return
		}
		io.WriteString(w, `{"errors":[],"warnings":[]}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	m, err := slurm.NewREST(slurm.RESTConfig{URL: srv.URL, User: "root", Token: slurm.StaticToken("tok")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if v, err := m.Version(ctx); v != "v0.0.40" || err != nil {
		t.Fatalf("Version = %q, %v; want v0.0.40, the highest known version offered", v, err)
	}
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		p := posts
		posts = nil
		slices.Sort(p)
		return p
	}

	err = m.Drain(ctx, []string{"nid000001", "nid000003", "nosuch", "-h"}, "crus x: step 1")
	perNode, rest := batch.Split(err)
	if rest != nil || len(perNode) != 3 || !errors.Is(perNode["nosuch"], wlm.ErrNodeNotFound) ||
		!errors.Is(perNode["-h"], wlm.ErrInvalidArgument) || !strings.Contains(perNode["nid000003"].Error(), "Invalid node state specified") {
		t.Errorf("Drain: per node %v, rest %v", perNode, rest)
	}
	want := []string{
		`nid000001 {"state":["DRAIN"],"reason":"crus x: step 1"}`,
		`nid000003 {"state":["DRAIN"],"reason":"crus x: step 1"}`,
	}
	if diff := cmp.Diff(want, take()); diff != "" {
		t.Errorf("Drain requests (-want +got):\n%s", diff)
	}

	// Resume only what needs it: nid000002 is drained, nid000001 in service.
	if err := m.Resume(ctx, []string{"nid000001", "nid000002"}); err != nil {
		t.Errorf("Resume: %v", err)
	}
	if diff := cmp.Diff([]string{`nid000002 {"state":["RESUME"]}`}, take()); diff != "" {
		t.Errorf("Resume requests (-want +got):\n%s", diff)
	}

	if err := m.Fail(ctx, []string{"nid000001"}, "crus x: did not return"); err != nil {
		t.Errorf("Fail: %v", err)
	}
	if diff := cmp.Diff([]string{`nid000001 {"state":["FAIL"],"reason":"crus x: did not return"}`}, take()); diff != "" {
		t.Errorf("Fail requests (-want +got):\n%s", diff)
	}

	nodes, err := m.Nodes(ctx, []string{"nid000002"})
	if err != nil || len(nodes) != 1 || !nodes[0].Drained() || nodes[0].BootTime.Unix() != 1700000000 {
		t.Errorf("Nodes: %+v, %v", nodes, err)
	}
}
