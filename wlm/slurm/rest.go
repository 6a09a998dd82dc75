package slurm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// ErrAuth is matched by the errors of a REST call that slurmrestd refused
// for its credentials: 401 or 403 (no or wrong user name, no token), or
// the 500 "Unspecified error" (errno -1) that Slurm 22.05 answers for a bad
// or expired token — and, alas, also when slurmctld cannot be reached; the
// message says which it can tell. It is not permanent: a renewed token
// (see TokenSource) can make the next attempt succeed.
var ErrAuth = errors.New("slurm: slurmrestd refused the credentials")

// TokenSource returns the JWT to send as X-SLURM-USER-TOKEN. It is called
// for every request and should cache. After slurmrestd refused a token
// (an answer matching [ErrAuth]), the next call's ctx carries that token
// ([RefusedToken]): a source that caches should not give it again but
// get a new one, as [CLI.TokenSource] does.
type TokenSource func(ctx context.Context) (string, error)

type refusedKey struct{}

// RefusedToken returns the token slurmrestd refused last, as the
// [REST] adapter passes it to its [TokenSource] in ctx, or "".
func RefusedToken(ctx context.Context) string {
	tok, _ := ctx.Value(refusedKey{}).(string)
	return tok
}

// StaticToken returns a TokenSource that always gives tok.
func StaticToken(tok string) TokenSource {
	return func(context.Context) (string, error) { return tok, nil }
}

// RESTConfig configures the slurmrestd adapter (REST).
type RESTConfig struct {
	// URL is the base URL of slurmrestd, such as "http://slurmctl:6820" or
	// "https://proxy.example/slurmrestd" (a path prefix is kept).
	// Required.
	URL string
	// Version is the API version to use, such as "v0.0.38" (Slurm 22.05)
	// or "v0.0.40" (23.11). Empty means the highest known version the
	// server lists in /openapi/v3, read once at the first call.
	Version string
	// User is sent as X-SLURM-USER-NAME. Token gives X-SLURM-USER-TOKEN;
	// nil sends none (slurmrestd then answers 401 unless it trusts the
	// connection).
	User  string
	Token TokenSource
	// CAFile is a PEM file of the certificate authorities to trust for
	// https (slurmrestd itself speaks plain HTTP; sites put a TLS proxy in
	// front). Empty means the system's roots. Ignored if HTTPClient is set.
	CAFile string
	// HTTPClient makes the requests. Nil means a client of its own with
	// CAFile's roots (TLS 1.2 at least). Either way redirects are never
	// followed (an answer 3xx is an error matching auth.ErrRedirect, and
	// the token goes nowhere else); HTTPClient itself is not changed.
	HTTPClient *http.Client
	// Timeout bounds each request. Default 1m.
	Timeout time.Duration
	// Fallback carries out Drain, Resume and Fail when the server cannot
	// update nodes (API v0.0.38 and older: Slurm before 23.02). Nil
	// means those calls fail with wlm.ErrUnsupported on such a server.
	Fallback *CLI
	// MaxConcurrentWrites bounds the node updates in flight (v0.0.39+
	// updates one node per request). Default 8.
	MaxConcurrentWrites int
	// Logger receives a debug record per request (never a token). Nil
	// means no logging.
	Logger *slog.Logger
}

// Validate reports settings that cannot work.
func (c RESTConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("slurm: RESTConfig.URL is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("slurm: RESTConfig.URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		errs = append(errs, fmt.Errorf("slurm: RESTConfig.URL %q must be http:// or https:// with a host", u.Redacted()))
	case u.User != nil:
		errs = append(errs, fmt.Errorf("slurm: RESTConfig.URL %q must not hold user info: set User and Token", u.Redacted()))
	}
	if c.Version != "" && !versionRE.MatchString(c.Version) {
		errs = append(errs, fmt.Errorf("slurm: RESTConfig.Version %q is not an API version such as v0.0.38", c.Version))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("slurm: RESTConfig.Timeout must not be negative, got %s", c.Timeout))
	}
	if c.MaxConcurrentWrites < 0 {
		errs = append(errs, fmt.Errorf("slurm: RESTConfig.MaxConcurrentWrites must not be negative, got %d", c.MaxConcurrentWrites))
	}
	if strings.ContainsAny(c.User, "\r\n\x00") {
		errs = append(errs, fmt.Errorf("slurm: RESTConfig.User %q contains a control character", c.User))
	}
	return errors.Join(errs...)
}

// String shows the settings, never a credential: the token source is only
// said to be set or not.
func (c RESTConfig) String() string {
	tok := "none"
	if c.Token != nil {
		tok = "set"
	}
	return fmt.Sprintf("slurm.RESTConfig{URL: %q, Version: %q, User: %q, Token: %s, CAFile: %q}", redactURL(c.URL), c.Version, c.User, tok, c.CAFile)
}

// GoString is String.
func (c RESTConfig) GoString() string { return c.String() }

// LogValue shows the settings, never a credential.
func (c RESTConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", redactURL(c.URL)), slog.String("version", c.Version),
		slog.String("user", c.User), slog.Bool("token", c.Token != nil), slog.String("ca_file", c.CAFile))
}

// redactURL hides a password a URL may hold.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return text.Clean(s, 200)
	}
	return u.Redacted()
}

var versionRE = regexp.MustCompile(`^v0\.0\.([0-9]{2})$`)

// knownVersions are the API versions whose documents this package reads,
// most preferred first. v0.0.38 is the one tested against a real server
// (Slurm 22.05); the later ones follow their published schemas.
var knownVersions = []string{"v0.0.41", "v0.0.40", "v0.0.39", "v0.0.38"}

// canWrite reports whether the API version has node updates (POST
// /node/{name}): from v0.0.39, Slurm 23.02.
func canWrite(version string) bool {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return false
	}
	n, _ := strconv.Atoi(m[1])
	return n >= 39
}

// REST is the wlm.Manager of a Slurm cluster driven through slurmrestd.
// Reads take one request for all nodes (GET /nodes: slurmrestd has no
// filtered node list); writes are described on RESTConfig.Fallback and in
// the package documentation. It is safe for concurrent use.
type REST struct {
	cfg    RESTConfig
	base   *url.URL
	client *http.Client
	log    *slog.Logger

	mu      sync.Mutex
	version string
	refused string // the token slurmrestd refused last (RefusedToken)
}

var (
	_ wlm.Manager          = (*REST)(nil)
	_ wlm.BootTimeReporter = (*REST)(nil)
	_ wlm.JobEnder         = (*REST)(nil)
)

// NewREST returns the slurmrestd adapter. It makes no request: the API
// version, if not configured, is discovered at the first call.
func NewREST(cfg RESTConfig) (*REST, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.MaxConcurrentWrites == 0 {
		cfg.MaxConcurrentWrites = 8
	}
	base, _ := url.Parse(strings.TrimRight(cfg.URL, "/"))
	r := &REST{cfg: cfg, base: base, client: cfg.HTTPClient, log: cfg.Logger, version: cfg.Version}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.client != nil {
		// Copied, not changed: the caller's client may follow redirects
		// for its own requests.
		r.client = auth.RefuseRedirects(r.client)
	} else {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("slurm: RESTConfig.CAFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("slurm: RESTConfig.CAFile %s holds no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		r.client = auth.RefuseRedirects(&http.Client{Transport: tr})
	}
	return r, nil
}

// String shows the adapter's configuration, never a credential.
func (r *REST) String() string { return "slurm.REST(" + r.cfg.String() + ")" }

// GoString is String.
func (r *REST) GoString() string { return r.String() }

// LogValue shows the adapter's configuration, never a credential.
func (r *REST) LogValue() slog.Value { return r.cfg.LogValue() }

// ReportsBootTime implements wlm.BootTimeReporter.
func (r *REST) ReportsBootTime() bool { return true }

// maxBody bounds the body of a 200 answer. GET /slurm/v0.0.38/nodes of a
// real slurmrestd (Slurm 22.05) answers 1,221 bytes a node, measured with
// 1,000 and 10,000 nodes defined (12,210,286 bytes): 122 MB for 100,000
// (a slurmctld of 100,000 nodes does not run on a test machine). Real
// nodes' longer OS, feature and reason strings add some: 256 MiB leaves
// twice that. Answers are decoded as they stream in, one record at a
// time, so memory does not grow with this bound.
const maxBody = 256 << 20

// errTooLarge is the error of reading an answer past maxBody.
var errTooLarge = fmt.Errorf("answer larger than %d bytes", maxBody)

// capReader reads at most n bytes of r, then fails with errTooLarge.
type capReader struct {
	r    io.Reader
	n    int64
	read int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		// One byte more tells a body of exactly n bytes from a longer one.
		var one [1]byte
		if k, _ := c.r.Read(one[:]); k > 0 {
			return 0, errTooLarge
		}
		return c.r.Read(p)
	}
	if left := c.n - c.read; int64(len(p)) > left {
		p = p[:left]
	}
	k, err := c.r.Read(p)
	c.read += int64(k)
	return k, err
}

// httpError is a response other than 200.
type httpError struct {
	method, path string
	status       int
	errs         []apiError
	body         string
}

func (e *httpError) Error() string {
	detail := e.body
	if len(e.errs) > 0 {
		parts := make([]string, len(e.errs))
		for i, x := range e.errs {
			parts[i] = x.String()
		}
		detail = strings.Join(parts, "; ")
	}
	return fmt.Sprintf("slurm: slurmrestd %s %s: %d %s: %s", e.method, e.path, e.status, http.StatusText(e.status), detail)
}

// do makes one request and passes the body of a 200 answer to read (nil:
// the body is not read) as a stream of at most maxBody bytes, within the
// request's timeout. Other answers are *httpError values, wrapped with
// ErrAuth when they are about credentials; transport failures and
// cancellation are returned as such. No error, read's included, shows
// the token.
func (r *REST) do(ctx context.Context, method, path string, body any, read func(io.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	u := *r.base
	u.Path += path
	req, err := http.NewRequestWithContext(cctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.cfg.User != "" {
		req.Header.Set("X-SLURM-USER-NAME", r.cfg.User)
	}
	var token string
	if r.cfg.Token != nil {
		if token, err = r.token(ctx); err != nil {
			return err
		}
		req.Header.Set("X-SLURM-USER-TOKEN", token)
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelDebug, "slurmrestd request", slog.String("method", method), slog.String("path", path), slog.Any("err", scrub(err, token)))
		if ctx.Err() != nil {
			return fmt.Errorf("slurm: slurmrestd %s %s: %w", method, path, ctx.Err())
		}
		if re, ok := auth.AsRedirect(err); ok {
			return fmt.Errorf("slurm: slurmrestd %s %s: %w", method, path, re)
		}
		return fmt.Errorf("slurm: slurmrestd %s %s: %w", method, path, scrub(err, token))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		r.log.LogAttrs(ctx, slog.LevelDebug, "slurmrestd request", slog.String("method", method), slog.String("path", path),
			slog.Int("status", resp.StatusCode), slog.Int("bytes", len(b)), slog.Duration("took", time.Since(start)))
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("slurm: slurmrestd %s %s: %w", method, path, ctx.Err())
		}
		err = r.refusal(method, path, resp.StatusCode, b, token)
		if token != "" && errors.Is(err, ErrAuth) {
			r.mu.Lock()
			r.refused = token
			r.mu.Unlock()
		}
		return err
	}
	cr := &capReader{r: resp.Body, n: maxBody}
	if read != nil {
		err = read(cr)
	} else {
		// Read a little, so that the connection can serve the next
		// request; the answer of a write says nothing crus needs.
		_, _ = io.Copy(io.Discard, io.LimitReader(cr, maxErrorBody))
	}
	r.log.LogAttrs(ctx, slog.LevelDebug, "slurmrestd request", slog.String("method", method), slog.String("path", path),
		slog.Int("status", resp.StatusCode), slog.Int64("bytes", cr.read), slog.Duration("took", time.Since(start)))
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("slurm: slurmrestd %s %s: %w", method, path, ctx.Err())
	case err != nil && cctx.Err() != nil:
		return fmt.Errorf("slurm: slurmrestd %s %s: no whole answer within %s: %w", method, path, r.cfg.Timeout, cctx.Err())
	case err != nil:
		return fmt.Errorf("slurm: slurmrestd %s %s: %w", method, path, scrub(err, token))
	}
	return nil
}

// token asks the TokenSource for the token to send, telling it the one
// slurmrestd refused last, and refuses one that cannot go in a header.
func (r *REST) token(ctx context.Context) (string, error) {
	r.mu.Lock()
	refused := r.refused
	r.mu.Unlock()
	if refused != "" {
		ctx = context.WithValue(ctx, refusedKey{}, refused)
	}
	token, err := r.cfg.Token(ctx)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: getting a token: %w", ErrAuth, err)
	case !text.Sendable(token):
		return "", fmt.Errorf("%w: the token source gave a token that cannot be sent in a header (a JWT is printable ASCII without spaces)", ErrAuth)
	}
	return token, nil
}

// refusal turns an answer other than 200 into an error: an *httpError
// holding slurmrestd's errors (or the body's text), redacted, cleaned and
// capped, wrapped with ErrAuth when it is about credentials.
func (r *REST) refusal(method, path string, status int, b []byte, token string) error {
	he := &httpError{method: method, path: path, status: status}
	var env struct {
		Errors []apiError `json:"errors"`
	}
	if json.Unmarshal(b, &env) == nil {
		he.errs = scrubErrors(env.Errors, token)
	}
	if len(he.errs) == 0 {
		he.body = text.Scrub(string(b), text.MaxDetail, token)
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w (user %q, token %s): %w", ErrAuth, r.cfg.User, describeToken(token, r.cfg.Token != nil), he)
	case status == http.StatusInternalServerError && unspecified(he.errs):
		return fmt.Errorf("%w, or slurmctld is unreachable: slurmrestd answers 500 \"Unspecified error\" for both (user %q, token %s): %w",
			ErrAuth, r.cfg.User, describeToken(token, r.cfg.Token != nil), he)
	}
	return he
}

// maxErrorBody bounds the body of an answer other than 200 that is read:
// slurmrestd's error lists are a few hundred bytes.
const maxErrorBody = 64 << 10

// maxAPIErrors bounds the entries of an "errors" list kept for a message.
const maxAPIErrors = 8

// scrubErrors keeps the first maxAPIErrors entries, their text redacted,
// cleaned and capped, and notes how many were left out.
func scrubErrors(errs []apiError, token string) []apiError {
	n := len(errs)
	if n > maxAPIErrors {
		errs = errs[:maxAPIErrors]
	}
	out := make([]apiError, len(errs), len(errs)+1)
	for i, e := range errs {
		e.Error = text.Scrub(e.Error, 512, token)
		e.Description = text.Scrub(e.Description, 512, token)
		e.Source = text.Scrub(e.Source, 128, token)
		out[i] = e
	}
	if n > maxAPIErrors {
		out = append(out, apiError{Error: fmt.Sprintf("and %d more errors", n-maxAPIErrors)})
	}
	return out
}

// scrub hides the token in an error's text, keeping the error matchable
// (errors.Is and errors.As see the original).
func scrub(err error, token string) error {
	if err == nil || len(token) < text.MinSecret || !strings.Contains(err.Error(), token) {
		return err
	}
	return redacted{err, token}
}

type redacted struct {
	err   error
	token string
}

func (e redacted) Error() string { return text.Redact(e.err.Error(), e.token) }
func (e redacted) Unwrap() error { return e.err }

// unspecified reports whether the errors are only Slurm's "Unspecified
// error" (errno -1), as 22.05 answers for a refused token.
func unspecified(errs []apiError) bool {
	if len(errs) == 0 {
		return false
	}
	for _, e := range errs {
		if e.number() != -1 {
			return false
		}
	}
	return true
}

// describeToken says what can be told of a JWT without its key: whether it
// is one, and when it expires. It never reveals the token.
func describeToken(tok string, configured bool) string {
	switch {
	case !configured:
		return "not configured"
	case tok == "":
		return "empty"
	}
	claims, err := jwtClaims(tok)
	if err != nil {
		return "malformed (" + err.Error() + ")"
	}
	if claims.Exp == 0 {
		return "without an expiry"
	}
	exp := time.Unix(claims.Exp, 0).UTC()
	if time.Now().After(exp) {
		return "expired at " + exp.Format(time.RFC3339)
	}
	return "valid until " + exp.Format(time.RFC3339) + " unless signed with another key"
}

// nodes reads the named nodes (among every node: GET /slurm/vX/nodes, as
// slurmrestd has no filtered list). Only those are kept while the answer
// is decoded.
func (r *REST) nodes(ctx context.Context, names []string) (map[string]wlm.Node, error) {
	v, err := r.Version(ctx)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]wlm.Node, len(names))
	path := "/slurm/" + v + "/nodes"
	err = r.do(ctx, http.MethodGet, path, nil, func(rd io.Reader) error {
		list, errs, err := decodeNodes(rd, func(name string) bool { return want[name] })
		if err != nil {
			return err
		}
		if len(errs) > 0 {
			return fmt.Errorf("the answer reports errors: %v", errs)
		}
		for _, n := range list {
			out[n.Name] = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Nodes implements wlm.Manager with one GET /slurm/vX/nodes.
func (r *REST) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	if len(names) == 0 {
		return nil, nil
	}
	valid, errs := splitValid(names)
	if len(valid) == 0 {
		return nil, errors.Join(errs...)
	}
	all, err := r.nodes(ctx, valid)
	if err != nil {
		return nil, err
	}
	out := make([]wlm.Node, 0, len(names))
	var unknown []string
	for _, n := range names {
		if node, ok := all[n]; ok {
			out = append(out, node)
		} else if ValidateName(n) == nil {
			unknown = append(unknown, n)
		}
	}
	return out, errors.Join(append(errs, notFound(unknown)...)...)
}

// JobEnds implements wlm.JobEnder with GET /nodes (to tell unknown names)
// and GET /jobs.
func (r *REST) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	ends := map[string]time.Time{}
	if len(names) == 0 {
		return ends, nil
	}
	valid, errs := splitValid(names)
	if len(valid) == 0 {
		return ends, errors.Join(errs...)
	}
	all, err := r.nodes(ctx, valid)
	if err != nil {
		return nil, err
	}
	asked := map[string]bool{}
	var unknown []string
	for _, n := range valid {
		if _, ok := all[n]; ok {
			asked[n] = true
		} else {
			unknown = append(unknown, n)
		}
	}
	v, err := r.Version(ctx)
	if err != nil {
		return nil, err
	}
	var jobs []queuedJob
	err = r.do(ctx, http.MethodGet, "/slurm/"+v+"/jobs", nil, func(rd io.Reader) error {
		got, jerrs, err := decodeJobs(rd, func(name []byte) bool { return asked[string(name)] })
		if err != nil {
			return err
		}
		if len(jerrs) > 0 {
			return fmt.Errorf("the answer reports errors: %v", jerrs)
		}
		jobs = got
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.End.IsZero() {
			continue
		}
		for _, n := range j.Nodes {
			if asked[n] && j.End.After(ends[n]) {
				ends[n] = j.End
			}
		}
	}
	return ends, errors.Join(append(errs, notFound(unknown)...)...)
}

// Drain implements wlm.Manager: through Fallback on v0.0.38 and older,
// else GET /nodes and one POST /node/{name} {"state":["DRAIN"],"reason"}
// per known node. The reason is cleaned and bounded as CLI.Drain's.
func (r *REST) Drain(ctx context.Context, names []string, reason string) error {
	reason, err := cleanReason("drain", reason, names)
	if err != nil {
		return err
	}
	return r.write(ctx, names, "drain", updateNode{State: []string{"DRAIN"}, Reason: reason},
		func(m *CLI) error { return m.Drain(ctx, names, reason) }, func(wlm.Node) bool { return true })
}

// Fail implements wlm.Manager like Drain, with state FAIL.
func (r *REST) Fail(ctx context.Context, names []string, reason string) error {
	reason, err := cleanReason("fail", reason, names)
	if err != nil {
		return err
	}
	return r.write(ctx, names, "fail", updateNode{State: []string{"FAIL"}, Reason: reason},
		func(m *CLI) error { return m.Fail(ctx, names, reason) }, func(wlm.Node) bool { return true })
}

// Resume implements wlm.Manager: through Fallback on v0.0.38 and older,
// else GET /nodes and one POST {"state":["RESUME"]} per node that is
// drained, failed or down (Slurm refuses RESUME for a node in service).
func (r *REST) Resume(ctx context.Context, names []string) error {
	return r.write(ctx, names, "resume", updateNode{State: []string{"RESUME"}},
		func(m *CLI) error { return m.Resume(ctx, names) }, needsResume)
}

// updateNode is the body of POST /slurm/vX/node/{name} (v0.0.39+).
type updateNode struct {
	State  []string `json:"state"`
	Reason string   `json:"reason,omitempty"`
}

func (r *REST) write(ctx context.Context, names []string, op string, body updateNode, fallback func(*CLI) error, applies func(wlm.Node) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := r.Version(ctx)
	if err != nil {
		return err
	}
	if !canWrite(v) {
		if r.cfg.Fallback == nil {
			return fmt.Errorf("%w: slurmrestd %s cannot update nodes (Slurm 23.02, API v0.0.39, added it) and RESTConfig.Fallback is nil", wlm.ErrUnsupported, v)
		}
		return fallback(r.cfg.Fallback)
	}
	valid, errs := splitValid(names)
	if len(valid) == 0 {
		return errors.Join(errs...)
	}
	all, err := r.nodes(ctx, valid)
	if err != nil {
		return err
	}
	var todo, unknown []string
	for _, n := range valid {
		node, ok := all[n]
		switch {
		case !ok:
			unknown = append(unknown, n)
		case applies(node) && !slices.Contains(todo, n):
			todo = append(todo, n)
		}
	}
	errs = append(errs, notFound(unknown)...)
	var mu sync.Mutex
	var whole []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.MaxConcurrentWrites)
	for _, n := range todo {
		g.Go(func() error {
			err := r.do(gctx, http.MethodPost, "/slurm/"+v+"/node/"+url.PathEscape(n), body, nil)
			if err == nil {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			var he *httpError
			if errors.As(err, &he) && !errors.Is(err, ErrAuth) && len(he.errs) > 0 {
				// Slurm looked at the request and refused it for this node.
				errs = append(errs, &batch.NodeError{Node: n, Err: fmt.Errorf("slurm refused to %s it: %w", op, err)})
				return nil
			}
			whole = append(whole, err)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(whole) > 0 {
		// Network, auth or server trouble: the call as a whole failed and
		// is worth retrying (every update is idempotent).
		return errors.Join(append(errs, fmt.Errorf("slurm: %d of %d node updates failed: %w", len(whole), len(todo), whole[0]))...)
	}
	return errors.Join(errs...)
}

// Version returns the API version in use: RESTConfig.Version, or the
// highest known version listed by the server's /openapi/v3 (read once; a
// failure is tried again at the next call).
func (r *REST) Version(ctx context.Context) (string, error) {
	r.mu.Lock()
	v := r.version
	r.mu.Unlock()
	if v != "" {
		return v, nil
	}
	var offered []string
	err := r.do(ctx, http.MethodGet, "/openapi/v3", nil, func(rd io.Reader) (err error) {
		offered, err = offeredVersions(rd)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("slurm: discovering the API version: %w", err)
	}
	for _, k := range knownVersions {
		if slices.Contains(offered, k) {
			r.mu.Lock()
			r.version = k
			r.mu.Unlock()
			r.log.LogAttrs(ctx, slog.LevelDebug, "slurmrestd API version chosen", slog.String("version", k), slog.Any("offered", offered))
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: slurmrestd offers node endpoints in %v; this adapter reads %v (set RESTConfig.Version to try another)",
		wlm.ErrUnsupported, offered, knownVersions)
}

var nodesPathRE = regexp.MustCompile(`^/slurm/(v0\.0\.[0-9]+)/nodes/?$`)

// offeredVersions lists the API versions whose /slurm/vX/nodes the
// OpenAPI document describes, reading it as a stream and keeping only the
// path names.
func offeredVersions(rd io.Reader) ([]string, error) {
	dec := json.NewDecoder(rd)
	var out []string
	err := walkObject(dec, func(key string) error {
		if key != "paths" {
			return dec.Decode(&skipValue{})
		}
		return walkObject(dec, func(p string) error {
			if m := nodesPathRE.FindStringSubmatch(p); m != nil && !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
			return dec.Decode(&skipValue{})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("slurm: reading /openapi/v3: %w", err)
	}
	slices.Sort(out)
	return out, nil
}
