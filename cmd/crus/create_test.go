package main

import (
	"bytes"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
)

// TestCreateHasAFlagForEveryField: `crus create` has a flag for every
// field of a session's spec (its JSON name, with dashes), so that an
// option added to the library can be given from the command line; the
// scheduled strategy's options once could not.
func TestCreateHasAFlagForEveryField(t *testing.T) {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	specFlags(fs)
	var walk func(typ reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous && name == "" {
				walk(f.Type)
				continue
			}
			if name == "" || name == "-" {
				continue
			}
			if fs.Lookup(strings.ReplaceAll(name, "_", "-")) == nil {
				t.Errorf("no --%s for the spec's %s", strings.ReplaceAll(name, "_", "-"), name)
			}
		}
	}
	walk(reflect.TypeFor[crus.Spec]())
}

func TestCreateFlagsMakeTheSpec(t *testing.T) {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	specOf := specFlags(fs)
	err := fs.Parse([]string{
		"--starting-label", "s", "--upgrading-label", "u", "--failed-label", "f", "--upgrade-step-size", "8",
		"--upgrade-template-id", "tmpl", "--strategy", "scheduled", "--reboot-time", "12m", "--booking-slack", "1h",
		"--retry-failed", "--canary", "1, 4", "--maintenance-windows", `[{"days":["sat"],"start":"22:00","end":"06:00"}]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := specOf()
	if err != nil {
		t.Fatal(err)
	}
	want := crus.Spec{
		StartingLabel: "s", UpgradingLabel: "u", FailedLabel: "f", StepSize: 8, TemplateID: "tmpl",
		WorkloadManagerType: "slurm", RetryFailed: true,
		Rollout: crus.Rollout{
			Strategy: crus.StrategyScheduled, RebootTime: crus.Duration(12 * time.Minute), BookingSlack: crus.Duration(time.Hour),
			Canary: []int{1, 4}, MaintenanceWindows: []crus.Window{{Days: []string{"sat"}, Start: "22:00", End: "06:00"}},
		},
	}
	if diff := cmp.Diff(want, spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}

	fs = flag.NewFlagSet("create", flag.ContinueOnError)
	specOf = specFlags(fs)
	if err := fs.Parse([]string{"--canary", "1,x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := specOf(); err == nil || !strings.Contains(err.Error(), `--canary: "x" is not a number`) {
		t.Errorf("bad canary: %v", err)
	}
}

// TestStepOf: the strategies that number their batches as they take them
// show the batch, not "7/7".
func TestStepOf(t *testing.T) {
	for _, c := range []struct {
		strategy    crus.Strategy
		step, steps int
		want        string
	}{
		{crus.StrategyClassic, 3, 10, "3/10"},
		{crus.StrategyRolling, 7, 7, "batch 7"},
		{crus.StrategyScheduled, 7, 7, "batch 7"},
	} {
		if got := stepOf(api.Summary{Strategy: c.strategy, Step: c.step, Steps: c.steps}); got != c.want {
			t.Errorf("%s: %q, want %q", c.strategy, got, c.want)
		}
	}
}

// TestDescribeShowsConditions: what holds a session back right now (a
// backend that cannot be read) is in describe's table, with its start.
func TestDescribeShowsConditions(t *testing.T) {
	s := &crus.Session{UpgradeID: "s1", State: crus.StateUpdating}
	s.Progress.Conditions = []crus.Condition{{Kind: crus.CondBookingsUnreadable, Since: time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC), Message: "reading reservations: refused"}}
	var buf bytes.Buffer
	describe(&buf, api.DescriptionOf(s))
	if want := "conditions:\n  bookings_unreadable\tsince 2026-01-05 08:00:00\treading reservations: refused\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("describe:\n%s\nwant it to hold %q", buf.String(), want)
	}
}

// A word left over is a usage error, not ignored: "--clear-failed false"
// sets the flag and leaves "false", which used to create a session that
// empties the failed group. Nothing is sent: the server named does not
// exist.
func TestCommandsRefuseStrayArguments(t *testing.T) {
	was := stderr
	defer func() { stderr = was }()
	for _, args := range [][]string{
		{"create", "--server", "http://127.0.0.1:1", "--starting-label", "s", "--clear-failed", "false"},
		{"create", "--server", "http://127.0.0.1:1", "stray"},
		{"list", "--server", "http://127.0.0.1:1", "stray"},
		{"plan", "--starting-label", "s", "--upgrade-step-size", "4", "true"},
		{"config", "check", "stray"},
	} {
		var out bytes.Buffer
		stderr = &out
		if code := run(args); code != exitUsage {
			t.Errorf("%q: exit %d; want %d (%s)", args, code, exitUsage, out.String())
		}
		last := args[len(args)-1]
		if !strings.Contains(out.String(), fmt.Sprintf("unexpected argument %q", last)) {
			t.Errorf("%q: stderr %q; want it to name %q", args, out.String(), last)
		}
		if _, err := strconv.ParseBool(last); err == nil && !strings.Contains(out.String(), "--clear-failed=false") {
			t.Errorf("%q: stderr %q; want the hint to write the value after =", args, out.String())
		}
	}
}

// An output format crus does not write is a usage error (exit 2), as
// every other flag's bad value is, for every client command; nothing is
// sent (the server named does not exist).
func TestUnknownOutputIsUsage(t *testing.T) {
	was := stderr
	defer func() { stderr = was }()
	for _, args := range [][]string{
		{"list", "--server", "http://127.0.0.1:1", "-o", "xml"},
		{"describe", "s1", "--server", "http://127.0.0.1:1", "-o", "xml"},
		{"pause", "s1", "--server", "http://127.0.0.1:1", "--output", "csv"},
		{"create", "--server", "http://127.0.0.1:1", "--starting-label", "s", "--upgrading-label", "u", "--failed-label", "f",
			"--upgrade-step-size", "2", "--upgrade-template-id", "t", "-o", "xml"},
		{"plan", "--starting-label", "s", "--upgrade-step-size", "4", "-o", "xml"},
	} {
		var out bytes.Buffer
		stderr = &out
		if code := run(args); code != exitUsage || !strings.Contains(out.String(), "is not table, json or yaml") {
			t.Errorf("%q: exit %d, stderr %q; want %d and the formats named", args, code, out.String(), exitUsage)
		}
	}
}

// A piped watch logs what happened to the session, not each node's phase
// (thousands of lines on a big machine); when a phase event is shown it
// names the phase, and a node event has no trailing blanks.
func TestEventLine(t *testing.T) {
	at := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ev   api.Event
		want string
	}{
		{api.Event{Time: at, Kind: crus.EventPhase, Node: "x1000c0s0b0n0", Phase: crus.PhaseBooting}, "2026-01-05 08:00:00 phase: x1000c0s0b0n0 booting"},
		{api.Event{Time: at, Kind: crus.EventNode, Node: "x1000c0s0b0n0", Outcome: crus.OutcomeUpgraded}, "2026-01-05 08:00:00 node: x1000c0s0b0n0 upgraded"},
		{api.Event{Time: at, Kind: crus.EventNode, Node: "x1000c0s0b0n0", Outcome: crus.OutcomeFailed, Reason: "boot failed"}, "2026-01-05 08:00:00 node: x1000c0s0b0n0 failed boot failed"},
	} {
		if got := eventLine(&tc.ev); got != tc.want {
			t.Errorf("eventLine(%+v) = %q, want %q", tc.ev, got, tc.want)
		}
	}
}

// crus plan's failure with nothing configured says so: it read the
// defaults of a Cray EX system, which a first try elsewhere cannot reach.
func TestPlanHintsWhenUnconfigured(t *testing.T) {
	none := func(string) string { return "" }
	cfg, problems := loadConfig("", nil, none)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if !unconfigured("", cfg) {
		t.Error("defaults everywhere: want the hint")
	}
	if unconfigured("crus.yaml", cfg) {
		t.Error("a configuration file given: want no hint")
	}
	cfg, _ = loadConfig("", nil, func(k string) string {
		if k == "CRUS_HSM_URL" {
			return "https://hsm.example/apis/smd/hsm/v2"
		}
		return ""
	})
	if unconfigured("", cfg) {
		t.Error("HSM's URL from the environment: want no hint")
	}
}
