package bos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/crus-go/crus/internal/rest"
)

// Client talks to BOS v2, the current Boot Orchestration Service API (v1
// was removed in BOS 2.17 / CSM 1.6; see V1Client for older systems). It
// implements Orchestrator and is safe for concurrent use.
//
// A reboot is a v2 session with operation "reboot", the template and a
// limit, created under the caller's name. The name makes creation
// idempotent: Reboot looks the name up before it creates anything, and
// after a create that got no clear answer, so a session is never created
// twice (BOS before 2.x-2023 silently replaced a session of the same
// name). Should the create's answer give the session another name, the
// client follows the session under that name, in this process: a
// restarted client knows only the caller's name.
//
// Per-node outcomes come from the BOS components
// (GET /v2/components?ids=...): a component whose session is this one and
// whose status is "stable" succeeded; "failed" failed, with the
// component's error as the reason. A component BOS left "on_hold" when the
// session completed failed as well (BOS puts every component on hold for a
// moment when a session sets it up, so on_hold means nothing while the
// session runs).
type Client struct {
	rc  *rest.Client
	cfg Config
	log *slog.Logger
	// named maps a requested session name to the name BOS gave the
	// session, where they differ (see Reboot).
	named sync.Map // string -> string
	// seen holds the requested names of the sessions this client created
	// or read: one of them that BOS no longer knows was deleted, not
	// never created (see Status).
	seen sync.Map // string -> struct{}
}

var _ Orchestrator = (*Client)(nil)

// String names the client by its base URL; it never shows the token
// source's secret (printing the struct field by field would: fmt cannot
// call the methods that hide it on unexported fields).
func (c *Client) String() string { return fmt.Sprintf("bos.Client(%s)", rest.RedactURL(c.cfg.BaseURL)) }

// GoString is String.
func (c *Client) GoString() string { return c.String() }

// LogValue shows the base URL, never a credential.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// New returns a BOS v2 client for the BOS at cfg.BaseURL.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	rc, err := cfg.rest()
	if err != nil {
		return nil, err
	}
	return &Client{rc: rc, cfg: cfg, log: cfg.logger()}, nil
}

// JSON shapes of BOS v2 (OpenAPI schemas V2SessionCreate, V2Session,
// V2ComponentArray).
type (
	sessionCreateJSON struct {
		Name            string `json:"name"`
		Operation       string `json:"operation"`
		TemplateName    string `json:"template_name"`
		Limit           string `json:"limit"`
		Stage           bool   `json:"stage"`
		IncludeDisabled bool   `json:"include_disabled,omitempty"`
	}
	sessionJSON struct {
		Name         string  `json:"name"`
		Operation    string  `json:"operation"`
		TemplateName string  `json:"template_name"`
		Limit        *string `json:"limit"`
		Status       struct {
			Status    string  `json:"status"`
			StartTime string  `json:"start_time"`
			EndTime   *string `json:"end_time"`
			Error     *string `json:"error"`
		} `json:"status"`
	}
	componentJSON struct {
		ID      string `json:"id"`
		Enabled *bool  `json:"enabled"`
		Error   string `json:"error"`
		Session string `json:"session"`
		Status  struct {
			Phase          string `json:"phase"`
			Status         string `json:"status"`
			StatusOverride string `json:"status_override"`
		} `json:"status"`
		LastAction struct {
			Action string `json:"action"`
			Failed bool   `json:"failed"`
		} `json:"last_action"`
	}
)

// effectiveStatus is the component's status as BOS v2 defines it: a
// status_override, when set, overrides the status value (V2ComponentStatus).
func (c componentJSON) effectiveStatus() string {
	if c.Status.StatusOverride != "" {
		return c.Status.StatusOverride
	}
	return c.Status.Status
}

// Component statuses of BOS v2 (bos.common.values.Status).
const (
	statusStable = "stable"
	statusFailed = "failed"
	statusOnHold = "on_hold"
)

// CheckTemplate implements Orchestrator: GET /v2/sessiontemplates/{name}.
func (c *Client) CheckTemplate(ctx context.Context, template string) error {
	return checkTemplate(ctx, c.rc, "/v2/sessiontemplates/", template)
}

// checkTemplate reads a session template under path (v1 and v2 differ
// only there): 200 is nil, 404 ErrTemplateNotFound.
func checkTemplate(ctx context.Context, rc *rest.Client, path, template string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !nameRE.MatchString(template) {
		return fmt.Errorf("%w: %q is not a valid template name", ErrTemplateNotFound, template)
	}
	op := fmt.Sprintf("read session template %q", template)
	resp, err := rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: path + url.PathEscape(template), Safe: true})
	switch {
	case err != nil:
		return callError(op, err)
	case resp.Status == http.StatusOK:
		return nil
	case resp.Status == http.StatusNotFound:
		return statusError(op, resp, ErrTemplateNotFound)
	}
	return unexpected(op, resp)
}

// session reads a session; it returns nil and no error if there is none.
func (c *Client) session(ctx context.Context, name string) (*sessionJSON, error) {
	op := fmt.Sprintf("read session %q", name)
	var s sessionJSON
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: "/v2/sessions/" + url.PathEscape(name), Out: &s, Safe: true})
	switch {
	case err != nil:
		return nil, callError(op, err)
	case resp.Status == http.StatusOK:
		return &s, nil
	case resp.Status == http.StatusNotFound:
		return nil, nil
	}
	return nil, unexpected(op, resp)
}

// same checks that an existing session is the one req asks for.
func same(s *sessionJSON, req Request, limit string) error {
	var diffs []string
	if s.Operation != "reboot" {
		diffs = append(diffs, fmt.Sprintf("operation %q, not \"reboot\"", s.Operation))
	}
	if s.TemplateName != req.Template {
		diffs = append(diffs, fmt.Sprintf("template %q, not %q", s.TemplateName, req.Template))
	}
	if got := deref(s.Limit); s.Limit != nil && got != limit {
		diffs = append(diffs, fmt.Sprintf("limit %q, not %q", abbreviate(got), abbreviate(limit)))
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: session %q has %s", ErrSessionExists, req.Name, strings.Join(diffs, "; "))
}

// same is same, noting the session seen when it is the one asked for.
func (c *Client) same(s *sessionJSON, req Request, limit string) error {
	err := same(s, req, limit)
	if err == nil {
		c.seen.Store(req.Name, struct{}{})
	}
	return err
}

// Reboot implements Orchestrator. It creates the session
// (POST /v2/sessions) unless a session of that name exists: the same
// session is success, another is ErrSessionExists. A create that gets no
// clear answer (network error, timeout, 5xx) is followed by a lookup
// before it is sent again; a 429 is returned at once, as an error that is
// not permanent. BOS answers an unknown template with 400; the
// template is then read to tell ErrTemplateNotFound from other refusals
// (ErrInvalidRequest).
func (c *Client) Reboot(ctx context.Context, req Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkRequest(req); err != nil {
		return err
	}
	limit := req.LimitString()
	s, err := c.session(ctx, c.bosName(req.Name))
	if err != nil {
		return err
	}
	if s != nil {
		return c.same(s, req, limit)
	}
	if _, ok := c.seen.Load(req.Name); ok {
		// Created (or read) before, and deleted since: never again.
		c.log.Warn("session was deleted from BOS; not creating it again", "session", req.Name)
		return nil
	}
	op := fmt.Sprintf("create session %q", req.Name)
	body := sessionCreateJSON{Name: req.Name, Operation: "reboot", TemplateName: req.Template, Limit: limit, IncludeDisabled: c.cfg.IncludeDisabled}
	var last error
	for range creates(c.cfg.Retries) {
		resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodPost, Path: "/v2/sessions", Body: body})
		switch {
		case err == nil && (resp.Status == http.StatusCreated || resp.Status == http.StatusOK):
			c.log.Debug("session created", "session", req.Name, "template", req.Template, "limit", abbreviate(limit))
			// The answer is the session (V2Session): BOS may have named
			// it otherwise. Follow it under BOS's name, never create it
			// again under ours.
			var created sessionJSON
			if jerr := resp.JSON(&created); jerr == nil && created.Name != "" && created.Name != req.Name {
				c.named.Store(req.Name, created.Name)
				c.log.Warn("BOS named the session otherwise; following it under BOS's name", "session", req.Name, "bos_name", created.Name)
			}
			c.seen.Store(req.Name, struct{}{})
			return nil
		case err == nil && resp.Status == http.StatusConflict:
			s, gerr := c.session(ctx, req.Name)
			switch {
			case gerr != nil:
				return gerr
			case s == nil:
				return fmt.Errorf("%w (and it was gone when read back; try again)", statusError(op, resp, nil))
			}
			return c.same(s, req, limit)
		case err == nil && (resp.Status == http.StatusBadRequest || resp.Status == http.StatusNotFound):
			if terr := c.CheckTemplate(ctx, req.Template); errors.Is(terr, ErrTemplateNotFound) {
				return statusError(op, resp, ErrTemplateNotFound)
			}
			return statusError(op, resp, ErrInvalidRequest)
		case err == nil && resp.Status == http.StatusTooManyRequests:
			// Refused unprocessed (RFC 6585): nothing to look up, and
			// sending it again at once is what the server asked us not to
			// do. The error is not permanent: crus tries again later.
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
		// No clear answer: the session may or may not exist. Look.
		c.log.Warn("session create got no clear answer; looking it up before trying again", "session", req.Name, "err", last)
		s, gerr := c.session(ctx, req.Name)
		if gerr != nil {
			return errors.Join(last, gerr)
		}
		if s != nil {
			return c.same(s, req, limit)
		}
	}
	return last
}

// deletedError is the Status.Error of a session that BOS accepted and then
// deleted before its outcome was known.
const deletedError = "the boot session was deleted from the boot orchestrator before it was seen complete: whether its nodes rebooted is not known"

// deletedStatus is the status of such a session: over, failed.
func deletedStatus(name string) Status {
	return Status{Name: name, Phase: PhaseComplete, Nodes: map[string]NodeStatus{}, Error: deletedError}
}

// bosName is the name BOS gave the session requested as name: name
// itself unless the create's answer named it otherwise.
func (c *Client) bosName(name string) string {
	if v, ok := c.named.Load(name); ok {
		return v.(string)
	}
	return name
}

// maxIDsParam is the longest ids query parameter BOS takes: the spec gives
// it the schema V2ComponentId (maxLength 127), and BOS's connexion layer
// validates parameters, so a longer list is refused with 400.
const maxIDsParam = 127

// Status implements Orchestrator: GET /v2/sessions/{name}, then, once the
// session has chosen its nodes, one GET /v2/components for the nodes asked
// about: ?ids=x1,x2,... when the list fits in the 127 characters BOS takes,
// else ?session={name} (the components the session manages, which are the
// only ones whose outcome counts). A 404 for a session this client created
// or read before is a deletion, not ErrSessionNotFound (see Orchestrator);
// the client knows only the sessions of its own process.
func (c *Client) Status(ctx context.Context, name string, nodes []string) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	if !nameRE.MatchString(name) {
		return Status{}, fmt.Errorf("%w: %q is not a valid session name", ErrSessionNotFound, name)
	}
	bn := c.bosName(name)
	s, err := c.session(ctx, bn)
	if err != nil {
		return Status{}, err
	}
	if s == nil {
		if _, ok := c.seen.Load(name); ok {
			// BOS had it: deleted (by an admin, or by BOS's cleanup of
			// complete sessions, cleanup_completed_session_ttl), not
			// unaccepted. Sending it again would reboot its nodes twice.
			return c.deleted(ctx, name, bn, nodes)
		}
		return Status{}, &APIError{Op: fmt.Sprintf("read session %q", name), StatusCode: http.StatusNotFound, Title: "Not Found", Kind: ErrSessionNotFound}
	}
	c.seen.Store(name, struct{}{})
	st := Status{Name: name, Error: deref(s.Status.Error), StartTime: parseTime(s.Status.StartTime), EndTime: parseTime(deref(s.Status.EndTime)), Nodes: map[string]NodeStatus{}}
	switch s.Status.Status {
	case "pending", "":
		// The spec requires neither status nor status.status: a session
		// that shows none has not been seen running yet.
		st.Phase = PhasePending
	case "running":
		st.Phase = PhaseRunning
	case "complete":
		st.Phase = PhaseComplete
	default:
		return Status{}, fmt.Errorf("bos: session %q has status %q, not pending, running or complete", name, s.Status.Status)
	}
	if st.Phase == PhasePending || len(nodes) == 0 || (st.Phase == PhaseComplete && st.Error != "") {
		return st, nil
	}
	if err := c.outcomes(ctx, &st, bn, nodes); err != nil {
		return Status{}, err
	}
	return st, nil
}

// deleted is the status of a session BOS accepted and then deleted: over.
// The nodes' components may still tell their outcomes (BOS deletes a
// complete session after cleanup_completed_session_ttl); if any node has
// none, the session's outcome is not known and it reads as failed.
func (c *Client) deleted(ctx context.Context, name, bn string, nodes []string) (Status, error) {
	st := Status{Name: name, Phase: PhaseComplete, Nodes: map[string]NodeStatus{}}
	if len(nodes) > 0 {
		if err := c.outcomes(ctx, &st, bn, nodes); err != nil {
			return Status{}, err
		}
	}
	if len(st.Nodes) < len(nodes) || len(nodes) == 0 {
		st.Error = deletedError
	}
	c.log.Warn("session was deleted from BOS", "session", name, "outcomes", len(st.Nodes), "nodes", len(nodes))
	return st, nil
}

// outcomes reads the components of nodes into st.Nodes: those that
// belong to the session bn and have an outcome.
func (c *Client) outcomes(ctx context.Context, st *Status, bn string, nodes []string) error {
	comps, err := c.components(ctx, bn, nodes)
	if err != nil {
		return err
	}
	for _, x := range nodes {
		comp, ok := comps[x]
		if !ok || comp.Session != bn {
			continue // not (or no longer) this session's: unknown
		}
		switch comp.effectiveStatus() {
		case statusStable:
			st.Nodes[x] = NodeStatus{Result: ResultSucceeded}
		case statusFailed:
			st.Nodes[x] = NodeStatus{Result: ResultFailed, Reason: orDefault(comp.Error, "BOS marked the node failed (phase "+orDefault(comp.Status.Phase, "none")+")")}
		case statusOnHold:
			if st.Phase == PhaseComplete {
				st.Nodes[x] = NodeStatus{Result: ResultFailed, Reason: orDefault(comp.Error, "left on hold by BOS: its power or configuration state could not be read")}
			}
		}
	}
	return nil
}

// components reads the BOS components of the given xnames, or of the
// session when the xnames do not fit in one ids parameter.
func (c *Client) components(ctx context.Context, session string, nodes []string) (map[string]componentJSON, error) {
	ids := slices.Clone(nodes)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	q := url.Values{"ids": {strings.Join(ids, ",")}}
	op := fmt.Sprintf("read components %s", abbreviate(q.Get("ids")))
	if len(q.Get("ids")) > maxIDsParam {
		q = url.Values{"session": {session}}
		op = fmt.Sprintf("read the components of session %q", session)
	}
	var comps []componentJSON
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: "/v2/components", Query: q, Out: &comps, Safe: true})
	switch {
	case err != nil:
		return nil, callError(op, err)
	case resp.Status != http.StatusOK:
		return nil, unexpected(op, resp)
	}
	out := make(map[string]componentJSON, len(comps))
	for _, comp := range comps {
		out[comp.ID] = comp
	}
	return out, nil
}

// creates is how many times a session create is sent, at most, in one
// call: once plus the configured retries, each after a lookup.
func creates(retries int) int {
	switch {
	case retries == 0:
		retries = rest.DefaultRetries
	case retries < 0:
		retries = 0
	}
	return retries + 1
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func abbreviate(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:77] + "..."
}
