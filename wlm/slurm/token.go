package slurm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crus-go/crus/internal/text"
)

// jwtPayload holds the claims of a Slurm JWT that crus looks at.
type jwtPayload struct {
	Exp int64  `json:"exp"`
	Iat int64  `json:"iat"`
	Sun string `json:"sun"` // Slurm user name
}

// jwtClaims decodes the claims of a JWT without checking its signature
// (only slurmctld has the key): enough to say when it expires.
func jwtClaims(tok string) (jwtPayload, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return jwtPayload{}, errors.New("not three dot-separated parts")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return jwtPayload{}, fmt.Errorf("payload: %w", err)
	}
	var p jwtPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return jwtPayload{}, fmt.Errorf("payload: %w", err)
	}
	return p, nil
}

// TokenSource returns a TokenSource that gets JWTs for user from
// `scontrol token username=<user> lifespan=<lifespan>` (which needs
// root or SlurmUser, and AuthAltTypes=auth/jwt) and renews them when a
// third of their life is left, or at once when slurmrestd refused the
// one it holds ([RefusedToken]: slurmctld restarted with another key,
// say). A lifespan of zero means one hour. Output other than one
// SLURM_JWT= line holding a token is an error, and nothing is kept.
func (c *CLI) TokenSource(user string, lifespan time.Duration) TokenSource {
	if lifespan <= 0 {
		lifespan = time.Hour
	}
	var mu sync.Mutex
	var tok string
	var renew time.Time
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if tok != "" && time.Now().Before(renew) && tok != RefusedToken(ctx) {
			return tok, nil
		}
		if err := ValidateName(user); err != nil {
			return "", fmt.Errorf("slurm: token user: %w", err)
		}
		secs := max(int(lifespan/time.Second), 1)
		out, _, err := c.runCmd(ctx, c.cfg.Scontrol, "token", "username="+user, "lifespan="+strconv.Itoa(secs))
		if err != nil {
			return "", err
		}
		t, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "SLURM_JWT=")
		switch {
		case !ok || t == "":
			return "", errors.New("slurm: scontrol token printed no SLURM_JWT=")
		case !text.Sendable(t):
			return "", errors.New("slurm: scontrol token printed more than one SLURM_JWT= token, or one that cannot be sent in a header")
		}
		tok, renew = t, time.Now().Add(lifespan*2/3)
		return tok, nil
	}
}
