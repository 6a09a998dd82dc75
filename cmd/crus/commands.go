package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/web"
)

// stdout and stderr are variables for the tests.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// usageError is an error in how a command was called, found after its
// flags were parsed: fail exits with exitUsage for it.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func fail(name string, err error) int {
	if ue := (usageError{}); errors.As(err, &ue) {
		fmt.Fprintf(stderr, "crus %s: %v\n", name, ue.error)
		return exitUsage
	}
	var p *api.Problem
	if errors.As(err, &p) {
		fmt.Fprintf(stderr, "crus %s: %s: %s\n", name, p.Title, p.Detail)
		for _, e := range p.Errors {
			fmt.Fprintf(stderr, "  %s: %s\n", e.Field, e.Problem)
		}
		for _, c := range p.Conflicts {
			fmt.Fprintf(stderr, "  held by session %s: %d nodes, groups %v\n", c.Session, len(c.Nodes), c.Labels)
		}
		return exitFail
	}
	fmt.Fprintf(stderr, "crus %s: %v\n", name, err)
	return exitFail
}

// emit writes v as JSON or YAML (through its JSON form, so the field names
// are the API's), or calls table.
func emit(output string, v any, table func(w io.Writer)) error {
	switch output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(data, &generic); err != nil {
			return err
		}
		enc := yaml.NewEncoder(stdout)
		enc.SetIndent(2)
		if err := enc.Encode(generic); err != nil {
			return err
		}
		return enc.Close()
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func cmdCreate(args []string) int {
	c := newClientFlags("create")
	specOf := specFlags(c.fs)
	if err := parseNoArgs("create", c.fs, args); err != nil {
		return parseExit(err)
	}
	spec, err := specOf()
	if err != nil {
		fmt.Fprintf(stderr, "crus create: %v\n", err)
		return exitUsage
	}
	t, err := c.target()
	if err != nil {
		return fail("create", err)
	}
	defer t.Close()
	s, err := t.Create(context.Background(), spec)
	if err != nil {
		return fail("create", err)
	}
	if err := emit(c.output, s, func(w io.Writer) { describe(w, api.DescriptionOf(s)) }); err != nil {
		return fail("create", err)
	}
	return exitOK
}

func cmdList(args []string) int {
	c := newClientFlags("list")
	if err := parseNoArgs("list", c.fs, args); err != nil {
		return parseExit(err)
	}
	t, err := c.target()
	if err != nil {
		return fail("list", err)
	}
	defer t.Close()
	list, err := t.List(context.Background())
	if err != nil {
		return fail("list", err)
	}
	err = emit(c.output, list, func(w io.Writer) {
		fmt.Fprintln(w, "UPGRADE_ID\tSTATE\tSTAGE\tSTEP\tNODES\tUPGRADED\tFAILED\tIN_FLIGHT\tSTARTING_LABEL\tCREATED")
		for _, s := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", s.UpgradeID, s.State, stageOf(s), stepOf(s),
				s.Counts.Nodes, s.Counts.Upgraded, s.Counts.Failed, s.Counts.InFlight, s.StartingLabel, s.CreatedAt.UTC().Format(time.DateTime))
		}
	})
	if err != nil {
		return fail("list", err)
	}
	return exitOK
}

func stageOf(s api.Summary) string {
	out := string(s.Stage)
	if s.Paused {
		out += " (paused)"
	}
	if s.Result != "" {
		out += ": " + string(s.Result)
	}
	return out
}

func stepOf(s api.Summary) string {
	if s.Strategy.Batches() {
		return "batch " + strconv.Itoa(s.Step)
	}
	if s.Steps > 0 {
		return fmt.Sprintf("%d/%d", s.Step, s.Steps)
	}
	return strconv.Itoa(s.Step)
}

// oneID parses the flags of a command on one session, and returns its
// id; parseExit(err) is the exit code when there is none.
func oneID(name string, c *clientFlags, args []string) (string, error) {
	if err := parseFlags(c.fs, args); err != nil {
		return "", err
	}
	if c.fs.NArg() != 1 {
		err := fmt.Errorf("want one UPGRADE_ID, got %d arguments", c.fs.NArg())
		fmt.Fprintf(stderr, "crus %s: %v\n", name, err)
		printUsage(stderr, c.fs)
		return "", err
	}
	return c.fs.Arg(0), nil
}

func cmdDescribe(args []string) int {
	c := newClientFlags("describe")
	id, err := oneID("describe", c, args)
	if err != nil {
		return parseExit(err)
	}
	t, err := c.target()
	if err != nil {
		return fail("describe", err)
	}
	defer t.Close()
	if c.output != "table" {
		// The JSON and YAML forms are the full record, as the API gives it.
		s, err := t.Get(context.Background(), id)
		if err != nil {
			return fail("describe", err)
		}
		if err := emit(c.output, s, nil); err != nil {
			return fail("describe", err)
		}
		return exitOK
	}
	// The table needs the summary and the failed and skipped nodes only,
	// not every node record (32 MB of JSON for 160,000 nodes).
	d, err := t.Describe(context.Background(), id)
	if err != nil {
		return fail("describe", err)
	}
	if err := emit(c.output, d, func(w io.Writer) { describe(w, d) }); err != nil {
		return fail("describe", err)
	}
	return exitOK
}

// describe writes a session for a person: the record's head, the counts,
// the failed and skipped nodes with their reasons, and the messages.
func describe(w io.Writer, d api.Description) {
	row := func(k string, v any) { fmt.Fprintf(w, "%s:\t%v\n", k, v) }
	row("upgrade_id", d.UpgradeID)
	row("state", d.State)
	row("stage", stageOf(d.Summary))
	row("step", stepOf(d.Summary))
	row("strategy", d.Strategy)
	row("step size", d.StepSize)
	row("groups", fmt.Sprintf("starting %s, upgrading %s, failed %s", d.StartingLabel, d.UpgradingLabel, d.FailedLabel))
	row("template", d.TemplateID)
	c := d.Counts
	row("nodes", fmt.Sprintf("%d: %d upgraded, %d failed, %d skipped, %d untouched, %d in flight, %d pending",
		c.Nodes, c.Upgraded, c.Failed, c.Skipped, c.Untouched, c.InFlight, c.Pending))
	if !d.CreatedAt.IsZero() {
		row("created", d.CreatedAt.UTC().Format(time.DateTime))
	}
	if !d.EndedAt.IsZero() {
		row("ended", d.EndedAt.UTC().Format(time.DateTime))
	}
	if len(d.Conditions) > 0 {
		fmt.Fprintln(w, "conditions:")
		for _, c := range d.Conditions {
			fmt.Fprintf(w, "  %s\tsince %s\t%s\n", c.Kind, c.Since.UTC().Format(time.DateTime), c.Message)
		}
	}
	for _, nodes := range []struct {
		o    crus.Outcome
		list []api.NodeReason
	}{{crus.OutcomeFailed, d.Failed}, {crus.OutcomeSkipped, d.Skipped}} {
		if len(nodes.list) > 0 {
			fmt.Fprintf(w, "%s nodes:\n", nodes.o)
		}
		for _, n := range nodes.list {
			fmt.Fprintf(w, "  %s\t%s\t%s\n", n.XName, n.Name, n.Reason)
		}
	}
	fmt.Fprintln(w, "messages:")
	for _, m := range d.Messages {
		fmt.Fprintf(w, "  %s\n", m)
	}
}

func cmdAction(action string) func([]string) int {
	return func(args []string) int {
		c := newClientFlags(action)
		id, err := oneID(action, c, args)
		if err != nil {
			return parseExit(err)
		}
		t, err := c.target()
		if err != nil {
			return fail(action, err)
		}
		defer t.Close()
		ctx := context.Background()
		s, err := t.Act(ctx, action, id)
		if err != nil {
			return fail(action, err)
		}
		did := past(action)
		if action == "delete" && s.Completed {
			// Deleting a session that had ended removes its record; one
			// deleted before it started ends at once and keeps it.
			if _, err := t.Get(ctx, id); notFound(err) {
				did = "record deleted"
			}
		}
		err = emit(c.output, s, func(w io.Writer) {
			fmt.Fprintf(w, "%s %s: state %s, stage %s, %d of %d nodes done\n", s.UpgradeID, did, s.State, stageOf(s),
				s.Counts.Upgraded+s.Counts.Failed+s.Counts.Skipped+s.Counts.Untouched, s.Counts.Nodes)
		})
		if err != nil {
			return fail(action, err)
		}
		return exitOK
	}
}

// notFound reports whether err says there is no such session, from a
// server (404) or a store.
func notFound(err error) bool {
	var p *api.Problem
	return errors.Is(err, crus.ErrSessionNotFound) || errors.As(err, &p) && p.Status == http.StatusNotFound
}

func past(action string) string {
	switch action {
	case "delete":
		return "deletion requested"
	case "pause":
		return "paused"
	case "resume":
		return "resumed"
	}
	return "approved"
}

// minTimelineWidth is the narrowest timeline: 110 pixels go to the
// labels, and a plot narrower than some 90 shows nothing (web.Timeline
// drew a negative width, and replaced 0 or less by 960 without a word).
const minTimelineWidth = 200

func cmdTimeline(args []string) int {
	c := newClientFlags("timeline")
	file := c.fs.String("file", "", "write the SVG to this file (default: standard output)")
	width := c.fs.Int("width", 960, fmt.Sprintf("width in pixels, at least %d", minTimelineWidth))
	id, err := oneID("timeline", c, args)
	if err != nil {
		return parseExit(err)
	}
	if *width < minTimelineWidth {
		return fail("timeline", usageError{fmt.Errorf("--width %d: want at least %d", *width, minTimelineWidth)})
	}
	t, err := c.target()
	if err != nil {
		return fail("timeline", err)
	}
	defer t.Close()
	s, err := t.Get(context.Background(), id)
	if err != nil {
		return fail("timeline", err)
	}
	w := stdout
	if *file != "" {
		f, err := os.Create(*file)
		if err != nil {
			return fail("timeline", err)
		}
		defer f.Close()
		w = f
	}
	if err := web.Timeline(w, s, web.TimelineOptions{Width: *width}); err != nil {
		return fail("timeline", err)
	}
	return exitOK
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func cmdWatch(args []string) int {
	c := newClientFlags("watch")
	id, err := oneID("watch", c, args)
	if err != nil {
		return parseExit(err)
	}
	t, err := c.target()
	if err != nil {
		return fail("watch", err)
	}
	defer t.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tty := isTerminal(stdout) && c.output == "table"
	var last *api.Summary
	var now time.Time // the records' clock, from the events
	var lastLine string
	err = t.Watch(ctx, id, func(s *api.Summary, ev *api.Event) bool {
		switch {
		case ev != nil:
			now = ev.Time
			switch c.output {
			case "json":
				_ = json.NewEncoder(stdout).Encode(ev)
			case "yaml":
				_ = emit("yaml", []api.Event{*ev}, nil)
			default:
				// The line log: what happened, not every stage (the
				// progress lines carry the stage); failed nodes always.
				if !tty && ev.Kind != crus.EventNode && ev.Kind != crus.EventPhase && ev.Kind != crus.EventStage || ev.Outcome == crus.OutcomeFailed {
					if tty {
						fmt.Fprint(stdout, "\r\033[K")
					}
					fmt.Fprintln(stdout, eventLine(ev))
				}
			}
		case s != nil:
			last = s
			if c.output != "table" {
				if c.output == "json" {
					_ = json.NewEncoder(stdout).Encode(s)
				}
			} else if line := progressLine(s, now); tty {
				fmt.Fprint(stdout, "\r\033[K"+line)
			} else if line != lastLine {
				fmt.Fprintln(stdout, line)
				lastLine = line
			}
		}
		return last == nil || !last.Completed
	})
	if tty {
		fmt.Fprintln(stdout)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return exitFail // interrupted: nothing to report
	}
	if err != nil {
		return fail("watch", err)
	}
	switch {
	case last == nil:
		return exitFail
	case last.Result == crus.ResultCancelled || last.Result == crus.ResultAborted:
		return exitCancelled
	case last.Counts.Failed > 0:
		return exitFailed
	}
	return exitOK
}

func eventLine(ev *api.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", ev.Time.UTC().Format(time.DateTime), ev.Kind)
	switch {
	case ev.Message != "":
		b.WriteString(": " + ev.Message)
	case ev.Node != "" && ev.Phase != "":
		fmt.Fprintf(&b, ": %s %s", ev.Node, ev.Phase)
	case ev.Node != "":
		b.WriteString(": " + strings.TrimSpace(ev.Node+" "+string(ev.Outcome)+" "+ev.Reason))
	case ev.Stage != "":
		fmt.Fprintf(&b, ": step %d, %s", ev.Step, ev.Stage)
	}
	if ev.Error != "" {
		b.WriteString(" (" + ev.Error + ")")
	}
	return b.String()
}

// progressLine is the watch display: nodes done, failed and in flight,
// the step, the stage, and an estimate of the time left from the pace so
// far.
func progressLine(s *api.Summary, now time.Time) string {
	c := s.Counts
	done := c.Upgraded + c.Failed + c.Skipped + c.Untouched
	const width = 30
	filled := 0
	if c.Nodes > 0 {
		filled = width * done / c.Nodes
	}
	where := stepOf(*s)
	if !strings.HasPrefix(where, "batch") {
		where = "step " + where
	}
	line := fmt.Sprintf("[%s%s] %d/%d done, %d failed, %d in flight · %s · %s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, c.Nodes, c.Failed, c.InFlight, where, stageOf(*s))
	if s.Completed {
		return line
	}
	start := s.StartedAt
	if now.IsZero() || start.IsZero() || !now.After(start) {
		return line
	}
	taken := c.Upgraded + c.Failed
	left := c.Pending + c.InFlight
	if taken > 0 && left > 0 {
		eta := time.Duration(float64(now.Sub(start)) / float64(taken) * float64(left))
		line += " · ETA " + strings.TrimSuffix(eta.Round(time.Minute).String(), "0s")
	}
	return line
}

func cmdConfig(args []string) int {
	fs := newFlagSet("config check")
	cfgPath := configFlags(fs)
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && isHelp(args[0]) { // crus config -h
			printHelp(stdout, fs)
			return exitOK
		}
		printUsage(stderr, fs)
		return exitUsage
	}
	if err := parseNoArgs("config check", fs, args[1:]); err != nil {
		return parseExit(err)
	}
	cfg, problems := loadConfig(*cfgPath, fs, os.Getenv)
	if len(problems) == 0 {
		b, connProblems := cfg.connect(nil)
		problems = append(problems, connProblems...)
		for _, p := range problems {
			fmt.Fprintf(stdout, "FAIL  %v\n", p)
		}
		problems = append(problems, cfg.check(context.Background(), b, stdout)...)
		_ = b.Close()
	} else {
		for _, p := range problems {
			fmt.Fprintf(stdout, "FAIL  %v\n", p)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stdout, "%d problems\n", len(problems))
		return exitFail
	}
	fmt.Fprintln(stdout, "configuration ok")
	return exitOK
}

// specFlags defines on fs a flag for every field of a session's spec (its
// JSON name, with dashes), and returns the function that makes the spec
// from them once fs is parsed.
func specFlags(fs *flag.FlagSet) func() (crus.Spec, error) {
	var spec crus.Spec
	fs.StringVar(&spec.StartingLabel, "starting-label", "", "HSM group of every node to upgrade")
	fs.StringVar(&spec.UpgradingLabel, "upgrading-label", "", "empty HSM group for the nodes being upgraded")
	fs.StringVar(&spec.FailedLabel, "failed-label", "", "empty HSM group for the nodes that fail")
	fs.IntVar(&spec.StepSize, "upgrade-step-size", 0, "most nodes out of service at once")
	fs.StringVar(&spec.TemplateID, "upgrade-template-id", "", "BOS session template to boot with")
	fs.StringVar(&spec.WorkloadManagerType, "workload-manager-type", "slurm", "workload manager")
	fs.BoolVar(&spec.ClearFailed, "clear-failed", false, "empty the failed group at the start instead of refusing a non-empty one")
	bootLimit := fs.String("boot-limit", "", "what limits each boot session: nodes (default) or label")
	bootTimeout := fs.Duration("boot-timeout", 0, "longest a boot session may take (default 1h)")
	returnTimeout := fs.Duration("return-timeout", 0, "longest a node may take to return after booting (default 30m)")
	fs.BoolVar(&spec.RetryFailed, "retry-failed", false, "take again the nodes a crus session failed (a crus reason in the workload manager)")
	strategy := fs.String("strategy", "", "classic (default), rolling or scheduled")
	order := fs.String("order", "", "listed (default; job_end for strategy scheduled), idle_first or job_end")
	fs.IntVar(&spec.Lookahead, "lookahead", 0, "pending nodes ranked at once")
	fs.IntVar(&spec.BootBatchSize, "boot-batch-size", 0, "rolling and scheduled: most nodes per boot session")
	rebootTime := fs.Duration("reboot-time", 0, "scheduled: how long a node taken stays out, the length of a slot (default 15m)")
	bookingSlack := fs.Duration("booking-slack", 0, "scheduled: book a node only if it would then wait at most this long idle for its slot (default reboot-time / 4)")
	fs.IntVar(&spec.MaxFailures, "max-failures", 0, "stop taking nodes once more than this many failed")
	fs.Float64Var(&spec.MaxFailurePercent, "max-failure-percent", 0, "the same, as a percentage of the nodes")
	drainTimeout := fs.Duration("drain-timeout", 0, "longest a node may keep running jobs once drained")
	drainAction := fs.String("drain-timeout-action", "", "release (default) or fail")
	canary := fs.String("canary", "", "sizes of the first batches, comma-separated (e.g. 1,5)")
	fs.BoolVar(&spec.CanaryApproval, "canary-approval", false, "wait for crus approve after the canary batches")
	windows := fs.String("maintenance-windows", "", `JSON list of windows, e.g. [{"days":["sat","sun"],"start":"22:00","end":"06:00"}]`)
	return func() (crus.Spec, error) {
		spec.BootLimit = crus.BootLimit(*bootLimit)
		spec.BootTimeout, spec.ReturnTimeout = crus.Duration(*bootTimeout), crus.Duration(*returnTimeout)
		spec.Strategy, spec.Order = crus.Strategy(*strategy), crus.Order(*order)
		spec.RebootTime, spec.BookingSlack = crus.Duration(*rebootTime), crus.Duration(*bookingSlack)
		spec.DrainTimeout, spec.DrainTimeoutAction = crus.Duration(*drainTimeout), crus.DrainTimeoutAction(*drainAction)
		if *canary != "" {
			for part := range strings.SplitSeq(*canary, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(part))
				if err != nil {
					return spec, fmt.Errorf("--canary: %q is not a number", part)
				}
				spec.Canary = append(spec.Canary, n)
			}
		}
		if *windows != "" {
			if err := json.Unmarshal([]byte(*windows), &spec.MaintenanceWindows); err != nil {
				return spec, fmt.Errorf("--maintenance-windows: %w", err)
			}
		}
		return spec, nil
	}
}
