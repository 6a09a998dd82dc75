package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/crus-go/crus/internal/text"
)

// maxTokenAnswer bounds the body of a token endpoint's answer. A Keycloak
// access token with many roles is a few kilobytes.
const maxTokenAnswer = 1 << 20

// KeycloakTokenURL returns the token endpoint of a Keycloak realm, such as
// KeycloakTokenURL("https://api-gw-service-nmn.local/keycloak", "shasta").
func KeycloakTokenURL(keycloakBase, realm string) string {
	return strings.TrimRight(keycloakBase, "/") + "/realms/" + url.PathEscape(realm) + "/protocol/openid-connect/token"
}

// ClientCredentials gets bearer tokens with the OAuth 2.0 client-credentials
// grant (RFC 6749 §4.4), as Keycloak's confidential clients do:
//
//	POST TokenURL  grant_type=client_credentials&client_id=...&client_secret=...
//
// It caches the token and fetches a new one RefreshBefore its expiry
// ("expires_in"), so requests do not fail on a token that runs out in
// flight. Concurrent callers that need a new token share one request. If a
// refresh fails while the cached token is still valid, the cached token is
// used. Use it with a pointer; it is safe for concurrent use.
type ClientCredentials struct {
	// TokenURL is the token endpoint (see KeycloakTokenURL). Required.
	TokenURL string
	// ClientID is the client's id, "admin-client" on Cray systems. Required.
	ClientID string
	// ClientSecret is the client's secret. Alternatively ClientSecretFile
	// names a file holding it (read at each token request).
	ClientSecret     string
	ClientSecretFile string
	// HTTPClient sends the token requests. Nil means a client that trusts
	// CAFile if set, the system roots otherwise. Either way redirects are
	// never followed (see ErrRedirect); HTTPClient itself is not changed.
	HTTPClient *http.Client
	CAFile     string
	// RefreshBefore is how long before expiry a new token is fetched. Zero
	// means a tenth of the token's lifetime, at least 5s and at most 1m.
	RefreshBefore time.Duration
	// Timeout bounds one token request. Zero means 30s.
	Timeout time.Duration
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time

	mu        sync.Mutex
	tok       string
	refreshAt time.Time
	expiry    time.Time
	hc        *http.Client
	flight    singleflight.Group
}

// tokenResponse is the part of RFC 6749 §5.1 (and §5.2 errors) we read.
type tokenResponse struct {
	AccessToken      string  `json:"access_token"`
	TokenType        string  `json:"token_type"`
	ExpiresIn        float64 `json:"expires_in"`
	Error            string  `json:"error"`
	ErrorDescription string  `json:"error_description"`
}

func (c *ClientCredentials) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// String never shows the secret or a token.
func (c *ClientCredentials) String() string {
	return fmt.Sprintf("auth.ClientCredentials{TokenURL: %q, ClientID: %q, ClientSecret: %s}", redactURL(c.TokenURL), c.ClientID, text.Redacted)
}

// GoString never shows the secret or a token.
func (c *ClientCredentials) GoString() string { return c.String() }

// LogValue never shows the secret or a token.
func (c *ClientCredentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token_url", redactURL(c.TokenURL)), slog.String("client_id", c.ClientID),
		slog.String("client_secret", text.Redacted))
}

// MarshalJSON never shows the secret or a token.
func (c *ClientCredentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"token_url": redactURL(c.TokenURL), "client_id": c.ClientID, "client_secret": text.Redacted})
}

// Token implements TokenSource.
func (c *ClientCredentials) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	now := c.now()
	if c.tok != "" && now.Before(c.refreshAt) {
		tok := c.tok
		c.mu.Unlock()
		return tok, nil
	}
	c.mu.Unlock()

	// One fetch for all callers; it runs on its own context so that one
	// caller giving up does not fail the others.
	ch := c.flight.DoChan("token", func() (any, error) {
		c.mu.Lock()
		if c.tok != "" && c.now().Before(c.refreshAt) { // refreshed meanwhile
			tok := c.tok
			c.mu.Unlock()
			return tok, nil
		}
		c.mu.Unlock()
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		tok, lifetime, err := c.fetch(fctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			if now := c.now(); c.tok != "" && now.Before(c.expiry) {
				// Still valid: use it, and try again a little later.
				c.refreshAt = now.Add(min(5*time.Second, c.expiry.Sub(now)))
				return c.tok, nil
			}
			return "", err
		}
		early := c.RefreshBefore
		if early <= 0 {
			early = min(max(lifetime/10, 5*time.Second), time.Minute)
		}
		early = min(early, lifetime/2)
		got := c.now()
		c.tok, c.expiry, c.refreshAt = tok, got.Add(lifetime), got.Add(lifetime-early)
		return tok, nil
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// Invalidate implements Invalidator: if token is the cached token, the next
// call fetches a new one.
func (c *ClientCredentials) Invalidate(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok == token {
		c.tok = ""
	}
}

func (c *ClientCredentials) client() (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.HTTPClient != nil {
		return RefuseRedirects(c.HTTPClient), nil
	}
	if c.hc == nil {
		if c.CAFile == "" {
			c.hc = RefuseRedirects(nil)
		} else {
			hc, err := NewHTTPClient(c.CAFile)
			if err != nil {
				return nil, err
			}
			c.hc = hc
		}
	}
	return c.hc, nil
}

func (c *ClientCredentials) secret() (string, error) {
	if c.ClientSecretFile == "" {
		return c.ClientSecret, nil
	}
	data, err := os.ReadFile(c.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("auth: client secret file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// fetch asks the token endpoint for a token. Errors name the endpoint and
// the server's error code and description (cleaned and capped), never the
// secret or a token.
func (c *ClientCredentials) fetch(ctx context.Context) (string, time.Duration, error) {
	endpoint := redactURL(c.TokenURL)
	if c.TokenURL == "" || c.ClientID == "" {
		return "", 0, fmt.Errorf("%w: ClientCredentials needs TokenURL and ClientID", errEmptyField)
	}
	secret, err := c.secret()
	if err != nil {
		return "", 0, err
	}
	if secret == "" {
		return "", 0, fmt.Errorf("%w: ClientCredentials needs ClientSecret or ClientSecretFile", errEmptyField)
	}
	hc, err := c.client()
	if err != nil {
		return "", 0, err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {secret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("auth: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if re, ok := AsRedirect(err); ok {
			return "", 0, fmt.Errorf("auth: token endpoint %s: %w", endpoint, re)
		}
		return "", 0, fmt.Errorf("auth: token request to %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswer+1))
	if err != nil {
		return "", 0, fmt.Errorf("auth: reading token response from %s: %w", endpoint, err)
	}
	if len(body) > maxTokenAnswer {
		return "", 0, fmt.Errorf("auth: token endpoint %s answered %d with more than %d bytes", endpoint, resp.StatusCode, maxTokenAnswer)
	}
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK {
		why := http.StatusText(resp.StatusCode)
		if jsonErr == nil && tr.Error != "" {
			why = text.Scrub(tr.Error+": "+tr.ErrorDescription, text.MaxDetail, secret)
		}
		err := fmt.Errorf("auth: token endpoint %s answered %d: %s", endpoint, resp.StatusCode, why)
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return "", 0, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return "", 0, err
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "" && ct != "application/json" {
		return "", 0, fmt.Errorf("auth: token endpoint %s answered %s, not JSON", endpoint, text.Clean(ct, 100))
	}
	if jsonErr != nil {
		return "", 0, fmt.Errorf("auth: token endpoint %s sent malformed JSON: %w", endpoint, jsonErr)
	}
	if tr.AccessToken == "" {
		return "", 0, fmt.Errorf("auth: token endpoint %s sent no access_token", endpoint)
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		return "", 0, fmt.Errorf("auth: token endpoint %s sent a %q token, want a bearer token", endpoint, text.Clean(tr.TokenType, 100))
	}
	if !text.Sendable(tr.AccessToken) {
		// It would fail every request in the HTTP client, before any
		// server could refuse it, and stay cached until it expires.
		return "", 0, fmt.Errorf("auth: token endpoint %s sent an access_token that cannot be sent in a header (a bearer token is printable ASCII without spaces)", endpoint)
	}
	var lifetime time.Duration
	switch {
	case tr.ExpiresIn <= 0:
		lifetime = time.Minute // no expiry given: do not keep it long
	case tr.ExpiresIn >= MaxTokenLifetime.Seconds():
		lifetime = MaxTokenLifetime
	default:
		lifetime = time.Duration(tr.ExpiresIn * float64(time.Second))
	}
	return tr.AccessToken, lifetime, nil
}

// MaxTokenLifetime bounds how long a fetched token is kept, whatever
// expires_in says: a token that an identity provider revoked, or one
// given a lifetime of years by mistake, is fetched again at least daily.
const MaxTokenLifetime = 24 * time.Hour

// redactURL hides a password in a URL's user info.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return text.Clean(s, 200)
	}
	return u.Redacted()
}
