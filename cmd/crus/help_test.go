package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// capture runs crus with args and returns its exit code, stdout and
// stderr.
func capture(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	outWas, errWas := stdout, stderr
	defer func() { stdout, stderr = outWas, errWas }()
	var out, errOut bytes.Buffer
	stdout, stderr = &out, &errOut
	code := run(args)
	return code, out.String(), errOut.String()
}

// commandNames are the names of every command, with config's check.
func commandNames() []string {
	var names []string
	for n := range commands {
		if n == "config" {
			n = "config check"
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// TestHelpOnEveryCommand: -h and --help on every command print its help
// to stdout and exit 0, as crus -h does; they exited 2 and printed the
// bare flag list to stderr, and nothing said what the command does. The
// help begins with what the command does, then its usage line.
func TestHelpOnEveryCommand(t *testing.T) {
	for _, name := range commandNames() {
		for _, h := range []string{"-h", "--help"} {
			args := append(strings.Fields(name), h)
			code, out, errOut := capture(t, args...)
			if code != exitOK || errOut != "" {
				t.Errorf("crus %s: exit %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, errOut)
			}
			lines := strings.Split(out, "\n")
			summary := helps[name].summary
			if summary == "" || lines[0] != "crus "+name+": "+summary {
				t.Errorf("crus %s: first line %q; want what the command does", strings.Join(args, " "), lines[0])
			}
			if len(lines) < 3 || !strings.HasPrefix(lines[2], "usage: crus "+name) {
				t.Errorf("crus %s: no usage line:\n%s", strings.Join(args, " "), out)
			}
		}
	}
	// After a session's id too, and through crus help COMMAND.
	if code, out, _ := capture(t, "describe", "s1", "-h"); code != exitOK || !strings.HasPrefix(out, "crus describe: ") {
		t.Errorf("crus describe s1 -h: exit %d\n%s", code, out)
	}
	if code, out, _ := capture(t, "help", "plan"); code != exitOK || !strings.HasPrefix(out, "crus plan: ") {
		t.Errorf("crus help plan: exit %d\n%s", code, out)
	}
	// crus -h lists every command with what it does.
	code, out, _ := capture(t, "-h")
	if code != exitOK {
		t.Errorf("crus -h: exit %d", code)
	}
	for _, name := range commandNames() {
		if !strings.Contains(out, name+" ") || !strings.Contains(out, helps[name].summary) {
			t.Errorf("crus -h does not describe %s:\n%s", name, out)
		}
	}
}

// TestHelpNamesAnAliasOnce: -o and -output are one setting, shown once;
// the help listed them as two.
func TestHelpNamesAnAliasOnce(t *testing.T) {
	for _, cmd := range []string{"plan", "list", "describe", "watch"} {
		_, out, _ := capture(t, cmd, "-h")
		if n := strings.Count(out, "-output"); n != 1 || !strings.Contains(out, "  -o, -output string\n") {
			t.Errorf("crus %s -h: -output shown %d times, not with -o:\n%s", cmd, n, out)
		}
	}
	// Both still work.
	for _, o := range []string{"-o", "--output"} {
		if code, _, errOut := capture(t, "list", "--server", "http://127.0.0.1:1", o, "xml"); code != exitUsage || !strings.Contains(errOut, `"xml" is not table`) {
			t.Errorf("crus list %s xml: exit %d, %q", o, code, errOut)
		}
	}
}

// TestFlagMistakeIsUsage: a flag crus does not know is still a usage
// error (exit 2), its message and the usage on stderr, nothing on stdout.
func TestFlagMistakeIsUsage(t *testing.T) {
	for _, args := range [][]string{{"list", "--bogus"}, {"describe", "--bogus", "s1"}, {"demo", "--nodes", "many"}, {"config", "check", "--bogus"}} {
		code, out, errOut := capture(t, args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "usage: crus "+args[0]) {
			t.Errorf("crus %q: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"describe"}, {"config"}, {}} {
		code, out, errOut := capture(t, args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "usage: crus") {
			t.Errorf("crus %q: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, out, errOut)
		}
	}
}

// TestPlanTakesNoServiceFlags: crus plan -h listed the service's own
// flags (-listen, -auth, the JWT settings, the poll interval), which plan
// never used; plan no longer takes them, and still takes the backends'.
// serve and config check still take them all.
func TestPlanTakesNoServiceFlags(t *testing.T) {
	_, out, _ := capture(t, "plan", "-h")
	for _, flag := range []string{"-listen", "-auth", "-jwks-url", "-jwt-issuer", "-jwt-audience", "-public-reads", "-poll-interval"} {
		if strings.Contains(out, "  "+flag+" ") {
			t.Errorf("crus plan -h shows %s", flag)
		}
		// (Backends here, so that a plan that took the flag reads nothing beyond this machine.)
		if code, _, errOut := capture(t, "plan", "--starting-label", "s", "--upgrade-step-size", "4",
			"--hsm-url", "http://127.0.0.1:1", flag+"=x"); code != exitUsage || !strings.Contains(errOut, "not defined") {
			t.Errorf("crus plan %s=x: exit %d, %q; want a usage error", flag, code, errOut)
		}
	}
	for _, flag := range []string{"-starting-label", "-session", "-hsm-url", "-slurm-adapter", "-predict-job-ends", "-load", "-server"} {
		if !strings.Contains(out, "  "+flag+" ") {
			t.Errorf("crus plan -h does not show %s:\n%s", flag, out)
		}
	}
	for _, cmd := range [][]string{{"serve"}, {"config", "check"}} {
		_, out, _ := capture(t, append(cmd, "-h")...)
		for _, flag := range []string{"-listen", "-auth", "-jwks-url", "-public-reads", "-poll-interval", "-hsm-url"} {
			if !strings.Contains(out, "  "+flag+" ") {
				t.Errorf("crus %s -h does not show %s", strings.Join(cmd, " "), flag)
			}
		}
	}
}
