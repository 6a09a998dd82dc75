package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crus-go/crus/internal/sim"
)

// window is the runs of one window of the trace: runs[seed][strategy].
type window struct {
	start time.Duration
	runs  [][]sim.Result
}

func windowName(start time.Duration) string {
	return fmt.Sprintf("day %s", days(start))
}

func days(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", d.Hours()/24), "0"), ".0")
}

// report prints what the runs measured.
type report struct {
	w       io.Writer
	format  string
	names   []string // strategies, in the order of the runs
	windows []window
	minBusy float64  // -min-busy: a window less busy is not loaded
	pastEnd []string // windows not run, past the trace's end
}

// The goal of the benchmark (issue 12): the best crus strategy, median
// over the seeds, within these of the bound and of the floor, and never
// more than step nodes out in any seed.
const (
	goalMakespan = 1.5
	goalLost     = 1.2
)

// bound returns the bound of the runs of one seed (zero without a
// reboot-asap run, or if it did not finish).
func (rep report) bound(runs []sim.Result) time.Duration {
	i := slices.Index(rep.names, "reboot-asap")
	if i < 0 || runs[i].Unfinished {
		return 0
	}
	for _, r := range runs {
		if r.Step > 0 {
			return sim.Bound(runs[i], r)
		}
	}
	return runs[i].Makespan
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// csv prints one row per run.
func (rep report) csv() error {
	fmt.Fprintln(rep.w, "window_day,start_day,seed_index,strategy,busy,queued,makespan_h,bound_h,makespan_over_bound,lost_node_h,floor_node_h,lost_over_floor,"+
		"waiting_node_h,rebooting_node_h,returning_node_h,failed_node_h,draining_node_h,max_out,step,upgraded,failed,untouched,wlm_calls,hsm_calls,bos_calls,"+
		"old_node_jobs,old_node_job_node_h,old_node_job_last_end_h,unwanted_node_h,wanted_lost_over_floor,finished,loaded")
	for _, w := range rep.windows {
		for si, runs := range w.runs {
			b := rep.bound(runs)
			for _, r := range runs {
				if r.Unfinished { // (what it would have measured is unknown: empty)
					fmt.Fprintf(rep.w, "%s,%s,%d,%s,%.3f,%d%s,false,%t\n", days(w.start), days(r.Start), si, r.Strategy, r.Busy, r.Queued, strings.Repeat(",", 24), r.Loaded)
					continue
				}
				l := r.Loss
				fmt.Fprintf(rep.w, "%s,%s,%d,%s,%.3f,%d,%.2f,%s,%s,%.1f,%.1f,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%.1f,%.2f,%.1f,%.3f,true,%t\n",
					days(w.start), days(r.Start), si, r.Strategy, r.Busy, r.Queued, r.Makespan.Hours(), known(b, "%.2f", b.Hours()), known(b, "%.3f", ratio(r.Makespan, b)),
					r.Lost.Hours(), r.Floor.Hours(), r.LostOverFloor(), l.Waiting.Hours(), l.Rebooting.Hours(), l.Returning.Hours(), l.Failed.Hours(),
					l.Draining.Hours(), r.MaxOut, r.Step, r.Upgraded, r.Failed, r.Untouched, r.WLMCalls, r.HSMCalls, r.BOSCalls,
					r.Old.Jobs, r.Old.NodeHours, r.OldLastEnd.Hours(), l.Unwanted.Hours(), r.WantedOverFloor(), r.Loaded)
			}
		}
	}
	return nil
}

// known formats v, or is empty when the bound b is unknown (no
// reboot-asap run): a CSV field left empty, not a ratio of 0.
func known(b time.Duration, format string, v float64) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf(format, v)
}

// unknown shows a figure that cannot be computed in a table.
const unknown = "–"

// table prints rows as an aligned table or in markdown.
func (rep report) table(header []string, rows [][]string) error {
	if rep.format == "markdown" {
		fmt.Fprintf(rep.w, "| %s |\n|", strings.Join(header, " | "))
		for i := range header {
			if i == 0 {
				fmt.Fprint(rep.w, "---|")
			} else {
				fmt.Fprint(rep.w, "---:|")
			}
		}
		fmt.Fprintln(rep.w)
		for _, r := range rows {
			fmt.Fprintf(rep.w, "| %s |\n", strings.Join(r, " | "))
		}
		return nil
	}
	tw := tabwriter.NewWriter(rep.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	return tw.Flush()
}

func (rep report) startLine(r sim.Result, asked time.Duration) string {
	where := windowName(r.Start)
	if r.Start != asked {
		where += fmt.Sprintf(" (asked %s", windowName(asked))
		if !r.Loaded {
			where += ", no loaded point found"
		}
		where += ")"
	}
	return fmt.Sprintf("upgrade at %s: %.0f%% of nodes busy, %d jobs queued for %d nodes", where, 100*r.Busy, r.Queued, r.QueuedNodes)
}

// single prints one row per strategy of a single run.
func (rep report) single() error {
	w := rep.windows[0]
	runs := w.runs[0]
	b := rep.bound(runs)
	fmt.Fprintln(rep.w, rep.startLine(runs[0], w.start))
	fmt.Fprintf(rep.w, "floor = %d nodes × %s mean reboot = %.1f node-h; bound = %s\n\n",
		runs[0].Nodes, runs[0].MeanReboot().Round(time.Second), runs[0].Floor.Hours(), hours(b))
	header := []string{"strategy", "makespan h", "÷ bound", "lost node-h", "lost/floor", "if jobs wait", "waiting", "rebooting", "returning", "failed",
		"draining", "old-node jobs node-h", "their last end h", "max out", "step", "upgraded", "failed", "untouched", "WLM calls (/node)", "HSM calls (/node)", "BOS calls (/node)"}
	if rep.format != "markdown" {
		header = append(header, "wall")
	}
	var rows [][]string
	for _, r := range runs {
		if r.Unfinished {
			row := []string{r.Strategy, "unfinished"}
			for len(row) < len(header) {
				row = append(row, unknown)
			}
			rows = append(rows, row)
			continue
		}
		l := r.Loss
		row := []string{r.Strategy, fmt.Sprintf("%.1f", r.Makespan.Hours()), ratioText(r.Makespan, b), fmt.Sprintf("%.1f", r.Lost.Hours()),
			fmt.Sprintf("%.2f", r.LostOverFloor()), fmt.Sprintf("%.2f", r.WantedOverFloor()), fmt.Sprintf("%.1f", l.Waiting.Hours()), fmt.Sprintf("%.1f", l.Rebooting.Hours()),
			fmt.Sprintf("%.1f", l.Returning.Hours()), fmt.Sprintf("%.1f", l.Failed.Hours()), fmt.Sprintf("%.1f", l.Draining.Hours()),
			fmt.Sprintf("%.1f", r.Old.NodeHours), oldEnd(r.OldLastEnd, r.Old.Jobs > 0),
			fmt.Sprint(r.MaxOut), stepOf(r), fmt.Sprint(r.Upgraded), fmt.Sprint(r.Failed), fmt.Sprint(r.Untouched),
			perNode(r.WLMCalls, r), perNode(r.HSMCalls, r), perNode(r.BOSCalls, r)}
		if rep.format != "markdown" {
			row = append(row, r.Wall.Round(10*time.Millisecond).String())
		}
		rows = append(rows, row)
	}
	return rep.table(header, rows)
}

// oldEnd shows when the last job started on a node still to reboot
// ended, "-" if there was none.
func oldEnd(d time.Duration, any bool) string {
	if !any {
		return "-"
	}
	return fmt.Sprintf("%.1f", d.Hours())
}

func hours(d time.Duration) string {
	if d <= 0 {
		return "- (no reboot-asap run)"
	}
	return fmt.Sprintf("%.1f h", d.Hours())
}

func ratioText(a, b time.Duration) string {
	if b <= 0 {
		return unknown
	}
	return fmt.Sprintf("%.2f", ratio(a, b))
}

func stepOf(r sim.Result) string {
	if r.Step == 0 {
		return "none"
	}
	return fmt.Sprint(r.Step)
}

func perNode(calls int, r sim.Result) string {
	return fmt.Sprintf("%d (%.2f)", calls, float64(calls)/float64(max(r.Nodes, 1)))
}

// spread is the median and the range of a sample of n values.
type spread struct {
	med, lo, hi float64
	n           int
}

func spreadOf(xs []float64) spread {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return spread{}
	}
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{med, s[0], s[n-1], n}
}

func (s spread) text(prec int) string {
	if s.n == 0 {
		return unknown
	}
	if s.lo == s.hi {
		return fmt.Sprintf("%.*f", prec, s.med)
	}
	return fmt.Sprintf("%.*f [%.*f–%.*f]", prec, s.med, prec, s.lo, prec, s.hi)
}

// stats are a strategy's figures over the seeds of a window.
type stats struct {
	name                                          string
	makespan, overBound, lost, overFloor, busyAt  spread
	wantedOverFloor                               spread
	waiting, rebooting, returning, failedH, drain spread
	oldWork, oldEnd                               spread // oldEnd over the nOldEnd seeds with old-node work
	nOldEnd                                       int
	failed, bosPerNode                            spread
	maxOut, step                                  int
	// unfinished counts the seeds whose run did not finish (left out of
	// every figure).
	unfinished int
}

func (rep report) statsOf(w window) []stats {
	out := make([]stats, len(rep.names))
	for i, name := range rep.names {
		var ms, ob, lo, of, wf, bu, wa, rb, rt, fh, dr, ow, oe, fa, bo []float64
		st := stats{name: name}
		for _, runs := range w.runs {
			r := runs[i]
			if r.Unfinished {
				st.unfinished++
				continue
			}
			b := rep.bound(runs)
			ms = append(ms, r.Makespan.Hours())
			if b > 0 {
				ob = append(ob, ratio(r.Makespan, b))
			}
			lo = append(lo, r.Lost.Hours())
			of = append(of, r.LostOverFloor())
			wf = append(wf, r.WantedOverFloor())
			bu = append(bu, r.Busy)
			wa = append(wa, r.Loss.Waiting.Hours())
			rb = append(rb, r.Loss.Rebooting.Hours())
			rt = append(rt, r.Loss.Returning.Hours())
			fh = append(fh, r.Loss.Failed.Hours())
			dr = append(dr, r.Loss.Draining.Hours())
			ow = append(ow, r.Old.NodeHours)
			if r.Old.Jobs > 0 {
				oe = append(oe, r.OldLastEnd.Hours())
			}
			fa = append(fa, float64(r.Failed))
			bo = append(bo, float64(r.BOSCalls)/float64(max(r.Nodes, 1)))
			st.maxOut = max(st.maxOut, r.MaxOut)
			st.step = r.Step
		}
		st.makespan, st.overBound, st.lost, st.overFloor, st.busyAt = spreadOf(ms), spreadOf(ob), spreadOf(lo), spreadOf(of), spreadOf(bu)
		st.waiting, st.rebooting, st.returning, st.failedH, st.drain = spreadOf(wa), spreadOf(rb), spreadOf(rt), spreadOf(fh), spreadOf(dr)
		st.oldWork, st.oldEnd, st.nOldEnd = spreadOf(ow), spreadOf(oe), len(oe)
		st.wantedOverFloor = spreadOf(wf)
		st.failed, st.bosPerNode = spreadOf(fa), spreadOf(bo)
		out[i] = st
	}
	return out
}

// oldEndText shows when the last job started on a node still to reboot
// ended: over the seeds that had one, and how many did when not all.
func (s stats) oldEndText(seeds int) string {
	switch n := s.nOldEnd; {
	case n == 0:
		return "-"
	case n < seeds:
		return fmt.Sprintf("%s (%d of %d seeds)", s.oldEnd.text(1), n, seeds)
	}
	return s.oldEnd.text(1)
}

// meets reports whether a crus strategy meets the goal in a window: never
// if a seed's run did not finish, or the bound is unknown.
func (s stats) meets() bool {
	return s.unfinished == 0 && s.overBound.n > 0 && s.overBound.med <= goalMakespan && s.overFloor.med <= goalLost && s.maxOut <= s.step
}

// best returns the crus strategy closest to the bound in a window among
// those that meet the lost-capacity and cap parts of the goal, or closest
// to the bound overall if none does; false if there is no crus strategy.
func best(sts []stats) (stats, bool) {
	var out stats
	found, foundMeets := false, false
	for _, s := range sts {
		if isReference(s.name) {
			continue
		}
		meets := s.unfinished == 0 && s.overFloor.med <= goalLost && s.maxOut <= s.step
		better := !found || (meets && !foundMeets) || (meets == foundMeets && s.overBound.med < out.overBound.med)
		if better {
			out, found, foundMeets = s, true, meets
		}
	}
	return out, found
}

// sweep prints, per window, every strategy's median and range over the
// seeds, then the best crus strategy of each window against the goal.
func (rep report) sweep() error {
	nSeeds := len(rep.windows[0].runs)
	type summary struct {
		window string
		best   stats
		ok     bool
		loaded bool // every run found the cluster as busy as -min-busy asks
		// same names the window asked for earlier that started at the
		// same point (-min-busy moved both to the end of a gap, or -days
		// named it twice): its runs are that window's again, not counted.
		same string
	}
	firstAt := map[time.Duration]string{} // the window asked for first, by start
	var sums []summary
	for _, w := range rep.windows {
		first := w.runs[0][0]
		fmt.Fprintf(rep.w, "\n%s (median [min–max] over %d seeds)\n", rep.startLine(first, w.start), nSeeds)
		sts := rep.statsOf(w)
		header := []string{"strategy", "makespan h", "÷ bound", "lost / floor", "if jobs wait", "waiting node-h", "rebooting", "returning", "failed",
			"draining node-h", "old-node jobs node-h", "their last end h", "max out", "failed nodes", "BOS calls / node"}
		var rows [][]string
		for _, s := range sts {
			cap := fmt.Sprint(s.maxOut)
			if s.step > 0 {
				cap += " / " + fmt.Sprint(s.step)
			}
			if s.unfinished == nSeeds {
				cap = unknown
			}
			name := s.name
			if s.unfinished > 0 {
				name += fmt.Sprintf(" (unfinished in %d of %d seeds)", s.unfinished, nSeeds)
			}
			rows = append(rows, []string{name, s.makespan.text(1), s.overBound.text(2), s.overFloor.text(2), s.wantedOverFloor.text(2), s.waiting.text(1),
				s.rebooting.text(1), s.returning.text(1), s.failedH.text(1), s.drain.text(1), s.oldWork.text(1), s.oldEndText(nSeeds), cap,
				s.failed.text(0), s.bosPerNode.text(2)})
		}
		if err := rep.table(header, rows); err != nil {
			return err
		}
		loaded := true
		for _, runs := range w.runs {
			for _, r := range runs {
				loaded = loaded && r.Loaded
			}
		}
		same, seen := firstAt[first.Start]
		if !seen {
			firstAt[first.Start] = windowName(w.start)
		}
		if b, ok := best(sts); ok {
			sums = append(sums, summary{windowName(first.Start), b, b.meets() && loaded, loaded, same})
		}
	}
	if len(sums) == 0 || !slices.Contains(rep.names, "reboot-asap") { // (no bound to meet)
		return nil
	}
	met, counted := 0, 0
	var rows [][]string
	dup := 0
	for _, s := range sums {
		goal := "no"
		if s.loaded && s.same == "" {
			counted++
		}
		switch {
		case s.same != "":
			goal, dup = fmt.Sprintf("not counted: the same start as %s asked", s.same), dup+1
		case !s.loaded:
			goal = fmt.Sprintf("not counted: not loaded (under %.0f%% busy)", 100*rep.minBusy)
		case s.ok:
			goal, met = "yes", met+1
		case s.best.unfinished > 0:
			goal = "no (unfinished)"
		case s.best.overBound.n == 0:
			goal = "no (no bound: reboot-asap unfinished)"
		}
		rows = append(rows, []string{s.window, s.best.name, s.best.overBound.text(2), s.best.overFloor.text(2), fmt.Sprint(s.best.maxOut), goal})
	}
	var left []string
	if n := len(sums) - counted - dup; n > 0 {
		left = append(left, fmt.Sprintf("%d not loaded", n))
	}
	if dup > 0 {
		left = append(left, fmt.Sprintf("%d starting where an earlier one did", dup))
	}
	if n := len(rep.pastEnd); n > 0 {
		left = append(left, fmt.Sprintf("%d past the trace's end, not run", n))
	}
	note := ""
	if len(left) > 0 {
		note = " (not counted: " + strings.Join(left, ", ") + ")"
	}
	fmt.Fprintf(rep.w, "\nbest crus strategy per window (median over seeds; goal: ≤ %.1f× the bound, ≤ %.1f× the floor, never over the step): met in %d of %d windows%s\n",
		goalMakespan, goalLost, met, counted, note)
	return rep.table([]string{"window", "best crus strategy", "÷ bound", "lost / floor", "max out", "goal met"}, rows)
}
