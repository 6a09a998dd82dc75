package hsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/rest"
)

// MemberMode chooses how the client writes group membership.
type MemberMode int

const (
	// MembersAuto uses the bulk PUT /groups/{label}/members of OpenCHAMI's
	// HSM once it has seen the server accept it, and one request per node
	// on servers without it (HPE Cray's HSM answers 404). The first write
	// finds out which server it is.
	MembersAuto MemberMode = iota
	// MembersPerNode always sends one request per node (POST and DELETE
	// /groups/{label}/members), never the bulk PUT.
	MembersPerNode
	// MembersBulk always uses the bulk PUT (OpenCHAMI only).
	MembersBulk
)

// Config configures a Client. The zero value of every field but BaseURL is
// usable.
type Config struct {
	// BaseURL is the HSM v2 API root, such as
	// "https://api-gw-service-nmn.local/apis/smd/hsm/v2" through the API
	// gateway or "http://cray-smd/hsm/v2" inside the cluster. Required.
	BaseURL string
	// HTTPClient sends the requests. Nil means a client with the system
	// roots, or CAFile's certificates if set. Set one or the other.
	// Redirects are never followed (auth.ErrRedirect); HTTPClient itself
	// is not changed.
	HTTPClient *http.Client
	// CAFile is a PEM bundle of the CA that signs the server's certificate
	// (on Cray systems /etc/pki/trust/anchors/platform-ca-certs.crt).
	CAFile string
	// Tokens gives the bearer token of each request; nil sends none.
	// Editing groups needs an admin token on Cray systems.
	Tokens auth.TokenSource
	// Tenant, if set, is sent as the Cray-Tenant-Name header.
	Tenant string
	// Logger receives debug records of requests and warnings of retries.
	// Nil means no logging. Tokens are never logged.
	Logger *slog.Logger
	// Timeout bounds each HTTP attempt (the ctx of a call bounds the whole
	// call). Default 30s.
	Timeout time.Duration
	// Retries is how many more times a request that is safe to repeat is
	// sent after a network error, a timeout, a malformed answer or a 429,
	// 500, 502, 503 or 504 answer. Default 3; negative means none.
	Retries int
	// RetryWait is the first wait between attempts, doubling up to 5s.
	// Default 250ms.
	RetryWait time.Duration
	// MaxResponseBytes bounds the size of an answer. Default 16 MiB.
	MaxResponseBytes int64
	// Concurrency bounds the requests one call has in flight when HSM
	// needs one request per node. Default 8.
	Concurrency int
	// Members chooses how membership is written. Default MembersAuto.
	Members MemberMode
	// QueryBatch is the most xnames sent in one POST /State/Components/Query.
	// Default 1000.
	QueryBatch int
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.BaseURL == "" {
		errs = append(errs, errors.New("hsm: Config.BaseURL is required"))
	}
	if c.Timeout < 0 || c.RetryWait < 0 {
		errs = append(errs, errors.New("hsm: Config.Timeout and Config.RetryWait must not be negative"))
	}
	if c.Concurrency < 0 || c.QueryBatch < 0 || c.MaxResponseBytes < 0 {
		errs = append(errs, errors.New("hsm: Config.Concurrency, QueryBatch and MaxResponseBytes must not be negative"))
	}
	if c.Members < MembersAuto || c.Members > MembersBulk {
		errs = append(errs, fmt.Errorf("hsm: Config.Members %d is not a MemberMode", c.Members))
	}
	return errors.Join(errs...)
}

// Client talks to the Hardware State Manager's REST API. It implements
// GroupStore, GroupCreator and NIDResolver and is safe for concurrent use.
//
// Every method checks labels and xnames before sending anything. Group
// writes read the group first: a missing group fails the call before
// anything changes (ErrGroupNotFound), and members already in (or already
// out of) the group cost no request.
type Client struct {
	rc  *rest.Client
	cfg Config
	log *slog.Logger
	// bulk is what the client knows of the server's bulk member PUT:
	// 0 unknown, 1 offered, 2 not offered.
	bulk atomic.Int32
}

var (
	_ GroupStore   = (*Client)(nil)
	_ GroupCreator = (*Client)(nil)
	_ NIDResolver  = (*Client)(nil)
)

// String names the client by its base URL; it never shows the token
// source's secret (printing the struct field by field would: fmt cannot
// call the methods that hide it on unexported fields).
func (c *Client) String() string { return fmt.Sprintf("hsm.Client(%s)", rest.RedactURL(c.cfg.BaseURL)) }

// GoString is String.
func (c *Client) GoString() string { return c.String() }

// LogValue shows the base URL, never a credential.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// New returns a client for the HSM at cfg.BaseURL.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.QueryBatch == 0 {
		cfg.QueryBatch = 1000
	}
	rc, err := rest.New(rest.Options{
		Service: "hsm", BaseURL: cfg.BaseURL, HTTPClient: cfg.HTTPClient, CAFile: cfg.CAFile,
		Tokens: cfg.Tokens, Tenant: cfg.Tenant, Logger: cfg.Logger, Timeout: cfg.Timeout,
		Retries: cfg.Retries, RetryWait: cfg.RetryWait, MaxBody: cfg.MaxResponseBytes,
	})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{rc: rc, cfg: cfg, log: log.With("service", "hsm")}
	switch cfg.Members {
	case MembersPerNode:
		c.bulk.Store(2)
	case MembersBulk:
		c.bulk.Store(1)
	}
	return c, nil
}

// JSON shapes of the HSM API (Swagger definitions Members.1.0.0,
// MemberID, Group.1.0.0, ComponentArray_PostQuery, ComponentArray_ComponentArray).
type (
	membersJSON struct {
		IDs []string `json:"ids"`
	}
	memberIDJSON struct {
		ID string `json:"id"`
	}
	memberListJSON struct {
		Group string   `json:"group"`
		IDs   []string `json:"ids"`
	}
	groupJSON struct {
		Label       string       `json:"label"`
		Description string       `json:"description,omitempty"`
		Members     *membersJSON `json:"members,omitempty"`
	}
	queryJSON struct {
		ComponentIDs []string `json:"ComponentIDs"`
		NIDOnly      bool     `json:"nidonly,omitempty"`
	}
	componentJSON struct {
		ID   string       `json:"ID"`
		Type string       `json:"Type"`
		NID  *json.Number `json:"NID"`
	}
	componentsJSON struct {
		Components []componentJSON `json:"Components"`
	}
)

func groupPath(label string) string { return "/groups/" + url.PathEscape(label) }

// checkLabel refuses a malformed label. A label HSM cannot hold names no
// group, so the error matches ErrGroupNotFound as well as ErrInvalidLabel.
func checkLabel(label string) error {
	if err := ValidateLabel(label); err != nil {
		return fmt.Errorf("%w: %w", ErrGroupNotFound, err)
	}
	return nil
}

// Members implements GroupStore: GET /groups/{label}/members.
func (c *Client) Members(ctx context.Context, label string) ([]string, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	ids, err := c.members(ctx, label)
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

func (c *Client) members(ctx context.Context, label string) ([]string, error) {
	op := fmt.Sprintf("read the members of group %q", label)
	var out membersJSON
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodGet, Path: groupPath(label) + "/members", Out: &out, Safe: true})
	switch {
	case err != nil:
		return nil, callError(op, err)
	case resp.Status == http.StatusOK:
		return out.IDs, nil
	case resp.Status == http.StatusNotFound:
		return nil, statusError(op, resp, ErrGroupNotFound)
	case resp.Status == http.StatusBadRequest:
		return nil, statusError(op, resp, ErrInvalidLabel)
	}
	return nil, unexpected(op, resp)
}

// split checks xnames, returning the valid ones (deduplicated, in order,
// keyed by normal form) and the per-node errors of the others.
func split(xnames []string) (valid []string, norm map[string]string, errs []error) {
	norm = make(map[string]string, len(xnames))
	for _, x := range xnames {
		if err := ValidateXName(x); err != nil {
			errs = append(errs, &batch.NodeError{Node: x, Err: err})
			continue
		}
		n := NormalizeXName(x)
		if _, dup := norm[n]; dup {
			continue
		}
		norm[n] = x
		valid = append(valid, x)
	}
	return valid, norm, errs
}

// AddMembers implements GroupStore. It reads the group, then adds the
// missing members: with one bulk PUT on servers that offer it, otherwise
// with one POST per node (bounded by Config.Concurrency). A 409 answer is
// "already a member" (success) or an exclusive-group clash; the group is
// read again to tell which.
func (c *Client) AddMembers(ctx context.Context, label string, xnames []string) error {
	if err := checkLabel(label); err != nil {
		return err
	}
	valid, _, errs := split(xnames)
	if len(valid) == 0 {
		return errors.Join(errs...)
	}
	current, err := c.members(ctx, label)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(current))
	for _, m := range current {
		have[NormalizeXName(m)] = true
	}
	var todo []string
	for _, x := range valid {
		if !have[NormalizeXName(x)] {
			todo = append(todo, x)
		}
	}
	if len(todo) == 0 {
		return errors.Join(errs...)
	}
	if done, err := c.putMembers(ctx, label, append(slices.Clone(current), todo...), "add "+describe(todo)); done || err != nil {
		return errors.Join(append(errs, err)...)
	}

	var mu sync.Mutex
	var whole []error
	var conflicted []string
	g := new(errgroup.Group)
	g.SetLimit(c.cfg.Concurrency)
	for _, x := range todo {
		g.Go(func() error {
			op := fmt.Sprintf("add %s to group %q", x, label)
			resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodPost, Path: groupPath(label) + "/members",
				Body: memberIDJSON{ID: x}, Safe: true})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				whole = append(whole, callError(op, err))
			case resp.Status == http.StatusCreated || resp.Status == http.StatusOK:
			case resp.Status == http.StatusConflict:
				conflicted = append(conflicted, x)
			case resp.Status == http.StatusNotFound:
				whole = append(whole, statusError(op, resp, ErrGroupNotFound))
			case resp.Status == http.StatusBadRequest:
				errs = append(errs, &batch.NodeError{Node: x, Err: statusError(op, resp, refusedMember(resp))})
			default:
				whole = append(whole, unexpected(op, resp))
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(conflicted) > 0 && len(whole) == 0 {
		// 409 is "already a member" or an exclusive-group clash: look.
		now, err := c.members(ctx, label)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		in := make(map[string]bool, len(now))
		for _, m := range now {
			in[NormalizeXName(m)] = true
		}
		for _, x := range conflicted {
			if !in[NormalizeXName(x)] {
				errs = append(errs, &batch.NodeError{Node: x, Err: &APIError{
					Op: fmt.Sprintf("add %s to group %q", x, label), StatusCode: http.StatusConflict,
					Title: "Conflict", Detail: "refused with 409 and not a member: it is in another group with the same exclusiveGroup",
					Kind: ErrMemberConflict}})
			}
		}
	}
	return errors.Join(append(errs, whole...)...)
}

// refusedMember gives the sentinel of a member HSM refused with 400.
func refusedMember(resp *rest.Response) error {
	d := strings.ToLower(resp.Problem().Detail)
	switch {
	case strings.Contains(d, "xname") && (strings.Contains(d, "invalid") || strings.Contains(d, "malformed")):
		return ErrInvalidXName
	case strings.Contains(d, "component") || strings.Contains(d, "does not exist") || strings.Contains(d, "not found"):
		return ErrComponentNotFound
	}
	return ErrInvalidRequest
}

// RemoveMembers implements GroupStore. It reads the group, then removes
// the members that are in it: with one bulk PUT on servers that offer it,
// otherwise with one DELETE per node. A malformed xname is reported per
// node (it cannot be a member, and nothing is sent for it).
func (c *Client) RemoveMembers(ctx context.Context, label string, xnames []string) error {
	if err := checkLabel(label); err != nil {
		return err
	}
	valid, norm, errs := split(xnames)
	if len(valid) == 0 {
		return errors.Join(errs...)
	}
	current, err := c.members(ctx, label)
	if err != nil {
		return err
	}
	var todo, keep []string
	for _, m := range current {
		if _, ok := norm[NormalizeXName(m)]; ok {
			todo = append(todo, m)
		} else {
			keep = append(keep, m)
		}
	}
	if len(todo) == 0 {
		return errors.Join(errs...)
	}
	if done, err := c.putMembers(ctx, label, keep, "remove "+describe(todo)); done || err != nil {
		return errors.Join(append(errs, err)...)
	}

	var mu sync.Mutex
	var whole []error
	missing := 0
	g := new(errgroup.Group)
	g.SetLimit(c.cfg.Concurrency)
	for _, m := range todo {
		g.Go(func() error {
			op := fmt.Sprintf("remove %s from group %q", m, label)
			resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodDelete,
				Path: groupPath(label) + "/members/" + url.PathEscape(m), Safe: true})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				whole = append(whole, callError(op, err))
			case resp.Status == http.StatusOK || resp.Status == http.StatusNoContent:
			case resp.Status == http.StatusNotFound:
				missing++ // no such member (gone meanwhile: fine) or no such group
			case resp.Status == http.StatusBadRequest:
				errs = append(errs, &batch.NodeError{Node: norm[NormalizeXName(m)], Err: statusError(op, resp, ErrInvalidXName)})
			default:
				whole = append(whole, unexpected(op, resp))
			}
			return nil
		})
	}
	_ = g.Wait()
	if missing > 0 && len(whole) == 0 {
		// HSM answers 404 for "no such member" and "no such group" alike.
		if _, err := c.members(ctx, label); err != nil {
			whole = append(whole, err)
		}
	}
	return errors.Join(append(errs, whole...)...)
}

// putMembers sets the group's whole member list with OpenCHAMI's bulk PUT,
// if the server offers it. done reports that the list was written; when it
// is false and err is nil, the caller falls back to one request per node
// (the server has no bulk PUT, or refused one of the members, which the
// per-node requests will name).
//
// The PUT replaces the list read just before: a member another client adds
// or removes between the two requests is overwritten. crus owns its
// upgrading group; use MembersPerNode for groups others edit at the same
// time.
func (c *Client) putMembers(ctx context.Context, label string, ids []string, what string) (done bool, err error) {
	state := c.bulk.Load()
	if state == 2 {
		return false, nil
	}
	if ids == nil {
		ids = []string{}
	}
	op := fmt.Sprintf("%s in group %q (bulk PUT)", what, label)
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodPut, Path: groupPath(label) + "/members",
		Body: memberListJSON{Group: label, IDs: ids}, Safe: true})
	switch {
	case err != nil:
		return false, callError(op, err)
	case resp.Status >= 200 && resp.Status < 300:
		if c.bulk.CompareAndSwap(0, 1) {
			c.log.Debug("server offers the bulk member PUT (OpenCHAMI)")
		}
		return true, nil
	case state == 0 && (resp.Status == http.StatusNotFound || resp.Status == http.StatusMethodNotAllowed || resp.Status == http.StatusNotImplemented):
		// The group was there a moment ago: it is the PUT that is missing.
		if c.bulk.CompareAndSwap(0, 2) {
			c.log.Debug("server has no bulk member PUT; writing one member per request", "status", resp.Status)
		}
		return false, nil
	case resp.Status == http.StatusNotFound:
		return false, statusError(op, resp, ErrGroupNotFound)
	case resp.Status == http.StatusBadRequest || resp.Status == http.StatusConflict:
		return false, nil // let the per-node requests say which member
	}
	return false, unexpected(op, resp)
}

func describe(xnames []string) string {
	if len(xnames) == 1 {
		return xnames[0]
	}
	return fmt.Sprintf("%d members", len(xnames))
}

// CreateGroup implements GroupCreator: POST /groups with no members.
func (c *Client) CreateGroup(ctx context.Context, label, description string) error {
	if err := ValidateLabel(label); err != nil {
		return err
	}
	op := fmt.Sprintf("create group %q", label)
	resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodPost, Path: "/groups",
		Body: groupJSON{Label: label, Description: description}})
	switch {
	case err != nil:
		return callError(op, err)
	case resp.Status == http.StatusCreated || resp.Status == http.StatusOK:
		return nil
	case resp.Status == http.StatusConflict:
		return statusError(op, resp, ErrGroupExists)
	case resp.Status == http.StatusBadRequest:
		return statusError(op, resp, ErrInvalidRequest)
	}
	return unexpected(op, resp)
}

// NIDs implements NIDResolver with POST /State/Components/Query, in batches
// of Config.QueryBatch xnames. HSM leaves unknown components out of its
// answer without an error; they are reported as ErrComponentNotFound.
func (c *Client) NIDs(ctx context.Context, xnames []string) (map[string]int, error) {
	valid, _, errs := split(xnames)
	out := make(map[string]int, len(valid))
	if len(valid) == 0 {
		return out, errors.Join(errs...)
	}
	byNorm := make(map[string][]string, len(valid))
	ids := make([]string, 0, len(valid))
	for _, x := range xnames {
		if ValidateXName(x) != nil {
			continue
		}
		n := NormalizeXName(x)
		if _, seen := byNorm[n]; !seen {
			ids = append(ids, n)
		}
		byNorm[n] = append(byNorm[n], x)
	}
	var mu sync.Mutex
	found := make(map[string]componentJSON, len(ids))
	var whole []error
	g := new(errgroup.Group)
	g.SetLimit(c.cfg.Concurrency)
	for chunk := range slices.Chunk(ids, c.cfg.QueryBatch) {
		g.Go(func() error {
			op := fmt.Sprintf("query %d components", len(chunk))
			var res componentsJSON
			resp, err := c.rc.Do(ctx, rest.Request{Method: http.MethodPost, Path: "/State/Components/Query",
				Body: queryJSON{ComponentIDs: chunk, NIDOnly: true}, Out: &res, Safe: true})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				whole = append(whole, callError(op, err))
			case resp.Status == http.StatusOK:
				for _, comp := range res.Components {
					found[NormalizeXName(comp.ID)] = comp
				}
			case resp.Status == http.StatusNotFound: // none of them exists
			default:
				whole = append(whole, unexpected(op, resp))
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(whole) > 0 {
		return out, errors.Join(append(errs, whole...)...)
	}
	for _, n := range ids {
		comp, ok := found[n]
		var nid int64
		var err error
		switch {
		case !ok:
			err = fmt.Errorf("%w: HSM has no State Component %s", ErrComponentNotFound, n)
		case comp.NID == nil || *comp.NID == "":
			err = fmt.Errorf("%w: %s", ErrNoNID, n)
		default:
			if nid, err = comp.NID.Int64(); err != nil || nid < 0 {
				err = fmt.Errorf("%w: %s has NID %q", ErrNoNID, n, *comp.NID)
			}
		}
		for _, x := range byNorm[n] {
			if err != nil {
				errs = append(errs, &batch.NodeError{Node: x, Err: err})
				continue
			}
			out[x] = int(nid)
		}
	}
	return out, errors.Join(errs...)
}
