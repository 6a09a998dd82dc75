package web

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"time"

	"github.com/crus-go/crus"
)

// TimelineOptions tune Timeline. The zero value is usable.
type TimelineOptions struct {
	// Width of the picture in pixels. Default 960.
	Width int
	// Now ends the picture of a session still in progress (its nodes in
	// flight count as out of service until then). Zero: the session's
	// last recorded time.
	Now time.Time
}

// MaxTimelineRows bounds the rows of a timeline: a session with more
// steps (2,500 for 160,000 nodes in steps of 32) draws each row for a run
// of consecutive steps, so that the picture keeps its size.
const MaxTimelineRows = 180

// stepSpan is what the timeline draws for one step, or for a run of
// consecutive steps (step to lastStep).
type stepSpan struct {
	step, lastStep       int
	nodes, failed        int
	first, last          time.Time // first drain request, last outcome (or now)
	drainFrom, drainTo   time.Time
	rebootFrom, rebootTo time.Time
	returnFrom, returnTo time.Time
	open                 bool
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Timeline writes an SVG picture of a session: one bar per step, split
// into its drain, reboot and return phases (from the nodes' timestamps),
// and below it the number of nodes out of service over time with the cap
// (upgrade_step_size) beside it. The page shows the same picture. A
// session of more than MaxTimelineRows steps draws a row for each run of
// consecutive steps.
func Timeline(w io.Writer, s *crus.Session, opts TimelineOptions) error {
	width := opts.Width
	if width <= 0 {
		width = 960
	}
	p := &s.Progress
	start := p.StartedAt
	if start.IsZero() {
		start = p.CreatedAt
	}
	end := p.EndedAt
	now := opts.Now
	spans := map[int]*stepSpan{}
	type edge struct {
		t time.Time
		d int
	}
	edges := make([]edge, 0, 2*len(p.Nodes))
	for i := range p.Nodes {
		n := &p.Nodes[i]
		if n.DrainRequested.IsZero() {
			continue
		}
		start = earliest(start, n.DrainRequested)
		stop := n.Finished
		if n.Phase.InFlight() || stop.IsZero() {
			stop = time.Time{} // still out: until the end of the picture
		}
		end = latest(end, latest(n.Finished, latest(n.Returned, latest(n.Booted, latest(n.RebootRequested, latest(n.Drained, n.DrainRequested))))))
		edges = append(edges, edge{n.DrainRequested, 1})
		if !stop.IsZero() {
			edges = append(edges, edge{stop, -1})
		}
		if n.Step == 0 {
			continue
		}
		sp := spans[n.Step]
		if sp == nil {
			sp = &stepSpan{step: n.Step}
			spans[n.Step] = sp
		}
		sp.nodes++
		if n.Outcome == crus.OutcomeFailed {
			sp.failed++
		}
		sp.first = earliest(sp.first, n.DrainRequested)
		sp.drainFrom = earliest(sp.drainFrom, n.DrainRequested)
		sp.drainTo = latest(sp.drainTo, n.Drained)
		sp.rebootFrom = earliest(sp.rebootFrom, n.RebootRequested)
		sp.rebootTo = latest(sp.rebootTo, n.Booted)
		sp.returnFrom = earliest(sp.returnFrom, n.Booted)
		sp.returnTo = latest(sp.returnTo, n.Returned)
		if n.Phase != crus.PhaseDone {
			sp.open = true
		}
		sp.last = latest(sp.last, n.Finished)
	}
	if !now.IsZero() && !s.Completed {
		end = latest(end, now)
	}
	if start.IsZero() {
		start = time.Now()
	}
	if !end.After(start) {
		end = start.Add(time.Minute)
	}
	steps := make([]*stepSpan, 0, len(spans))
	for _, sp := range spans {
		if sp.open {
			sp.last = end
		}
		steps = append(steps, sp)
	}
	slices.SortFunc(steps, func(a, b *stepSpan) int { return a.step - b.step })
	steps = mergeSteps(steps, MaxTimelineRows)

	const left, right, top = 90, 20, 46
	plotW := float64(width - left - right)
	rowH := 18.0
	if len(steps) > 0 {
		rowH = math.Max(3, math.Min(18, 540/float64(len(steps))))
	}
	stepsH := rowH * float64(max(len(steps), 1))
	const outH = 120.0
	outTop := top + stepsH + 40
	height := int(outTop + outH + 50)
	span := end.Sub(start)
	x := func(t time.Time) float64 {
		if t.IsZero() {
			return left
		}
		return left + plotW*float64(t.Sub(start))/float64(span)
	}

	b := bufio.NewWriter(w)
	pf := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	pf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	pf(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	c := s.Counts()
	strategy := s.Strategy
	if strategy == "" {
		strategy = crus.StrategyClassic
	}
	pf(`<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc(fmt.Sprintf("session %s — %s, step size %d", s.UpgradeID, strategy, s.StepSize)))
	pf(`<text x="%d" y="34" fill="#444">%s</text>`+"\n", left, esc(fmt.Sprintf("%d nodes: %d upgraded, %d failed, %d skipped, %d untouched, %d in flight; %s",
		c.Nodes, c.Upgraded, c.Failed, c.Skipped, c.Untouched, c.InFlight, duration(end.Sub(start)))))

	// Time axis ticks, shared by both panels.
	tick := niceTick(span)
	for t := start.Add(tick); !t.After(end); t = t.Add(tick) {
		xx := x(t)
		pf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", xx, top, xx, outTop+outH)
		pf(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#666">%s</text>`+"\n", xx, outTop+outH+14, esc(duration(t.Sub(start))))
	}

	// One row per step (or batch, see Strategy.Batches).
	unit, units := "step", "steps"
	if strategy.Batches() {
		unit, units = "batch", "batches"
	}
	colours := []struct{ name, fill string }{{"drain", "#f0a030"}, {"reboot", "#3070d0"}, {"return", "#9050c0"}}
	for i, sp := range steps {
		y := top + float64(i)*rowH
		h := math.Max(rowH-2, 1)
		name := fmt.Sprintf("%s %d", unit, sp.step)
		if sp.lastStep > sp.step {
			name = fmt.Sprintf("%s %d–%d", units, sp.step, sp.lastStep)
		}
		if rowH >= 10 {
			pf(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+h-3, esc(name))
		}
		pf(`<rect class="step" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#dfe6ee"><title>%s</title></rect>`+"\n",
			x(sp.first), y, math.Max(x(sp.last)-x(sp.first), 1), h,
			esc(fmt.Sprintf("%s: %d nodes, %d failed, %s", name, sp.nodes, sp.failed, duration(sp.last.Sub(sp.first)))))
		for j, seg := range [][2]time.Time{{sp.drainFrom, sp.drainTo}, {sp.rebootFrom, sp.rebootTo}, {sp.returnFrom, sp.returnTo}} {
			if seg[0].IsZero() || seg[1].IsZero() || seg[1].Before(seg[0]) {
				continue
			}
			pf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.85"><title>%s</title></rect>`+"\n",
				x(seg[0]), y+h*0.2, math.Max(x(seg[1])-x(seg[0]), 1), h*0.6, colours[j].fill,
				esc(fmt.Sprintf("%s %s: %s", name, colours[j].name, duration(seg[1].Sub(seg[0])))))
		}
		if sp.failed > 0 {
			pf(`<circle cx="%.1f" cy="%.1f" r="%.1f" fill="#d03030"><title>%d failed</title></circle>`+"\n", x(sp.last)+4, y+h/2, math.Min(h/2, 4), sp.failed)
		}
	}
	lx := float64(left)
	for _, col := range colours {
		pf(`<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n", lx, top+stepsH+12, col.fill, lx+14, top+stepsH+21, col.name)
		lx += 70
	}
	pf(`<circle cx="%.1f" cy="%.1f" r="4" fill="#d03030"/><text x="%.1f" y="%.1f">failed nodes</text>`+"\n", lx+5, top+stepsH+17, lx+14, top+stepsH+21)

	// Nodes out of service over time, binned per pixel column (the most
	// out within the column), with the cap.
	// At equal times, nodes leave before others come: a step that ends
	// as the next begins never had both out at once.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.d - b.d
	})
	cols := int(plotW)
	peak := make([]int, cols+1)
	out, e := 0, 0
	for col := 0; col <= cols; col++ {
		colEnd := start.Add(time.Duration(float64(span) * float64(col+1) / float64(cols)))
		peak[col] = out
		for e < len(edges) && edges[e].t.Before(colEnd) {
			out += edges[e].d
			peak[col] = max(peak[col], out)
			e++
		}
	}
	limit := max(s.StepSize, 1)
	scale := float64(max(limit, slices.Max(peak)))
	yOut := func(n int) float64 { return outTop + outH - outH*float64(n)/scale }
	pf(`<text x="%d" y="%.1f" text-anchor="end">out of</text><text x="%d" y="%.1f" text-anchor="end">service</text>`+"\n", left-6, outTop+outH/2-2, left-6, outTop+outH/2+11)
	pf(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", left, outTop+outH, left+plotW, outTop+outH)
	pf(`<line class="cap" x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d03030" stroke-dasharray="5 3"/>`+"\n", left, yOut(limit), left+plotW, yOut(limit))
	pf(`<text x="%.1f" y="%.1f" text-anchor="end" fill="#d03030">cap %d</text>`+"\n", left+plotW, yOut(limit)-3, limit)
	pf(`<path class="out" fill="#3070d0" fill-opacity="0.25" stroke="#3070d0" d="M%d %.1f`, left, outTop+outH)
	for col, n := range peak {
		pf(` L%.1f %.1f L%.1f %.1f`, float64(left+col), yOut(n), float64(left+col+1), yOut(n))
	}
	pf(` L%.1f %.1f Z"/>`+"\n", float64(left+cols+1), outTop+outH)
	pf(`<text x="%d" y="%.1f" fill="#666">%s</text>`+"\n", left, float64(height)-8, esc(fmt.Sprintf("started %s UTC; most out at once: %d", start.UTC().Format("2006-01-02 15:04"), slices.Max(peak))))
	pf("</svg>\n")
	return b.Flush()
}

// mergeSteps returns steps (sorted by step) in at most rows rows: each
// row a run of consecutive steps, all runs of the same length but the
// last.
func mergeSteps(steps []*stepSpan, rows int) []*stepSpan {
	for _, sp := range steps {
		sp.lastStep = sp.step
	}
	if len(steps) <= rows {
		return steps
	}
	per := (len(steps) + rows - 1) / rows
	out := make([]*stepSpan, 0, rows)
	for i := 0; i < len(steps); i += per {
		run := steps[i:min(i+per, len(steps))]
		m := *run[0]
		for _, sp := range run[1:] {
			m.lastStep = sp.step
			m.nodes += sp.nodes
			m.failed += sp.failed
			m.first = earliest(m.first, sp.first)
			m.last = latest(m.last, sp.last)
			m.drainFrom, m.drainTo = earliest(m.drainFrom, sp.drainFrom), latest(m.drainTo, sp.drainTo)
			m.rebootFrom, m.rebootTo = earliest(m.rebootFrom, sp.rebootFrom), latest(m.rebootTo, sp.rebootTo)
			m.returnFrom, m.returnTo = earliest(m.returnFrom, sp.returnFrom), latest(m.returnTo, sp.returnTo)
			m.open = m.open || sp.open
		}
		out = append(out, &m)
	}
	return out
}

func esc(s string) string { return html.EscapeString(s) }

// niceTick returns a tick interval giving 4 to 12 ticks over span.
func niceTick(span time.Duration) time.Duration {
	for _, t := range []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour} {
		if span/t <= 12 {
			return t
		}
	}
	return 30 * 24 * time.Hour
}

// duration formats d as "3h25m", "12m" or "40s".
func duration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
