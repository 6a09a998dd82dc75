package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/wlm"
)

// record counts one call and its latency.
func (m *Metrics) record(backend, call string, start time.Time, err error) {
	m.latency.WithLabelValues(backend, call).Observe(time.Since(start).Seconds())
	m.calls.WithLabelValues(backend, call, resultOf(err)).Inc()
}

func resultOf(err error) string {
	if err == nil {
		return "ok"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	if perNode, rest := batch.Split(err); rest == nil && len(perNode) > 0 {
		return "partial"
	}
	return "error"
}

// WrapGroups returns g with its calls counted. The result implements
// hsm.NIDResolver and hsm.GroupCreator exactly when g does, so the
// executor finds the same capabilities.
func (m *Metrics) WrapGroups(g hsm.GroupStore) hsm.GroupStore {
	base := groups{m: m, next: g}
	nid, isNID := g.(hsm.NIDResolver)
	cr, isCreator := g.(hsm.GroupCreator)
	switch {
	case isNID && isCreator:
		return struct {
			groups
			nids
			creator
		}{base, nids{m, nid}, creator{m, cr}}
	case isNID:
		return struct {
			groups
			nids
		}{base, nids{m, nid}}
	case isCreator:
		return struct {
			groups
			creator
		}{base, creator{m, cr}}
	}
	return base
}

type groups struct {
	m    *Metrics
	next hsm.GroupStore
}

func (g groups) Members(ctx context.Context, label string) ([]string, error) {
	start := time.Now()
	out, err := g.next.Members(ctx, label)
	g.m.record("hsm", "Members", start, err)
	return out, err
}

func (g groups) AddMembers(ctx context.Context, label string, xnames []string) error {
	start := time.Now()
	err := g.next.AddMembers(ctx, label, xnames)
	g.m.record("hsm", "AddMembers", start, err)
	return err
}

func (g groups) RemoveMembers(ctx context.Context, label string, xnames []string) error {
	start := time.Now()
	err := g.next.RemoveMembers(ctx, label, xnames)
	g.m.record("hsm", "RemoveMembers", start, err)
	return err
}

type nids struct {
	m    *Metrics
	next hsm.NIDResolver
}

func (n nids) NIDs(ctx context.Context, xnames []string) (map[string]int, error) {
	start := time.Now()
	out, err := n.next.NIDs(ctx, xnames)
	n.m.record("hsm", "NIDs", start, err)
	return out, err
}

type creator struct {
	m    *Metrics
	next hsm.GroupCreator
}

func (c creator) CreateGroup(ctx context.Context, label, description string) error {
	start := time.Now()
	err := c.next.CreateGroup(ctx, label, description)
	c.m.record("hsm", "CreateGroup", start, err)
	return err
}

// WrapManager returns w with its calls counted. The result implements
// wlm.JobEnder, wlm.Rebooter and wlm.Scheduler exactly when w does (a
// JobEnder is a wlm.JobEndsFiller too; every result is a
// wlm.NodesFiller), and wlm.Steerer exactly when w
// is both a Steerer and a Scheduler: the executor steers only in the
// scheduled strategy, which needs a Scheduler, so a Steerer that cannot
// book is not passed on (that keeps the combinations down). It reports
// boot times exactly when w does (wlm.BootTimeReporter), and describes
// nodes in w's words (wlm.Describer, wlm.Neutral's if w has none): the
// executor finds a capability by the interface, so a wrapper that hid
// one would change what crus does (without wlm.Scheduler, a scheduled
// session runs as a rolling one).
func (m *Metrics) WrapManager(w wlm.Manager) wlm.Manager {
	base := manager{m: m, next: w}
	je, isJE := w.(wlm.JobEnder)
	rb, isRB := w.(wlm.Rebooter)
	sc, isSC := w.(wlm.Scheduler)
	st, isST := w.(wlm.Steerer)
	isST = isST && isSC
	j, r, s := jobEnder{m, je}, rebooter{m, rb}, scheduler{m, sc}
	ss := steeringScheduler{s, steerer{m, st}}
	switch {
	case isJE && isRB && isST:
		return struct {
			manager
			jobEnder
			rebooter
			steeringScheduler
		}{base, j, r, ss}
	case isJE && isRB && isSC:
		return struct {
			manager
			jobEnder
			rebooter
			scheduler
		}{base, j, r, s}
	case isJE && isRB:
		return struct {
			manager
			jobEnder
			rebooter
		}{base, j, r}
	case isJE && isST:
		return struct {
			manager
			jobEnder
			steeringScheduler
		}{base, j, ss}
	case isJE && isSC:
		return struct {
			manager
			jobEnder
			scheduler
		}{base, j, s}
	case isRB && isST:
		return struct {
			manager
			rebooter
			steeringScheduler
		}{base, r, ss}
	case isRB && isSC:
		return struct {
			manager
			rebooter
			scheduler
		}{base, r, s}
	case isJE:
		return struct {
			manager
			jobEnder
		}{base, j}
	case isRB:
		return struct {
			manager
			rebooter
		}{base, r}
	case isST:
		return struct {
			manager
			steeringScheduler
		}{base, ss}
	case isSC:
		return struct {
			manager
			scheduler
		}{base, s}
	}
	return base
}

type manager struct {
	m    *Metrics
	next wlm.Manager
}

// ReportsBootTime implements wlm.BootTimeReporter: a manager without the
// capability reports false, which the executor reads as its absence.
func (w manager) ReportsBootTime() bool {
	r, ok := w.next.(wlm.BootTimeReporter)
	return ok && r.ReportsBootTime()
}

// Describe implements wlm.Describer in the words of the manager wrapped.
func (w manager) Describe(n wlm.Node) string { return wlm.DescriberOf(w.next).Describe(n) }

func (w manager) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	start := time.Now()
	out, err := w.next.Nodes(ctx, names)
	w.m.record("wlm", "Nodes", start, err)
	return out, err
}

// NodesInto makes every wrapped manager a wlm.NodesFiller: by position
// from one that is (so an adapter's NodesInto serves the executor as it
// would unwrapped), else from its Nodes, matched to the names asked, as
// the executor would match them; counted as Nodes.
func (w manager) NodesInto(ctx context.Context, names []string, out []wlm.Node) error {
	start := time.Now()
	err := wlm.NodesAt(ctx, w.next, names, out)
	w.m.record("wlm", "Nodes", start, err)
	return err
}

func (w manager) Drain(ctx context.Context, names []string, reason string) error {
	start := time.Now()
	err := w.next.Drain(ctx, names, reason)
	w.m.record("wlm", "Drain", start, err)
	return err
}

func (w manager) Resume(ctx context.Context, names []string) error {
	start := time.Now()
	err := w.next.Resume(ctx, names)
	w.m.record("wlm", "Resume", start, err)
	return err
}

func (w manager) Fail(ctx context.Context, names []string, reason string) error {
	start := time.Now()
	err := w.next.Fail(ctx, names, reason)
	w.m.record("wlm", "Fail", start, err)
	return err
}

type jobEnder struct {
	m    *Metrics
	next wlm.JobEnder
}

func (j jobEnder) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	start := time.Now()
	out, err := j.next.JobEnds(ctx, names)
	j.m.record("wlm", "JobEnds", start, err)
	return out, err
}

// JobEndsInto makes every wrapped JobEnder a wlm.JobEndsFiller: by
// position from one that is, else from its map (which is what the
// executor would read otherwise); counted as JobEnds.
func (j jobEnder) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	start := time.Now()
	err := wlm.JobEndsAt(ctx, j.next, names, ends)
	j.m.record("wlm", "JobEnds", start, err)
	return err
}

type rebooter struct {
	m    *Metrics
	next wlm.Rebooter
}

func (r rebooter) Reboot(ctx context.Context, names []string, reason string) error {
	start := time.Now()
	err := r.next.Reboot(ctx, names, reason)
	r.m.record("wlm", "Reboot", start, err)
	return err
}

type scheduler struct {
	m    *Metrics
	next wlm.Scheduler
}

func (s scheduler) Reserve(ctx context.Context, r wlm.Reservation) error {
	start := time.Now()
	err := s.next.Reserve(ctx, r)
	s.m.record("wlm", "Reserve", start, err)
	return err
}

func (s scheduler) Unreserve(ctx context.Context, names []string) error {
	start := time.Now()
	err := s.next.Unreserve(ctx, names)
	s.m.record("wlm", "Unreserve", start, err)
	return err
}

func (s scheduler) Reservations(ctx context.Context, prefix string) ([]wlm.Reservation, error) {
	start := time.Now()
	out, err := s.next.Reservations(ctx, prefix)
	s.m.record("wlm", "Reservations", start, err)
	return out, err
}

type steerer struct {
	m    *Metrics
	next wlm.Steerer
}

func (s steerer) Steer(ctx context.Context, names []string, last bool) error {
	start := time.Now()
	err := s.next.Steer(ctx, names, last)
	s.m.record("wlm", "Steer", start, err)
	return err
}

// steeringScheduler is a scheduler that steers too: WrapManager passes
// wlm.Steerer on only along with wlm.Scheduler.
type steeringScheduler struct {
	scheduler
	steerer
}

// WrapBoot returns b with its calls counted.
func (m *Metrics) WrapBoot(b bos.Orchestrator) bos.Orchestrator { return boot{m: m, next: b} }

type boot struct {
	m    *Metrics
	next bos.Orchestrator
}

func (b boot) CheckTemplate(ctx context.Context, template string) error {
	start := time.Now()
	err := b.next.CheckTemplate(ctx, template)
	b.m.record("bos", "CheckTemplate", start, err)
	return err
}

func (b boot) Reboot(ctx context.Context, req bos.Request) error {
	start := time.Now()
	err := b.next.Reboot(ctx, req)
	b.m.record("bos", "Reboot", start, err)
	return err
}

func (b boot) Status(ctx context.Context, name string, nodes []string) (bos.Status, error) {
	start := time.Now()
	out, err := b.next.Status(ctx, name, nodes)
	b.m.record("bos", "Status", start, err)
	return out, err
}

var (
	_ hsm.GroupStore       = groups{}
	_ wlm.Manager          = manager{}
	_ wlm.BootTimeReporter = manager{}
	_ wlm.Scheduler        = steeringScheduler{}
	_ wlm.Steerer          = steeringScheduler{}
	_ bos.Orchestrator     = boot{}
)
