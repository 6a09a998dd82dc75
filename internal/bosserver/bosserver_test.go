package bosserver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/internal/bosserver"
)

// GET /v2/components pages as the document says: start_after_id lists the
// components after that id, page_size bounds the answer (0: no limit).
func TestComponentsPaging(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	nodes := []string{"x3000c0s1b0n0", "x3000c0s2b0n0", "x3000c0s3b0n0", "x3000c0s4b0n0", "x3000c0s5b0n0"}
	srv, base := bosserver.NewTest(t, bosserver.Options{Now: clock, PendingDelay: time.Second,
		Groups: func(label string) ([]string, bool) { return nodes, label == "upgrading" }})
	srv.AddTemplate("tmpl", []string{"upgrading"}, nil)
	resp, err := http.Post(base+"/v2/sessions", "application/json",
		strings.NewReader(`{"name":"s1","operation":"reboot","template_name":"tmpl","limit":"upgrading"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	get := func(query string) []string {
		t.Helper()
		resp, err := http.Get(base + "/v2/components?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var comps []struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&comps); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v2/components?%s: %s, %v", query, resp.Status, err)
		}
		var ids []string
		for _, c := range comps {
			ids = append(ids, c.ID)
		}
		return ids
	}
	if got := get("session=s1"); len(got) != 5 {
		t.Fatalf("components of s1: %v; want 5", got)
	}
	var all []string
	after := ""
	for range 10 {
		q := "session=s1&page_size=2"
		if after != "" {
			q += "&start_after_id=" + after
		}
		page := get(q)
		if len(page) > 2 {
			t.Fatalf("page of %d components with page_size=2: %v", len(page), page)
		}
		all = append(all, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if fmt.Sprint(all) != fmt.Sprint(nodes) {
		t.Errorf("paged through %v; want %v", all, nodes)
	}
	if got := get("page_size=0"); len(got) != 5 {
		t.Errorf("page_size=0: %v; want all 5", got)
	}
}
