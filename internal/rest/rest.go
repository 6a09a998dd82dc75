// Package rest is the HTTP plumbing shared by crus's HSM and BOS clients:
// base URL and TLS, bearer tokens, the tenant header, per-attempt timeouts,
// retries of requests that are safe to repeat, size-limited bodies, and
// RFC 7807 problem details. It knows nothing about HSM or BOS; those
// packages map statuses and problems onto their own errors.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/internal/text"
)

// Defaults of Options.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultRetries   = 3
	DefaultRetryWait = 250 * time.Millisecond
	DefaultMaxBody   = 16 << 20
	maxRetryWait     = 5 * time.Second
)

// TenantHeader is the header that scopes a request to a tenant.
const TenantHeader = "Cray-Tenant-Name"

// Options configure a Client. The zero value of every field but BaseURL is
// usable. The Client never follows a redirect: a 3xx with a Location is an
// error matching auth.ErrRedirect, not retried, and nothing is sent to the
// Location (HTTPClient, if given, is copied and not changed).
type Options struct {
	Service    string // "hsm" or "bos": prefixes errors and logs
	BaseURL    string
	HTTPClient *http.Client
	CAFile     string
	Tokens     auth.TokenSource
	Tenant     string
	Logger     *slog.Logger
	Timeout    time.Duration // per attempt
	Retries    int           // further attempts of safe requests; <0 means none
	RetryWait  time.Duration // first backoff interval
	MaxBody    int64         // largest response body read
	UserAgent  string
}

// Client sends requests to one service.
type Client struct {
	o    Options
	base *url.URL
	hc   *http.Client
	log  *slog.Logger
}

// New checks the options and returns a Client.
func New(o Options) (*Client, error) {
	if o.BaseURL == "" {
		return nil, fmt.Errorf("%s: BaseURL is required", o.Service)
	}
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil {
		// url's errors quote the URL whole, password included.
		return nil, fmt.Errorf("%s: BaseURL is not a URL", o.Service)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: BaseURL %q must be an absolute http or https URL", o.Service, u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%s: BaseURL %q must not hold a query, fragment or user info", o.Service, u.Redacted())
	}
	if strings.ContainsAny(o.Tenant, "\r\n") {
		return nil, fmt.Errorf("%s: Tenant %q is not a header value", o.Service, o.Tenant)
	}
	hc := o.HTTPClient
	switch {
	case hc != nil && o.CAFile != "":
		return nil, fmt.Errorf("%s: set HTTPClient or CAFile, not both (configure the client's TLS yourself)", o.Service)
	case hc == nil && o.CAFile != "":
		if hc, err = auth.NewHTTPClient(o.CAFile); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Service, err)
		}
	}
	// Never follow a redirect (see auth.ErrRedirect); a caller's client is
	// copied, not changed.
	hc = auth.RefuseRedirects(hc)
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryWait <= 0 {
		o.RetryWait = DefaultRetryWait
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.UserAgent == "" {
		o.UserAgent = "crus"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{o: o, base: u, hc: hc, log: log.With("service", o.Service)}, nil
}

// String names the client by its service and base URL, never a
// credential.
func (c *Client) String() string { return c.o.Service + " client of " + c.base.Redacted() }

// GoString is String.
func (c *Client) GoString() string { return c.String() }

// RedactURL returns s with a password in its user info hidden.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return text.Clean(s, 200)
	}
	return u.Redacted()
}

// Request is one API call.
type Request struct {
	Method string
	// Path is the escaped path below the base URL, starting with "/".
	Path  string
	Query url.Values
	// Body, if not nil, is sent as JSON.
	Body any
	// Out, if not nil, receives the JSON body of a 2xx response.
	Out any
	// Safe marks a request that may be sent again after a network error, a
	// timeout, a 5xx or 429 answer or a malformed 2xx body: it reads, or
	// its effect does not depend on how often it is applied.
	Safe bool
}

// Response is the answer to a request: any HTTP status, with its body.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	token  string // the token sent, to be scrubbed from server text
}

// Do sends the request, retrying as Request.Safe allows, and returns the
// final answer whatever its status. It returns an error when no complete
// answer came (network error, timeout, oversized or, for a 2xx with Out,
// malformed body) or when ctx ended; errors.Is(err, context.Canceled)
// holds for the latter. Errors never contain the token.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = json.Marshal(req.Body); err != nil {
			return nil, fmt.Errorf("%s: encoding request body: %w", c.o.Service, err)
		}
	}
	target := c.base.String() + req.Path
	if len(req.Query) > 0 {
		target += "?" + req.Query.Encode()
	}

	exp := backoff.NewExponentialBackOff()
	exp.InitialInterval = c.o.RetryWait
	exp.MaxInterval = maxRetryWait
	exp.MaxElapsedTime = 0
	exp.Reset()
	var sched backoff.BackOff = backoff.WithMaxRetries(exp, uint64(c.o.Retries))
	if !req.Safe {
		sched = &backoff.StopBackOff{}
	}
	reauthed := false
	for attempt := 1; ; attempt++ {
		resp, err, retry := c.attempt(ctx, req, target, body)
		if err == nil && resp.Status == http.StatusUnauthorized && !reauthed {
			// The token may have expired in flight: drop it and try once
			// more. The request was refused, so this is safe for any method.
			if inv, ok := c.o.Tokens.(auth.Invalidator); ok {
				inv.Invalidate(resp.token)
				reauthed = true
				c.log.Debug("token refused; fetching a new one", "method", req.Method, "path", req.Path)
				continue
			}
		}
		if !retry || ctx.Err() != nil {
			if ctx.Err() != nil && err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", c.o.Service, req.Method, req.Path, errors.Join(ctx.Err(), err))
			}
			return resp, err
		}
		wait := sched.NextBackOff()
		if wait == backoff.Stop {
			return resp, err
		}
		why := "error"
		if err == nil {
			why = fmt.Sprintf("status %d", resp.Status)
			if ra := retryAfter(resp, time.Now()); ra > wait {
				wait = min(ra, maxRetryWait)
			}
		}
		c.log.Warn("request failed; retrying", "method", req.Method, "path", req.Path, "attempt", attempt, "why", why, "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if err == nil {
				err = fmt.Errorf("%s: %s %s: answered %d", c.o.Service, req.Method, req.Path, resp.Status)
			}
			return nil, fmt.Errorf("%s: %s %s: %w", c.o.Service, req.Method, req.Path, errors.Join(ctx.Err(), err))
		case <-t.C:
		}
	}
}

// attempt sends the request once. retry tells whether a failure is worth
// another attempt if the request is safe.
func (c *Client) attempt(ctx context.Context, req Request, target string, body []byte) (*Response, error, bool) {
	actx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(actx, req.Method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", c.o.Service, req.Method, req.Path, err), false
	}
	hreq.Header.Set("Accept", "application/json, application/problem+json")
	hreq.Header.Set("User-Agent", c.o.UserAgent)
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if c.o.Tenant != "" {
		hreq.Header.Set(TenantHeader, c.o.Tenant)
	}
	var token string
	if c.o.Tokens != nil {
		if token, err = c.o.Tokens.Token(ctx); err != nil {
			return nil, fmt.Errorf("%s: %s %s: getting a token: %w", c.o.Service, req.Method, req.Path, err), false
		}
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		if re, ok := auth.AsRedirect(err); ok {
			// Not retried: the same request would be redirected again.
			return nil, fmt.Errorf("%s: %s %s: %w", c.o.Service, req.Method, req.Path, re), false
		}
		if ctx.Err() == nil && actx.Err() != nil {
			err = fmt.Errorf("no answer within %s: %w", c.o.Timeout, err)
		}
		return nil, fmt.Errorf("%s: %s %s: %w", c.o.Service, req.Method, req.Path, c.scrub(err, token)), true
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, c.o.MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: reading the answer (status %d): %w", c.o.Service, req.Method, req.Path, hresp.StatusCode, c.scrub(err, token)), true
	}
	if int64(len(data)) > c.o.MaxBody {
		return nil, fmt.Errorf("%s: %s %s: answer larger than %d bytes", c.o.Service, req.Method, req.Path, c.o.MaxBody), false
	}
	resp := &Response{Status: hresp.StatusCode, Header: hresp.Header, Body: data, token: token}
	c.log.Debug("request", "method", req.Method, "path", req.Path, "status", resp.Status, "took", time.Since(start).Round(time.Millisecond))
	switch {
	case resp.Status >= 200 && resp.Status < 300 && req.Out != nil:
		if err := resp.decode(req.Out); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", c.o.Service, req.Method, req.Path, err), true
		}
		return resp, nil, false
	case resp.Status == http.StatusTooManyRequests, resp.Status == http.StatusBadGateway,
		resp.Status == http.StatusServiceUnavailable, resp.Status == http.StatusGatewayTimeout,
		resp.Status == http.StatusInternalServerError:
		return resp, nil, true
	}
	return resp, nil, false
}

func (c *Client) scrub(err error, token string) error {
	if token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return redacted{err, token}
}

// redacted hides a token in an error's text but keeps it matchable.
type redacted struct {
	err   error
	token string
}

func (r redacted) Error() string { return auth.Redact(r.err.Error(), r.token) }
func (r redacted) Unwrap() error { return r.err }

// retryAfter is the wait a Retry-After header asks for: delay-seconds or
// an HTTP-date (RFC 9110, section 10.2.3), the latter counted from now;
// 0 if there is none, it is malformed, or the date has passed.
func retryAfter(r *Response, now time.Time) time.Duration {
	v := strings.TrimSpace(r.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryWait/time.Second)+1)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// decode reads the JSON body into v, refusing bodies that are not JSON.
func (r *Response) decode(v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fmt.Errorf("answered %d with content type %q, not JSON: %s", r.Status, ct, r.snippet())
		}
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("malformed JSON in the answer (status %d, %d bytes): %w", r.Status, len(r.Body), err)
	}
	return nil
}

// JSON decodes the body into v (for answers whose status the caller
// decides to read).
func (r *Response) JSON(v any) error { return r.decode(v) }

// Problem holds RFC 7807 problem details.
type Problem struct {
	Type, Title, Detail, Instance string
	Status                        int
}

// Problem returns the problem details of an error answer. Bodies that are
// not problem+json (a JSON string, as older BOS versions send; an HTML page
// from a gateway) give their text, cleaned and cut, as Detail. The token
// sent is never part of the result.
func (r *Response) Problem() Problem {
	p := Problem{Status: r.Status}
	var raw struct {
		Type     string          `json:"type"`
		Title    string          `json:"title"`
		Detail   json.RawMessage `json:"detail"`
		Instance string          `json:"instance"`
		Status   json.Number     `json:"status"`
	}
	var s string
	switch {
	case json.Unmarshal(r.Body, &raw) == nil:
		p.Type, p.Title, p.Instance = raw.Type, raw.Title, raw.Instance
		if err := json.Unmarshal(raw.Detail, &s); err == nil {
			p.Detail = s
		} else if len(raw.Detail) > 0 {
			p.Detail = string(raw.Detail)
		}
	case json.Unmarshal(r.Body, &s) == nil:
		p.Detail = s
	default:
		p.Detail = r.snippet()
	}
	p.Type, p.Title, p.Detail = clean(p.Type, r.token), clean(p.Title, r.token), clean(p.Detail, r.token)
	if p.Title == "" {
		p.Title = http.StatusText(r.Status)
	}
	return p
}

func (r *Response) snippet() string { return clean(string(r.Body), r.token) }

// clean makes server text safe to show: no token, no control characters,
// white space collapsed, at most text.MaxDetail bytes.
func clean(s, token string) string { return text.Scrub(s, text.MaxDetail, token) }

// String is the problem as one line: "404 Not Found: No such group: blue".
func (p Problem) String() string {
	s := fmt.Sprintf("%d %s", p.Status, p.Title)
	if p.Detail != "" && p.Detail != p.Title {
		s += ": " + p.Detail
	}
	return s
}

// ErrorText formats the error of a call for the packages' APIError types:
// "<kind>: <op>: <status and problem details>" for an answer,
// "<kind or service>: <op>: <cause>" when no usable answer came.
func ErrorText(service string, kind error, op string, status int, title, detail string, cause error) string {
	var b strings.Builder
	if kind != nil {
		b.WriteString(kind.Error())
	} else {
		b.WriteString(service)
	}
	b.WriteString(": ")
	b.WriteString(op)
	switch {
	case status != 0:
		b.WriteString(": ")
		b.WriteString(Problem{Status: status, Title: title, Detail: detail}.String())
	case cause != nil:
		b.WriteString(": ")
		b.WriteString(cause.Error())
	}
	return b.String()
}

// ErrorUnwrap returns the cause and the sentinel of an APIError, whichever
// are set, so that errors.Is matches either.
func ErrorUnwrap(cause, kind error) []error {
	var out []error
	if cause != nil {
		out = append(out, cause)
	}
	if kind != nil {
		out = append(out, kind)
	}
	return out
}

// AnswerKind is the sentinel of an error answer: auth.ErrUnauthorized for
// 401 and 403, whatever the caller's kind says, else kind.
func AnswerKind(status int, kind error) error {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return auth.ErrUnauthorized
	}
	return kind
}

// Refused reports whether an unexpected answer status is a refusal of the
// request itself (a 4xx other than 408 and 429), which retrying cannot
// change, rather than a failure of the service.
func Refused(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout
}
