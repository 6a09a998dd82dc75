// Package text cleans and bounds text that comes from outside crus (a
// backend's error message, a workload manager's reason, an HTTP body)
// before it is logged, stored in a session record or passed on to another
// backend. It is the one place where such text is made safe: credentials a
// server may echo are redacted ([Redact]), every control character (tabs
// and newlines included, which forge log lines and which Slurm refuses in a
// reason) becomes a space, runs of spaces collapse, invalid UTF-8 is
// replaced, and the result is capped ([Clean]). [Scrub] does all of it.
package text

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Caps used across crus.
const (
	// MaxReason bounds a reason crus builds from backend text, stored in a
	// node record and passed to the workload manager: the whole reason,
	// any "crus <id>: " prefix included. The Slurm adapters refuse longer
	// reasons (slurm.MaxReason, which a test keeps at least this large).
	MaxReason = 1024
	// MaxDetail bounds a backend's error detail kept in an error or a log.
	MaxDetail = 2048
)

// Clean returns s on one line, without control characters, with runs of
// white space collapsed to one space, trimmed, and at most max bytes long
// (max <= 0: no cap). A cut text ends with "…" followed by how many bytes
// were cut, so a reader knows it is not whole.
func Clean(s string, max int) string {
	if isClean(s) && (max <= 0 || len(s) <= max) {
		return s
	}
	if max < 0 {
		max = 0
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError && size == 1 ||
			!unicode.IsPrint(r) && r != utf8.RuneError {
			if r == utf8.RuneError && size == 1 {
				// Invalid byte: keep a visible marker, like a decoder would.
				if space && b.Len() > 0 {
					b.WriteByte(' ')
				}
				space = false
				b.WriteRune(utf8.RuneError)
				continue
			}
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return Cap(b.String(), max)
}

// Cap returns s cut to at most max bytes on a rune boundary, marked with
// "…" and the number of bytes cut when it was cut. max <= 0 means no cap.
func Cap(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return s
	}
	cut := len(s)
	suffix := func(n int) string { return "… (" + strconv.Itoa(n) + " bytes cut)" }
	keep := max - len(suffix(cut))
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return strings.TrimRight(s[:keep], " ") + suffix(len(s)-keep)
}

// isClean reports whether s needs no change at all (the common case: a
// short, printable message).
func isClean(s string) bool {
	prevSpace := true // a leading space needs trimming
	for _, r := range s {
		switch {
		case r == ' ':
			if prevSpace {
				return false
			}
			prevSpace = true
			continue
		case r == utf8.RuneError, unicode.IsControl(r), unicode.IsSpace(r), !unicode.IsPrint(r):
			return false
		}
		prevSpace = false
	}
	return !prevSpace || s == ""
}

// Redacted is what Redact puts in place of a secret.
const Redacted = "[REDACTED]"

// MinSecret is the length below which Redact leaves a "secret" alone: so
// short a string protects nothing, and replacing every occurrence of it
// would mangle the text.
const MinSecret = 4

// Redact returns s with every occurrence of each secret replaced by
// Redacted, also in the two forms a server that echoes a request would
// use: URL-encoded (a form body, a query) and escaped as in a JSON string.
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) < MinSecret {
			continue
		}
		for _, form := range [...]string{sec, url.QueryEscape(sec), jsonEscaped(sec)} {
			if strings.Contains(s, form) {
				s = strings.ReplaceAll(s, form, Redacted)
			}
		}
	}
	return s
}

// jsonEscaped returns sec as it appears inside a JSON string.
func jsonEscaped(sec string) string {
	b, err := json.Marshal(sec)
	if err != nil || len(b) < 2 {
		return sec
	}
	return string(b[1 : len(b)-1])
}

// Scrub makes text from a backend safe to log, store or show: the secrets
// redacted first (so that a cut can never leave half of one), then cleaned
// and capped to max bytes as Clean does.
func Scrub(s string, max int, secrets ...string) string {
	return Clean(Redact(s, secrets...), max)
}

// Sendable reports whether tok can be sent as a bearer token in a header:
// printable ASCII without spaces (RFC 6750's b64token is narrower still).
// A token with a newline or a space would fail every request inside
// net/http, before any server could refuse it.
func Sendable(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return false
		}
	}
	return true
}
