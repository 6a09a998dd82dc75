package text

import (
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
