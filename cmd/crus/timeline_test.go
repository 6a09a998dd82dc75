package main

import (
	"strings"
	"testing"
)

// TestTimelineRefusesNarrowWidth: a width of 0 or less was silently
// replaced by 960, and one under the labels' 110 pixels drew a plot of
// negative width; both are usage errors, before the server (which does
// not exist here) is asked.
func TestTimelineRefusesNarrowWidth(t *testing.T) {
	for _, w := range []string{"-5", "0", "100", "199"} {
		code, _, errOut := capture(t, "timeline", "s1", "--server", "http://127.0.0.1:1", "--width", w)
		if want := "--width " + w + ": want at least 200"; code != exitUsage || !strings.Contains(errOut, want) {
			t.Errorf("timeline --width %s: exit %d, %q; want %d and %q", w, code, errOut, exitUsage, want)
		}
	}
	// Wide enough: it gets as far as the server.
	if code, _, errOut := capture(t, "timeline", "s1", "--server", "http://127.0.0.1:1", "--width", "200"); code != exitFail {
		t.Errorf("timeline --width 200: exit %d, %q; want %d (no server)", code, errOut, exitFail)
	}
}
