package bos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus/internal/rest"
)

// V1Record ties a crus session name to the id BOS v1 gave its session.
type V1Record struct {
	Name     string   `json:"name"`
	ID       string   `json:"id"`
	Template string   `json:"template"`
	Limit    []string `json:"limit"`
}

// V1SessionStore remembers the BOS v1 session id of each crus session name.
// BOS v1 names sessions itself (a UUID) and cannot be asked for a session
// by any name of the caller's, so this record is what makes V1Client.Reboot
// idempotent. It must outlive the process for that to hold across
// restarts: use FileV1Store (or your own) in production.
type V1SessionStore interface {
	// Get returns the record of a name; ok is false if there is none.
	Get(ctx context.Context, name string) (r V1Record, ok bool, err error)
	// Put stores a record, replacing any of the same name.
	Put(ctx context.Context, r V1Record) error
}

// MemoryV1Store is a V1SessionStore in memory: records are lost when the
// process ends, and a Reboot replayed after that creates a second session.
type MemoryV1Store struct {
	mu sync.Mutex
	m  map[string]V1Record
}

// Get implements V1SessionStore.
func (s *MemoryV1Store) Get(_ context.Context, name string) (V1Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[name]
	return r, ok, nil
}

// Put implements V1SessionStore.
func (s *MemoryV1Store) Put(_ context.Context, r V1Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]V1Record{}
	}
	s.m[r.Name] = r
	return nil
}

// FileV1Store is a V1SessionStore in a JSON file, written atomically
// (temporary file, fsync, rename) on every Put. One process at a time may
// use a file.
type FileV1Store struct {
	Path string
	mu   sync.Mutex
}

func (s *FileV1Store) load() (map[string]V1Record, error) {
	m := map[string]V1Record{}
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bos: v1 session store: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("bos: v1 session store %s: %w", s.Path, err)
	}
	return m, nil
}

// Get implements V1SessionStore.
func (s *FileV1Store) Get(_ context.Context, name string) (V1Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return V1Record{}, false, err
	}
	r, ok := m[name]
	return r, ok, nil
}

// Put implements V1SessionStore.
func (s *FileV1Store) Put(_ context.Context, r V1Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	m[r.Name] = r
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(s.Path), filepath.Base(s.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("bos: v1 session store: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("bos: v1 session store: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("bos: v1 session store: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bos: v1 session store: %w", err)
	}
	if err := os.Rename(f.Name(), s.Path); err != nil {
		return fmt.Errorf("bos: v1 session store: %w", err)
	}
	return nil
}

// V1Config configures a V1Client.
type V1Config struct {
	Config
	// Sessions records the BOS session id of each name. Nil means a new
	// MemoryV1Store, which does not survive a restart.
	Sessions V1SessionStore
}

// V1Client talks to BOS v1 (/v1/session), for systems older than CSM 1.6,
// as the original CRUS did. It implements Orchestrator.
//
// BOS v1 gives each session a UUID of its own; V1Client records the UUID
// under the crus session name in its V1SessionStore. Reboot with a name
// already recorded creates nothing. A create that gets no clear answer is
// resolved by comparing the list of sessions before and after it: exactly
// one new session of the template is taken as this one; none means the
// create did not happen and it is sent again; more is ErrAmbiguous.
//
// A recorded session that BOS no longer has was deleted: Status reports it
// complete with an Error, and Reboot does not create it again.
//
// Status reads /v1/session/{id}/status and, for each boot set, its phases:
// a node in a "failed" category failed (with the phase's error for it as
// the reason); a node that succeeded in every phase it appears in, and is
// not started or in progress in any, succeeded.
type V1Client struct {
	rc    *rest.Client
	cfg   Config
	store V1SessionStore
	log   *slog.Logger
	// creating serializes Reboot calls of one name in this process, as
	// BOS v1 has no name to refuse a second create with.
	creating sync.Map // name -> *sync.Mutex
	// known holds every session this client created, so that a failure
	// to record one in the store never leads to a second create.
	known sync.Map // name -> V1Record
}

// String names the client by its base URL, never a credential.
func (c *V1Client) String() string {
	return fmt.Sprintf("bos.V1Client(%s)", rest.RedactURL(c.cfg.BaseURL))
}

// GoString is String.
func (c *V1Client) GoString() string { return c.String() }

// LogValue shows the base URL, never a credential.
func (c *V1Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// lookup finds a name's record in the store, or else among the sessions
// this client created (writing it to the store again, if it was lost).
func (c *V1Client) lookup(ctx context.Context, name string) (V1Record, bool, error) {
	r, ok, err := c.store.Get(ctx, name)
	if err != nil || ok {
		return r, ok, err
	}
	if v, ok := c.known.Load(name); ok {
		r := v.(V1Record)
		if err := c.store.Put(ctx, r); err != nil {
			return r, true, fmt.Errorf("bos: session %q (BOS v1 session %s) is still not recorded: %w", name, r.ID, err)
		}
		return r, true, nil
	}
	return V1Record{}, false, nil
}

var _ Orchestrator = (*V1Client)(nil)

// NewV1 returns a BOS v1 client for the BOS at cfg.BaseURL.
func NewV1(cfg V1Config) (*V1Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Tenant != "" {
		return nil, errors.New("bos: BOS v1 refuses requests with a tenant: leave Config.Tenant empty or use BOS v2")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	rc, err := cfg.rest()
	if err != nil {
		return nil, err
	}
	store := cfg.Sessions
	if store == nil {
		store = &MemoryV1Store{}
	}
	return &V1Client{rc: rc, cfg: cfg.Config, store: store, log: cfg.logger()}, nil
}

// JSON shapes of BOS v1 (V1SessionByTemplateName, V1Session,
// V1SessionDetails, V1SessionStatus, V1BootSetStatus). Metadata fields
// are read leniently: BOS v1 answers "" for fields it has no value for yet.
type (
	v1CreateJSON struct {
		Operation    string `json:"operation"`
		TemplateName string `json:"templateName"`
		Limit        string `json:"limit,omitempty"`
	}
	v1SessionJSON struct {
		Operation    string `json:"operation"`
		TemplateName string `json:"templateName"`
		Job          string `json:"job"`
		Links        []struct {
			Href string `json:"href"`
			Rel  string `json:"rel"`
		} `json:"links"`
	}
	v1MetadataJSON struct {
		Complete   flexBool `json:"complete"`
		InProgress flexBool `json:"in_progress"`
		ErrorCount flexInt  `json:"error_count"`
		StartTime  *string  `json:"start_time"`
		StopTime   *string  `json:"stop_time"`
	}
	v1StatusJSON struct {
		Metadata v1MetadataJSON `json:"metadata"`
		BootSets []string       `json:"boot_sets"`
	}
	v1BootSetJSON struct {
		Phases []struct {
			Name       string `json:"name"`
			Categories []struct {
				Name     string   `json:"name"`
				NodeList []string `json:"node_list"`
			} `json:"categories"`
			Errors map[string][]string `json:"errors"`
		} `json:"phases"`
	}
)

// flexBool reads a JSON boolean, or a string holding one ("" is false).
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*b = flexBool(v)
	case string:
		p, _ := strconv.ParseBool(v)
		*b = flexBool(p)
	case nil:
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", data)
	}
	return nil
}

// flexInt reads a JSON number, or a string holding one ("" is 0).
type flexInt int

func (n *flexInt) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case float64:
		*n = flexInt(v)
	case string:
		p, _ := strconv.Atoi(v)
		*n = flexInt(p)
	case nil:
		*n = 0
	default:
		return fmt.Errorf("not a number: %s", data)
	}
	return nil
}

// CheckTemplate implements Orchestrator: GET /v1/sessiontemplate/{name}.
func (c *V1Client) CheckTemplate(ctx context.Context, template string) error {
	return checkTemplate(ctx, c.rc, "/v1/sessiontemplate/", template)
}

func (c *V1Client) list(ctx context.Context) ([]string, error) {
	var ids []string
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: "/v1/session", Out: &ids, Safe: true})
	switch {
	case err != nil:
		return nil, callError("list sessions", err)
	case resp.Status != http.StatusOK:
		return nil, unexpected("list sessions", resp)
	}
	return ids, nil
}

// details reads a session's template and operation; nil if it is gone.
func (c *V1Client) details(ctx context.Context, id string) (*v1SessionJSON, error) {
	op := fmt.Sprintf("read session %s", id)
	var d v1SessionJSON
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: "/v1/session/" + url.PathEscape(id), Out: &d, Safe: true})
	switch {
	case err != nil:
		return nil, callError(op, err)
	case resp.Status == http.StatusOK:
		return &d, nil
	case resp.Status == http.StatusNotFound:
		return nil, nil
	}
	return nil, unexpected(op, resp)
}

// sessionID finds the session id in a create answer: the "session" link
// (/v1/session/{id}), or the BOA job name ("boa-" + id).
func sessionID(s v1SessionJSON) string {
	for _, l := range s.Links {
		if l.Rel == "session" {
			if i := strings.LastIndex(l.Href, "/v1/session/"); i >= 0 {
				if id := strings.Trim(l.Href[i+len("/v1/session/"):], "/"); id != "" && !strings.Contains(id, "/") {
					return id
				}
			}
		}
	}
	return strings.TrimPrefix(s.Job, "boa-")
}

// Reboot implements Orchestrator: POST /v1/session unless the name is
// recorded already.
func (c *V1Client) Reboot(ctx context.Context, req Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkRequest(req); err != nil {
		return err
	}
	mu, _ := c.creating.LoadOrStore(req.Name, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	limit := req.LimitString()
	if r, ok, err := c.lookup(ctx, req.Name); ok || err != nil {
		if err != nil {
			return err
		}
		if r.Template != req.Template || strings.Join(r.Limit, ",") != limit {
			return fmt.Errorf("%w: session %q (BOS v1 session %s) has template %q and limit %q", ErrSessionExists, req.Name, r.ID, r.Template, abbreviate(strings.Join(r.Limit, ",")))
		}
		return nil
	}
	before, err := c.list(ctx)
	if err != nil {
		return err
	}
	record := func(id string) error {
		r := V1Record{Name: req.Name, ID: id, Template: req.Template, Limit: strings.Split(limit, ",")}
		c.known.Store(req.Name, r)
		if err := c.store.Put(ctx, r); err != nil {
			return fmt.Errorf("bos: session %q was created as BOS v1 session %s but could not be recorded: %w", req.Name, id, err)
		}
		c.log.Debug("session created", "session", req.Name, "id", id, "template", req.Template)
		return nil
	}
	op := fmt.Sprintf("create session %q", req.Name)
	var last error
	for range creates(c.cfg.Retries) {
		var created v1SessionJSON
		resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodPost, Path: "/v1/session",
			Body: v1CreateJSON{Operation: "reboot", TemplateName: req.Template, Limit: limit}})
		switch {
		case err == nil && (resp.Status == http.StatusCreated || resp.Status == http.StatusOK):
			if jerr := resp.JSON(&created); jerr == nil {
				if id := sessionID(created); id != "" {
					return record(id)
				}
			}
			e := statusError(op, resp, nil) // created, but which one? find it below
			e.Detail = "the answer names no session id"
			last = e
		case err == nil && resp.Status == http.StatusNotFound:
			return statusError(op, resp, ErrTemplateNotFound) // BOS v1's answer to an unknown template
		case err == nil && resp.Status == http.StatusBadRequest:
			if terr := c.CheckTemplate(ctx, req.Template); errors.Is(terr, ErrTemplateNotFound) {
				return statusError(op, resp, ErrTemplateNotFound)
			}
			return statusError(op, resp, ErrInvalidRequest)
		case err == nil && resp.Status == http.StatusTooManyRequests:
			// Refused unprocessed (RFC 6585): no session to look for, and
			// no retry at once; crus tries again later.
			return unexpected(op, resp)
		case err == nil && resp.Status >= 400 && resp.Status < 500 && resp.Status != http.StatusRequestTimeout:
			return unexpected(op, resp)
		case err != nil:
			if ctx.Err() != nil {
				return callError(op, err)
			}
			last = callError(op, err)
		default:
			last = unexpected(op, resp)
		}
		c.log.Warn("session create got no clear answer; comparing the session list", "session", req.Name, "err", last)
		id, found, ferr := c.findNew(ctx, before, req.Template)
		switch {
		case ferr != nil:
			return errors.Join(last, ferr)
		case found:
			return record(id)
		}
	}
	return last
}

// findNew looks for the session a create may have made: the sessions of
// the template that were not there before.
func (c *V1Client) findNew(ctx context.Context, before []string, template string) (string, bool, error) {
	after, err := c.list(ctx)
	if err != nil {
		return "", false, err
	}
	old := make(map[string]bool, len(before))
	for _, id := range before {
		old[id] = true
	}
	var candidates []string
	for _, id := range after {
		if old[id] {
			continue
		}
		d, err := c.details(ctx, id)
		if err != nil {
			return "", false, err
		}
		if d != nil && d.TemplateName == template && strings.EqualFold(d.Operation, "reboot") {
			candidates = append(candidates, id)
		}
	}
	switch len(candidates) {
	case 0:
		return "", false, nil
	case 1:
		return candidates[0], true, nil
	}
	slices.Sort(candidates)
	return "", false, fmt.Errorf("%w: %d new reboot sessions of template %q appeared: %s", ErrAmbiguous, len(candidates), template, strings.Join(candidates, ", "))
}

// MaxV1BootSets bounds the boot sets of a BOS v1 session whose status is
// read, one request each: a session template has a handful (compute,
// uan, ...). A status listing more is an answer crus does not believe,
// not tens of thousands of requests.
const MaxV1BootSets = 256

// Status implements Orchestrator.
func (c *V1Client) Status(ctx context.Context, name string, nodes []string) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	r, ok, err := c.lookup(ctx, name)
	switch {
	case !ok && err != nil:
		return Status{}, err
	case !ok:
		return Status{}, fmt.Errorf("%w: %q (no BOS v1 session is recorded under this name)", ErrSessionNotFound, name)
	}
	op := fmt.Sprintf("read the status of session %q (BOS v1 session %s)", name, r.ID)
	var sj v1StatusJSON
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: "/v1/session/" + url.PathEscape(r.ID) + "/status", Out: &sj, Safe: true})
	switch {
	case err != nil:
		return Status{}, callError(op, err)
	case resp.Status == http.StatusNotFound:
		d, derr := c.details(ctx, r.ID)
		if derr != nil {
			return Status{}, derr
		}
		if d == nil {
			// Recorded, so BOS created it: deleted since, not unaccepted
			// (see Orchestrator.Status).
			c.log.Warn("session was deleted from BOS", "session", name, "id", r.ID)
			return deletedStatus(name), nil
		}
		// The session exists but has no status yet: BOA has not started.
		return Status{Name: name, Phase: PhasePending, Nodes: map[string]NodeStatus{}}, nil
	case resp.Status != http.StatusOK:
		return Status{}, unexpected(op, resp)
	}
	st := Status{Name: name, StartTime: parseTime(deref(sj.Metadata.StartTime)), EndTime: parseTime(deref(sj.Metadata.StopTime)), Nodes: map[string]NodeStatus{}}
	switch {
	case bool(sj.Metadata.Complete):
		st.Phase = PhaseComplete
	case bool(sj.Metadata.InProgress):
		st.Phase = PhaseRunning
	default:
		st.Phase = PhasePending
		return st, nil
	}
	if len(nodes) == 0 && st.Phase != PhaseComplete {
		return st, nil
	}
	type seen struct {
		failed, pending bool
		succeeded       int
		reason          string
	}
	bootSets := slices.Clone(sj.BootSets)
	slices.Sort(bootSets)
	bootSets = slices.Compact(bootSets)
	if len(bootSets) > MaxV1BootSets {
		return Status{}, fmt.Errorf("bos: %s: the status lists %d boot sets, more than MaxV1BootSets (%d); none read",
			op, len(bootSets), MaxV1BootSets)
	}
	var mu sync.Mutex
	all := map[string]*seen{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for _, bs := range bootSets {
		g.Go(func() error {
			bop := fmt.Sprintf("read boot set %q of session %q (BOS v1 session %s)", bs, name, r.ID)
			var bj v1BootSetJSON
			resp, err := c.rc.Do(gctx, rest.Request{Method: http.MethodGet,
				Path: "/v1/session/" + url.PathEscape(r.ID) + "/status/" + url.PathEscape(bs), Out: &bj, Safe: true})
			switch {
			case err != nil:
				return callError(bop, err)
			case resp.Status == http.StatusNotFound:
				return nil // not set up yet
			case resp.Status != http.StatusOK:
				return unexpected(bop, resp)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ph := range bj.Phases {
				for _, cat := range ph.Categories {
					for _, x := range cat.NodeList {
						s := all[x]
						if s == nil {
							s = &seen{}
							all[x] = s
						}
						switch strings.ToLower(cat.Name) {
						case "failed":
							s.failed = true
							if s.reason == "" {
								s.reason = v1Reason(ph.Name, x, ph.Errors)
							}
						case "succeeded":
							s.succeeded++
						case "not_started", "in_progress":
							s.pending = true
						}
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Status{}, err
	}
	booted := false
	for _, s := range all {
		if s.failed || s.succeeded > 0 || s.pending {
			booted = true
			break
		}
	}
	if st.Phase == PhaseComplete && !booted {
		st.Error = "the session found no nodes to boot (no node of the template's boot sets matched the limit)"
		return st, nil
	}
	for _, x := range nodes {
		s := all[x]
		switch {
		case s == nil:
		case s.failed:
			st.Nodes[x] = NodeStatus{Result: ResultFailed, Reason: s.reason}
		case !s.pending && s.succeeded > 0:
			st.Nodes[x] = NodeStatus{Result: ResultSucceeded}
		}
	}
	return st, nil
}

// v1Reason finds why a node failed in a phase: the error message listing
// it, or the phase's name.
func v1Reason(phase, node string, errs map[string][]string) string {
	msgs := make([]string, 0, len(errs))
	for msg := range errs {
		msgs = append(msgs, msg)
	}
	slices.Sort(msgs)
	for _, msg := range msgs {
		if slices.Contains(errs[msg], node) {
			return phase + ": " + msg
		}
	}
	return "failed in phase " + phase
}
