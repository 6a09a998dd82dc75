package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/hsm"
)

// target is what the client commands act on: a crus serve, or a store
// through an executor of this process.
type target interface {
	Create(ctx context.Context, spec crus.Spec) (*crus.Session, error)
	Get(ctx context.Context, id string) (*crus.Session, error)
	// Describe returns the session's summary with its failed and skipped
	// nodes, without the other node records.
	Describe(ctx context.Context, id string) (api.Description, error)
	List(ctx context.Context) ([]api.Summary, error)
	Act(ctx context.Context, action, id string) (api.Summary, error)
	// Watch calls fn with each summary and event of the session until fn
	// returns false or ctx ends.
	Watch(ctx context.Context, id string, fn func(*api.Summary, *api.Event) bool) error
	Close() error
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	server, store, output, token, caFile string
	cfgPath                              *string
	fs                                   *flag.FlagSet
}

func newClientFlags(name string) *clientFlags {
	c := &clientFlags{fs: newFlagSet(name)}
	def := os.Getenv("CRUS_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	c.fs.StringVar(&c.server, "server", def, "URL of a crus serve (env CRUS_SERVER)")
	c.fs.StringVar(&c.store, "store", "", "act on a store directly: a directory, or \"etcd\" for the configuration's etcd (the backends come from the configuration)")
	c.fs.StringVar(&c.output, "o", "table", "output: table, json or yaml")
	c.fs.StringVar(&c.output, "output", "table", "output: table, json or yaml")
	c.fs.StringVar(&c.token, "server-token-file", os.Getenv("CRUS_SERVER_TOKEN_FILE"), "file holding a bearer token for the server (env CRUS_SERVER_TOKEN_FILE)")
	c.fs.StringVar(&c.caFile, "server-ca-file", "", "PEM file of the CA of the server's certificate")
	c.cfgPath = c.fs.String("config", os.Getenv("CRUS_CONFIG"), "configuration file, for --store (env CRUS_CONFIG)")
	return c
}

// checkOutput refuses an output format crus does not write.
func (c *clientFlags) checkOutput() error {
	switch c.output {
	case "table", "json", "yaml":
		return nil
	}
	return usageError{fmt.Errorf("-o %q is not table, json or yaml", c.output)}
}

func (c *clientFlags) target() (target, error) {
	if err := c.checkOutput(); err != nil {
		return nil, err
	}
	if c.store != "" {
		return c.local()
	}
	r := &remote{base: strings.TrimRight(c.server, "/") + "/apis/crus", http: &http.Client{}}
	if c.caFile != "" {
		hc, err := auth.NewHTTPClient(c.caFile)
		if err != nil {
			return nil, err
		}
		r.http = hc
	}
	if c.token != "" {
		r.tokens = &auth.FileToken{Path: c.token}
	}
	return r, nil
}

// local builds an executor on the configuration's backends and the
// store named by --store.
func (c *clientFlags) local() (target, error) {
	env := func(k string) string {
		switch {
		case k == "CRUS_STORE_DIR" && c.store != "etcd":
			return c.store
		case k == "CRUS_ETCD_ENDPOINTS" && c.store != "etcd":
			return ""
		}
		return os.Getenv(k)
	}
	cfg, problems := loadConfig(*c.cfgPath, nil, env)
	if c.store != "etcd" {
		cfg.Store.Dir, cfg.Store.EtcdEndpoints = c.store, ""
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	b, problems := cfg.connect(slog.New(slog.DiscardHandler))
	if len(problems) > 0 {
		_ = b.Close()
		return nil, errors.Join(problems...)
	}
	ex, err := crus.NewExecutor(b.groups, b.manager, b.boot, crus.Config{
		Store: b.store, PollInterval: cfg.Executor.PollInterval, CallTimeout: cfg.Executor.CallTimeout,
		Mapper: crus.NIDMapper{Resolver: hsm.NIDResolver(b.groups), Format: cfg.Executor.NodeNameFormat},
	})
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	return &local{ex: ex, b: b}, nil
}

// remote talks to a crus serve.
type remote struct {
	base   string
	http   *http.Client
	tokens auth.TokenSource
}

func (r *remote) Close() error { return nil }

func (r *remote) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if err := r.authorize(ctx, req); err != nil {
		return err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		p := &api.Problem{}
		if json.Unmarshal(data, p) != nil || p.Status == 0 {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return p
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

func (r *remote) authorize(ctx context.Context, req *http.Request) error {
	if r.tokens == nil {
		return nil
	}
	tok, err := r.tokens.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (r *remote) Create(ctx context.Context, spec crus.Spec) (*crus.Session, error) {
	var s crus.Session
	return &s, r.do(ctx, "POST", "/sessions", spec, &s)
}

func (r *remote) Get(ctx context.Context, id string) (*crus.Session, error) {
	var s crus.Session
	return &s, r.do(ctx, "GET", "/sessions/"+id, nil, &s)
}

// Describe reads GET /sessions/{id}/description; from a server that
// does not serve it (404), the full record.
func (r *remote) Describe(ctx context.Context, id string) (api.Description, error) {
	var d api.Description
	err := r.do(ctx, "GET", "/sessions/"+id+"/description", nil, &d)
	var p *api.Problem
	if errors.As(err, &p) && p.Status == http.StatusNotFound {
		s, err := r.Get(ctx, id)
		if err != nil {
			return api.Description{}, err
		}
		return api.DescriptionOf(s), nil
	}
	return d, err
}

func (r *remote) List(ctx context.Context) ([]api.Summary, error) {
	var out []api.Summary
	return out, r.do(ctx, "GET", "/sessions", nil, &out)
}

func (r *remote) Act(ctx context.Context, action, id string) (api.Summary, error) {
	var out api.Summary
	method, path := "POST", "/sessions/"+id+"/"+action
	if action == "delete" {
		method, path = "DELETE", "/sessions/"+id
	}
	return out, r.do(ctx, method, path, nil, &out)
}

// Watch follows the session's event stream, connecting again if the
// stream breaks (a restarted server).
func (r *remote) Watch(ctx context.Context, id string, fn func(*api.Summary, *api.Event) bool) error {
	for {
		done, err := r.watchOnce(ctx, id, fn)
		if done {
			return err
		}
		var p *api.Problem
		if errors.As(err, &p) && p.Status == http.StatusNotFound {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (r *remote) watchOnce(ctx context.Context, id string, fn func(*api.Summary, *api.Event) bool) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", r.base+"/sessions/"+id+"/events", nil)
	if err != nil {
		return true, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if err := r.authorize(ctx, req); err != nil {
		return true, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		p := &api.Problem{}
		if json.Unmarshal(data, p) != nil || p.Status == 0 {
			return resp.StatusCode < 500, fmt.Errorf("events: %s", resp.Status)
		}
		return resp.StatusCode < 500, p
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && name != "":
			switch name {
			case "session":
				var s api.Summary
				if json.Unmarshal([]byte(data), &s) == nil && !fn(&s, nil) {
					return true, nil
				}
			case "gone":
				return true, fmt.Errorf("session %s was deleted", id)
			case "lagged":
			default:
				var ev api.Event
				if json.Unmarshal([]byte(data), &ev) == nil && !fn(nil, &ev) {
					return true, nil
				}
			}
			name, data = "", ""
		}
	}
	if ctx.Err() != nil {
		return true, ctx.Err()
	}
	return false, sc.Err() // the stream ended: the server went away
}

// local acts on a store through an executor of this process.
type local struct {
	ex *crus.Executor
	b  *backends
}

func (l *local) Close() error { return l.b.Close() }

func (l *local) Create(ctx context.Context, spec crus.Spec) (*crus.Session, error) {
	return l.ex.Create(ctx, spec)
}

func (l *local) Get(ctx context.Context, id string) (*crus.Session, error) { return l.ex.Get(ctx, id) }

func (l *local) Describe(ctx context.Context, id string) (api.Description, error) {
	s, err := l.ex.Get(ctx, id)
	if err != nil {
		return api.Description{}, err
	}
	return api.DescriptionOf(s), nil
}

func (l *local) List(ctx context.Context) ([]api.Summary, error) {
	list, err := l.ex.List(ctx)
	out := make([]api.Summary, len(list))
	for i, s := range list {
		out[i] = api.SummaryOf(s)
	}
	return out, err
}

func (l *local) Act(ctx context.Context, action, id string) (api.Summary, error) {
	do := map[string]func(context.Context, string) (*crus.Session, error){
		"delete": l.ex.Delete, "pause": l.ex.Pause, "resume": l.ex.Resume, "approve": l.ex.Approve,
	}[action]
	s, err := do(ctx, id)
	if err != nil {
		return api.Summary{}, err
	}
	return api.SummaryOf(s), nil
}

// Watch reads the session's revision every two seconds (a store has no
// events), and its record only when the revision moved: a file store
// decodes the whole record at each read, 160,000 node records.
func (l *local) Watch(ctx context.Context, id string, fn func(*api.Summary, *api.Event) bool) error {
	var rev int64 = -1
	for {
		now, err := l.ex.Revision(ctx, id)
		if err != nil {
			return err
		}
		if now != rev || rev == 0 {
			var sum api.Summary
			err := l.ex.View(ctx, id, func(s *crus.Session) error {
				sum = api.SummaryOf(s)
				return nil
			})
			if err != nil {
				return err
			}
			rev = sum.Revision
			if !fn(&sum, nil) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
