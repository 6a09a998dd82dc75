package slurm_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// slurmdBOS is the boot orchestrator of the end-to-end test: a boot
// session reboots its nodes by stopping their slurmd and, 2 s later,
// starting it again with -b (Slurm then records a new BootTime), except
// the nodes told never to return, whose slurmd stays stopped. It checks, just before each reboot, that the
// node runs no job.
type slurmdBOS struct {
	c        *slurmtest.Cluster
	jobs     wlm.JobEnder // its own adapter: not counted with the executor's
	names    crus.Mapper
	template string
	never    map[string]bool // Slurm names

	wg         sync.WaitGroup
	mu         sync.Mutex
	sessions   map[string]*bootSession
	rebooted   map[string]time.Time // Slurm name -> when its slurmd was restarted
	violations []string
}

type bootSession struct {
	req     bos.Request
	status  bos.Status
	targets []string // xnames
}

var _ bos.Orchestrator = (*slurmdBOS)(nil)

func (b *slurmdBOS) CheckTemplate(_ context.Context, name string) error {
	if name != b.template {
		return fmt.Errorf("%w: %q", bos.ErrTemplateNotFound, name)
	}
	return nil
}

func (b *slurmdBOS) Reboot(ctx context.Context, req bos.Request) error {
	if err := b.CheckTemplate(ctx, req.Template); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.sessions[req.Name]; ok {
		if slices.Equal(s.req.Limit, req.Limit) {
			return nil
		}
		return fmt.Errorf("%w: %s", bos.ErrSessionExists, req.Name)
	}
	for _, x := range req.Limit {
		if hsm.ValidateXName(x) != nil {
			return fmt.Errorf("%w: this orchestrator takes xnames only, got %q", bos.ErrInvalidRequest, x)
		}
	}
	s := &bootSession{req: req, targets: slices.Clone(req.Limit),
		status: bos.Status{Name: req.Name, Phase: bos.PhasePending, StartTime: time.Now(), Nodes: map[string]bos.NodeStatus{}}}
	b.sessions[req.Name] = s
	b.wg.Add(1)
	go b.run(context.WithoutCancel(ctx), s)
	return nil
}

// run carries a boot session out: pending for a moment (as BOS is), then
// every node rebooted, then complete.
func (b *slurmdBOS) run(ctx context.Context, s *bootSession) {
	defer b.wg.Done()
	time.Sleep(300 * time.Millisecond)
	b.mu.Lock()
	s.status.Phase = bos.PhaseRunning
	b.mu.Unlock()
	names, err := b.names.WLMNames(ctx, s.targets)
	results := map[string]bos.NodeStatus{}
	var down []string // xnames powered off
	for _, x := range s.targets {
		name, ok := names[x]
		if !ok {
			results[x] = bos.NodeStatus{Result: bos.ResultFailed, Reason: fmt.Sprintf("no Slurm name: %v", err)}
			continue
		}
		if ends, err := b.jobs.JobEnds(ctx, []string{name}); err != nil || len(ends) > 0 {
			b.mu.Lock()
			b.violations = append(b.violations, fmt.Sprintf("%s rebooted while running jobs (ends %v, err %v)", name, ends, err))
			b.mu.Unlock()
		}
		if err := b.c.StopNode(name); err != nil {
			results[x] = bos.NodeStatus{Result: bos.ResultFailed, Reason: err.Error()}
			continue
		}
		down = append(down, x)
	}
	// A reboot takes time. It also keeps the test honest about a fact of
	// Slurm: the BootTime it derives can read up to about 2 s before the
	// slurmd start it comes from (seen under load: 10:30:06 for a start at
	// 10:30:07.7), so a reboot within a second of its request could look
	// older than the request.
	time.Sleep(2 * time.Second)
	for _, x := range down {
		name := names[x]
		if !b.never[name] {
			if err := b.c.StartNode(name, true); err != nil {
				results[x] = bos.NodeStatus{Result: bos.ResultFailed, Reason: err.Error()}
				continue
			}
			b.mu.Lock()
			b.rebooted[name] = time.Now()
			b.mu.Unlock()
		}
		// A node that never returns has booted, as far as BOS can tell:
		// it is the workload manager that never sees it again.
		results[x] = bos.NodeStatus{Result: bos.ResultSucceeded}
	}
	b.mu.Lock()
	s.status.Nodes, s.status.Phase, s.status.EndTime = results, bos.PhaseComplete, time.Now()
	b.mu.Unlock()
}

func (b *slurmdBOS) Status(_ context.Context, name string, nodes []string) (bos.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sessions[name]
	if !ok {
		return bos.Status{}, fmt.Errorf("%w: %s", bos.ErrSessionNotFound, name)
	}
	st := s.status
	st.Nodes = map[string]bos.NodeStatus{}
	for _, x := range nodes {
		if r, ok := s.status.Nodes[x]; ok {
			st.Nodes[x] = r
		}
	}
	return st, nil
}

// pollCounter counts, for every Nodes call of the executor (one per
// poll), the commands and requests the adapter made during it.
type pollCounter struct {
	wlm.Manager
	cnt   *counter
	mu    sync.Mutex
	costs map[int]int // cost -> number of calls
}

func (p *pollCounter) ReportsBootTime() bool { return true }

func (p *pollCounter) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	before := p.cnt.total()
	nodes, err := p.Manager.Nodes(ctx, names)
	cost := p.cnt.total() - before
	p.mu.Lock()
	p.costs[cost]++
	p.mu.Unlock()
	return nodes, err
}

// TestEndToEnd runs the executor on a real 8-node Slurm cluster, in steps
// of 3, with the in-memory group store and a boot orchestrator that
// reboots a node by restarting its slurmd with -b. nid000002 runs a job
// that must end before its reboot; nid000005 never comes back and must
// end failed (Slurm FAIL with the reason, in the failed group); every
// other node must end idle, not drained, with a boot time newer than its
// step. Once with each adapter.
func TestEndToEnd(t *testing.T) {
	for _, adapter := range []string{"CLI", "REST"} {
		t.Run(adapter, func(t *testing.T) {
			t.Parallel() // two clusters side by side: the run is mostly waiting
			endToEnd(t, adapter)
		})
	}
}

// e2eCluster is a real Slurm cluster set up for whole crus sessions: an
// in-memory HSM with one component per Slurm node (NID i+1: Slurm name
// nid%06d) and the empty upgrading and failed groups, the executor's
// workload manager (the adapter under test, "CLI" or "REST" with the CLI
// as its fallback, its commands and requests counted) and the test's own
// CLI.
type e2eCluster struct {
	c        *slurmtest.Cluster
	world    *fake.World
	mapper   crus.NIDMapper
	xnames   []string          // in the order of c.Names()
	xnameOf  map[string]string // Slurm name -> xname
	cnt      *counter
	manager  wlm.Manager
	observer *slurm.CLI // the test's own eyes
}

func newE2ECluster(t *testing.T, adapter string, nodes int) *e2eCluster {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: nodes, REST: adapter == "REST"})
	e := &e2eCluster{c: c, world: fake.New(fake.Options{}), xnameOf: map[string]string{}, cnt: &counter{}}
	for i, name := range c.Names() {
		x := fake.XName(i)
		e.world.AddNode(x, i+1)
		e.xnames = append(e.xnames, x)
		e.xnameOf[name] = x
	}
	e.world.AddGroup(fake.UpgradingLabel)
	e.world.AddGroup(fake.FailedLabel)
	e.mapper = crus.NIDMapper{Resolver: e.world.HSM()}
	cli := newCLI(t, c, e.cnt.run)
	e.manager = cli
	if adapter == "REST" {
		tok, err := c.Token(ctx, "root", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.manager, err = slurm.NewREST(slurm.RESTConfig{URL: c.RESTURL, User: "root", Token: slurm.StaticToken(tok),
			Fallback: cli, HTTPClient: newCountingClient(e.cnt), Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.observer = newCLI(t, c, nil)
	return e
}

// bos returns a boot orchestrator that reboots the cluster's nodes,
// leaving those in never down.
func (e *e2eCluster) bos(template string, never ...string) *slurmdBOS {
	b := &slurmdBOS{c: e.c, jobs: e.observer, names: e.mapper, template: template, never: map[string]bool{},
		sessions: map[string]*bootSession{}, rebooted: map[string]time.Time{}}
	for _, n := range never {
		b.never[n] = true
	}
	return b
}

func endToEnd(t *testing.T, adapter string) {
	ctx := t.Context()
	start := time.Now()
	const (
		busyNode  = "nid000002"
		neverNode = "nid000005"
		template  = "compute-upgrade"
	)
	e := newE2ECluster(t, adapter, 8)
	c, world, xnames, xnameOf, observer := e.c, e.world, e.xnames, e.xnameOf, e.observer
	world.AddGroup(fake.StartingLabel, xnames...)
	groups, mapper, cnt := world.HSM(), e.mapper, e.cnt
	manager := e.manager
	polls := &pollCounter{Manager: manager, cnt: cnt, costs: map[int]int{}}
	boot := e.bos(template, neverNode)
	defer boot.wg.Wait()

	jobID, err := c.Submit(ctx, []string{busyNode}, 8*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ends, err := observer.JobEnds(ctx, []string{busyNode})
		return err == nil && len(ends) == 1
	})

	// Watch the invariant: never more than a step's worth of nodes out of
	// service because of the session.
	watch := watchOut(ctx, observer, c.Names())

	steps := &stepStarts{}
	ex, err := crus.NewExecutor(groups, polls, boot, crus.Config{
		Mapper: mapper, Logger: testLogger(t),
		PollInterval: 500 * time.Millisecond, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second, RetryTimeout: 20 * time.Second,
		OnEvent: steps.onEvent,
	})
	if err != nil {
		t.Fatal(err)
	}
	cnt.take()
	runStart := time.Now()
	sess, err := ex.Create(ctx, crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 3, TemplateID: template, WorkloadManagerType: "slurm",
		BootTimeout: crus.Duration(2 * time.Minute), ReturnTimeout: crus.MinTimeout, // the shortest a spec may set: the node that never returns is failed a minute after its boot
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	final, err := ex.Run(runCtx, sess.UpgradeID)
	runTime := time.Since(runStart)
	cmds, reqs := cnt.take()
	watch.Stop()
	if err != nil {
		t.Fatalf("Run: %v; session %+v", err, final.Progress)
	}
	if watch.err != nil {
		t.Errorf("watching the nodes: %v", watch.err)
	}

	// The session.
	counts := final.Counts()
	if !final.Completed || final.Progress.Result != crus.ResultComplete || counts.Upgraded != 7 || counts.Failed != 1 {
		t.Errorf("session: completed %v, result %q, counts %+v; want complete with 7 upgraded and 1 failed", final.Completed, final.Progress.Result, counts)
	}
	if final.Progress.Steps != 3 {
		t.Errorf("%d steps, want 3 (8 nodes in steps of 3)", final.Progress.Steps)
	}
	if watch.maxOut > 3 {
		t.Errorf("up to %d nodes out of service at once; the step size is 3", watch.maxOut)
	}
	if m := world.Members(fake.UpgradingLabel); len(m) != 0 {
		t.Errorf("upgrading group not empty at the end: %v", m)
	}
	if m := world.Members(fake.FailedLabel); !slices.Equal(m, []string{xnameOf[neverNode]}) {
		t.Errorf("failed group %v, want [%s] (%s)", m, xnameOf[neverNode], neverNode)
	}

	// The busy node's job ran to its end before the reboot.
	boot.mu.Lock()
	violations := slices.Clone(boot.violations)
	boot.mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("reboots of busy nodes: %v", violations)
	}
	if st, err := c.JobState(ctx, jobID); err != nil || st != "COMPLETED" {
		t.Errorf("job %s on %s: %q, %v; want COMPLETED (it must finish before the reboot)", jobID, busyNode, st, err)
	}

	// Every node in Slurm, as the test's own adapter reads it.
	for _, n := range settledNodes(t, observer, c.Names(), neverNode) {
		rec := final.Node(xnameOf[n.Name])
		if rec == nil {
			t.Fatalf("no record for %s", n.Name)
		}
		if n.Name == neverNode {
			if rec.Outcome != crus.OutcomeFailed || !n.Fail || !strings.HasPrefix(n.Reason, "crus "+final.UpgradeID) ||
				!strings.Contains(n.Reason, "did not return") || n.InService() {
				t.Errorf("%s: outcome %q (%s); in Slurm %s reason %q; want failed with crus's reason", n.Name, rec.Outcome, rec.Reason, n.Condition(), n.Reason)
			}
			continue
		}
		checkUpgraded(t, n, rec, steps, boot, watch)
	}

	polls.mu.Lock()
	costs := maps.Clone(polls.costs)
	polls.mu.Unlock()
	// One command or request per poll, whatever the number of nodes; the
	// first REST read also discovers the API version.
	for cost, n := range costs {
		if cost != 1 && !(adapter == "REST" && cost == 2 && n == 1) {
			t.Errorf("%d polls (Nodes calls) cost %d commands or requests each; want 1", n, cost)
		}
	}
	t.Logf("%s: 8 nodes upgraded in steps of 3 in %s (with the cluster's start and stop: %s); at most %d nodes out of service at once; "+
		"the executor ran %d commands and made %d HTTP requests in all; its polls (Nodes calls) by cost in commands+requests: %v",
		adapter, runTime.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond), watch.maxOut, len(cmds), len(reqs), costs)
	for _, m := range final.Messages {
		t.Logf("  %s", m)
	}
}

// outWatch reads the nodes every 100 ms while a session runs, for the
// invariant: never more than a step's worth of nodes out of service
// because of the session (failed nodes are out for good).
type outWatch struct {
	stop      context.CancelFunc
	done      sync.WaitGroup
	maxOut    int                 // the most nodes out of service at once, not failed
	bootTimes map[string][]string // distinct BootTime readings, in order, with when first seen
	err       error               // the read that stopped the watch
}

// watchOut watches the nodes until Stop.
func watchOut(ctx context.Context, observer wlm.Manager, names []string) *outWatch {
	w := &outWatch{bootTimes: map[string][]string{}}
	ctx, w.stop = context.WithCancel(ctx)
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for ctx.Err() == nil {
			nodes, err := observer.Nodes(ctx, names)
			if err != nil && ctx.Err() == nil {
				w.err = err
				return
			}
			out := 0
			for _, n := range nodes {
				if bt := w.bootTimes[n.Name]; len(bt) == 0 || !strings.HasPrefix(bt[len(bt)-1], n.BootTime.UTC().Format(time.TimeOnly)) {
					w.bootTimes[n.Name] = append(bt, n.BootTime.UTC().Format(time.TimeOnly)+"@"+time.Now().UTC().Format("15:04:05.000"))
				}
				if !n.InService() && !n.Fail {
					out++
				}
			}
			w.maxOut = max(w.maxOut, out)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return w
}

// Stop ends the watch; its fields may be read once it returns.
func (w *outWatch) Stop() {
	w.stop()
	w.done.Wait()
}

// stepStarts records when each step of a session began (as the executor
// says: EventStepStarted), for Config.OnEvent.
type stepStarts struct {
	mu sync.Mutex
	at map[int]time.Time
}

func (s *stepStarts) onEvent(ev crus.Event) {
	if ev.Kind == crus.EventStepStarted {
		s.mu.Lock()
		if s.at == nil {
			s.at = map[int]time.Time{}
		}
		s.at[ev.Step] = ev.Time
		s.mu.Unlock()
	}
}

func (s *stepStarts) of(step int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at[step]
}

// settledNodes reads the nodes as Slurm shows them at the end of a
// session. Slurm derives BootTime again after a RESUME and shows None
// (zero) for a moment: it reads again until every node but those that
// never returned (gone) shows one (the executor, likewise, takes a zero
// boot time for no news).
func settledNodes(t *testing.T, observer wlm.Manager, names []string, gone ...string) []wlm.Node {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		nodes, err := observer.Nodes(t.Context(), names)
		if err != nil {
			t.Fatal(err)
		}
		settled := true
		for _, n := range nodes {
			if !slices.Contains(gone, n.Name) && n.BootTime.IsZero() {
				settled = false
			}
		}
		if settled || time.Now().After(deadline) {
			return nodes
		}
	}
}

// checkUpgraded checks that a node the session upgraded is back in
// service, idle, with the boot time of the reboot its step asked for.
func checkUpgraded(t *testing.T, n wlm.Node, rec *crus.NodeRecord, steps *stepStarts, boot *slurmdBOS, watch *outWatch) {
	t.Helper()
	if rec.Outcome != crus.OutcomeUpgraded || !n.InService() || n.State != wlm.StateIdle || n.Drain || n.Fail {
		t.Errorf("%s: outcome %q (%s); in Slurm %s reason %q; want upgraded, idle, not drained", n.Name, rec.Outcome, rec.Reason, n.Condition(), n.Reason)
	}
	// Slurm's BootTime has whole seconds and is derived from the
	// node's uptime: it can read up to 2 s before the slurmd start
	// (and is derived again after RESUME: 10:18:01, None, 10:18:00
	// was seen for a slurmd started at 10:18:01.57). The reboot
	// (2 s after the step's drain, at least) came after the step
	// began, and the boot time Slurm shows is that reboot's.
	boot.mu.Lock()
	restarted := boot.rebooted[n.Name]
	boot.mu.Unlock()
	stepStart := steps.of(rec.Step)
	if stepStart.IsZero() || !restarted.After(stepStart) || n.BootTime.Before(stepStart.Truncate(time.Second)) ||
		n.BootTime.Before(restarted.Add(-3*time.Second)) {
		t.Errorf("%s: boot time %s; its step %d began %s; slurmd restarted with -b at %s (reboot requested %s); BootTime readings %v",
			n.Name, n.BootTime, rec.Step, stepStart, restarted, rec.RebootRequested, watch.bootTimes[n.Name])
	}
}
