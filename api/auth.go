package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Authenticator decides whether a request may be served. It returns the
// caller's name (for logs) or an error, answered 401.
type Authenticator interface {
	Authenticate(r *http.Request) (caller string, err error)
}

// Gateway trusts every request: the original CRUS ran behind the API
// gateway, which checked the token before the service saw the request. Use
// it only where the gateway (or a network boundary) is the only way in.
type Gateway struct{}

// Authenticate implements Authenticator.
func (Gateway) Authenticate(*http.Request) (string, error) { return "", nil }

// ErrUnauthenticated is matched by the errors of JWT.Authenticate.
var ErrUnauthenticated = errors.New("api: not authenticated")

// JWT verifies the bearer token of each request: a JSON Web Token signed
// with one of the keys of a JWKS document (Keycloak:
// https://HOST/keycloak/realms/REALM/protocol/openid-connect/certs), not
// expired, and from the expected issuer and audience when set.
//
// Keys are fetched on first use and again when a token names a key id not
// seen yet (at most once per MinRefresh), so a key rotation is picked up
// without a restart.
type JWT struct {
	// JWKSURL is where the signing keys are. Required.
	JWKSURL string
	// Issuer, if set, must be the token's "iss".
	Issuer string
	// Audience, if set, must be among the token's "aud" (Keycloak puts
	// the client id there when configured to).
	Audience string
	// HTTPClient fetches the keys; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 1m.
	Leeway time.Duration
	// MinRefresh bounds how often the keys are fetched again, whether
	// the last fetch succeeded or not (until the first succeeds, requests
	// between two fetches are answered 503). Default 10s.
	MinRefresh time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
	// tried is when the last fetch began; fetching is closed when the
	// one in progress ends; fetchErr is the last fetch's error.
	tried    time.Time
	fetching chan struct{}
	fetchErr error
}

// algorithms are the signature algorithms accepted (never "none", never
// HMAC: the keys are public).
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Authenticate implements Authenticator. It returns the token's
// preferred_username, or its subject.
func (j *JWT) Authenticate(r *http.Request) (string, error) {
	// The scheme is case-insensitive (RFC 9110, 11.1): a client sending
	// "bearer" was refused 401 with a valid token.
	scheme, raw, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return "", fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(raw), algorithms)
	if err != nil {
		return "", fmt.Errorf("%w: malformed token: %v", ErrUnauthenticated, err)
	}
	if len(tok.Headers) != 1 {
		return "", fmt.Errorf("%w: the token must have one signature", ErrUnauthenticated)
	}
	key, err := j.key(r.Context(), tok.Headers[0].KeyID)
	if err != nil {
		return "", err
	}
	var claims jwt.Claims
	var extra struct {
		PreferredUsername string `json:"preferred_username"`
	}
	if err := tok.Claims(key, &claims, &extra); err != nil {
		return "", fmt.Errorf("%w: signature not valid: %v", ErrUnauthenticated, err)
	}
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	leeway := j.Leeway
	if leeway == 0 {
		leeway = time.Minute
	}
	if claims.Expiry == nil {
		return "", fmt.Errorf("%w: the token has no expiry", ErrUnauthenticated)
	}
	exp := jwt.Expected{Issuer: j.Issuer, Time: now()}
	if j.Audience != "" {
		exp.AnyAudience = jwt.Audience{j.Audience}
	}
	if err := claims.ValidateWithLeeway(exp, leeway); err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if extra.PreferredUsername != "" {
		return extra.PreferredUsername, nil
	}
	return claims.Subject, nil
}

// key returns the public key with this id, fetching the keys again if it
// is not known.
//
// No lock is held while the keys are fetched: a token naming an unknown
// key (anyone can send one) held the lock for up to the fetch's 30 s,
// and every other request, tokens of known keys included, waited behind
// it. One fetch runs at a time, the requests that need it wait for it
// alone, and a fetch is tried at most once per MinRefresh whether it
// succeeded or not: a failing one was tried again at every request.
func (j *JWT) key(ctx context.Context, kid string) (any, error) {
	minRefresh := j.MinRefresh
	if minRefresh == 0 {
		minRefresh = 10 * time.Second
	}
	j.mu.Lock()
	if k, ok := j.find(kid); ok {
		j.mu.Unlock()
		return k, nil
	}
	wait := j.fetching
	if wait == nil {
		if !j.tried.IsZero() && time.Since(j.tried) < minRefresh {
			err := j.fetchErr
			j.mu.Unlock()
			if j.keys == nil && err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: no key %q in %s", ErrUnauthenticated, kid, j.JWKSURL)
		}
		j.tried = time.Now()
		done := make(chan struct{})
		j.fetching = done
		j.mu.Unlock()
		// The fetch is shared: it does not end with this request.
		keys, err := j.fetch(context.WithoutCancel(ctx))
		j.mu.Lock()
		if err == nil {
			j.keys, j.fetched, j.fetchErr = keys, time.Now(), nil
		} else {
			j.fetchErr = err
		}
		j.fetching = nil
		close(done)
		wait = done
	} else {
		j.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errKeys, ctx.Err())
		}
		j.mu.Lock()
	}
	defer j.mu.Unlock()
	if k, ok := j.find(kid); ok {
		return k, nil
	}
	if j.keys == nil && j.fetchErr != nil {
		return nil, j.fetchErr
	}
	return nil, fmt.Errorf("%w: no key %q in %s", ErrUnauthenticated, kid, j.JWKSURL)
}

// find returns the key with this id among those fetched (any key for no
// id). j.mu is held.
func (j *JWT) find(kid string) (any, bool) {
	if j.keys == nil {
		return nil, false
	}
	for _, k := range j.keys.Keys {
		if (kid == "" || k.KeyID == kid) && k.Use != "enc" && k.Valid() && k.IsPublic() {
			return k.Key, true
		}
	}
	return nil, false
}

// errKeys: the keys could not be fetched (answered 503, not 401).
var errKeys = errors.New("api: cannot fetch the token signing keys")

func (j *JWT) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errKeys, err)
	}
	c := j.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errKeys, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s", errKeys, j.JWKSURL, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errKeys, j.JWKSURL, err)
	}
	set.Keys = slices.DeleteFunc(set.Keys, func(k jose.JSONWebKey) bool { return !k.Valid() || !k.IsPublic() })
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%w: %s holds no public key", errKeys, j.JWKSURL)
	}
	return &set, nil
}

// Check fetches the keys once, for a configuration check.
func (j *JWT) Check(ctx context.Context) error {
	keys, err := j.fetch(ctx)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.keys, j.fetched = keys, time.Now()
	j.mu.Unlock()
	return nil
}
