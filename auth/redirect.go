package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/crus-go/crus/internal/text"
)

// ErrRedirect is matched by the error of a request that a service answered
// with a redirect. The HTTP clients of crus (HSM, BOS, Keycloak,
// slurmrestd) never follow one: none of these services redirects in normal
// operation, and following would send the request's credentials (a bearer
// token, X-SLURM-USER-TOKEN, a client secret) to wherever the answer
// points, perhaps over plain HTTP, and believe what comes back. It is not
// permanent: the same request may be answered properly once the service
// (or the gateway in front of it) is fixed.
var ErrRedirect = errors.New("auth: redirects are refused")

// RedirectError is a redirect answer that was refused. It matches
// ErrRedirect.
type RedirectError struct {
	StatusCode int    // the answer's status, such as 302
	Location   string // where it pointed: scheme, host and path only, cleaned and capped
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("answered %d %s, a redirect to %s: redirects are refused (credentials go only to the configured URL)",
		e.StatusCode, http.StatusText(e.StatusCode), e.Location)
}

// Is makes errors.Is(err, ErrRedirect) hold.
func (e *RedirectError) Is(target error) bool { return target == ErrRedirect }

// RefuseRedirects returns a client that sends requests as hc does but
// never follows a redirect: the answer becomes a *RedirectError (wrapped
// in the *url.Error that http.Client.Do returns) and nothing is sent to
// its Location. hc itself is not changed (the result is a shallow copy
// sharing its Transport and Jar); nil means a client like
// http.DefaultClient.
func RefuseRedirects(hc *http.Client) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = refuseRedirect
	return &c
}

func refuseRedirect(req *http.Request, _ []*http.Request) error {
	e := &RedirectError{Location: text.Clean(where(req.URL), 200)}
	if req.Response != nil {
		e.StatusCode = req.Response.StatusCode
	}
	return e
}

// where is a URL without user info, query or fragment, which may hold
// what the service echoed.
func where(u *url.URL) string {
	if u == nil {
		return "(nowhere)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// AsRedirect returns the *RedirectError in err's chain, if any. Callers use
// it to report a refused redirect without the *url.Error around it (which
// repeats the request's URL).
func AsRedirect(err error) (*RedirectError, bool) {
	var re *RedirectError
	ok := errors.As(err, &re)
	return re, ok
}
