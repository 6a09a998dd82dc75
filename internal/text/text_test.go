package text

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain reason", "plain reason"},
		{"  lead and trail  ", "lead and trail"},
		{"Traceback:\n  File \"x\"\tline 3\r\n", "Traceback: File \"x\" line 3"},
		{"a\x00b\x1bc", "a b c"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{"zero\u200bwidth", "zero width"},
		{"ünïcödé ok", "ünïcödé ok"},
	} {
		assert.Equal(t, tc.want, Clean(tc.in, 0), "Clean(%q)", tc.in)
	}
}

func TestCleanCaps(t *testing.T) {
	long := strings.Repeat("é", 100_000) // 200 KB
	got := Clean(long, MaxReason)
	assert.LessOrEqual(t, len(got), MaxReason)
	assert.True(t, utf8.ValidString(got))
	assert.Contains(t, got, "bytes cut)")
	assert.Equal(t, "short", Clean("short", 10))
}

func TestCap(t *testing.T) {
	assert.Equal(t, "abc", Cap("abc", 3))
	got := Cap(strings.Repeat("x", 100), 40)
	assert.LessOrEqual(t, len(got), 40)
	assert.True(t, strings.HasPrefix(got, "xxx"))
	assert.LessOrEqual(t, len(Cap(strings.Repeat("x", 100), 5)), 40) // too small for the mark: mark only
}

func FuzzClean(f *testing.F) {
	f.Add("line one\nline two\t", 16)
	f.Add("\xff\xfe", 3)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max % 4096
		out := Clean(s, max)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		if strings.ContainsAny(out, "\n\r\t\x00") {
			t.Fatalf("control characters left: %q", out)
		}
		if max >= 40 && len(out) > max {
			t.Fatalf("len %d > max %d", len(out), max)
		}
		if Clean(out, max) != out && (max <= 0 || max >= 40) {
			t.Fatalf("not idempotent: %q -> %q", out, Clean(out, max))
		}
	})
}

func TestRedact(t *testing.T) {
	const tok = "eyJhbGciOi.payload+/=secret\"x"
	for _, in := range []string{
		"token " + tok + " refused",
		"form client_secret=" + url.QueryEscape(tok) + "&x=1",
		`{"echo":"` + jsonEscaped(tok) + `"}`,
	} {
		got := Redact(in, tok)
		assert.Contains(t, got, Redacted, "Redact(%q)", in)
		assert.NotContains(t, got, "payload", "Redact(%q)", in)
	}
	assert.Equal(t, "abc abc", Redact("abc abc", "abc"), "a secret shorter than MinSecret is left alone")
	assert.Equal(t, "no secret here", Redact("no secret here", "", "sekrit-value"))
}

func TestScrubRedactsBeforeCutting(t *testing.T) {
	tok := strings.Repeat("S", 600)
	// The token straddles the cut: redacting after cutting would leave
	// its first part.
	in := strings.Repeat("a", 200) + "\n" + tok + "\n" + strings.Repeat("b", 2000)
	got := Scrub(in, 300, tok)
	assert.NotContains(t, got, "SSSS")
	assert.LessOrEqual(t, len(got), 300)
	assert.NotContains(t, got, "\n")
}

func TestSendable(t *testing.T) {
	for tok, want := range map[string]bool{
		"":                         true,
		"eyJhbGciOi.eyJleHAi.c2ln": true,
		"abc~+/=-_.":               true,
		"a b":                      false,
		"a\nX-Evil: 1":             false,
		"a\tb":                     false,
		"a\x7fb":                   false,
		"é":                        false,
	} {
		if got := Sendable(tok); got != want {
			t.Errorf("Sendable(%q) = %v, want %v", tok, got, want)
		}
	}
}
