package bos

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/crus-go/crus/auth"
	"github.com/crus-go/crus/internal/rest"
)

// Config configures the BOS clients (Client for v2, V1Client for v1). The
// zero value of every field but BaseURL is usable.
type Config struct {
	// BaseURL is the BOS API root, without the version: such as
	// "https://api-gw-service-nmn.local/apis/bos" through the API gateway or
	// "http://cray-bos" inside the cluster. Required.
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
	Tokens auth.TokenSource
	// Tenant, if set, is sent as the Cray-Tenant-Name header (v2 only: BOS
	// v1 refuses tenants).
	Tenant string
	// Logger receives debug records of requests and warnings of retries.
	// Nil means no logging. Tokens are never logged.
	Logger *slog.Logger
	// Timeout bounds each HTTP attempt (the ctx of a call bounds the whole
	// call). Default 30s.
	Timeout time.Duration
	// Retries is how many more times a request that is safe to repeat is
	// sent after a network error, a timeout, a malformed answer or a 429,
	// 500, 502, 503 or 504 answer. Default 3; negative means none. Session
	// creation is never blindly repeated: the client looks the session up
	// first.
	Retries int
	// RetryWait is the first wait between attempts, doubling up to 5s.
	// Default 250ms.
	RetryWait time.Duration
	// MaxResponseBytes bounds the size of an answer. Default 16 MiB.
	MaxResponseBytes int64
	// Concurrency bounds the requests one Status call has in flight.
	// Default 4.
	Concurrency int
	// IncludeDisabled creates sessions that also boot nodes disabled in
	// HSM (BOS v2 include_disabled). Default false, as in BOS; the field
	// is sent only when true, since BOS before 2.0.10 does not know it.
	IncludeDisabled bool
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.BaseURL == "" {
		errs = append(errs, errors.New("bos: Config.BaseURL is required"))
	}
	if strings.HasSuffix(strings.TrimRight(c.BaseURL, "/"), "/v2") || strings.HasSuffix(strings.TrimRight(c.BaseURL, "/"), "/v1") {
		errs = append(errs, fmt.Errorf("bos: Config.BaseURL %q must be the API root, without /v1 or /v2", c.BaseURL))
	}
	if c.Timeout < 0 || c.RetryWait < 0 {
		errs = append(errs, errors.New("bos: Config.Timeout and Config.RetryWait must not be negative"))
	}
	if c.Concurrency < 0 || c.MaxResponseBytes < 0 {
		errs = append(errs, errors.New("bos: Config.Concurrency and MaxResponseBytes must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) rest() (*rest.Client, error) {
	return rest.New(rest.Options{
		Service: "bos", BaseURL: c.BaseURL, HTTPClient: c.HTTPClient, CAFile: c.CAFile,
		Tokens: c.Tokens, Tenant: c.Tenant, Logger: c.Logger, Timeout: c.Timeout,
		Retries: c.Retries, RetryWait: c.RetryWait, MaxBody: c.MaxResponseBytes,
	})
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger.With("service", "bos")
}

// nameRE is BOS's rule for session and session template names.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[-._a-zA-Z0-9]{0,125}[a-zA-Z0-9])?$`)

// maxLimit is the longest limit BOS v2 takes (SessionLimit maxLength).
const maxLimit = 524288

// checkRequest refuses requests BOS would refuse, or would take in a way
// that reboots more than asked: no limit (BOS then boots every node of the
// template), and limit items that are BOS operators or wildcards rather
// than node names or labels.
func checkRequest(req Request) error {
	if !nameRE.MatchString(req.Name) {
		return fmt.Errorf("%w: session name %q: want letters, digits and \".-_\", starting and ending with a letter or digit, at most 127 characters", ErrInvalidRequest, req.Name)
	}
	if !nameRE.MatchString(req.Template) {
		return fmt.Errorf("%w: %q is not a valid template name", ErrTemplateNotFound, req.Template)
	}
	if len(req.Limit) == 0 {
		return fmt.Errorf("%w: a reboot needs a limit: without one BOS reboots every node of template %q", ErrInvalidRequest, req.Template)
	}
	for _, l := range req.Limit {
		switch {
		case l == "":
			return fmt.Errorf("%w: empty limit item", ErrInvalidRequest)
		case l == "*" || strings.EqualFold(l, "all"):
			return fmt.Errorf("%w: limit item %q would select every node", ErrInvalidRequest, l)
		case strings.ContainsAny(l, ", \t\r\n"):
			return fmt.Errorf("%w: limit item %q holds a comma or white space", ErrInvalidRequest, l)
		case l[0] == '&' || l[0] == '!':
			return fmt.Errorf("%w: limit item %q starts with a BOS operator; give node xnames or group labels", ErrInvalidRequest, l)
		}
	}
	if req.Within != "" && !labelRE.MatchString(req.Within) {
		return fmt.Errorf("%w: %q is not a group label to limit the session within", ErrInvalidRequest, req.Within)
	}
	if n := len(req.LimitString()); n > maxLimit {
		return fmt.Errorf("%w: limit of %d characters is longer than BOS takes (%d)", ErrInvalidRequest, n, maxLimit)
	}
	return nil
}

// parseTime reads BOS timestamps: RFC 3339, or ISO 8601 without a zone
// (BOS writes its local time, UTC in its pods). It returns the zero time
// for anything else.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// labelRE is HSM's label syntax (the group of Request.Within).
var labelRE = regexp.MustCompile(`^[-a-z0-9:._]+$`)
