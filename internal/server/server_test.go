package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/server"
	"github.com/crus-go/crus/metrics"
)

// tokenAuth accepts one bearer token.
type tokenAuth string

func (a tokenAuth) Authenticate(r *http.Request) (string, error) {
	if r.Header.Get("Authorization") == "Bearer "+string(a) {
		return "operator", nil
	}
	return "", errors.New("no valid token")
}

// TestTimelineUnderTheAPIsAuthentication checks that a session's timeline
// picture is served under the API's rule: without public reads, a request
// the API would refuse gets 401 and no picture, one with a token gets it;
// the page's static files need no token (they hold no session data).
func TestTimelineUnderTheAPIsAuthentication(t *testing.T) {
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 8, Busy: 0.5, MaxJob: time.Hour})
	store := crus.NewMemoryStore()
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ex.Create(context.Background(), crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 4, TemplateID: fake.Template, WorkloadManagerType: "slurm",
	})
	if err != nil {
		t.Fatal(err)
	}
	picture := "/timeline/" + s.UpgradeID + ".svg"
	get := func(h http.Handler, path, token string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for _, tc := range []struct {
		name        string
		publicReads bool
		token       string
		want        int
	}{
		{"no token", false, "", http.StatusUnauthorized},
		{"wrong token", false, "guess", http.StatusUnauthorized},
		{"token", false, "secret", http.StatusOK},
		{"public reads", true, "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := server.New(server.Options{Executor: ex, Store: store, Hub: api.NewHub(), Auth: tokenAuth("secret"), PublicReads: tc.publicReads})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			w := get(h, picture, tc.token)
			if w.Code != tc.want {
				t.Fatalf("GET %s: %d %.200s, want %d", picture, w.Code, w.Body, tc.want)
			}
			if isSVG := strings.Contains(w.Body.String(), "<svg"); isSVG != (tc.want == http.StatusOK) {
				t.Errorf("GET %s (%d): picture sent %v", picture, w.Code, isSVG)
			}
			// The API answers the same request the same way.
			if api := get(h, server.APIPath+"/sessions/"+s.UpgradeID, tc.token); api.Code != tc.want {
				t.Errorf("GET the session from the API: %d, the picture %d", api.Code, w.Code)
			}
			if page := get(h, "/", ""); page.Code != http.StatusOK {
				t.Errorf("GET / without a token: %d, want 200 (the page holds no session data)", page.Code)
			}
		})
	}
}

// TestReadOnlyPathsRefuseWrites: outside the API everything is read
// only; a POST, PUT or DELETE of the page, a picture, the metrics or
// /healthz is answered 405 with Allow, not served as a GET.
func TestReadOnlyPathsRefuseWrites(t *testing.T) {
	world := fake.NewCluster(fake.ClusterOptions{Nodes: 4})
	ex, err := crus.NewExecutor(world.HSM(), world.WLM(), world.BOS(), crus.Config{Clock: world})
	if err != nil {
		t.Fatal(err)
	}
	h, err := server.New(server.Options{Executor: ex, Hub: api.NewHub(), Metrics: metrics.New(metrics.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, path := range []string{"/", "/index.html", "/assets/app.js", "/timeline/x.svg", "/metrics", "/healthz"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader("{}")))
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d (Allow %q); want 405 with Allow: GET, HEAD", method, path, w.Code, w.Header().Get("Allow"))
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("HEAD", path, nil))
		if w.Code == http.StatusMethodNotAllowed {
			t.Errorf("HEAD %s: 405", path)
		}
	}
}
