package crus

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Rollout says how a session chooses and paces its nodes. It is part of the
// Spec (its fields sit at the top level of the JSON record) and is persisted
// with the session, so a session taken up by another executor plans the
// same way. The zero value is the original CRUS algorithm: fixed slices of
// the sorted list, each step waiting for its slowest node before any of its
// nodes is rebooted.
type Rollout struct {
	// Strategy is "classic" (default: whole steps, one boot session per
	// step once every node of the step is drained), "rolling" (keep at
	// most upgrade_step_size nodes out at any instant: boot each node as
	// soon as it is drained and take the next one as soon as one returns)
	// or "scheduled" (rolling, and each pending node is given a slot, the
	// time it is expected to be taken: the node expected free first gets
	// the first place to come free; a node whose slot comes soon after its
	// jobs end is booked with the workload manager (wlm.Scheduler) so that
	// its scheduler starts there only jobs that end by then; when its slot
	// comes a node is taken, idle ones first; while the session runs, the
	// nodes it has still to take are the scheduler's last choice for new
	// jobs where the workload manager can steer (wlm.Steerer; Slurm: node
	// weights), so that an arriving job goes to a node already upgraded
	// rather than hold back one that must still reboot. Without
	// wlm.Scheduler, or with one that answers wlm.ErrUnsupported
	// (slurmrestd without a CLI fallback), it is rolling with the job_end
	// order).
	Strategy Strategy `json:"strategy,omitzero"`
	// Order chooses which pending nodes are taken next: "listed" (default:
	// the sorted starting list), "idle_first" (nodes running nothing
	// first) or "job_end" (nodes whose jobs are expected to end soonest,
	// by the time limits the workload manager reports; a workload manager
	// without wlm.JobEnder gives idle_first). The scheduled strategy's
	// default is "job_end", the order it takes nodes in where it cannot
	// book. Nodes put back by a drain timeout come after every node not
	// yet tried.
	Order Order `json:"order,omitzero"`
	// Lookahead bounds how many pending nodes (the first ones in the
	// sorted list) are observed and ranked by Order at each decision.
	// Default 0 means max(4 × upgrade_step_size, 1000).
	Lookahead int `json:"lookahead,omitzero"`
	// BootBatchSize bounds the nodes of one boot session in the rolling
	// and scheduled strategies. Default 0: every node found drained at a
	// decision is booted in one session.
	BootBatchSize int `json:"boot_batch_size,omitzero"`
	// RebootTime is how long a node is expected to stay out of service
	// once taken (drained idle, rebooted, back): the length of a slot of
	// the scheduled strategy. Default 15m.
	RebootTime Duration `json:"reboot_time,omitzero"`
	// BookingSlack: the scheduled strategy books a node only if, once its
	// jobs have ended, it is expected to wait at most this long, idle, for
	// its slot. Longer keeps more jobs off the nodes about to be taken (a
	// shorter upgrade, when time limits say little) and leaves more
	// capacity idle. Default: a quarter of reboot_time.
	BookingSlack Duration `json:"booking_slack,omitzero"`

	// MaxFailures stops the session from taking new nodes once more than
	// this many of its nodes have failed (cumulative). Nodes in flight
	// finish; the session ends "aborted" and the nodes it did not take
	// stay in service, untouched. 0: no limit.
	MaxFailures int `json:"max_failures,omitzero"`
	// MaxFailurePercent does the same for a share of the session's nodes
	// (0 < p ≤ 100). 0: no limit.
	MaxFailurePercent float64 `json:"max_failure_percent,omitzero"`

	// DrainTimeout bounds how long a node may keep running jobs after its
	// drain was requested. After it, the node is released back to service
	// and tried again later, or failed if DrainTimeoutAction is "fail".
	// A drain that did not take (the workload manager out, or someone
	// resuming the node) counts from when the workload manager showed it
	// again: the jobs that started meanwhile get the whole timeout.
	// 0: wait as long as the jobs run.
	DrainTimeout Duration `json:"drain_timeout,omitzero"`
	// DrainTimeoutAction is "release" (default) or "fail".
	DrainTimeoutAction DrainTimeoutAction `json:"drain_timeout_action,omitzero"`

	// Canary lists the sizes of the first batches (e.g. [1, 5]), each at
	// most upgrade_step_size. Each canary batch must be over (every node
	// with an outcome) before the next batch starts.
	Canary []int `json:"canary,omitempty"`
	// CanaryApproval holds the session after the canary batches until
	// Executor.Approve is called.
	CanaryApproval bool `json:"canary_approval,omitzero"`

	// MaintenanceWindows, if any, restrict when new nodes are taken: only
	// while one of them contains the current time. Nodes already taken
	// finish outside the windows.
	MaintenanceWindows []Window `json:"maintenance_windows,omitempty"`
}

// Strategy names how a session paces its nodes.
type Strategy string

// Strategies.
const (
	StrategyClassic   Strategy = "classic"   // fixed steps with a whole-step barrier (original CRUS)
	StrategyRolling   Strategy = "rolling"   // a window of at most step size nodes, refilled as nodes return
	StrategyScheduled Strategy = "scheduled" // rolling, with each node's slot booked ahead with the workload manager
)

// Batches reports whether the strategy numbers batches as it takes them
// (rolling and scheduled: Progress.Step is the last batch, Steps grows
// with it), rather than planning its steps ahead (classic, the default).
func (s Strategy) Batches() bool { return s == StrategyRolling || s == StrategyScheduled }

// Order names how a session ranks pending nodes.
type Order string

// Orders.
const (
	OrderListed    Order = "listed"     // the sorted starting list
	OrderIdleFirst Order = "idle_first" // nodes running no job first
	OrderJobEnd    Order = "job_end"    // nodes whose jobs are expected to end soonest first
)

// DrainTimeoutAction says what happens to a node still busy at its drain
// timeout.
type DrainTimeoutAction string

// Drain timeout actions.
const (
	DrainRelease DrainTimeoutAction = "release" // resume it and try it again later
	DrainFail    DrainTimeoutAction = "fail"    // fail it
)

// DefaultLookahead is the least number of pending nodes ranked at once when
// Rollout.Lookahead is not set.
const DefaultLookahead = 1000

// IsClassic reports whether the rollout is exactly the original CRUS
// algorithm (no option set): fixed slices recorded when the session was
// created, taken in order.
func (r Rollout) IsClassic() bool {
	return (r.Strategy == "" || r.Strategy == StrategyClassic) &&
		(r.Order == "" || r.Order == OrderListed) &&
		r.MaxFailures == 0 && r.MaxFailurePercent == 0 && r.DrainTimeout == 0 &&
		len(r.Canary) == 0 && !r.CanaryApproval && len(r.MaintenanceWindows) == 0 &&
		r.Lookahead == 0 && r.BootBatchSize == 0 && r.RebootTime == 0 && r.BookingSlack == 0
}

// rolling reports whether the strategy has no barrier between steps.
func (r Rollout) rolling() bool {
	return r.Strategy == StrategyRolling || r.Strategy == StrategyScheduled
}

// lookahead returns the number of pending nodes ranked at once.
func (r Rollout) lookahead(step int) int {
	if r.Lookahead > 0 {
		return r.Lookahead
	}
	return max(4*step, DefaultLookahead)
}

func (r Rollout) withDefaults() Rollout {
	if r.Strategy == "" {
		r.Strategy = StrategyClassic
	}
	if r.Order == "" {
		r.Order = OrderListed
	}
	if r.DrainTimeout > 0 && r.DrainTimeoutAction == "" {
		r.DrainTimeoutAction = DrainRelease
	}
	return r
}

// validate adds a problem per bad field.
func (r Rollout) validate(step int, limit BootLimit, floors bool, add func(field string, value any, format string, args ...any)) {
	switch r.Strategy {
	case "", StrategyClassic, StrategyRolling, StrategyScheduled:
	default:
		add("strategy", r.Strategy, "%q is not one of %q, %q, %q", r.Strategy, StrategyClassic, StrategyRolling, StrategyScheduled)
	}
	switch r.Order {
	case "", OrderListed, OrderIdleFirst, OrderJobEnd:
	default:
		add("order", r.Order, "%q is not one of %q, %q, %q", r.Order, OrderListed, OrderIdleFirst, OrderJobEnd)
	}
	if r.Lookahead < 0 {
		add("lookahead", r.Lookahead, "must not be negative, got %d", r.Lookahead)
	}
	if r.BootBatchSize < 0 {
		add("boot_batch_size", r.BootBatchSize, "must not be negative, got %d", r.BootBatchSize)
	}
	if r.BootBatchSize > 0 && !r.rolling() {
		add("boot_batch_size", r.BootBatchSize, "applies to the %q and %q strategies only (classic boots each step in one session)", StrategyRolling, StrategyScheduled)
	}
	if r.rolling() && limit == LimitLabel {
		add("boot_limit", limit, "%q cannot be used with the %q strategy: the upgrading group then holds nodes still running jobs, which a boot limited by label would reboot", LimitLabel, r.Strategy)
	}
	if r.RebootTime < 0 {
		add("reboot_time", r.RebootTime, "must not be negative")
	}
	if r.RebootTime > 0 && r.Strategy != StrategyScheduled {
		add("reboot_time", r.RebootTime, "applies to the %q strategy only", StrategyScheduled)
	}
	if r.BookingSlack < 0 {
		add("booking_slack", r.BookingSlack, "must not be negative")
	}
	if r.BookingSlack > 0 && r.Strategy != StrategyScheduled {
		add("booking_slack", r.BookingSlack, "applies to the %q strategy only", StrategyScheduled)
	}
	if r.MaxFailures < 0 {
		add("max_failures", r.MaxFailures, "must not be negative, got %d", r.MaxFailures)
	}
	if p := r.MaxFailurePercent; p < 0 || p > 100 || math.IsNaN(p) {
		add("max_failure_percent", p, "must be a percentage between 0 and 100, got %g", p)
	}
	if r.DrainTimeout < 0 {
		add("drain_timeout", r.DrainTimeout, "must not be negative")
	} else if floors && r.DrainTimeout > 0 && r.DrainTimeout < MinTimeout {
		add("drain_timeout", r.DrainTimeout, "must be at least %s (0: none), got %s", MinTimeout, r.DrainTimeout)
	}
	switch r.DrainTimeoutAction {
	case "", DrainRelease, DrainFail:
		if r.DrainTimeoutAction != "" && r.DrainTimeout == 0 {
			add("drain_timeout_action", r.DrainTimeoutAction, "needs a drain_timeout")
		}
	default:
		add("drain_timeout_action", r.DrainTimeoutAction, "%q is not one of %q, %q", r.DrainTimeoutAction, DrainRelease, DrainFail)
	}
	for i, c := range r.Canary {
		if c < 1 || (step >= 1 && c > step) {
			add(fmt.Sprintf("canary[%d]", i), c, "must be between 1 and upgrade_step_size (%d), got %d", step, c)
		}
	}
	if r.CanaryApproval && len(r.Canary) == 0 {
		add("canary_approval", r.CanaryApproval, "needs canary batches to approve")
	}
	for i, w := range r.MaintenanceWindows {
		if err := w.Validate(); err != nil {
			add(fmt.Sprintf("maintenance_windows[%d]", i), w, "%v", err)
		}
	}
}

// Window is a recurring maintenance window: from Start to End (local
// times "15:04" in TimeZone) on the given Days. A window whose End is not
// after its Start runs past midnight into the next day; Days names the day
// it starts. Like kured's time windows, Contains is a pure check.
type Window struct {
	// Days lists the days the window opens: "mon", "tue", ... or full
	// names, any case. Empty means every day.
	Days []string `json:"days,omitempty"`
	// Start and End are "HH:MM" local times. Equal times mean all day.
	Start string `json:"start"`
	End   string `json:"end"`
	// TimeZone is an IANA zone such as "Europe/Zurich". Empty means UTC.
	// It is looked up with time.LoadLocation (the system's zone database,
	// or Go's), the only thing Contains reads besides its argument.
	TimeZone string `json:"time_zone,omitempty"`
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// parsed is a Window ready for Contains.
type parsedWindow struct {
	days       [7]bool
	start, dur time.Duration // from local midnight; length
	loc        *time.Location
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day like \"22:00\"", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

func (w Window) parse() (parsedWindow, error) {
	var p parsedWindow
	var errs []string
	if len(w.Days) == 0 {
		for i := range p.days {
			p.days[i] = true
		}
	}
	for _, d := range w.Days {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			errs = append(errs, fmt.Sprintf("day %q is not a day of the week", d))
			continue
		}
		p.days[wd] = true
	}
	start, err := parseClock(w.Start)
	if err != nil {
		errs = append(errs, "start "+err.Error())
	}
	end, err := parseClock(w.End)
	if err != nil {
		errs = append(errs, "end "+err.Error())
	}
	p.start, p.dur = start, end-start
	if p.dur <= 0 {
		p.dur += 24 * time.Hour
	}
	p.loc = time.UTC
	if w.TimeZone != "" {
		loc, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			errs = append(errs, fmt.Sprintf("time zone %q: %v", w.TimeZone, err))
		} else {
			p.loc = loc
		}
	}
	if len(errs) > 0 {
		return p, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return p, nil
}

// Validate reports a malformed window.
func (w Window) Validate() error {
	_, err := w.parse()
	return err
}

// Contains reports whether t falls inside the window. A malformed window
// contains nothing.
func (w Window) Contains(t time.Time) bool {
	p, err := w.parse()
	return err == nil && p.contains(t)
}

func (p parsedWindow) contains(t time.Time) bool { return !p.closes(t).IsZero() }

// closes returns when the occurrence of the window that contains t ends;
// zero if none contains t.
func (p parsedWindow) closes(t time.Time) time.Time {
	local := t.In(p.loc)
	y, m, d := local.Date()
	// The window that contains t opened today or, past midnight, on an
	// earlier day.
	var end time.Time
	for back := 0; back <= 1; back++ {
		day := time.Date(y, m, d-back, 0, 0, 0, 0, p.loc)
		if !p.days[day.Weekday()] {
			continue
		}
		// Wall-clock start, so a DST change does not shift the window.
		h, mi := int(p.start/time.Hour), int(p.start%time.Hour/time.Minute)
		open := time.Date(day.Year(), day.Month(), day.Day(), h, mi, 0, 0, p.loc)
		if c := open.Add(p.dur); !t.Before(open) && t.Before(c) && c.After(end) {
			end = c
		}
	}
	return end
}

// next returns the earliest time at or after t inside the window, within a
// week and a day; zero if none.
func (p parsedWindow) next(t time.Time) time.Time {
	if p.contains(t) {
		return t
	}
	local := t.In(p.loc)
	y, m, d := local.Date()
	h, mi := int(p.start/time.Hour), int(p.start%time.Hour/time.Minute)
	for ahead := 0; ahead <= 8; ahead++ {
		day := time.Date(y, m, d+ahead, 0, 0, 0, 0, p.loc)
		if !p.days[day.Weekday()] {
			continue
		}
		open := time.Date(day.Year(), day.Month(), day.Day(), h, mi, 0, 0, p.loc)
		if !open.Before(t) {
			return open
		}
	}
	return time.Time{}
}

// windows is the parsed maintenance windows of a rollout; nil means always
// open.
type windows []parsedWindow

func (r Rollout) windows() windows {
	var ws windows
	for _, w := range r.MaintenanceWindows {
		if p, err := w.parse(); err == nil {
			ws = append(ws, p)
		}
	}
	if len(r.MaintenanceWindows) > 0 && len(ws) == 0 {
		return windows{} // every window malformed: never open
	}
	return ws
}

// open reports whether new nodes may be taken at t, and if not, when the
// next window opens (zero: unknown).
func (ws windows) open(t time.Time) (bool, time.Time) {
	if ws == nil {
		return true, time.Time{}
	}
	var next time.Time
	for _, w := range ws {
		if w.contains(t) {
			return true, time.Time{}
		}
		if n := w.next(t); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return false, next
}

// closes returns when the windows, open at t, close: the end of the
// stretch of open windows (one that opens as another closes carries it
// on) that contains t. Zero if there are no windows (always open) or none
// is open at t.
func (ws windows) closes(t time.Time) time.Time {
	if ws == nil {
		return time.Time{}
	}
	end := t
	for range 16 { // a week of back-to-back daily windows, and more
		next := end
		for _, w := range ws {
			if c := w.closes(end); c.After(next) {
				next = c
			}
		}
		if !next.After(end) {
			break
		}
		end = next
	}
	if end.Equal(t) {
		return time.Time{}
	}
	return end
}

// failureBudget returns the most failed nodes the session tolerates before
// it stops taking new nodes, for a session of n nodes; -1: no limit.
func (r Rollout) failureBudget(n int) int {
	budget := -1
	if r.MaxFailures > 0 {
		budget = r.MaxFailures
	}
	if r.MaxFailurePercent > 0 {
		b := int(math.Floor(r.MaxFailurePercent / 100 * float64(n)))
		if budget < 0 || b < budget {
			budget = b
		}
	}
	return budget
}

// canarySize returns the size of batch number b (from 1) and whether it is
// a canary batch.
func (r Rollout) canarySize(b int) (int, bool) {
	if b >= 1 && b <= len(r.Canary) {
		return r.Canary[b-1], true
	}
	return 0, false
}

// plannedSteps returns the steps a classic rollout plans for taken nodes,
// with its canary batches first, and the step of the i-th taken node.
func (r Rollout) plannedSteps(taken, step int) (steps int, stepOf func(i int) int) {
	canary := slices.Clone(r.Canary)
	sum := 0
	for _, c := range canary {
		sum += c
	}
	stepOf = func(i int) int {
		for j, c := range canary {
			if i < c {
				return j + 1
			}
			i -= c
		}
		return len(canary) + i/step + 1
	}
	if taken == 0 {
		return 0, stepOf
	}
	return stepOf(taken - 1), stepOf
}
