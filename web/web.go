// Package web is crus's live status page: the list of sessions and, for
// one session, a grid of its nodes coloured by phase and outcome, the
// counts, the current step, the messages, the failed nodes with their
// reasons and a timeline of the steps, updated live from the API's event
// stream. The assets are embedded (plain HTML, CSS and JavaScript: no
// build step); the page reads only the API of package api.
//
// The grid is drawn on a canvas from the compact node states of
// GET /sessions/{id}/nodes (one character per node), so that a session of
// 10,000 nodes stays readable and fast; hovering a cell names the node.
//
// Timeline writes the timeline as SVG; the page shows the same picture
// (GET timeline/{id}.svg), and so does `crus timeline`.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/text"
)

//go:embed assets
var assets embed.FS

// Getter reads one session: a *crus.Executor, or a crus.Store. If it can
// also show a record without copying it (the View method of a
// *crus.Executor or of a crus.Viewer), the timelines are drawn from the
// record in place: a copy of 160,000 node records is 50 MB, and the page
// asks for a session's timeline every few seconds.
type Getter interface {
	Get(ctx context.Context, id string) (*crus.Session, error)
}

// viewer is a Getter that can show a record in place.
type viewer interface {
	View(ctx context.Context, id string, fn func(*crus.Session) error) error
}

// timeline draws the timeline of the session id into buf.
func timeline(ctx context.Context, g Getter, id string, buf *bytes.Buffer, opts TimelineOptions) (drawErr, readErr error) {
	if v, ok := g.(viewer); ok {
		readErr = v.View(ctx, id, func(s *crus.Session) error {
			drawErr = Timeline(buf, s, opts)
			return nil
		})
		return drawErr, readErr
	}
	s, err := g.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return Timeline(buf, s, opts), nil
}

// Config configures the page. The zero value of every field but Sessions
// is usable.
type Config struct {
	// Sessions reads the records the timelines are drawn from.
	Sessions Getter
	// API is the path the API is served at. Default "/apis/crus".
	API string
	// Now is the clock of the records, for the timeline of a session in
	// progress; nil means time.Now.
	Now func() time.Time
}

// Handler serves the page at its root: "/", "/assets/..." and
// "/timeline/{id}.svg".
func Handler(cfg Config) http.Handler {
	if cfg.API == "" {
		cfg.API = "/apis/crus"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	index = bytes.ReplaceAll(index, []byte("{{API}}"), []byte(cfg.API))
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		switch {
		case r.URL.Path == "/" || r.URL.Path == "/index.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(index)
		case strings.HasPrefix(r.URL.Path, "/assets/"):
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/assets")
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r2)
		case strings.HasPrefix(r.URL.Path, "/timeline/") && strings.HasSuffix(r.URL.Path, ".svg"):
			id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/timeline/"), ".svg")
			var buf bytes.Buffer
			drawErr, err := timeline(r.Context(), cfg.Sessions, id, &buf, TimelineOptions{Now: cfg.Now()})
			if errors.Is(err, crus.ErrSessionNotFound) {
				http.Error(w, "no session "+text.Cap(id, 256), http.StatusNotFound)
				return
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			if drawErr != nil {
				http.Error(w, drawErr.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "image/svg+xml")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(buf.Bytes())
		default:
			http.NotFound(w, r)
		}
	})
}
