package slurm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// The scheduled strategy on the real cluster: six nodes, the first four
// the session's, upgraded one at a time. Two of them run jobs when the
// session starts, so that crus books their slots with Slurm maintenance
// reservations (wlm.Scheduler) ahead of time.
var (
	schedSession = []string{"nid000001", "nid000002", "nid000003", "nid000004"}
	schedBusy    = []string{"nid000002", "nid000003"}
)

// TestEndToEndScheduled runs whole sessions of the scheduled strategy on
// a real Slurm cluster, once with each adapter (REST makes and reads its
// reservations through its CLI fallback), and watches Slurm's own list of
// reservations (scontrol show reservation) while they run:
//
//   - Completes: every node upgraded, one at a time, none rebooted while
//     running a job; the session's reservations, named crus-<id>-<n>, hold
//     only its nodes, never begin, keep a job whose time limit crosses
//     their start off an idle booked node, and are all gone once the
//     session is over;
//   - Deleted: a session deleted while it holds reservations removes them
//     and leaves the nodes it had not taken, and their jobs, alone.
//
// Reservations that are not the session's, an administrator's and one
// whose name begins like the session's, are left as they were.
func TestEndToEndScheduled(t *testing.T) {
	for _, adapter := range []string{"CLI", "REST"} {
		t.Run(adapter, func(t *testing.T) {
			t.Parallel() // two clusters side by side: the run is mostly waiting
			e := newE2ECluster(t, adapter, 6)
			if _, ok := e.manager.(wlm.Scheduler); !ok {
				t.Fatalf("the %s adapter is not a wlm.Scheduler: the scheduled strategy would run as rolling", adapter)
			}
			var session []string
			for _, n := range schedSession {
				session = append(session, e.xnameOf[n])
			}
			e.world.AddGroup(fake.StartingLabel, session...)
			// An administrator's maintenance a day from now, on a node of
			// the session and one outside it.
			admin := foreignReservation(t, e.c, "admin-maint", "nid000004,nid000005")
			t.Run("Completes", func(t *testing.T) { scheduledCompletes(t, e, admin) })
			if err := e.c.Reset(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Run("Deleted", func(t *testing.T) { scheduledDeleted(t, e, admin) })
			if err := e.c.Reset(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Run("Undeletable", func(t *testing.T) { scheduledUndeletable(t, e, admin) })
			// Both sessions over, the test's other reservations deleted:
			// the administrator's alone is left, as it was.
			all, err := showReservations(t.Context(), e.c)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 || !all[admin.Name].same(admin) {
				t.Errorf("reservations after both sessions: %+v; want %s alone, as it was: %+v", all, admin.Name, admin)
			}
		})
	}
}

// schedRun is one scheduled session on the cluster, watched.
type schedRun struct {
	e     *e2eCluster
	ex    *crus.Executor
	boot  *slurmdBOS
	steps *stepStarts
	id    string
	// foreign are the reservations that are not the session's: the
	// administrator's and crus-<id>-1-0, as session <id>-1 would name
	// one (its prefix begins like this session's).
	foreign []slurmReservation
	watch   *outWatch
	resv    *resvWatch

	done  chan struct{}
	final *crus.Session
	err   error
	// keptAhead counts the reservations the executor moved on because
	// they were about to begin (Executor.keepAhead, read from its log).
	keptAhead atomic.Int64
	// steered counts the rounds that steered nodes (read from the
	// executor's log: "nodes steered as the session wants").
	steered atomic.Int64
}

// startScheduled creates a scheduled session of the four nodes, in steps
// of one, and runs it in the background, watched.
func startScheduled(t *testing.T, e *e2eCluster, admin slurmReservation) *schedRun {
	return startScheduledWith(t, e, admin, e.manager)
}

// startScheduledWith is startScheduled with the executor given manager.
func startScheduledWith(t *testing.T, e *e2eCluster, admin slurmReservation, manager wlm.Manager) *schedRun {
	ctx := t.Context()
	r := &schedRun{e: e, boot: e.bos("compute-upgrade"), steps: &stepStarts{}, done: make(chan struct{})}
	t.Cleanup(r.boot.wg.Wait)
	var err error
	logger := slog.New(&countingHandler{
		Handler: &countingHandler{Handler: testLogger(t).Handler(), msg: "nodes steered as the session wants", n: &r.steered},
		msg:     "moved on a reservation about to begin", n: &r.keptAhead,
	})
	r.ex, err = crus.NewExecutor(e.world.HSM(), manager, r.boot, crus.Config{
		Mapper: e.mapper, Logger: logger,
		PollInterval: 500 * time.Millisecond, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second, RetryTimeout: 20 * time.Second,
		OnEvent: r.steps.onEvent,
	})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := r.ex.Create(ctx, crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 1, TemplateID: "compute-upgrade", WorkloadManagerType: "slurm",
		BootTimeout: crus.Duration(2 * time.Minute), ReturnTimeout: crus.Duration(time.Minute),
		// Slots seconds apart, and every node whose slot comes within a
		// minute of its jobs' end booked.
		Rollout: crus.Rollout{Strategy: crus.StrategyScheduled,
			RebootTime: crus.Duration(20 * time.Second), BookingSlack: crus.Duration(time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.id = sess.UpgradeID
	neighbour := foreignReservation(t, e.c, "crus-"+r.id+"-1-0", "nid000003")
	r.foreign = []slurmReservation{admin, neighbour}
	r.watch = watchOut(ctx, e.observer, schedSession)
	r.resv = watchReservations(ctx, e.c, r.id, schedSession, r.foreign...)
	runCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	go func() {
		defer close(r.done)
		defer cancel()
		r.final, r.err = r.ex.Run(runCtx, r.id)
	}()
	t.Cleanup(func() { <-r.done }) // it logs to t: it must end with the test
	return r
}

// wait waits for the session's Run to return and stops the watches.
func (r *schedRun) wait(t *testing.T) {
	t.Helper()
	<-r.done
	r.watch.Stop()
	r.resv.Stop()
	if r.err != nil {
		t.Fatalf("Run: %v; nodes: %s", r.err, phases(r.final))
	}
	if r.watch.err != nil {
		t.Errorf("watching the nodes: %v", r.watch.err)
	}
	if r.resv.err != nil {
		t.Errorf("watching the reservations: %v", r.resv.err)
	}
}

// running reports whether the session's Run has not returned yet.
func (r *schedRun) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// checkReservations checks what was seen of the reservations while the
// session ran, and that none of the session's is left in Slurm while
// every other one is as it was.
func (r *schedRun) checkReservations(t *testing.T) {
	t.Helper()
	r.resv.mu.Lock()
	problems, names, booked := slices.Clone(r.resv.problems), slices.Sorted(maps.Keys(r.resv.names)), slices.Sorted(maps.Keys(r.resv.booked))
	reads := r.resv.reads
	r.resv.mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if len(names) == 0 {
		t.Errorf("no reservation of session %s seen in %d reads of scontrol show reservation", r.id, reads)
	}
	t.Logf("reservations of the session seen in %d reads: %v, holding %v", reads, names, booked)

	all, err := showReservations(t.Context(), r.e.c)
	if err != nil {
		t.Fatal(err)
	}
	for name := range all {
		if strings.HasPrefix(name, "crus-"+r.id+"-") && !slices.ContainsFunc(r.foreign, func(f slurmReservation) bool { return f.Name == name }) {
			t.Errorf("reservation %s of session %s left in Slurm after the session: %+v", name, r.id, all[name])
		}
	}
	for _, f := range r.foreign {
		if got, ok := all[f.Name]; !ok || !got.same(f) {
			t.Errorf("reservation %s, not the session's: %+v (present %v) after the session; it was %+v", f.Name, got, ok, f)
		}
	}
}

// checkWeights checks that the session steered its nodes in Slurm (if
// steered) and gave every node its weight back: 1, as slurmtest
// configures them.
func (r *schedRun) checkWeights(t *testing.T, steered bool) {
	t.Helper()
	if n := r.steered.Load(); steered && n == 0 {
		t.Errorf("the session never steered its nodes")
	} else {
		t.Logf("%d rounds steered nodes", n)
	}
	out, err := r.e.c.Command(t.Context(), "scontrol", "show", "node", strings.Join(schedSession, ","))
	if err != nil {
		t.Fatal(err)
	}
	weights := regexp.MustCompile(`NodeName=(\S+)[\s\S]*?Weight=(\d+)`).FindAllStringSubmatch(string(out), -1)
	if len(weights) != len(schedSession) {
		t.Fatalf("read %d weights of %d nodes:\n%s", len(weights), len(schedSession), out)
	}
	for _, m := range weights {
		if m[2] != "1" {
			t.Errorf("node %s has weight %s after the session; want 1", m[1], m[2])
		}
	}
}

// violations returns the reboots of nodes running a job.
func (r *schedRun) violations() []string {
	r.boot.mu.Lock()
	defer r.boot.mu.Unlock()
	return slices.Clone(r.boot.violations)
}

func (r *schedRun) rebooted(name string) time.Time {
	r.boot.mu.Lock()
	defer r.boot.mu.Unlock()
	return r.boot.rebooted[name]
}

// scheduledCompletes: nid000002 and nid000003 run jobs of 20 s and 40 s
// with time limits of one and two minutes; the session books them, and
// nid000004 (idle, waiting for its turn), ahead of their slots. A job
// submitted to an idle booked node with a time limit that crosses the
// reservation's start must not start there before the node's reboot.
func scheduledCompletes(t *testing.T, e *e2eCluster, admin slurmReservation) {
	ctx := t.Context()
	c := e.c
	var jobs []string
	for i, n := range schedBusy {
		id, err := c.Submit(ctx, []string{n}, time.Duration(20*(i+1))*time.Second, time.Duration(i+1)*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, id)
	}
	if !waitFor(t, func() bool {
		ends, err := e.observer.JobEnds(ctx, schedBusy)
		return err == nil && len(ends) == len(schedBusy)
	}) {
		t.Fatalf("the jobs on %v did not start", schedBusy)
	}

	start := time.Now()
	e.cnt.take()
	r := startScheduled(t, e, admin)

	p := r.submitProbe(t)
	if p == nil {
		t.Errorf("the session ended before a reservation of it was seen holding an idle node it had not taken")
	}
	p.watch(t, r)
	r.wait(t)
	runTime := time.Since(start)
	cmds, reqs := e.cnt.take()
	p.end(t, r)
	final := r.final
	counts := final.Counts()
	if !final.Completed || final.Progress.Result != crus.ResultComplete || counts.Upgraded != len(schedSession) {
		t.Errorf("session: completed %v, result %q, counts %+v; want complete with %d upgraded", final.Completed, final.Progress.Result, counts, len(schedSession))
	}
	if r.watch.maxOut > 1 {
		t.Errorf("up to %d nodes out of service at once; the step size is 1", r.watch.maxOut)
	}
	if m := e.world.Members(fake.UpgradingLabel); len(m) != 0 {
		t.Errorf("upgrading group not empty at the end: %v", m)
	}
	if m := e.world.Members(fake.FailedLabel); len(m) != 0 {
		t.Errorf("failed group not empty at the end: %v", m)
	}
	if v := r.violations(); len(v) > 0 {
		t.Errorf("reboots of busy nodes: %v", v)
	}
	for i, id := range jobs {
		if st, err := c.JobState(ctx, id); err != nil || st != "COMPLETED" {
			t.Errorf("job %s on %s: %q, %v; want COMPLETED (it must finish before the reboot)", id, schedBusy[i], st, err)
		}
	}

	r.checkReservations(t)
	r.checkWeights(t, true)
	r.resv.mu.Lock()
	booked := slices.Sorted(maps.Keys(r.resv.booked))
	r.resv.mu.Unlock()
	for _, n := range schedBusy {
		if !slices.Contains(booked, n) {
			t.Errorf("%s, busy when the session began, was never seen booked (booked: %v)", n, booked)
		}
	}

	for _, n := range settledNodes(t, e.observer, schedSession) {
		rec := final.Node(e.xnameOf[n.Name])
		if rec == nil {
			t.Fatalf("no record for %s", n.Name)
		}
		checkUpgraded(t, n, rec, r.steps, r.boot, r.watch)
	}
	for _, n := range e.c.Names()[len(schedSession):] {
		if !r.rebooted(n).IsZero() {
			t.Errorf("%s, not a node of the session, was rebooted", n)
		}
	}
	t.Logf("%d nodes upgraded one at a time by the scheduled strategy in %s (with the jobs: 20 s and 40 s); at most %d out of service at once; "+
		"the executor ran %d commands (%d of them making, moving or deleting a reservation) and made %d HTTP requests",
		counts.Upgraded, runTime.Round(100*time.Millisecond), r.watch.maxOut, len(cmds), reservationCommands(cmds), len(reqs))
	for _, m := range final.Messages {
		t.Logf("  %s", m)
	}
}

// scheduledDeleted: nid000002 and nid000003 run 10-minute jobs; the
// session is deleted as soon as Slurm shows one of its reservations. It
// removes them, sees its node in flight through, and leaves the others,
// and their jobs, as they were.
func scheduledDeleted(t *testing.T, e *e2eCluster, admin slurmReservation) {
	ctx := t.Context()
	c := e.c
	var jobs []string
	for _, n := range schedBusy {
		id, err := c.Submit(ctx, []string{n}, 10*time.Minute, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, id)
	}
	defer func() {
		for _, id := range jobs {
			if err := c.Cancel(ctx, id); err != nil {
				t.Errorf("cancelling job %s: %v", id, err)
			}
		}
	}()
	if !waitFor(t, func() bool {
		ends, err := e.observer.JobEnds(ctx, schedBusy)
		return err == nil && len(ends) == len(schedBusy)
	}) {
		t.Fatalf("the jobs on %v did not start", schedBusy)
	}

	r := startScheduled(t, e, admin)
	var deleted bool
	for r.running() && !deleted {
		time.Sleep(100 * time.Millisecond)
		r.resv.mu.Lock()
		seen := len(r.resv.names) > 0
		r.resv.mu.Unlock()
		if !seen {
			continue
		}
		s, err := r.ex.Delete(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		deleted = true
		t.Logf("session deleted; its nodes then: %s", phases(s))
	}
	r.wait(t)
	if !deleted {
		t.Fatalf("the session ended before a reservation of it was seen: %s", phases(r.final))
	}

	final := r.final
	counts := final.Counts()
	if !final.Completed || final.Progress.Result != crus.ResultCancelled || counts.Upgraded+counts.Failed >= len(schedSession) {
		t.Errorf("session: completed %v, result %q, counts %+v; want cancelled with nodes left untouched", final.Completed, final.Progress.Result, counts)
	}
	if r.watch.maxOut > 1 {
		t.Errorf("up to %d nodes out of service at once; the step size is 1", r.watch.maxOut)
	}
	if m := e.world.Members(fake.UpgradingLabel); len(m) != 0 {
		t.Errorf("upgrading group not empty at the end: %v", m)
	}
	if v := r.violations(); len(v) > 0 {
		t.Errorf("reboots of busy nodes: %v", v)
	}
	r.checkReservations(t)
	r.checkWeights(t, true)
	// The busy nodes were never taken: their jobs run on, their nodes in
	// service.
	for i, id := range jobs {
		if st, err := c.JobState(ctx, id); err != nil || st != "RUNNING" {
			t.Errorf("job %s on %s: %q, %v; want RUNNING (a deleted session leaves the nodes it had not taken alone)", id, schedBusy[i], st, err)
		}
	}
	for _, n := range settledNodes(t, e.observer, schedSession) {
		rec := final.Node(e.xnameOf[n.Name])
		if rec == nil {
			t.Fatalf("no record for %s", n.Name)
		}
		if !n.InService() || n.Drain {
			t.Errorf("%s: outcome %q (%s); in Slurm %s reason %q; want in service", n.Name, rec.Outcome, rec.Reason, n.Condition(), n.Reason)
		}
		if slices.Contains(schedBusy, n.Name) && (rec.Outcome != crus.OutcomeUntouched || !r.rebooted(n.Name).IsZero()) {
			t.Errorf("%s: outcome %q (%s), rebooted at %s; want untouched: it was busy all along", n.Name, rec.Outcome, rec.Reason, r.rebooted(n.Name))
		}
	}
	for _, m := range final.Messages {
		t.Logf("  %s", m)
	}
}

// scheduledUndeletable: Slurm refuses to delete reservations for the first
// 150 s of the session (the adapter's Unreserve fails; making and moving
// them works). nid000002 runs a 20-second job. The reservations of nodes
// the session has taken are no longer wanted but stay: each must be moved
// on before it would begin (on a node drained, rebooting or back), never
// begin, and be deleted once Slurm lets it, the session waiting for that
// before it ends.
func scheduledUndeletable(t *testing.T, e *e2eCluster, admin slurmReservation) {
	ctx := t.Context()
	id, err := e.c.Submit(ctx, schedBusy[:1], 20*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, func() bool {
		ends, err := e.observer.JobEnds(ctx, schedBusy[:1])
		return err == nil && len(ends) == 1
	}) {
		t.Fatalf("the job on %s did not start", schedBusy[0])
	}
	start := time.Now()
	m := &refusingUnreserve{Manager: e.manager, until: start.Add(150 * time.Second)}
	r := startScheduledWith(t, e, admin, m)
	r.wait(t)

	final := r.final
	counts := final.Counts()
	if !final.Completed || final.Progress.Result != crus.ResultComplete || counts.Upgraded != len(schedSession) {
		t.Errorf("session: completed %v, result %q, counts %+v; want complete with %d upgraded", final.Completed, final.Progress.Result, counts, len(schedSession))
	}
	if n := m.refused.Load(); n == 0 {
		t.Errorf("no deletion refused: the session did not meet what the test is for")
	} else {
		t.Logf("%d deletions refused; the session ended %s after it began", n, time.Since(start).Round(100*time.Millisecond))
	}
	// The reservations it could not delete were moved on before they
	// began, by the executor between decisions.
	if n := r.keptAhead.Load(); n == 0 {
		t.Errorf("no reservation was moved on as it was about to begin (keepAhead)")
	} else {
		t.Logf("%d reservations moved on as they were about to begin", n)
	}
	if r.watch.maxOut > 1 {
		t.Errorf("up to %d nodes out of service at once; the step size is 1", r.watch.maxOut)
	}
	if v := r.violations(); len(v) > 0 {
		t.Errorf("reboots of busy nodes: %v", v)
	}
	if st, err := e.c.JobState(ctx, id); err != nil || st != "COMPLETED" {
		t.Errorf("job %s on %s: %q, %v; want COMPLETED", id, schedBusy[0], st, err)
	}
	// No reservation of the session began, and none is left.
	r.checkReservations(t)
	r.checkWeights(t, false) // (refusingUnreserve does not steer)
	for _, msg := range final.Messages {
		t.Logf("  %s", msg)
	}
}

// refusingUnreserve is the adapter under test, refusing to delete
// reservations until a time. It forwards the adapter's optional
// capabilities (an embedded interface hides them).
type refusingUnreserve struct {
	wlm.Manager
	until   time.Time
	refused atomic.Int64
}

func (m *refusingUnreserve) ReportsBootTime() bool {
	r, ok := m.Manager.(wlm.BootTimeReporter)
	return ok && r.ReportsBootTime()
}

func (m *refusingUnreserve) Describe(n wlm.Node) string {
	return wlm.DescriberOf(m.Manager).Describe(n)
}

func (m *refusingUnreserve) Unreserve(ctx context.Context, names []string) error {
	if time.Now().Before(m.until) {
		m.refused.Add(1)
		return errors.New("refused by the test")
	}
	return m.Manager.(wlm.Scheduler).Unreserve(ctx, names)
}

func (m *refusingUnreserve) Reserve(ctx context.Context, r wlm.Reservation) error {
	return m.Manager.(wlm.Scheduler).Reserve(ctx, r)
}

func (m *refusingUnreserve) Reservations(ctx context.Context, prefix string) ([]wlm.Reservation, error) {
	return m.Manager.(wlm.Scheduler).Reservations(ctx, prefix)
}

func (m *refusingUnreserve) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	return m.Manager.(wlm.JobEnder).JobEnds(ctx, names)
}

// probeJob is a job for one node alone, submitted while a reservation of
// the session holds that node, idle and not yet taken, with a time limit
// (3 minutes) that crosses the reservation's start (crus starts its
// reservations at least 2 minutes ahead). Slurm must keep it off the node
// until the session takes it: should it start there before the node's
// reboot, crus would wait for it to end.
type probeJob struct {
	id, node, reason string
	resv             slurmReservation
	done             bool // the check is over, the job cancelled
}

// submitProbe waits for a node to probe and submits the job, or returns
// nil if the session ends first.
func (r *schedRun) submitProbe(t *testing.T) *probeJob {
	t.Helper()
	ctx := t.Context()
	for r.running() {
		time.Sleep(100 * time.Millisecond)
		s, err := r.ex.Get(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		for _, node := range schedSession {
			res, ok := r.resv.holding(node)
			if !ok {
				continue
			}
			if rec := s.Node(r.e.xnameOf[node]); rec == nil || rec.Phase != crus.PhasePending {
				continue // taken: its booking is gone, or about to be
			}
			if ends, err := r.e.observer.JobEnds(ctx, []string{node}); err != nil || len(ends) > 0 {
				continue // busy: a job would wait for it anyway
			}
			id, err := r.e.c.Submit(ctx, []string{node}, 3*time.Minute, 3*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("probe job %s submitted for %s, booked by %s from %s", id, node, res.Name, res.Start.Format(time.TimeOnly))
			return &probeJob{id: id, node: node, resv: res}
		}
	}
	return nil
}

// watch checks the probe until its node is rebooted (or the session
// ends): it must not start before.
func (p *probeJob) watch(t *testing.T, r *schedRun) {
	t.Helper()
	ctx := t.Context()
	for p != nil && r.running() && !p.done {
		time.Sleep(250 * time.Millisecond)
		st, err := r.e.c.JobState(ctx, p.id)
		if err != nil {
			t.Fatal(err)
		}
		rebooted := r.rebooted(p.node)
		switch {
		case st == "PENDING" && rebooted.IsZero():
			if out, err := r.e.c.Command(ctx, "squeue", "--noheader", "--jobs="+p.id, "--format=%r"); err == nil {
				p.reason = strings.TrimSpace(string(out))
			}
			continue
		case rebooted.IsZero():
			t.Errorf("probe job %s (3-minute limit) %s on %s, booked by %s from %s, before the session rebooted it",
				p.id, st, p.node, p.resv.Name, p.resv.Start.Format(time.TimeOnly))
		default:
			t.Logf("probe job %s kept off %s until its reboot; Slurm's reason: %q", p.id, p.node, p.reason)
		}
		// Rebooted, no longer booked: the node may run it; the check is
		// over.
		if err := r.e.c.Cancel(ctx, p.id); err != nil {
			t.Fatal(err)
		}
		p.done = true
	}
}

// end cancels the probe if need be and waits for its end, so that its
// node reads idle.
func (p *probeJob) end(t *testing.T, r *schedRun) {
	t.Helper()
	if p == nil {
		return
	}
	ctx := t.Context()
	if !p.done {
		if err := r.e.c.Cancel(ctx, p.id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		ends, err := r.e.observer.JobEnds(ctx, []string{p.node})
		st, _ := r.e.c.JobState(ctx, p.id)
		return err == nil && len(ends) == 0 && st != "COMPLETING"
	})
}

// reservationCommands counts the commands that make, move or delete a
// reservation.
func reservationCommands(cmds []string) int {
	n := 0
	for _, c := range cmds {
		if strings.Contains(c, " ReservationName=") {
			n++
		}
	}
	return n
}

func phases(s *crus.Session) string {
	if s == nil {
		return "(no session)"
	}
	var b strings.Builder
	for i, n := range s.Progress.Nodes {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", n.Name, n.Phase)
		if n.Outcome != "" {
			fmt.Fprintf(&b, " (%s)", n.Outcome)
		}
	}
	return b.String()
}

// slurmReservation is a reservation as `scontrol show reservation` shows
// it: read by the test itself, not by the adapter under test.
type slurmReservation struct {
	Name       string
	Nodes      []string // sorted
	Start, End time.Time
	Flags      string
}

func (r slurmReservation) same(o slurmReservation) bool {
	return r.Name == o.Name && slices.Equal(r.Nodes, o.Nodes) && r.Start.Equal(o.Start) && r.End.Equal(o.End) && r.Flags == o.Flags
}

// showReservations reads every reservation of the cluster with
// `scontrol --oneliner show reservation`.
func showReservations(ctx context.Context, c *slurmtest.Cluster) (map[string]slurmReservation, error) {
	out, err := c.Command(ctx, "scontrol", "--oneliner", "show", "reservation")
	if err != nil {
		return nil, err
	}
	all := map[string]slurmReservation{}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if line == "" || line == "No reservations in the system" {
			continue
		}
		f := map[string]string{}
		for _, w := range strings.Fields(line) {
			if k, v, ok := strings.Cut(w, "="); ok {
				if _, seen := f[k]; !seen {
					f[k] = v
				}
			}
		}
		r := slurmReservation{Name: f["ReservationName"], Flags: f["Flags"]}
		// slurmtest runs the commands with SLURM_TIME_FORMAT=standard:
		// local time, to the second.
		for k, p := range map[string]*time.Time{"StartTime": &r.Start, "EndTime": &r.End} {
			if *p, err = time.ParseInLocation("2006-01-02T15:04:05", f[k], time.Local); err != nil {
				return nil, fmt.Errorf("reservation %s: %s: %w (%q)", r.Name, k, err, line)
			}
		}
		if nodes := f["Nodes"]; nodes != "" && nodes != "(null)" {
			if r.Nodes, err = slurm.ExpandHostlist(nodes); err != nil {
				return nil, fmt.Errorf("reservation %s: nodes %q: %w", r.Name, nodes, err)
			}
			slices.Sort(r.Nodes)
		}
		if r.Name == "" {
			return nil, fmt.Errorf("a reservation without a name: %q", line)
		}
		all[r.Name] = r
	}
	return all, nil
}

// foreignReservation makes a maintenance reservation that is not crus's,
// a day from now, on the nodes (a hostlist), and deletes it when the test
// ends (checking that it is still there). It returns it as Slurm shows it.
func foreignReservation(t *testing.T, c *slurmtest.Cluster, name, nodes string) slurmReservation {
	t.Helper()
	ctx := t.Context()
	if _, err := c.Command(ctx, "scontrol", "create", "reservation", "ReservationName="+name,
		"StartTime=now+1day", "Duration=60", "Nodes="+nodes, "Flags=MAINT", "Users=root"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := c.Command(context.Background(), "scontrol", "delete", "ReservationName="+name); err != nil {
			t.Errorf("deleting reservation %s, not crus's, at the end of the test: %v", name, err)
		}
	})
	all, err := showReservations(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := all[name]
	if !ok {
		t.Fatalf("reservation %s not shown after its creation: %+v", name, all)
	}
	return r
}

// resvWatch reads Slurm's reservations every 250 ms while a session runs.
// A reservation of the session (named crus-<id>-...) must be named
// crus-<id>-<n>, hold only nodes of the session, and start after the
// moment it is read (crus moves it on, or takes its nodes, before it
// begins); the foreign reservations must stay as they were.
type resvWatch struct {
	stop context.CancelFunc
	done sync.WaitGroup

	mu       sync.Mutex
	reads    int
	names    map[string]bool             // the session's reservations seen
	booked   map[string]bool             // the nodes they were seen holding
	last     map[string]slurmReservation // the session's, as last read
	problems []string
	said     map[string]bool // problems said already
	err      error           // the read that stopped the watch
}

func watchReservations(ctx context.Context, c *slurmtest.Cluster, id string, session []string, foreign ...slurmReservation) *resvWatch {
	w := &resvWatch{names: map[string]bool{}, booked: map[string]bool{}, said: map[string]bool{}}
	ctx, w.stop = context.WithCancel(ctx)
	prefix := "crus-" + id + "-"
	own := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + "[0-9]+$")
	isForeign := map[string]slurmReservation{}
	for _, f := range foreign {
		isForeign[f.Name] = f
	}
	problem := func(key, format string, args ...any) {
		if !w.said[key] {
			w.said[key] = true
			w.problems = append(w.problems, fmt.Sprintf(format, args...))
		}
	}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for ctx.Err() == nil {
			before := time.Now()
			all, err := showReservations(ctx, c)
			if err != nil {
				if ctx.Err() == nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
				return
			}
			w.mu.Lock()
			w.reads++
			w.last = map[string]slurmReservation{}
			for name, r := range all {
				if f, ok := isForeign[name]; ok {
					if !r.same(f) {
						problem("changed "+name, "reservation %s, not the session's, changed while the session ran: %+v, was %+v", name, r, f)
					}
					continue
				}
				if !strings.HasPrefix(name, prefix) {
					problem("stranger "+name, "a reservation neither the session's nor the test's: %+v", r)
					continue
				}
				if !own.MatchString(name) {
					problem("name "+name, "reservation %s is not named crus-%s-<n>", name, id)
				}
				w.names[name] = true
				w.last[name] = r
				for _, n := range r.Nodes {
					w.booked[n] = true
					if !slices.Contains(session, n) {
						problem("outside "+name+n, "reservation %s holds %s, not a node of the session: %+v", name, n, r)
					}
				}
				if !r.Start.After(before) {
					problem("begun "+name, "reservation %s had begun when read at %s: %+v", name, before.Format(time.TimeOnly), r)
				}
				if !strings.Contains(r.Flags, "MAINT") {
					problem("flags "+name, "reservation %s is not a maintenance reservation: %+v", name, r)
				}
			}
			for name, f := range isForeign {
				if _, ok := all[name]; !ok {
					problem("gone "+name, "reservation %s, not the session's, disappeared while the session ran (it was %+v)", name, f)
				}
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return w
}

// Stop ends the watch; its fields may be read once it returns.
func (w *resvWatch) Stop() {
	w.stop()
	w.done.Wait()
}

// holding returns the reservation of the session that held the node at
// the last read.
func (w *resvWatch) holding(node string) (slurmReservation, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(w.last)) {
		if r := w.last[name]; slices.Contains(r.Nodes, node) {
			return r, true
		}
	}
	return slurmReservation{}, false
}

// countingHandler counts the log records of one message, whatever their
// level, and passes the others' on as its handler would.
type countingHandler struct {
	slog.Handler
	msg string
	n   *atomic.Int64
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithAttrs(attrs), msg: h.msg, n: h.n}
}

func (h *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithGroup(name), msg: h.msg, n: h.n}
}

// TestEndToEndScheduledSiteWeight: a site's own node weight from
// slurm.SteerWeight up (9,000,000 here) reads as steered, and a session
// that steered and gave back such a node lowered it by SteerWeight (to
// 611,392, seen on this cluster). A scheduled session over it is refused
// at its creation, naming the node, and the weights stay as the site set
// them; a rolling session, which does not steer, is not.
func TestEndToEndScheduledSiteWeight(t *testing.T) {
	e := newE2ECluster(t, "CLI", 2)
	ctx := t.Context()
	var session []string
	for _, n := range e.c.Names() {
		session = append(session, e.xnameOf[n])
	}
	e.world.AddGroup(fake.StartingLabel, session...)
	site := map[string]string{"nid000001": "9000000", "nid000002": "50"}
	for n, w := range site {
		if _, err := e.c.Command(ctx, "scontrol", "update", "NodeName="+n, "Weight="+w); err != nil {
			t.Fatal(err)
		}
	}
	weights := func() map[string]string {
		out, err := e.c.Command(ctx, "scontrol", "show", "node", strings.Join(e.c.Names(), ","))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, m := range regexp.MustCompile(`NodeName=(\S+)[\s\S]*?Weight=(\d+)`).FindAllStringSubmatch(string(out), -1) {
			got[m[1]] = m[2]
		}
		return got
	}
	if got := weights(); !maps.Equal(got, site) {
		t.Fatalf("weights %v after scontrol update; want %v", got, site)
	}
	ex, err := crus.NewExecutor(e.world.HSM(), e.manager, e.bos("compute-upgrade"), crus.Config{Mapper: e.mapper, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	spec := crus.Spec{
		StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel, FailedLabel: fake.FailedLabel,
		StepSize: 1, TemplateID: "compute-upgrade", WorkloadManagerType: "slurm",
		Rollout: crus.Rollout{Strategy: crus.StrategyScheduled},
	}
	_, err = ex.Create(ctx, spec)
	if !errors.Is(err, crus.ErrSteered) || !errors.Is(err, crus.ErrPreflight) || !strings.Contains(err.Error(), "nid000001") || strings.Contains(err.Error(), "nid000002") {
		t.Errorf("Create of a scheduled session: %v; want ErrSteered within ErrPreflight, naming nid000001 alone", err)
	}
	if got := weights(); !maps.Equal(got, site) {
		t.Errorf("weights %v after the refused session; want the site's: %v", got, site)
	}
	all, err := showReservations(ctx, e.c)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 0 {
		t.Errorf("reservations after the refused session: %+v", all)
	}
	spec.Rollout = crus.Rollout{Strategy: crus.StrategyRolling}
	if _, err := ex.Preview(ctx, spec); err != nil {
		t.Errorf("Preview of a rolling session: %v; it does not steer", err)
	}
}
