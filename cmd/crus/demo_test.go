package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDemoRefusesBadValues: a count or speed out of range is a usage
// error naming the flag and its range, and nothing starts (the demo would
// fail to listen on this address, exit 1). Such values were once replaced
// by the defaults while the banner showed them, and a NaN, infinite or
// huge speed froze the simulated clock at the first boot.
func TestDemoRefusesBadValues(t *testing.T) {
	was := stderr
	defer func() { stderr = was }()
	const nowhere = "127.0.0.1:-1"
	for _, tc := range []struct{ flag, value, want string }{
		{"--nodes", "-5", "--nodes -5: want 1 to 160000"},
		{"--nodes", "0", "--nodes 0: want 1 to 160000"},
		{"--nodes", "160001", "--nodes 160001: want 1 to 160000"},
		{"--step", "0", "--step 0: want at least 1"},
		{"--step", "-3", "--step -3: want at least 1"},
		{"--speed", "0", "--speed 0: want 0.001 to 1000000"},
		{"--speed", "-2", "--speed -2: want 0.001 to 1000000"},
		{"--speed", "NaN", "--speed NaN: want 0.001 to 1000000"},
		{"--speed", "+Inf", "--speed +Inf: want 0.001 to 1000000"},
		{"--speed", "1e300", "--speed 1e+300: want 0.001 to 1000000"},
		{"--speed", "1e-9", "--speed 1e-09: want 0.001 to 1000000"},
		{"--pause", "-1s", "--pause -1s: want 0 or more"},
		{"--keep", "0", "--keep 0: want 1 or more, or -1"},
		{"--keep", "-2", "--keep -2: want 1 or more, or -1"},
	} {
		var out bytes.Buffer
		stderr = &out
		code := run([]string{"demo", "--listen", nowhere, tc.flag, tc.value})
		if code != exitUsage || !strings.Contains(out.String(), tc.want) {
			t.Errorf("demo %s %s: exit %d, stderr %q; want %d and %q", tc.flag, tc.value, code, out.String(), exitUsage, tc.want)
		}
	}
	// The bounds are taken: the demo gets as far as listening.
	var out bytes.Buffer
	stderr = &out
	if code := run([]string{"demo", "--listen", nowhere, "--nodes", "1", "--step", "1", "--speed", "1e6", "--pause", "0s", "--keep", "-1"}); code != exitFail {
		t.Errorf("demo at its bounds: exit %d, stderr %q; want %d (the address refused)", code, out.String(), exitFail)
	}
}
