package crustest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// The groups and the boot session template every World has. The starting
// group holds every node; the others are empty; the template's boot set
// targets the upgrading group.
const (
	StartingLabel  = "crus-starting"
	UpgradingLabel = "crus-upgrading"
	FailedLabel    = "crus-failed"
	Template       = "compute-upgrade"
)

// ErrInjected is the error FailNext injects when given none.
var ErrInjected = fake.ErrInjected

// ErrAnswerLost is the error of a call whose work was done and whose
// answer was lost (LoseNextAnswers, LoseAnswers).
var ErrAnswerLost = fake.ErrAnswerLost

// ErrOutsideManager is returned by the methods that act on the kit's own
// workload manager (StartJob, AdminDrain, ...) once UseManager has
// replaced it: act on yours instead.
var ErrOutsideManager = errors.New("crustest: the world uses an outside workload manager; act on it directly")

// XName returns the xname of the i-th node (from 0) of a World: HPE Cray
// EX cabinets from x1000, 256 nodes each ("x1000c0s0b0n0",
// "x1000c0s0b0n1", ...).
func XName(i int) string { return fake.XName(i) }

// Options describe a World. The zero value is usable; New panics on
// values no World can have (negative counts or durations, Busy outside 0
// to 1, more than MaxNodes nodes), saying which.
type Options struct {
	// Nodes is the number of compute nodes; default 8, at most MaxNodes.
	// Node i (from 0)
	// has xname XName(i), node ID i+1 and the workload-manager name
	// "nid%06d" of its node ID, as crus maps it by default.
	Nodes int
	// Busy is the fraction of nodes (0 to 1) that run a job at the start,
	// each for up to 4 hours, on the kit's own workload manager.
	Busy float64
	// Seed makes reboot times and the jobs of Busy reproducible.
	Seed uint64
	// Start is the virtual time the World starts at; default
	// 2026-01-05 08:00 UTC. Ignored with RealClock.
	Start time.Time
	// RebootTime is the mean time a node takes to reboot, default 10m;
	// each reboot takes up to RebootJitter more or less (default 3m, or
	// 3/10 of a RebootTime under 10m), and at least a second.
	RebootTime, RebootJitter time.Duration
	// RealClock makes the World follow the real clock (time.Now) instead
	// of a virtual one of its own. Use it inside a testing/synctest
	// bubble, where the real clock is itself virtual and moves only when
	// every goroutine of the bubble waits: then any number of sessions can
	// run at once, each with crus's default (real) clock. See Config.
	RealClock bool
	// WorkloadManagerType is what Spec and Config name the workload
	// manager; default "slurm".
	WorkloadManagerType string
}

// NodeFaults are faults injected into one node.
type NodeFaults struct {
	// BootFails makes the node's boots fail: the boot orchestrator
	// reports it failed (with BootError, default "failed to boot") and it
	// stays down.
	BootFails bool
	BootError string
	// NeverReturns makes the node boot (the boot orchestrator reports
	// success) but never register with the workload manager again.
	NeverReturns bool
	// RefuseDrain makes the kit's workload manager refuse to drain the
	// node (a per-node error).
	RefuseDrain bool
	// SlowDrain keeps the node completing its last job this long after
	// the job ends (kit's workload manager), so its drain ends late.
	SlowDrain time.Duration
}

// World is an in-memory HPC system: HSM groups and node components, a
// boot orchestrator and a workload manager (the kit's own, or yours with
// UseManager), on one clock. A reboot by its boot orchestrator takes the
// node down, and after Options.RebootTime brings it back with a newer
// boot time; a drain or a fail survives it. All methods are safe for
// concurrent use.
type World struct {
	fw     *fake.World
	opts   Options
	xnames []string          // by index
	names  []string          // workload-manager names, by index
	byName map[string]string // workload-manager name -> xname
	byX    map[string]string // xname -> workload-manager name

	syncMu sync.Mutex // one catch-up with the real clock at a time

	mu        sync.Mutex
	manager   wlm.Manager // the recorded manager crus is given
	rec       *recorder
	handedOut bool                     // WLM has returned manager: UseManager may no longer replace it
	latency   map[string]time.Duration // SetLatency's, by op ("" for the rest)
}

// MaxNodes is the most nodes a World has: XName numbers cabinets from
// x1000 to x9999, 256 nodes each.
const MaxNodes = 9000 * 256

// check says what is wrong with opts, or "".
func (o Options) check() string {
	switch {
	case o.Nodes < 0 || o.Nodes > MaxNodes:
		return fmt.Sprintf("Nodes %d is not within 0 to MaxNodes (%d)", o.Nodes, MaxNodes)
	case !(o.Busy >= 0 && o.Busy <= 1):
		return fmt.Sprintf("Busy %v is not a fraction within 0 to 1", o.Busy)
	case o.RebootTime < 0:
		return fmt.Sprintf("RebootTime %v is negative", o.RebootTime)
	case o.RebootJitter < 0:
		return fmt.Sprintf("RebootJitter %v is negative", o.RebootJitter)
	}
	return ""
}

// New returns a World with opts.Nodes nodes, all members of the starting
// group; empty upgrading and failed groups; and the boot session template
// Template. Its workload manager is the kit's own, Slurm-like one: drains
// wait for running jobs, reboots are proven by boot times, reasons are
// kept.
func New(opts Options) *World {
	if msg := opts.check(); msg != "" {
		panic("crustest.New: Options." + msg)
	}
	if opts.Nodes == 0 {
		opts.Nodes = 8
	}
	if opts.WorkloadManagerType == "" {
		opts.WorkloadManagerType = "slurm"
	}
	fo := fake.Options{Seed: opts.Seed, Start: opts.Start, RebootTime: opts.RebootTime, RebootJitter: opts.RebootJitter}
	if opts.RealClock {
		fo.Start = time.Now()
	}
	w := &World{
		fw:     fake.NewCluster(fake.ClusterOptions{Options: fo, Nodes: opts.Nodes, Busy: opts.Busy}),
		opts:   opts,
		byName: map[string]string{},
		byX:    map[string]string{},
	}
	for i := range opts.Nodes {
		x := XName(i)
		n, _ := w.fw.Node(x)
		w.xnames = append(w.xnames, x)
		w.names = append(w.names, n.Name)
		w.byName[n.Name] = x
		w.byX[x] = n.Name
	}
	w.rec = newRecorder(w, w.fw.WLM(), nil)
	w.manager = w.rec.manager()
	w.fw.SetPowerHook(fake.PowerHook{Off: w.rec.powerOff, On: w.rec.powerOn})
	return w
}

// UseManager makes m the World's workload manager in place of the kit's
// own. crus is then given m (through WLM, which records its calls and
// injects the failures of FailNext), and the kit's boot orchestrator
// reboots m's nodes through power: PowerOff as a boot session powers a
// node off (an error fails that node's boot), PowerOn once it has booted
// (never for a node whose faults say it fails to boot or never returns).
// A wlmtest harness that implements wlmtest.Rebooter is such a power.
// Neither may be nil: UseManager panics, since the kit could not reboot
// m's nodes without power.
//
// m must know the World's nodes by the names Names returns. Jobs, drains
// and other operators' actions are then yours to make on m; the kit's
// StartJob, AdminDrain, AdminFail, AdminResume, SetDown and EndJobs return
// ErrOutsideManager. The failures FailNext and Outage injected into the
// workload manager before carry over to m.
//
// Call UseManager before WLM: UseManager panics once WLM has returned the
// kit's manager, since an executor made with it would go on driving the
// kit's manager, never m (WLM's answer has the capabilities of the
// manager it stands for, found by type assertion, so it cannot switch to
// m later). Check fails if sessions rebooted nodes while m received no
// call through WLM: crus was given m itself, or another manager.
func (w *World) UseManager(m wlm.Manager, power wlmtest.Rebooter) {
	switch {
	case m == nil:
		panic("crustest: World.UseManager: nil wlm.Manager")
	case power == nil:
		panic("crustest: World.UseManager: nil power: the kit's boot orchestrator reboots the manager's nodes through it (the PowerOff and PowerOn of wlmtest.Rebooter)")
	}
	w.mu.Lock()
	handedOut := w.handedOut
	w.mu.Unlock()
	if handedOut {
		panic("crustest: World.UseManager after World.WLM: an executor made with WLM's answer drives the kit's own workload manager, never this one; call UseManager before WLM")
	}
	for _, x := range w.xnames {
		w.fw.EndJobs(x) // the kit's own jobs (Options.Busy) are not m's
	}
	rec := newRecorder(w, m, power)
	w.mu.Lock()
	rec.inherit(w.rec)
	w.rec, w.manager = rec, rec.manager()
	w.mu.Unlock()
	w.fw.SetPowerHook(fake.PowerHook{Off: rec.powerOff, On: rec.powerOn})
}

func (w *World) recorder() *recorder {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rec
}

func (w *World) outside() bool { return w.recorder().power != nil }

// Config returns the crus.Config of an executor on this World: its clock
// (nil, the real one, with Options.RealClock) and workload manager type.
// Set the other fields as you wish.
//
// The World's virtual clock moves when an executor waits on it (After):
// it serves one Run at a time, since a Run that waits moves the world
// under any other Run between its observation and its action. To run
// several sessions at once, use Options.RealClock inside synctest.Test.
func (w *World) Config() crus.Config {
	cfg := crus.Config{WorkloadManagerType: w.opts.WorkloadManagerType}
	if !w.opts.RealClock {
		cfg.Clock = w
	}
	return cfg
}

// Spec returns the spec of a session that upgrades the starting group in
// steps of step nodes with the World's groups and template.
func (w *World) Spec(step int) crus.Spec {
	return crus.Spec{
		StartingLabel: StartingLabel, UpgradingLabel: UpgradingLabel, FailedLabel: FailedLabel,
		StepSize: step, TemplateID: Template, WorkloadManagerType: w.opts.WorkloadManagerType,
	}
}

// sync brings a RealClock World up to the real time: every event due runs.
// A virtual World moves only through After and Advance. A call made from
// a scheduled function (or a power hook) is made at the time of its event,
// inside a catch-up that cannot go on before it returns: it does not wait
// for it.
func (w *World) sync() {
	if !w.opts.RealClock || w.fw.InScheduled() {
		return
	}
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.fw.RunUntil(time.Now())
}

// Now returns the World's time. It implements crus.Clock.
func (w *World) Now() time.Time {
	// A power hook that asks the time while the World catches up runs
	// inside the catch-up: it gets the time of its event.
	if w.opts.RealClock && w.syncMu.TryLock() {
		w.fw.RunUntil(time.Now())
		w.syncMu.Unlock()
	}
	return w.fw.Now()
}

// After implements crus.Clock. On the virtual clock it moves the World on
// by d, running every event due (jobs end, nodes reboot and come back),
// and returns a channel that holds the new time. With RealClock it is
// time.After.
func (w *World) After(d time.Duration) <-chan time.Time {
	if w.opts.RealClock {
		return time.After(d)
	}
	return w.fw.After(d)
}

// Advance lets d pass and returns the new time: on the virtual clock at
// once, with RealClock by sleeping (instant inside a synctest bubble).
func (w *World) Advance(d time.Duration) time.Time {
	if w.opts.RealClock {
		time.Sleep(d)
		return w.Now()
	}
	return w.fw.Advance(d)
}

// Schedule runs fn at time at (or as soon as the World next moves, if at
// is past), without the World's locks: fn may call the World's methods,
// act on an outside workload manager, send an executor's commands, and
// wait on the World's clock (After, Advance), from its own goroutine or
// from goroutines it starts and waits for. The World moves on during such
// a wait (jobs end, nodes reboot and come back), but the functions
// scheduled for that time run once fn has returned: scheduled functions
// run one at a time, in order. fn's calls take no time of their own (see
// SetLatency). Use it for what an operator or a fault does during a
// session.
func (w *World) Schedule(at time.Time, fn func()) { w.fw.Schedule(at, fn) }

// XNames returns the xnames of the nodes, in order.
func (w *World) XNames() []string { return slices.Clone(w.xnames) }

// Names returns the workload-manager names of the nodes, in the order of
// XNames.
func (w *World) Names() []string { return slices.Clone(w.names) }

// Name returns the workload-manager name of the node with this xname, or
// "" if there is none.
func (w *World) Name(xname string) string { return w.byX[xname] }

// Members returns the members of an HSM group, sorted, without counting a
// call.
func (w *World) Members(label string) []string { return w.fw.Members(label) }

// AddGroup creates or replaces an HSM group with these members, as an
// operator would: crus is not counted as having touched them.
func (w *World) AddGroup(label string, members ...string) { w.fw.AddGroup(label, members...) }

// AddMember adds a node to an HSM group as an operator would (the group
// is created if missing): crus is not counted as having touched it.
func (w *World) AddMember(label, xname string) { w.fw.AddMember(label, xname) }

// RemoveMember removes a node from an HSM group as an operator would.
func (w *World) RemoveMember(label, xname string) { w.fw.RemoveMember(label, xname) }

// AddTemplate creates a boot session template whose boot set targets
// these HSM groups (for a second session beside the first, with groups
// of its own).
func (w *World) AddTemplate(name string, nodeGroups ...string) { w.fw.AddTemplate(name, nodeGroups...) }

// ops are the backend methods FailNext, Outage and Calls name: those of
// HSM, BOS and WLM, as their documentation lists them.
var ops = []string{
	"hsm.Members", "hsm.AddMembers", "hsm.RemoveMembers", "hsm.CreateGroup", "hsm.NIDs",
	"bos.CheckTemplate", "bos.Reboot", "bos.Status",
	"wlm.Nodes", "wlm.Drain", "wlm.Resume", "wlm.Fail", "wlm.JobEnds",
	"wlm.Reserve", "wlm.Unreserve", "wlm.Reservations", "wlm.Steer",
}

// checkOp panics unless op is one of ops: a misspelt name would make a
// test inject nothing and pass without testing anything.
func checkOp(method, op string) {
	if !slices.Contains(ops, op) {
		panic(fmt.Sprintf("crustest: World.%s: unknown operation %q; the operations are %s", method, op, strings.Join(ops, ", ")))
	}
}

// FailNext makes the next n calls of op fail with err (ErrInjected if
// nil) before doing anything. op names a backend method: "hsm.Members",
// "hsm.AddMembers", "hsm.RemoveMembers", "hsm.CreateGroup", "hsm.NIDs",
// "bos.CheckTemplate", "bos.Reboot", "bos.Status", "wlm.Nodes",
// "wlm.Drain", "wlm.Resume", "wlm.Fail", "wlm.JobEnds" (also
// JobEndsInto), "wlm.Reserve", "wlm.Unreserve", "wlm.Reservations",
// "wlm.Steer"; FailNext panics on any other name, listing these. An error
// matching batch.ErrPermanent is not retried by crus; others are.
func (w *World) FailNext(op string, n int, err error) {
	checkOp("FailNext", op)
	if err == nil {
		err = ErrInjected
	}
	if len(op) > 4 && op[:4] == "wlm." {
		w.recorder().failNext(op, n, err)
		return
	}
	w.fw.FailNext(op, n, err)
}

// Outage makes every call of op (as for FailNext, and panicking on the
// same names) fail with err (ErrInjected if nil) from the World's time
// from until until, before doing anything: a backend down for a while,
// however long.
func (w *World) Outage(op string, from, until time.Time, err error) {
	checkOp("Outage", op)
	if err == nil {
		err = ErrInjected
	}
	if len(op) > 4 && op[:4] == "wlm." {
		w.recorder().outage(op, from, until, err)
		return
	}
	w.fw.Outage(op, from, until, err)
}

// checkWrite panics unless op is a call that changes something: the
// ones whose answers LoseNextAnswers and LoseAnswers can lose.
func checkWrite(method, op string) {
	if !fake.IsWrite(op) {
		panic(fmt.Sprintf("crustest: World.%s: %q is not a write; the writes are %s (a lost read is a failed read: FailNext)", method, op, strings.Join(fake.WriteOps(), ", ")))
	}
}

// LoseNextAnswers makes the next n successful calls of op, a write
// ("hsm.AddMembers", "hsm.RemoveMembers", "bos.Reboot", "wlm.Drain",
// "wlm.Resume", "wlm.Fail", "wlm.Reserve", "wlm.Unreserve",
// "wlm.Steer"), carry out their work and then fail with
// ErrAnswerLost, as when a connection is cut after the request was
// served: crus must find out what was done, or repeat the call safely.
// It panics on any other name. With UseManager, the workload manager's
// calls are carried out by yours and their answers lost by the kit.
func (w *World) LoseNextAnswers(op string, n int) {
	checkWrite("LoseNextAnswers", op)
	if strings.HasPrefix(op, "wlm.") {
		w.recorder().loseNext(op, n)
		return
	}
	w.fw.LoseNextAnswers(op, n)
}

// LoseAnswers makes every successful call of op (a write, as for
// LoseNextAnswers) from the World's time from until until carry out its
// work and then fail with ErrAnswerLost: an outage of the answers, not of
// the work.
func (w *World) LoseAnswers(op string, from, until time.Time) {
	checkWrite("LoseAnswers", op)
	if strings.HasPrefix(op, "wlm.") {
		w.recorder().loseFrom(op, from, until)
		return
	}
	w.fw.LoseAnswers(op, from, until)
}

// SetLatency makes every call of op (a name FailNext takes, or "" for
// every operation without a latency of its own) take d of the World's
// time before it does anything, as a slow backend does: the World moves
// on (jobs end, nodes reboot) while crus waits for the answer. Calls
// overlap the wait that is moving the World, another call's or the
// clock's: one made meanwhile ends with it, or d after it began if that
// is later, so calls made at the same time end together; one made from a
// scheduled function (Schedule), or while one runs, takes no time of its
// own: the wait that runs the function cannot go on before it returns.
// d of 0 removes it. It panics on an unknown name, and with
// Options.RealClock (the World cannot make real time pass faster).
func (w *World) SetLatency(op string, d time.Duration) {
	if op != "" {
		checkOp("SetLatency", op)
	}
	if w.opts.RealClock {
		panic("crustest: World.SetLatency needs the World's own clock, not Options.RealClock")
	}
	w.mu.Lock()
	if w.latency == nil {
		w.latency = map[string]time.Duration{}
	}
	if d > 0 {
		w.latency[op] = d
	} else {
		delete(w.latency, op)
	}
	effective := func(op string) time.Duration {
		if d, ok := w.latency[op]; ok {
			return d
		}
		return w.latency[""]
	}
	w.mu.Unlock()
	// The workload manager's calls take their time in the recorder,
	// whichever manager is behind it; the rest in the fake world.
	w.recorder().setLatency(op, d)
	for _, o := range ops {
		if !strings.HasPrefix(o, "wlm.") {
			w.fw.SetLatency(o, effective(o))
		}
	}
}

// SetFaults sets the faults of the node with this xname.
func (w *World) SetFaults(xname string, f NodeFaults) {
	w.fw.SetFaults(xname, fake.NodeFaults{
		BootFails: f.BootFails, BootError: f.BootError, NeverReturns: f.NeverReturns,
		RefuseDrain: f.RefuseDrain, SlowDrain: f.SlowDrain,
	})
}

// BreakTemplate makes every later boot session of the template fail as a
// whole with reason, rebooting nothing; RepairTemplate undoes it.
func (w *World) BreakTemplate(reason string) { w.fw.BreakTemplate(Template, reason) }

// RepairTemplate undoes BreakTemplate.
func (w *World) RepairTemplate() { w.fw.RepairTemplate(Template) }

// Calls returns how many calls each backend method received, by the names
// of FailNext.
func (w *World) Calls() map[string]int {
	out := map[string]int{}
	for op, n := range w.fw.Calls() {
		if len(op) < 4 || op[:4] != "wlm." {
			out[op] = n
		}
	}
	for op, n := range w.recorder().calls() {
		out[op] = n
	}
	return out
}

// Reboots returns how many times the boot orchestrator rebooted the node
// with this xname.
func (w *World) Reboots(xname string) int { return len(w.recorder().rebootTimes(xname)) }

// StartJob starts a job on a node of the kit's workload manager that is in
// service: it runs for runFor, while the workload manager knows only its
// time limit (limit, at least runFor).
func (w *World) StartJob(xname string, runFor, limit time.Duration) error {
	if w.outside() {
		return ErrOutsideManager
	}
	w.sync()
	return w.fw.StartJob(xname, runFor, limit)
}

// EndJobs ends every job of the node now (kit's workload manager).
func (w *World) EndJobs(xname string) error {
	if w.outside() {
		return ErrOutsideManager
	}
	w.sync()
	w.fw.EndJobs(xname)
	return nil
}

// AdminDrain drains a node as an operator would, with reason (kit's
// workload manager). crus leaves a node drained by someone else alone.
func (w *World) AdminDrain(xname, reason string) error {
	if w.outside() {
		return ErrOutsideManager
	}
	w.sync()
	w.fw.AdminDrain(xname, reason)
	return nil
}

// AdminFail fails a node as an operator would, with reason (kit's
// workload manager): it takes no new work; its jobs go on.
func (w *World) AdminFail(xname, reason string) error {
	if w.outside() {
		return ErrOutsideManager
	}
	w.sync()
	w.fw.AdminFail(xname, reason)
	return nil
}

// AdminResume clears a node's drain and fail as an operator would (kit's
// workload manager).
func (w *World) AdminResume(xname string) error {
	if w.outside() {
		return ErrOutsideManager
	}
	w.sync()
	w.fw.AdminResume(xname)
	w.recorder().operatorResumed(w.Name(xname))
	return nil
}

// SetDown makes a node's agent stop (down) or start again (up) answering
// the kit's workload manager; its jobs are lost when it goes down.
func (w *World) SetDown(xname string, down bool) error {
	if w.outside() {
		return ErrOutsideManager
	}
	w.sync()
	w.fw.SetDown(xname, down)
	return nil
}

func (w *World) xnameOf(name string) string {
	if x, ok := w.byName[name]; ok {
		return x
	}
	return fmt.Sprintf("(unknown node %s)", name)
}
