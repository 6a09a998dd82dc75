package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/sim"
	"github.com/crus-go/crus/wlm"
)

// cmdPlan reads the live cluster — the nodes of a session or of a starting
// group, their states, and the expected ends of their jobs — and simulates
// every strategy from that snapshot.
func cmdPlan(args []string) int {
	c := newClientFlags("plan")
	fs := c.fs
	session := fs.String("session", "", "the session whose nodes not yet taken to plan for (read from --server or --store)")
	starting := fs.String("starting-label", "", "the starting group to plan for")
	step := fs.Int("upgrade-step-size", 0, "step size (default: the session's)")
	drain := fs.Duration("drain-timeout", 2*time.Hour, "drain timeout of the strategies that use one")
	load := fs.Float64("load", 0, "chance that an idle node not yet taken starts a new job every 10 minutes (0: no new jobs; a lower bound)")
	reboot := fs.Duration("reboot-time", 10*time.Minute, "mean reboot time")
	seed := fs.Uint64("seed", 1, "random seed")
	settingFlags(fs, readerSetting) // the backends it reads: HSM and the workload manager
	fs.Lookup("config").Usage = "configuration file of the backends to read, and of the store of --store (YAML; env CRUS_CONFIG)"
	if err := parseNoArgs("plan", fs, args); err != nil {
		return parseExit(err)
	}
	if (*session == "") == (*starting == "") {
		fmt.Fprintln(stderr, "crus plan: give --session ID or --starting-label LABEL")
		return exitUsage
	}
	if err := c.checkOutput(); err != nil {
		return fail("plan", err)
	}
	// Before the backends are read: values no cluster has.
	switch {
	case *step < 0:
		fmt.Fprintf(stderr, "crus plan: --upgrade-step-size %d is negative\n", *step)
		return exitUsage
	case !(*load >= 0 && *load <= 1):
		fmt.Fprintf(stderr, "crus plan: --load %v is not a probability (0 to 1)\n", *load)
		return exitUsage
	case *reboot <= 0:
		fmt.Fprintf(stderr, "crus plan: --reboot-time %v is not positive\n", *reboot)
		return exitUsage
	case *drain < 0:
		fmt.Fprintf(stderr, "crus plan: --drain-timeout %v is negative\n", *drain)
		return exitUsage
	case *drain > 0 && *drain < time.Duration(crus.MinTimeout):
		fmt.Fprintf(stderr, "crus plan: --drain-timeout %v: want at least %v (a session's drain_timeout may be no shorter)\n", *drain, time.Duration(crus.MinTimeout))
		return exitUsage
	}
	ctx := context.Background()
	cfg, problems := loadConfig(*c.cfgPath, fs, os.Getenv)
	if len(problems) > 0 {
		return fail("plan", errors.Join(problems...))
	}
	b, problems := cfg.connectReaders(slog.New(slog.DiscardHandler))
	defer b.Close()
	if b.groups == nil || b.manager == nil {
		return fail("plan", errors.Join(problems...))
	}
	manager, groups := wlm.Manager(b.manager), hsm.GroupStore(b.groups)
	if testBackends != nil {
		testBackends(b, nil)
		manager = b.manager
	}

	// The nodes and their workload-manager names.
	names := map[string]string{}
	var xnames []string
	if *session != "" {
		t, err := c.target()
		if err != nil {
			return fail("plan", err)
		}
		s, err := t.Get(ctx, *session)
		t.Close()
		if err != nil {
			return fail("plan", err)
		}
		for _, n := range s.Progress.Nodes {
			if n.Phase == crus.PhasePending {
				xnames = append(xnames, n.XName)
				names[n.XName] = n.Name
			}
		}
		if *step == 0 {
			*step = s.StepSize
		}
	} else {
		m, err := groups.Members(ctx, *starting)
		if err != nil {
			if unconfigured(*c.cfgPath, cfg) {
				err = fmt.Errorf("%w\n(nothing configured: crus plan read the live cluster through the default backends of an HPE Cray EX system; give --config FILE, CRUS_CONFIG or --hsm-url, and `crus config check` tests them)", err)
			}
			return fail("plan", err)
		}
		xnames = m
		mapped, err := crus.NIDMapper{Resolver: b.groups, Format: cfg.Executor.NodeNameFormat}.WLMNames(ctx, m)
		if _, rest := batch.Split(err); rest != nil {
			return fail("plan", err)
		}
		names = mapped
	}
	if *step < 1 {
		fmt.Fprintln(stderr, "crus plan: --upgrade-step-size is required")
		return exitUsage
	}
	snap, err := snapshot(ctx, manager, xnames, names)
	if err != nil {
		return fail("plan", err)
	}
	busy := 0
	for _, n := range snap.Nodes {
		if !n.JobEnd.IsZero() {
			busy++
		}
	}
	fmt.Fprintf(stderr, "crus plan: %d nodes (%d running jobs), steps of %d, from %s\n", len(snap.Nodes), busy, *step, snap.Now.UTC().Format(time.DateTime))
	scfg := sim.SnapshotConfig{Step: *step, Seed: *seed, Load: *load, RebootTime: *reboot}
	strategies := sim.Strategies(*drain)
	preds := make([]sim.Prediction, len(strategies))
	errs := make([]error, len(strategies))
	for i, st := range strategies {
		preds[i], errs[i] = sim.RunSnapshot(ctx, snap, scfg, st)
	}
	best := sim.Choose(preds, errs)
	type row struct {
		Strategy      string  `json:"strategy"`
		MakespanHours float64 `json:"makespan_hours"`
		LostNodeHours float64 `json:"lost_node_hours"`
		LostOverFloor float64 `json:"lost_over_floor"`
		MaxOut        int     `json:"max_out"`
		Upgraded      int     `json:"upgraded"`
		Failed        int     `json:"failed"`
		Skipped       int     `json:"skipped"`
		Out           []int   `json:"out_every_10m"`
		Error         string  `json:"error,omitempty"`
	}
	out := struct {
		Nodes  int    `json:"nodes"`
		Step   int    `json:"step"`
		Choice string `json:"choice"`
		Rows   []row  `json:"strategies"`
	}{Nodes: len(snap.Nodes), Step: *step}
	if best >= 0 {
		out.Choice = preds[best].Strategy
	}
	for i, p := range preds {
		r := row{Strategy: strategies[i].Name, MakespanHours: p.Makespan.Hours(), LostNodeHours: p.Lost.Hours(),
			MaxOut: p.MaxOut, Upgraded: p.Upgraded, Failed: p.Failed, Skipped: p.Skipped, Out: p.Out}
		if p.Floor > 0 {
			r.LostOverFloor = p.Lost.Hours() / p.Floor.Hours()
		}
		if errs[i] != nil {
			r.Error = errs[i].Error()
		}
		out.Rows = append(out.Rows, r)
	}
	err = emit(c.output, out, func(w io.Writer) {
		fmt.Fprintln(w, "STRATEGY\tMAKESPAN\tLOST NODE-H\tLOST/FLOOR\tMAX OUT\tUPGRADED\tNODES OUT OVER TIME")
		for i, r := range out.Rows {
			mark := ""
			if i == best {
				mark = " *"
			}
			if r.Error != "" {
				fmt.Fprintf(w, "%s%s\t%s\t\t\t\t\t\n", r.Strategy, mark, r.Error)
				continue
			}
			fmt.Fprintf(w, "%s%s\t%.1fh\t%.1f\t%.2f\t%d\t%d\t%s\n", r.Strategy, mark, r.MakespanHours, r.LostNodeHours, r.LostOverFloor, r.MaxOut, r.Upgraded, spark(r.Out, *step, 60))
		}
		if best >= 0 {
			fmt.Fprintf(w, "\ncrus would choose %s (shortest makespan within the cap of %d; reboot-asap has no cap)\n", out.Choice, *step)
		}
	})
	if err != nil {
		return fail("plan", err)
	}
	if best < 0 {
		return exitFail
	}
	return exitOK
}

// snapshot reads the nodes' states and their jobs' expected ends.
func snapshot(ctx context.Context, manager wlm.Manager, xnames []string, names map[string]string) (sim.Snapshot, error) {
	snap := sim.Snapshot{Now: time.Now()}
	wnames := make([]string, 0, len(xnames))
	xnameOf := map[string]string{}
	for _, x := range xnames {
		if n := names[x]; n != "" {
			wnames = append(wnames, n)
			xnameOf[n] = x
		}
	}
	nodes, err := manager.Nodes(ctx, wnames)
	if _, rest := batch.Split(err); rest != nil {
		return snap, fmt.Errorf("reading the nodes: %w", rest)
	}
	var ends map[string]time.Time
	if j, ok := manager.(wlm.JobEnder); ok {
		ends, err = j.JobEnds(ctx, wnames)
		if _, rest := batch.Split(err); rest != nil {
			return snap, fmt.Errorf("reading the jobs' expected ends: %w", rest)
		}
	}
	for _, n := range nodes {
		sn := sim.SnapshotNode{XName: xnameOf[n.Name], InService: n.InService(), JobEnd: ends[n.Name]}
		if !sn.InService {
			sn.Reason = n.Condition()
		}
		snap.Nodes = append(snap.Nodes, sn)
	}
	return snap, nil
}

// spark draws counts (scaled to limit) in at most width characters.
func spark(counts []int, limit, width int) string {
	if len(counts) == 0 {
		return ""
	}
	const bars = "▁▂▃▄▅▆▇█"
	runes := []rune(bars)
	per := (len(counts) + width - 1) / width
	var b strings.Builder
	for i := 0; i < len(counts); i += per {
		peak := 0
		for _, c := range counts[i:min(i+per, len(counts))] {
			peak = max(peak, c)
		}
		if peak == 0 {
			b.WriteRune(' ')
			continue
		}
		idx := min(len(runes)-1, (peak*len(runes)-1)/max(limit, 1))
		b.WriteRune(runes[idx])
	}
	return b.String()
}

// unconfigured reports whether crus plan ran with nothing configured, on
// the defaults of an HPE Cray EX system's API gateway: the usual first
// try, whose failure deserves a hint.
func unconfigured(cfgPath string, cfg *Config) bool {
	return cfgPath == "" && cfg.HSM.URL == defaultHSMURL
}
