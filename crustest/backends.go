package crustest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// GroupStore is what the kit's HSM implements: an hsm.GroupStore that can
// also create groups and look up node IDs.
type GroupStore interface {
	hsm.GroupStore
	hsm.GroupCreator
	hsm.NIDResolver
}

// HSM returns the World's Hardware State Manager. Like the real one it
// refuses malformed xnames and components it does not know.
func (w *World) HSM() GroupStore { return groupStore{w} }

// BOS returns the World's boot orchestrator. A session stays pending for
// 10 seconds (it reads group membership then, as BOS does), reboots the
// nodes its template and limit select, and completes when each has booted
// or failed.
func (w *World) BOS() bos.Orchestrator { return orchestrator{w} }

// WLM returns the workload manager to give crus: the kit's own, or the
// one of UseManager, recorded (for Check) and with the failures of
// FailNext injected. It has the optional capabilities of the manager it
// stands for (wlm.BootTimeReporter, wlm.JobEnder, wlm.Scheduler,
// wlm.Describer, and wlm.Steerer if that manager is a wlm.Scheduler too:
// crus steers only in the scheduled strategy, which books): the kit's
// own has them all, so a session of the scheduled strategy books its
// nodes on it.
//
// Call UseManager, if at all, before WLM: it panics after.
func (w *World) WLM() wlm.Manager {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handedOut = true
	return w.manager
}

type groupStore struct{ w *World }

var _ GroupStore = groupStore{}

func (g groupStore) Members(ctx context.Context, label string) ([]string, error) {
	g.w.sync()
	return g.w.fw.HSM().Members(ctx, label)
}

func (g groupStore) AddMembers(ctx context.Context, label string, xnames []string) error {
	g.w.sync()
	return g.w.fw.HSM().AddMembers(ctx, label, xnames)
}

func (g groupStore) RemoveMembers(ctx context.Context, label string, xnames []string) error {
	g.w.sync()
	return g.w.fw.HSM().RemoveMembers(ctx, label, xnames)
}

func (g groupStore) CreateGroup(ctx context.Context, label, description string) error {
	g.w.sync()
	return g.w.fw.HSM().CreateGroup(ctx, label, description)
}

func (g groupStore) NIDs(ctx context.Context, xnames []string) (map[string]int, error) {
	g.w.sync()
	return g.w.fw.HSM().NIDs(ctx, xnames)
}

type orchestrator struct{ w *World }

var _ bos.Orchestrator = orchestrator{}

func (o orchestrator) CheckTemplate(ctx context.Context, template string) error {
	o.w.sync()
	return o.w.fw.BOS().CheckTemplate(ctx, template)
}

func (o orchestrator) Reboot(ctx context.Context, req bos.Request) error {
	o.w.sync()
	return o.w.fw.BOS().Reboot(ctx, req)
}

func (o orchestrator) Status(ctx context.Context, name string, nodes []string) (bos.Status, error) {
	o.w.sync()
	return o.w.fw.BOS().Status(ctx, name, nodes)
}

// recorder stands between crus and the workload manager. It counts calls,
// injects failures, and records what Check needs: the nodes crus acted
// on, the nodes out of service because of crus after every change that
// can add one (a drain, a reboot), every reboot and any reboot of a busy
// node.
type recorder struct {
	w     *World
	inner wlm.Manager
	power wlmtest.Rebooter // nil: the kit's own manager

	mu          sync.Mutex
	callCount   map[string]int
	injected    fake.Injected            // FailNext, Outage, LoseNextAnswers, LoseAnswers
	latency     map[string]time.Duration // by op; "" for every wlm op without its own
	touched     map[string]bool          // workload-manager names crus changed
	drained     map[string]bool          // names crus drained and has not resumed or failed since
	rebooting   map[string]bool          // xnames powered off whose boot has not ended
	reboots     map[string][]time.Time   // xname -> when it was powered off
	steered     map[string]bool          // names crus steered last, and may not have given their place back since
	failedAt    map[string]time.Time     // name -> when crus last asked to fail it
	resumedAt   map[string]time.Time     // name -> when an operator last resumed it (World.AdminResume)
	samples     [][]string               // xnames out of service because of crus, after each change
	sampleTimes []time.Time              // when each sample was taken
	violations  []string
	contract    []string           // the manager's breaches of the wlm.Manager contract, each once
	breached    map[string]bool    // the texts of contract
	reasons     map[string]string  // name -> the reason crus last drained or failed it with
	unread      map[string]string  // name -> "Drain" or "Fail": crus just set its reason, not read back yet
	misread     map[string]misread // name -> its reason, read back not beginning with the one set
}

// misread is a reason crus set (with Drain or Fail) that the manager read
// back, at the first read that showed it drained or failed, not beginning
// with it: crus does not recognise such a drain as its own.
type misread struct{ op, set, got string }

func newRecorder(w *World, inner wlm.Manager, power wlmtest.Rebooter) *recorder {
	return &recorder{
		w: w, inner: inner, power: power,
		callCount: map[string]int{},
		touched:   map[string]bool{}, drained: map[string]bool{}, steered: map[string]bool{},
		rebooting: map[string]bool{}, reboots: map[string][]time.Time{},
		failedAt: map[string]time.Time{}, resumedAt: map[string]time.Time{},
		breached: map[string]bool{},
		reasons:  map[string]string{}, unread: map[string]string{}, misread: map[string]misread{},
	}
}

// setReason records that crus asked to drain or fail (op) the nodes with
// reason.
func (r *recorder) setReason(op string, names []string, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		r.reasons[n], r.unread[n] = reason, op
	}
}

// readBack compares the reasons of nodes crus has just drained or failed,
// read right after its call, with the reasons crus set: the wlm.Manager
// contract wants them read back beginning with it, unchanged. Only that
// read is compared (later, an operator may have set a reason of their
// own), and only for a node it shows drained or failed (the call may have
// been refused for it); a node that reads back no reason is left alone
// (crus takes such a drain for its own).
func (r *recorder) readBack(nodes []wlm.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range nodes {
		op, ok := r.unread[n.Name]
		delete(r.unread, n.Name)
		if !ok || !(op == "Drain" && n.Drain || op == "Fail" && n.Fail) {
			continue
		}
		if set := r.reasons[n.Name]; n.Reason != "" && !strings.HasPrefix(n.Reason, set) {
			r.misread[n.Name] = misread{op, set, n.Reason}
		} else {
			delete(r.misread, n.Name)
		}
	}
}

// ownDrain reports whether the node reads drained by crus: with the reason
// crus last set for it, or none (crus takes such a drain for its own).
// Callers hold r.mu.
func (r *recorder) ownDrain(n wlm.Node) bool {
	set := r.reasons[n.Name]
	return n.Drain && (n.Reason == "" || set != "" && strings.HasPrefix(n.Reason, set))
}

// read reads the named nodes from the manager for the kit's own use, each
// at most once: a node answered more than once is a breach of the
// wlm.Manager contract, recorded, and its first answer is taken.
func (r *recorder) read(ctx context.Context, names []string) ([]wlm.Node, error) {
	nodes, err := r.inner.Nodes(ctx, names)
	seen := make(map[string]bool, len(nodes))
	out := nodes[:0:0]
	for _, n := range nodes {
		if seen[n.Name] {
			r.breach(fmt.Sprintf("the manager answered %s twice in one answer of Nodes: it must answer each node it knows once, in the order asked", n.Name))
			continue
		}
		seen[n.Name] = true
		out = append(out, n)
	}
	return out, err
}

// breach records a breach of the wlm.Manager contract by the manager, once.
func (r *recorder) breach(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.breached[s] {
		r.breached[s] = true
		r.contract = append(r.contract, s)
	}
}

// resumedAfterFail reports whether an operator resumed the node (its
// workload-manager name) after crus last asked to fail it: the node is
// back in service by the operator's choice.
func (r *recorder) resumedAfterFail(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, failed := r.failedAt[name]
	res, resumed := r.resumedAt[name]
	return failed && resumed && !res.Before(f)
}

// operatorResumed records that an operator resumed the node now.
func (r *recorder) operatorResumed(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resumedAt[name] = r.w.fw.Now()
}

// manager returns the recorded manager, with the JobEnds and reservation
// methods only if the inner one has them, and Steer only if it has it
// along with the reservations (crus steers only in the scheduled
// strategy, which books; one combination fewer): crus finds capabilities
// by type assertion.
func (r *recorder) manager() wlm.Manager {
	base := recorded{r}
	je, isJE := r.inner.(wlm.JobEnder)
	sc, isSC := r.inner.(wlm.Scheduler)
	st, isST := r.inner.(wlm.Steerer)
	isST = isST && isSC
	j, s := recordedJobEnds{r, je}, recordedReservations{r, sc}
	ss := recordedSteering{s, recordedSteer{r, st}}
	switch {
	case isJE && isST:
		return struct {
			recorded
			recordedJobEnds
			recordedSteering
		}{base, j, ss}
	case isJE && isSC:
		return struct {
			recorded
			recordedJobEnds
			recordedReservations
		}{base, j, s}
	case isJE:
		return struct {
			recorded
			recordedJobEnds
		}{base, j}
	case isST:
		return struct {
			recorded
			recordedSteering
		}{base, ss}
	case isSC:
		return struct {
			recorded
			recordedReservations
		}{base, s}
	}
	return base
}

// inherit takes on the failures injected into old, the recorder it
// replaces.
func (r *recorder) inherit(old *recorder) {
	old.mu.Lock()
	defer old.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injected = old.injected.Clone()
	r.latency = maps.Clone(old.latency)
}

// setLatency makes every call of op take d (see World.SetLatency).
func (r *recorder) setLatency(op string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d <= 0 {
		delete(r.latency, op)
		return
	}
	if r.latency == nil {
		r.latency = map[string]time.Duration{}
	}
	r.latency[op] = d
}

func (r *recorder) failNext(op string, n int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injected.FailNext(op, n, err)
}

func (r *recorder) loseNext(op string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injected.LoseNext(op, n)
}

func (r *recorder) loseFrom(op string, from, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injected.LoseIn(op, from, until)
}

// end finishes a write of op that returned err: a success whose answer
// is to be lost (LoseNextAnswers, LoseAnswers) becomes ErrAnswerLost, its
// work done.
func (r *recorder) end(op string, err error) error {
	if err != nil {
		return err
	}
	now := r.w.fw.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.injected.Lost(op, now) {
		return ErrAnswerLost
	}
	return nil
}

func (r *recorder) outage(op string, from, until time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injected.Outage(op, from, until, err)
}

func (r *recorder) calls() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.callCount)
}

func (r *recorder) rebootTimes(xname string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reboots[xname])
}

// begin starts a call of op: it honours ctx, counts the call and returns
// its injected failure.
func (r *recorder) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.w.sync()
	r.mu.Lock()
	d, ok := r.latency[op]
	if !ok {
		d = r.latency[""]
	}
	r.mu.Unlock()
	// The World moves on while the call takes its time, by the rule of
	// the World's other calls (fake.World.TakeTime): calls made at the
	// same time end together, and one made from a scheduled function
	// overlaps the wait that runs it.
	now := r.w.fw.TakeTime(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.callCount[op]++
	return r.injected.Fail(op, now)
}

// changed records a change crus asked for: drain (true) or the end of
// one (resume, fail) on the nodes the call did not refuse.
func (r *recorder) changed(names []string, err error, drain bool) {
	perNode, rest := batch.Split(err)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		r.touched[n] = true
		switch {
		case drain:
			// Even a refused or failed drain may have taken effect:
			// the sample's reading decides.
			r.drained[n] = true
		case rest == nil && perNode[n] == nil:
			delete(r.drained, n)
		}
	}
}

// sample records the nodes out of service because of crus now: rebooting,
// or drained by crus (with the reason crus set, or none) and not failed.
// Failed nodes are crus's outcome, not part of its budget. A node whose
// reason reads back other than crus set it is not counted: crus takes it
// for drained by someone else, and Check reports the reason instead.
//
// It returns the nodes it read.
func (r *recorder) sample() []wlm.Node {
	r.mu.Lock()
	candidates := make([]string, 0, len(r.drained)+len(r.rebooting))
	for n := range r.drained {
		candidates = append(candidates, n)
	}
	for x := range r.rebooting {
		if n := r.w.Name(x); !r.drained[n] {
			candidates = append(candidates, n)
		}
	}
	rebooting := maps.Clone(r.rebooting)
	r.mu.Unlock()
	slices.Sort(candidates)
	nodes, _ := r.read(context.Background(), candidates)
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, n := range nodes {
		x := r.w.xnameOf(n.Name)
		if !n.Fail && (rebooting[x] || r.ownDrain(n)) {
			out = append(out, x)
		}
	}
	if k := len(r.samples); k == 0 || !slices.Equal(r.samples[k-1], out) {
		r.samples = append(r.samples, out)
		r.sampleTimes = append(r.sampleTimes, r.w.fw.Now())
	}
	return nodes
}

// powerOff is the World's power hook as a boot session powers a node off.
func (r *recorder) powerOff(xname, name string) error {
	if r.power != nil {
		// The kit's own manager records a reboot with jobs itself (it
		// knows its jobs); an outside one is asked.
		nodes, err := r.read(context.Background(), []string{name})
		switch {
		case err != nil:
			r.violate(fmt.Sprintf("%s: could not read %s (%s) before rebooting it: %v", r.w.fw.Now().Format(time.RFC3339), xname, name, err))
		case len(nodes) == 1 && nodes[0].Busy():
			r.violate(fmt.Sprintf("%s: %s (%s) rebooted while running jobs (%s)", r.w.fw.Now().Format(time.RFC3339), xname, name, wlm.DescriberOf(r.inner).Describe(nodes[0])))
		}
	}
	r.mu.Lock()
	r.rebooting[xname] = true
	r.reboots[xname] = append(r.reboots[xname], r.w.fw.Now())
	r.mu.Unlock()
	if r.power != nil {
		if err := r.power.PowerOff(context.Background(), name); err != nil {
			return err
		}
	}
	r.sample()
	return nil
}

// powerOn is the World's power hook as a node's boot ends.
func (r *recorder) powerOn(xname, name string, back bool) {
	r.mu.Lock()
	delete(r.rebooting, xname)
	r.mu.Unlock()
	if back && r.power != nil {
		if err := r.power.PowerOn(context.Background(), name); err != nil {
			r.violate(fmt.Sprintf("%s: %s (%s) booted but could not be powered on: %v", r.w.fw.Now().Format(time.RFC3339), xname, name, err))
		}
	}
}

func (r *recorder) violate(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violations = append(r.violations, s)
}

// recorded is the wlm.Manager crus is given.
type recorded struct{ r *recorder }

var (
	_ wlm.Manager          = recorded{}
	_ wlm.NodesFiller      = recorded{}
	_ wlm.BootTimeReporter = recorded{}
	_ wlm.Describer        = recorded{}
	_ wlm.JobEndsFiller    = recordedJobEnds{}
	_ wlm.Scheduler        = recordedReservations{}
	_ wlm.Scheduler        = recordedSteering{}
	_ wlm.Steerer          = recordedSteering{}
)

func (m recorded) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	if err := m.r.begin(ctx, "wlm.Nodes"); err != nil {
		return nil, err
	}
	return m.r.inner.Nodes(ctx, names)
}

// NodesInto makes the recorded manager a wlm.NodesFiller, as crus reads
// it: by position from a manager that is one (so a session run through the
// kit uses an outside adapter's NodesInto, as it would without the kit),
// else from its Nodes. It counts as wlm.Nodes, and FailNext("wlm.Nodes",
// ...) fails it.
func (m recorded) NodesInto(ctx context.Context, names []string, out []wlm.Node) error {
	if err := m.r.begin(ctx, "wlm.Nodes"); err != nil {
		return err
	}
	return wlm.NodesAt(ctx, m.r.inner, names, out)
}

func (m recorded) Drain(ctx context.Context, names []string, reason string) error {
	if err := m.r.begin(ctx, "wlm.Drain"); err != nil {
		return err
	}
	err := m.r.inner.Drain(ctx, names, reason)
	m.r.setReason("Drain", names, reason)
	m.r.changed(names, err, true)
	m.r.readBack(m.r.sample()) // every node crus drained is read: changed made it a candidate
	return m.r.end("wlm.Drain", err)
}

func (m recorded) Resume(ctx context.Context, names []string) error {
	if err := m.r.begin(ctx, "wlm.Resume"); err != nil {
		return err
	}
	err := m.r.inner.Resume(ctx, names)
	m.r.changed(names, err, false)
	return m.r.end("wlm.Resume", err)
}

func (m recorded) Fail(ctx context.Context, names []string, reason string) error {
	if err := m.r.begin(ctx, "wlm.Fail"); err != nil {
		return err
	}
	err := m.r.inner.Fail(ctx, names, reason)
	m.r.setReason("Fail", names, reason)
	m.r.changed(names, err, false)
	nodes, _ := m.r.read(context.WithoutCancel(ctx), names) // (the known ones, whatever the error)
	m.r.readBack(nodes)
	m.r.mu.Lock()
	for _, n := range names {
		m.r.failedAt[n] = m.r.w.fw.Now()
	}
	m.r.mu.Unlock()
	return m.r.end("wlm.Fail", err)
}

// ReportsBootTime implements wlm.BootTimeReporter for the manager it
// stands for.
func (m recorded) ReportsBootTime() bool {
	r, ok := m.r.inner.(wlm.BootTimeReporter)
	return ok && r.ReportsBootTime()
}

// Describe implements wlm.Describer for the manager it stands for.
func (m recorded) Describe(n wlm.Node) string { return wlm.DescriberOf(m.r.inner).Describe(n) }

type recordedJobEnds struct {
	r  *recorder
	je wlm.JobEnder
}

func (m recordedJobEnds) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	if err := m.r.begin(ctx, "wlm.JobEnds"); err != nil {
		return nil, err
	}
	return m.je.JobEnds(ctx, names)
}

// JobEndsInto makes the recorded JobEnder a wlm.JobEndsFiller, as crus
// reads it: by position from a manager that is one (so a session run
// through the kit uses an outside adapter's JobEndsInto, as it would
// without the kit), else from its map. It counts as wlm.JobEnds, and
// FailNext("wlm.JobEnds", ...) fails it.
func (m recordedJobEnds) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	if err := m.r.begin(ctx, "wlm.JobEnds"); err != nil {
		return err
	}
	return wlm.JobEndsAt(ctx, m.je, names, ends)
}

type recordedReservations struct {
	r  *recorder
	sc wlm.Scheduler
}

func (m recordedReservations) Reserve(ctx context.Context, res wlm.Reservation) error {
	if err := m.r.begin(ctx, "wlm.Reserve"); err != nil {
		return err
	}
	return m.r.end("wlm.Reserve", m.sc.Reserve(ctx, res))
}

func (m recordedReservations) Unreserve(ctx context.Context, names []string) error {
	if err := m.r.begin(ctx, "wlm.Unreserve"); err != nil {
		return err
	}
	return m.r.end("wlm.Unreserve", m.sc.Unreserve(ctx, names))
}

func (m recordedReservations) Reservations(ctx context.Context, prefix string) ([]wlm.Reservation, error) {
	if err := m.r.begin(ctx, "wlm.Reservations"); err != nil {
		return nil, err
	}
	return m.sc.Reservations(ctx, prefix)
}

type recordedSteer struct {
	r  *recorder
	st wlm.Steerer
}

func (m recordedSteer) Steer(ctx context.Context, names []string, last bool) error {
	if err := m.r.begin(ctx, "wlm.Steer"); err != nil {
		return err
	}
	err := m.st.Steer(ctx, names, last)
	m.r.steer(names, last, err)
	return m.r.end("wlm.Steer", err)
}

// steer records a Steer call: a node steered last may be so even if the
// call failed; it has its place back only once a call giving it back
// succeeded for it.
func (r *recorder) steer(names []string, last bool, err error) {
	perNode, rest := batch.Split(err)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		switch {
		case last:
			r.touched[n] = true
			r.steered[n] = true
		case rest == nil && perNode[n] == nil:
			delete(r.steered, n)
		}
	}
}

// recordedSteering is the recorded Scheduler of a manager that steers
// too: the recorder passes wlm.Steerer on only along with wlm.Scheduler.
type recordedSteering struct {
	recordedReservations
	recordedSteer
}
