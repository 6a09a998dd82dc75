// Package server puts crus's surfaces together for `crus serve` and
// `crus demo`: the REST API (package api) under /apis/crus, the status page
// (package web) at /, the metrics (package metrics) at /metrics, and a
// crus.Driver that runs every session in progress. Each part uses only the
// public crus API.
package server

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/metrics"
	"github.com/crus-go/crus/web"
)

// APIPath is where the API is served, as the original was behind the API
// gateway.
const APIPath = "/apis/crus"

// Options are what Handler serves.
type Options struct {
	Executor *crus.Executor
	// Store is the executor's store (for cheap revision checks and the
	// dry runs' reservation check).
	Store   crus.Store
	Hub     *api.Hub
	Metrics *metrics.Metrics // nil: no /metrics
	// DryRuns enables the dry runs of the API.
	DryRuns bool
	Auth    api.Authenticator
	// PublicReads lets the page (and any GET) through without a token.
	PublicReads bool
	// Now is the clock of the records; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler is everything served on one address.
type Handler struct {
	api *api.Handler
	web http.Handler
	// timeline is the page's timeline pictures behind the API's
	// authentication: they show a session's data.
	timeline http.Handler
	met      http.Handler
}

// New returns the handler of the API, the page and the metrics.
func New(o Options) (*Handler, error) {
	h, err := api.New(o.Executor, api.Config{
		Auth: o.Auth, PublicReads: o.PublicReads, Events: o.Hub, Store: o.Store,
		DryRuns: o.DryRuns, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	page := web.Handler(web.Config{Sessions: o.Executor, API: APIPath, Now: o.Now})
	out := &Handler{api: h, web: page, timeline: h.Guard(page)}
	if o.Metrics != nil {
		out.met = o.Metrics.Handler()
	}
	return out, nil
}

// Close ends the event streams (give it to http.Server.RegisterOnShutdown).
func (h *Handler) Close() { h.api.Close() }

// ServeHTTP dispatches by path prefix. It is not an http.ServeMux, which
// redirects paths it finds unclean: nothing here ever redirects.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if !strings.HasPrefix(p, APIPath+"/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
		// The page, its pictures, the metrics and /healthz are read
		// only: a POST or DELETE there was answered as a GET, 200,
		// as if it had done something.
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, r.Method+" is not allowed on "+p, http.StatusMethodNotAllowed)
		return
	}
	switch {
	case strings.HasPrefix(p, APIPath+"/"):
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(p, APIPath)
		r2.URL.RawPath = ""
		h.api.ServeHTTP(w, r2)
	case p == "/metrics" && h.met != nil:
		h.met.ServeHTTP(w, r)
	case p == "/healthz":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	case strings.HasPrefix(p, "/timeline/"):
		h.timeline.ServeHTTP(w, r)
	default:
		h.web.ServeHTTP(w, r)
	}
}
