package wlmtest

import (
	"strings"
	"testing"

	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// The suite's longest reason is as long as crus may set, and one crus
// could set: printable ASCII on one line that cleaning leaves as it is
// (the Slurm adapters clean a reason before they pass it on).
func TestLongReasonIsOneCrusCouldSet(t *testing.T) {
	if len(longReason) != wlm.MaxReason {
		t.Errorf("longReason is %d bytes, want wlm.MaxReason (%d)", len(longReason), wlm.MaxReason)
	}
	if !strings.HasPrefix(longReason, "crus "+reasonID+": ") {
		t.Errorf("longReason %q does not begin as crus's reasons do", longReason[:60])
	}
	for i, c := range []byte(longReason) {
		if c < ' ' || c > '~' {
			t.Fatalf("longReason has byte %#x at %d, not printable ASCII", c, i)
		}
	}
	if c := text.Clean(longReason, 0); c != longReason {
		t.Errorf("cleaning changes longReason:\n%q\nto\n%q", longReason, c)
	}
}
