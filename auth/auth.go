// Package auth holds the credentials crus's REST clients (package hsm and
// package bos) present to HPE Cray / OpenCHAMI services: bearer tokens from
// a [TokenSource], and the platform CA that their TLS certificates are
// checked against.
//
// Three token sources ship:
//
//   - [StaticToken]: a token you already have;
//   - [FileToken]: a token in a file that something else keeps fresh
//     (a Kubernetes secret mount, a cron job); it is read again whenever the
//     file changes;
//   - [ClientCredentials]: the OAuth 2.0 client-credentials grant against
//     Keycloak (on Cray systems the "admin-client" of realm "shasta"),
//     refreshed before the token expires, with one request for any number of
//     concurrent callers.
//
// A token never appears in an error message or a log record made by crus,
// and every token source prints, logs and encodes without its secret.
//
// # Redirects
//
// Every HTTP client crus builds, or copies from one given to it, refuses
// redirects ([ErrRedirect], [RefuseRedirects]): credentials go to the
// configured URL and nowhere else.
//
// # TLS
//
// Certificates are always verified; there is no option to turn that off.
// [NewHTTPClient] builds an *http.Client that trusts the certificates of one
// CA bundle file (on Cray systems
// /etc/pki/trust/anchors/platform-ca-certs.crt) instead of the system roots.
package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/text"
)

// ErrUnauthorized is matched by errors of requests the service refused for
// their credentials (HTTP 401 or 403) and of token sources that could not
// get a token because theirs were refused. Retrying does not help.
var ErrUnauthorized = batch.NewPermanent("auth: credentials refused")

// ErrNoToken is matched by errors of token sources that have no token to
// give (an empty static token or token file).
var ErrNoToken = batch.NewPermanent("auth: no token")

// TokenSource gives the bearer token for the next request. Implementations
// are safe for concurrent use and cache what they can: Token is called once
// per HTTP request.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// Invalidator is implemented by token sources that can drop a token the
// service refused (HTTP 401), so that the next Token call fetches a new one.
// The REST clients call Invalidate with the refused token and retry the
// request once.
type Invalidator interface {
	Invalidate(token string)
}

// StaticToken is a fixed bearer token.
type StaticToken string

// Token implements TokenSource.
func (t StaticToken) Token(context.Context) (string, error) {
	if t == "" {
		return "", fmt.Errorf("%w: the static token is empty", ErrNoToken)
	}
	return string(t), nil
}

// String never shows the token.
func (t StaticToken) String() string { return "auth.StaticToken(" + text.Redacted + ")" }

// GoString never shows the token.
func (t StaticToken) GoString() string { return t.String() }

// LogValue never shows the token.
func (t StaticToken) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalText never shows the token: a StaticToken inside a configuration
// that is encoded as JSON or logged as such reads "[REDACTED]".
func (t StaticToken) MarshalText() ([]byte, error) { return []byte(text.Redacted), nil }

// FileToken reads the bearer token from a file, again whenever the file's
// modification time or size changes. Leading and trailing white space is
// ignored. Use it with a pointer: &auth.FileToken{Path: "/run/secrets/token"}.
// Printed, logged or encoded, it shows its Path, never the token.
type FileToken struct {
	Path string

	mu sync.Mutex
	// The token read last, behind a pointer so that even a FileToken
	// printed field by field (fmt's %+v of a copy) shows an address, not
	// the token.
	cache *fileCache
}

type fileCache struct {
	tok   string
	mtime time.Time
	size  int64
}

// String never shows the token.
func (f *FileToken) String() string { return fmt.Sprintf("auth.FileToken{Path: %q}", f.Path) }

// GoString never shows the token.
func (f *FileToken) GoString() string { return f.String() }

// LogValue never shows the token.
func (f *FileToken) LogValue() slog.Value {
	return slog.GroupValue(slog.String("path", f.Path))
}

// Token implements TokenSource.
func (f *FileToken) Token(context.Context) (string, error) {
	fi, err := os.Stat(f.Path)
	if err != nil {
		return "", fmt.Errorf("auth: token file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.cache; c != nil && c.tok != "" && fi.ModTime().Equal(c.mtime) && fi.Size() == c.size {
		return c.tok, nil
	}
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("auth: token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%w: token file %s is empty", ErrNoToken, f.Path)
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("auth: token file %s holds more than one line", f.Path)
	}
	f.cache = &fileCache{tok: tok, mtime: fi.ModTime(), size: fi.Size()}
	return tok, nil
}

// Invalidate implements Invalidator: the file is read again on the next
// call even if it looks unchanged.
func (f *FileToken) Invalidate(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache != nil && f.cache.tok == token {
		f.cache = nil
	}
}

// NewHTTPClient returns an HTTP client that verifies servers' certificates
// against the PEM certificates in caFile alone (not the system roots), with
// TLS 1.2 at least, and never follows a redirect (see ErrRedirect). It is
// the client the REST clients build when given a CA file and no client of
// their own.
func NewHTTPClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("auth: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("auth: CA bundle %s holds no PEM certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return RefuseRedirects(&http.Client{Transport: tr}), nil
}

// Redact replaces every occurrence of token in s (also URL-encoded or
// JSON-escaped) with "[REDACTED]". The REST clients run server-supplied
// text through it before putting it in an error, in case a proxy echoes
// the request's headers. Tokens shorter than 4 bytes are left alone.
func Redact(s, token string) string { return text.Redact(s, token) }

var errEmptyField = errors.New("auth: missing setting")
