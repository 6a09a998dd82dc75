package slurm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
)

// Config configures the scontrol adapter (CLI). The zero value is usable:
// it runs "scontrol" and "squeue" from $PATH with the inherited SLURM_CONF.
type Config struct {
	// Scontrol and Squeue are the programs to run: names looked up in
	// $PATH or paths. Defaults "scontrol" and "squeue".
	Scontrol, Squeue string
	// SlurmConf, if set, is passed to the programs as SLURM_CONF (the
	// slurm.conf of the cluster to talk to). Empty leaves the inherited
	// environment alone.
	SlurmConf string
	// Timeout bounds each command. Default 1m.
	Timeout time.Duration
	// Runner runs the commands. Nil means Exec.
	Runner Runner
	// Logger receives a debug record per command. Nil means no logging.
	Logger *slog.Logger
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("slurm: Config.Timeout must not be negative, got %s", c.Timeout))
	}
	for _, f := range []struct{ name, v string }{{"Scontrol", c.Scontrol}, {"Squeue", c.Squeue}, {"SlurmConf", c.SlurmConf}} {
		if strings.ContainsAny(f.v, "\x00\n") {
			errs = append(errs, fmt.Errorf("slurm: Config.%s %q contains a NUL or newline", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// defaultMaxHostlist bounds the length of one hostlist argument. Linux
// refuses single arguments over 128 KiB; a step whose nodes compress to
// more is split over several commands.
const defaultMaxHostlist = 64 << 10

// CLI is the wlm.Manager of a Slurm cluster driven through its commands:
// scontrol (node state and updates) and squeue (job end times). Every
// method runs one command for all the nodes it is given (a hostlist
// expression), more only when something went wrong; see the package
// documentation for the exact cost. It is safe for concurrent use.
type CLI struct {
	cfg        Config
	env        []string
	run        Runner
	log        *slog.Logger
	maxHostlst int
}

var (
	_ wlm.Manager          = (*CLI)(nil)
	_ wlm.BootTimeReporter = (*CLI)(nil)
	_ wlm.JobEnder         = (*CLI)(nil)
)

// NewCLI returns the scontrol adapter.
func NewCLI(cfg Config) (*CLI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Scontrol == "" {
		cfg.Scontrol = "scontrol"
	}
	if cfg.Squeue == "" {
		cfg.Squeue = "squeue"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	c := &CLI{cfg: cfg, run: cfg.Runner, log: cfg.Logger, maxHostlst: defaultMaxHostlist}
	if c.run == nil {
		c.run = Exec
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	// Times as Unix seconds, in UTC whatever the site's settings: no
	// time-zone or format guessing when reading the output.
	c.env = []string{"SLURM_TIME_FORMAT=%s", "TZ=UTC"}
	if cfg.SlurmConf != "" {
		c.env = append(c.env, "SLURM_CONF="+cfg.SlurmConf)
	}
	return c, nil
}

// ReportsBootTime implements wlm.BootTimeReporter: Slurm reports each
// node's BootTime.
func (c *CLI) ReportsBootTime() bool { return true }

// runCmd runs one command. A failure is a *CommandError, or wraps ctx.Err()
// (cancellation) or context.DeadlineExceeded (Config.Timeout).
func (c *CLI) runCmd(ctx context.Context, path string, args ...string) (stdout, stderr []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	cmd := Command{Path: path, Args: args, Env: c.env}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	start := time.Now()
	stdout, stderr, err = c.run(cctx, cmd)
	c.log.LogAttrs(ctx, slog.LevelDebug, "slurm command", slog.String("cmd", text.Cap(cmd.String(), maxCommandText)),
		slog.Duration("took", time.Since(start)), slog.Any("err", err))
	switch {
	case err == nil:
		return stdout, stderr, nil
	case ctx.Err() != nil:
		return stdout, stderr, fmt.Errorf("slurm: %s: %w", cmd, ctx.Err())
	case cctx.Err() != nil:
		return stdout, stderr, fmt.Errorf("slurm: %s: no answer within %s: %w", cmd, c.cfg.Timeout, cctx.Err())
	}
	return stdout, stderr, newCommandError(cmd, stdout, stderr, err)
}

// chunks returns hostlist expressions covering names (sorted and
// de-duplicated), each short enough for one argument.
func (c *CLI) chunks(names []string) []string {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var out []string
	var split func([]string)
	split = func(ns []string) {
		hl := CompressHostlist(ns)
		if len(hl) <= c.maxHostlst || len(ns) == 1 {
			out = append(out, hl)
			return
		}
		split(ns[:len(ns)/2])
		split(ns[len(ns)/2:])
	}
	if len(sorted) > 0 {
		split(sorted)
	}
	return out
}

// show reads the named nodes (valid names): one `scontrol show node` per
// chunk. Unknown names are returned apart; a failure of the command is
// an error for the whole call.
func (c *CLI) show(ctx context.Context, names []string) (map[string]wlm.Node, []string, error) {
	return c.read(ctx, names, nil)
}

// read is show that also puts each node's Weight in weights, unless it
// is nil (-1 for a weight scontrol did not show as a number).
func (c *CLI) read(ctx context.Context, names []string, weights map[string]int64) (map[string]wlm.Node, []string, error) {
	got := make(map[string]wlm.Node, len(names))
	var unknown []string
	for _, hl := range c.chunks(names) {
		stdout, stderr, err := c.runCmd(ctx, c.cfg.Scontrol, "--all", "show", "node", hl)
		res := parseShowNode(stdout)
		if err != nil {
			// scontrol exits 1 when a name is unknown, after printing
			// the others and "Node X not found": that is an answer.
			var ce *CommandError
			benign := errors.As(err, &ce) && ce.ExitCode == 1 && len(strings.TrimSpace(string(stderr))) == 0 &&
				len(res.notFound) > 0 && len(res.unexpected) == 0
			if !benign {
				return nil, nil, err
			}
		}
		for i, n := range res.nodes {
			if _, twice := got[n.Name]; twice {
				return nil, nil, shownTwice(n.Name)
			}
			got[n.Name] = n
			if weights != nil {
				weights[n.Name] = res.weights[i]
			}
		}
		unknown = append(unknown, res.notFound...)
	}
	// A node shown twice, or shown and reported unknown, is output
	// forged or misread: a Reason= or OS= holding a newline and
	// "NodeName=..." (free text set by an operator, a health check or the
	// node itself) starts a record of its own, which must not stand for
	// another node's state and boot time.
	for _, u := range unknown {
		if _, ok := got[u]; ok {
			return nil, nil, shownTwice(u)
		}
	}
	// Every name must be accounted for: a node neither shown nor reported
	// unknown means the output was not understood, which must not read as
	// "the node is gone".
	seen := make(map[string]bool, len(unknown))
	for _, u := range unknown {
		seen[u] = true
	}
	var missing []string
	for _, n := range names {
		if _, ok := got[n]; !ok && !seen[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("slurm: scontrol show node reported neither the state nor the absence of %d nodes (%s): output not understood",
			len(missing), CompressHostlist(missing))
	}
	return got, unknown, nil
}

// shownTwice is the error of an output that shows a node twice.
func shownTwice(name string) error {
	return fmt.Errorf("slurm: scontrol show node reported node %q twice (a free-text field holding a newline?): output not understood", text.Clean(name, 64))
}

// notFound returns a *batch.NodeError wrapping wlm.ErrNodeNotFound for
// each name.
func notFound(names []string) []error {
	errs := make([]error, 0, len(names))
	for _, n := range names {
		errs = append(errs, &batch.NodeError{Node: n, Err: fmt.Errorf("%w: Slurm has no node %q", wlm.ErrNodeNotFound, n)})
	}
	return errs
}

// Nodes implements wlm.Manager with one `scontrol show node <hostlist>`.
// Names that are not valid node names (see ValidateName) are refused per
// node with wlm.ErrInvalidArgument and never reach the command line.
func (c *CLI) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	if len(names) == 0 {
		return nil, nil
	}
	valid, errs := splitValid(names)
	got := map[string]wlm.Node{}
	if len(valid) > 0 {
		var unknown []string
		var err error
		got, unknown, err = c.show(ctx, valid)
		if err != nil {
			return nil, err
		}
		errs = append(errs, notFound(unknown)...)
	}
	out := make([]wlm.Node, 0, len(names))
	for _, n := range names {
		if node, ok := got[n]; ok {
			out = append(out, node)
		}
	}
	return out, errors.Join(errs...)
}

// update runs `scontrol update NodeName=<hostlist> args...` per chunk.
func (c *CLI) update(ctx context.Context, names []string, args []string) error {
	var errs []error
	for _, hl := range c.chunks(names) {
		_, _, err := c.runCmd(ctx, c.cfg.Scontrol, append([]string{"update", "NodeName=" + hl}, args...)...)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// refused reports whether err says that Slurm ran and refused (part of) an
// update, rather than that the command could not be run or answered.
func refused(err error) bool {
	var ce *CommandError
	return errors.As(err, &ce) && ce.exited()
}

// slurmMessage returns Slurm's own words from a failed command.
func slurmMessage(err error) string {
	var ce *CommandError
	if errors.As(err, &ce) && ce.Message != "" {
		return ce.Message
	}
	return err.Error()
}

// apply updates the nodes with args in one command. scontrol takes a
// hostlist but reports a single error for the whole of it, and stops at
// the first unknown name, so when the update fails the nodes are read
// again (one more command) to tell, node by node, which ones are not as
// wanted: unknown nodes become wlm.ErrNodeNotFound and the update is run
// once more for the known nodes it missed; nodes that still are not as
// wanted get Slurm's message.
func (c *CLI) apply(ctx context.Context, names []string, op string, args []string, want func(wlm.Node) bool) error {
	err := c.update(ctx, names, args)
	if err == nil || !refused(err) {
		return err
	}
	check := func(names []string) (pending, unknown []string, _ error) {
		got, unknown, rerr := c.show(ctx, names)
		if rerr != nil {
			return nil, nil, rerr
		}
		for _, n := range names {
			if node, ok := got[n]; ok && !want(node) {
				pending = append(pending, n)
			}
		}
		return pending, unknown, nil
	}
	pending, unknown, rerr := check(names)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	errs := notFound(unknown)
	if len(unknown) > 0 && len(pending) > 0 {
		err = c.update(ctx, pending, args)
		if err == nil {
			return errors.Join(errs...)
		}
		if !refused(err) {
			return errors.Join(append(errs, err)...)
		}
		if pending, _, rerr = check(pending); rerr != nil {
			return errors.Join(append(errs, err, rerr)...)
		}
	}
	for _, n := range pending {
		errs = append(errs, &batch.NodeError{Node: n, Err: fmt.Errorf("slurm refused to %s it: %s", op, slurmMessage(err))})
	}
	if len(errs) > 0 {
		c.log.LogAttrs(ctx, slog.LevelDebug, "slurm update refused in part", slog.String("op", op),
			slog.Int("nodes", len(names)), slog.Int("unknown", len(unknown)), slog.Int("refused", len(pending)), slog.String("slurm", slurmMessage(err)))
	}
	return errors.Join(errs...)
}

// reasonIs reports whether the node's reason is the one set.
func reasonIs(n wlm.Node, reason string) bool {
	return strings.TrimSpace(n.Reason) == strings.TrimSpace(reason)
}

// Drain implements wlm.Manager with one `scontrol update NodeName=<hostlist>
// State=DRAIN Reason=<reason>`. Draining a drained node replaces its
// reason; draining a failed node makes it drained (Slurm clears FAIL).
//
// Control characters in reason become spaces; a reason longer than
// MaxReason is refused per node (see MaxReason).
func (c *CLI) Drain(ctx context.Context, names []string, reason string) error {
	return c.set(ctx, names, "drain", reason, "DRAIN", func(n wlm.Node, reason string) bool { return n.Drain && reasonIs(n, reason) })
}

// Fail implements wlm.Manager with one `scontrol update NodeName=<hostlist>
// State=FAIL Reason=<reason>`. Running jobs go on; the node takes no new
// work until resumed.
// The reason is cleaned and bounded as Drain's.
func (c *CLI) Fail(ctx context.Context, names []string, reason string) error {
	return c.set(ctx, names, "fail", reason, "FAIL", func(n wlm.Node, reason string) bool { return n.Fail && reasonIs(n, reason) })
}

// set runs the update; want tells whether a node is as asked, given the
// reason as sent (cleaned).
func (c *CLI) set(ctx context.Context, names []string, op, reason, state string, want func(wlm.Node, string) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	reason, err := cleanReason(op, reason, names)
	if err != nil {
		return err
	}
	valid, errs := splitValid(names)
	if len(valid) > 0 {
		errs = append(errs, c.apply(ctx, valid, op, []string{"State=" + state, "Reason=" + scontrolReason(reason)}, func(n wlm.Node) bool { return want(n, reason) }))
	}
	return errors.Join(errs...)
}

// scontrolReason returns the value of Reason= that makes Slurm store
// reason as it is: scontrol strips one double quote from the start and
// one from the end of the value (seen with Slurm 22.05: a reason ending in
// '"' lost it), so such a reason is sent between added quotes, which are
// the ones stripped.
func scontrolReason(reason string) string {
	if strings.HasPrefix(reason, `"`) || strings.HasSuffix(reason, `"`) {
		return `"` + reason + `"`
	}
	return reason
}

// needsResume reports whether State=RESUME applies to the node: Slurm
// refuses it ("Invalid node state specified") for a node that is neither
// drained, failed nor down.
func needsResume(n wlm.Node) bool { return n.Drain || n.Fail || n.State == wlm.StateDown }

// Resume implements wlm.Manager. Slurm refuses State=RESUME for a node
// that is already in service, so Resume reads the nodes first (one `scontrol
// show node`) and sends `scontrol update State=RESUME` (one more) for those
// that are drained, failed or down only; a call where every node is in
// service runs one command.
func (c *CLI) Resume(ctx context.Context, names []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	valid, errs := splitValid(names)
	if len(valid) == 0 {
		return errors.Join(errs...)
	}
	got, unknown, err := c.show(ctx, valid)
	if err != nil {
		return err
	}
	errs = append(errs, notFound(unknown)...)
	var need []string
	for _, n := range valid {
		if node, ok := got[n]; ok && needsResume(node) {
			need = append(need, n)
		}
	}
	if len(need) > 0 {
		errs = append(errs, c.apply(ctx, need, "resume", []string{"State=RESUME"}, func(n wlm.Node) bool { return !needsResume(n) }))
	}
	return errors.Join(errs...)
}

// JobEnds implements wlm.JobEnder with one `squeue -w <hostlist>`: for each
// node, the latest EndTime (start + time limit) of the running, completing
// or suspended jobs on it. squeue refuses the whole hostlist when one name
// is unknown; then the nodes are read (one more command) and squeue is run
// again for the known ones.
func (c *CLI) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	ends := map[string]time.Time{}
	if len(names) == 0 {
		return ends, nil
	}
	valid, errs := splitValid(names)
	if len(valid) == 0 {
		return ends, errors.Join(errs...)
	}
	asked := make(map[string]bool, len(valid))
	for _, n := range valid {
		asked[n] = true
	}
	keep := func(name []byte) bool { return asked[string(name)] }
	jobs, err := c.squeue(ctx, valid, keep)
	if err != nil && refused(err) {
		_, unknown, rerr := c.show(ctx, valid)
		if rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		if len(unknown) == 0 {
			return nil, err
		}
		errs = append(errs, notFound(unknown)...)
		valid = slices.DeleteFunc(valid, func(n string) bool { return slices.Contains(unknown, n) })
		for _, n := range unknown {
			delete(asked, n)
		}
		jobs, err = nil, nil
		if len(valid) > 0 {
			jobs, err = c.squeue(ctx, valid, keep)
		}
	}
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		// A running job always has an EndTime in Slurm (an unlimited one
		// gets start + 1 year); a job without one says nothing useful.
		if j.End.IsZero() {
			continue
		}
		for _, n := range j.Nodes {
			if asked[n] && j.End.After(ends[n]) {
				ends[n] = j.End
			}
		}
	}
	return ends, errors.Join(errs...)
}

// squeue lists the jobs on the named nodes, with only the nodes keep
// accepts (the adapter asks for a step's nodes, but a job's node list
// names all of its nodes).
func (c *CLI) squeue(ctx context.Context, names []string, keep func([]byte) bool) ([]queuedJob, error) {
	var jobs []queuedJob
	for _, hl := range c.chunks(names) {
		stdout, _, err := c.runCmd(ctx, c.cfg.Squeue, "--noheader", "--all", "--states=RUNNING,COMPLETING,SUSPENDED",
			"--nodelist="+hl, "--format="+squeueFormat)
		if err != nil {
			return nil, err
		}
		js, err := parseSqueue(stdout, keep)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, js...)
	}
	return jobs, nil
}
