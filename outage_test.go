package crus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/hsm"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

// One test per scenario of issue 9: backend outages combined with
// operators' actions, each of which broke a promise once.

// messagesWith returns the session's messages that contain sub.
func messagesWith(s *crus.Session, sub string) []string {
	var out []string
	for _, m := range s.Messages {
		if strings.Contains(m, sub) {
			out = append(out, m)
		}
	}
	return out
}

// TestPauseHoldsTheOriginalAlgorithm: a session with the zero Rollout,
// paused before Run and again during it, takes no new node while paused.
func TestPauseHoldsTheOriginalAlgorithm(t *testing.T) {
	for _, when := range []string{"before Run", "during Run"} {
		t.Run(when, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 6, Busy: 0.5, MaxJob: time.Hour}, 2)
			s := e.create()
			start := e.w.Now()
			pausedAt, resumeAt := start, start.Add(10*time.Hour)
			if when == "before Run" {
				_, err := e.ex.Pause(context.Background(), s.UpgradeID)
				require.NoError(t, err)
			} else {
				e.onEvent = func(ev crus.Event) {
					if ev.Kind == crus.EventStepStarted && ev.Step == 2 {
						pausedAt = ev.Time
						e.onEvent = nil
						_, err := e.ex.Pause(context.Background(), s.UpgradeID)
						require.NoError(t, err)
					}
				}
			}
			e.w.Schedule(resumeAt, func() {
				_, err := e.ex.Resume(context.Background(), s.UpgradeID)
				require.NoError(t, err)
			})
			final, err := e.ex.Run(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			e.check(final)
			assert.Equal(t, 6, final.Counts().Upgraded)
			for _, n := range final.Progress.Nodes {
				if n.Step == 1 && when == "during Run" || n.Step == 2 && when == "during Run" {
					continue // taken before the pause: in flight, it finishes
				}
				assert.False(t, n.DrainRequested.After(pausedAt) && n.DrainRequested.Before(resumeAt),
					"%s (step %d) was taken at %s, while the session was paused", n.XName, n.Step, n.DrainRequested.Sub(start))
			}
			assert.NotEmpty(t, e.eventsOf(crus.EventMessage))
		})
	}
}

// TestPlanOfAPausedOriginalSessionTakesNothing: the pure planner agrees.
func TestPlanOfAPausedOriginalSessionTakesNothing(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	s := e.create()
	s.Progress.Paused = true
	sc := crus.ScopeFor(s)
	assert.Empty(t, sc.Nodes, "nothing to observe: no node may be taken")
	obs := crus.Observation{Now: e.w.Now(), Nodes: map[string]wlm.Node{}, UpgradingObserved: true}
	d, err := crus.Plan(s, obs)
	require.NoError(t, err)
	assert.Empty(t, d.Actions)
	assert.Empty(t, d.Changes)
	assert.Equal(t, crus.StagePaused, d.Stage)
}

// TestRepeatedBootRequestRechecksTheNodes: BOS cannot be reached when the
// step's boot is requested; meanwhile an operator resumes a node and a job
// starts on it. When BOS is back, the request sent again must not name
// that node: it is drained again and rebooted only once its job is over.
func TestRepeatedBootRequestRechecksTheNodes(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 3}, 3)
	xs := e.w.XNames()
	start := e.w.Now()
	e.w.Outage("bos.Reboot", start, start.Add(40*time.Minute), nil)
	e.w.Schedule(start.Add(10*time.Minute), func() {
		e.w.AdminResume(xs[1])
		require.NoError(t, e.w.StartJob(xs[1], 2*time.Hour, 3*time.Hour))
	})
	s := e.run()
	assert.Empty(t, e.w.Violations(), "no reboot of a node running a job")
	assert.Equal(t, 3, s.Counts().Upgraded)
	n := s.Node(xs[1])
	assert.False(t, n.RebootRequested.Before(start.Add(2*time.Hour)), "rebooted at %s, before its job ended", n.RebootRequested.Sub(start))
	assert.NotEmpty(t, messagesWith(s, "has not accepted boot session"), "the wait is explained")
}

// TestBOSOutageNeverFailsNodes: BOS refuses every boot request for longer
// than boot_timeout. The nodes were never rebooted, so none is failed;
// they go back to service after boot_timeout and are taken again once BOS
// is back.
func TestBOSOutageNeverFailsNodes(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4, Busy: 0.5, MaxJob: time.Hour}, 2)
	start := e.w.Now()
	e.w.Outage("bos.Reboot", start, start.Add(3*time.Hour), nil)
	s := e.run()
	c := s.Counts()
	assert.Equal(t, 4, c.Upgraded, "%+v", c)
	assert.Zero(t, c.Failed)
	assert.Empty(t, e.w.Members(fake.FailedLabel))
	retried := 0
	for _, n := range s.Progress.Nodes {
		retried += n.Retries
		ws, _ := e.w.Node(n.XName)
		assert.True(t, ws.BootTime.After(start.Add(3*time.Hour)), "%s booted at %s, during the outage?", n.XName, ws.BootTime.Sub(start))
	}
	assert.Positive(t, retried, "nodes put back after boot_timeout, taken again later")
	assert.NotEmpty(t, messagesWith(s, "has not accepted boot session"))
	assert.NotEmpty(t, messagesWith(s, "accepts boot requests again, or their nodes were returned to service"))
}

// TestBOSAcceptsJustBeforeBootTimeout: BOS takes the step's boot request
// only 59 minutes after it was first sent (boot_timeout is an hour). The
// boot session begins then, so boot_timeout counts from then: the nodes
// are rebooted and upgraded, not failed half a minute later for the
// outage that delayed the request.
func TestBOSAcceptsJustBeforeBootTimeout(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 3}, 3)
	start := e.w.Now()
	e.w.Outage("bos.Reboot", start, start.Add(59*time.Minute), nil)
	s := e.run()
	c := s.Counts()
	assert.Equal(t, 3, c.Upgraded, "%+v", c)
	assert.Zero(t, c.Failed)
	for _, n := range s.Progress.Nodes {
		assert.False(t, n.RebootAccepted.Before(start.Add(59*time.Minute)), "%s: the boot was accepted at %s, not before", n.XName, n.RebootAccepted.Sub(start))
		assert.True(t, strings.HasPrefix(n.LastError, "resolved: "), "%s: last error %q", n.XName, n.LastError)
	}
}

// TestBootTimeoutCountsFromAcceptance: BOS answers the step's boot
// request only on the eleventh attempt of one call, some 105 seconds after
// the step was recorded. The boot session begins when BOS accepts it, so
// boot_timeout counts from then: with a boot_timeout of 11 minutes and
// reboots of 10, the nodes are upgraded, not failed for the time BOS took
// to answer.
func TestBootTimeoutCountsFromAcceptance(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Options: fake.Options{RebootTime: 10 * time.Minute, RebootJitter: time.Second}, Nodes: 2}, 2)
	e.spec.BootTimeout = crus.Duration(11 * time.Minute)
	e.w.FailNext("bos.Reboot", 10, fake.ErrInjected)
	s := e.run()
	c := s.Counts()
	assert.Equal(t, 2, c.Upgraded, "%+v", c)
	assert.Zero(t, c.Failed)
	assert.Equal(t, 11, e.w.Calls()["bos.Reboot"], "accepted at the eleventh attempt")
	for _, n := range s.Progress.Nodes {
		st, err := e.w.BOS().Status(context.Background(), n.Boot, nil)
		require.NoError(t, err)
		assert.Equal(t, st.StartTime, n.RebootAccepted, "%s: boot_timeout counts from the boot session's start", n.XName)
		assert.Greater(t, n.RebootAccepted.Sub(n.RebootRequested), 100*time.Second, "%s: BOS took its time to answer", n.XName)
		assert.False(t, n.RebootRequested.After(n.Drained.Add(time.Second)), "%s: the request is dated when it was first sent, the earliest a reboot could begin", n.XName)
	}
}

// TestDeleteDuringBOSOutageReleasesNodes: a Delete while BOS does not
// accept the boot request returns the drained nodes to service, out of the
// upgrading group, untouched.
func TestDeleteDuringBOSOutageReleasesNodes(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	start := e.w.Now()
	e.w.Outage("bos.Reboot", start, start.Add(24*time.Hour), nil)
	s := e.create()
	e.w.Schedule(start.Add(20*time.Minute), func() {
		_, err := e.ex.Delete(context.Background(), s.UpgradeID)
		require.NoError(t, err)
	})
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	e.check(final)
	assert.Equal(t, crus.ResultCancelled, final.Progress.Result)
	assert.Equal(t, 4, final.Counts().Untouched)
	assert.Less(t, e.w.Now().Sub(start), time.Hour, "released at once, not after boot_timeout")
	assert.Empty(t, e.w.Members(fake.UpgradingLabel))
	assert.Empty(t, e.w.Members(fake.FailedLabel))
	for _, x := range e.w.XNames() {
		ws, _ := e.w.Node(x)
		assert.True(t, ws.Up && !ws.Drain && !ws.Fail && ws.Reboots == 0, "%s: %+v", x, ws)
	}
}

// TestPreflightRefusesATemplateThatBootsNothing: a template whose boot
// sets target neither the upgrading group nor the nodes is refused before
// anything is touched.
func TestPreflightRefusesATemplateThatBootsNothing(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	e.w.AddGroup("other-nodes", "x9000c0s0b0n0")
	e.w.AddTemplate("elsewhere", "other-nodes")
	e.spec.TemplateID = "elsewhere"
	_, err := e.ex.Create(context.Background(), e.spec)
	require.ErrorIs(t, err, crus.ErrPreflight)
	require.ErrorIs(t, err, crus.ErrTemplateCoverage)
	assert.Contains(t, err.Error(), `template "elsewhere" (node groups other-nodes) cannot boot 4 nodes`)
	assert.Contains(t, err.Error(), `should name the upgrading group "crus-upgrading"`)
	assert.Empty(t, e.w.Touched())

	// A template naming a group that holds the nodes is fine.
	e.w.AddGroup("all-compute", e.w.XNames()...)
	e.w.AddTemplate("compute", "all-compute")
	e.spec.TemplateID = "compute"
	_, err = e.ex.Create(context.Background(), e.spec)
	require.NoError(t, err)
}

// TestLabelLimitNeverRebootsAStranger: with boot_limit "label", a node
// someone else put in the upgrading group (a stranger, or a node of a
// later step) is not rebooted: the boot is limited to the step's nodes.
func TestLabelLimitNeverRebootsAStranger(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6}, 2)
	e.spec.BootLimit = crus.LimitLabel
	e.w.AddNode("x3000c0s0b0n0", 900)
	xs := e.w.XNames()
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted && ev.Step == 1 {
			e.w.AddMember(fake.UpgradingLabel, "x3000c0s0b0n0")
			e.w.AddMember(fake.UpgradingLabel, xs[5]) // a node of step 3
		}
	}
	s := e.run()
	ws, _ := e.w.Node("x3000c0s0b0n0")
	assert.Zero(t, ws.Reboots, "a stranger in the upgrading group is never rebooted")
	ws, _ = e.w.Node(xs[5])
	assert.Equal(t, 1, ws.Reboots, "a node of a later step is rebooted once, in its own step")
	assert.Equal(t, 6, s.Counts().Upgraded)
	assert.NotEmpty(t, messagesWith(s, "not part of this session's work; left alone: x3000c0s0b0n0"), "what was done is said")
	assert.Empty(t, e.w.Violations())
}

// TestFailingReadsDoNotStallEverything: the job ends (a hint for the
// job_end order) and the boot status cannot be read for a day. Nodes that
// came back are resumed all the same, and the order falls back to list
// order with a message.
func TestFailingReadsDoNotStallEverything(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 8, Busy: 0.5, MaxJob: 2 * time.Hour}, 2)
	e.spec.Rollout = crus.Rollout{Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd, BootBatchSize: 1}
	start := e.w.Now()
	e.w.Outage("wlm.JobEnds", start, start.Add(24*time.Hour), nil)
	var outageAt time.Time
	e.onEvent = func(ev crus.Event) {
		// Once a boot session has completed (its nodes are on their way
		// back), BOS's status becomes unreadable for a day.
		if outageAt.IsZero() && ev.Kind == crus.EventMessage && strings.HasPrefix(ev.Message, "Boot sessions complete") {
			outageAt = ev.Time
			e.w.Outage("bos.Status", ev.Time, ev.Time.Add(24*time.Hour), nil)
		}
	}
	s := e.run()
	require.False(t, outageAt.IsZero())
	assert.Equal(t, 8, s.Counts().Upgraded)
	first := time.Time{}
	for _, n := range s.Progress.Nodes {
		if first.IsZero() || n.Finished.Before(first) {
			first = n.Finished
		}
	}
	assert.Less(t, first.Sub(outageAt), time.Hour, "a node back from its reboot is resumed during the outage")
	assert.NotEmpty(t, messagesWith(s, "Expected job ends could not be read"))
	assert.NotEmpty(t, messagesWith(s, "The status of boot sessions could not be read"))
	assert.NotEmpty(t, e.eventsOf(crus.EventObserveErr))
}

// raceStore runs hook once, right after the first Get of a session.
type raceStore struct {
	*crus.MemoryStore
	once sync.Once
	hook func()
}

func (r *raceStore) Get(ctx context.Context, id string) (*crus.Session, error) {
	s, err := r.MemoryStore.Get(ctx, id)
	r.once.Do(r.hook)
	return s, err
}

// TestDeleteRacingRunStart: another executor deletes (and so completes)
// the session between Run's read and its "started" write. Run returns the
// completed record, no error, and writes nothing.
func TestDeleteRacingRunStart(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	s := e.create()
	other := e.executor()
	rs := &raceStore{MemoryStore: e.store}
	rs.hook = func() {
		_, err := other.Delete(context.Background(), s.UpgradeID)
		require.NoError(t, err)
	}
	e.cfg.Store = rs
	final, err := e.executor().Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	require.True(t, final.Completed)
	assert.Equal(t, crus.ResultCancelled, final.Progress.Result)
	stored, err := e.store.Get(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	assert.Equal(t, final.Revision, stored.Revision, "Run wrote nothing")
	assert.Empty(t, messagesWith(stored, "Session started"))
	assert.Empty(t, e.w.Touched())
}

// TestNameMappingErrorsFailFast: a mapper that maps two xnames to one name,
// or none, is an input error: refused at once, not retried for minutes.
func TestNameMappingErrorsFailFast(t *testing.T) {
	for name, f := range map[string]func(x string) (string, error){
		"two to one": func(x string) (string, error) { return "nid000001", nil },
		"no name":    func(x string) (string, error) { return "", nil },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 3}, 2)
			calls := 0
			e.cfg.Mapper = crus.MapperFunc(func(x string) (string, error) { calls++; return f(x) })
			ex := e.executor()
			start := e.w.Now()
			_, err := ex.Create(context.Background(), e.spec)
			require.ErrorIs(t, err, crus.ErrPreflight)
			require.ErrorIs(t, err, crus.ErrNameMapping)
			assert.Equal(t, 3, calls, "mapped once, not retried")
			assert.Equal(t, start, e.w.Now(), "no backoff waited")
		})
	}
}

// TestRetryFailedTakesOnlyCrusFailedNodes: after a session failed nodes
// (a bad image), a session on its failed group with retry_failed takes
// exactly those nodes again, and leaves a node an administrator failed.
func TestRetryFailedTakesOnlyCrusFailedNodes(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 6}, 3)
	xs := e.w.XNames()
	e.w.SetFaults(xs[1], fake.NodeFaults{BootFails: true})
	e.w.SetFaults(xs[4], fake.NodeFaults{BootFails: true})
	first := e.run()
	require.Equal(t, 2, first.Counts().Failed)

	// The image is fixed; an admin also puts a node of their own in the
	// group, failed for a reason of theirs.
	e.w.SetFaults(xs[1], fake.NodeFaults{})
	e.w.SetFaults(xs[4], fake.NodeFaults{})
	e.w.AdminFail(xs[2], "admin: bad DIMM")
	e.w.AddMember(fake.FailedLabel, xs[2])
	e.w.AddGroup("crus-failed-2")
	retry := e.spec
	retry.StartingLabel, retry.FailedLabel = fake.FailedLabel, "crus-failed-2"

	retry.RetryFailed = false
	_, err := e.ex.Create(context.Background(), retry)
	require.ErrorIs(t, err, crus.ErrNoNodes, "without retry_failed the failed nodes are not in service")

	retry.RetryFailed = true
	s, err := e.ex.Create(context.Background(), retry)
	require.NoError(t, err)
	final, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	for _, x := range []string{xs[1], xs[4]} {
		assert.Equal(t, crus.OutcomeUpgraded, final.Node(x).Outcome, x)
		ws, _ := e.w.Node(x)
		assert.True(t, ws.Up && !ws.Fail && !ws.Drain, "%s back in service: %+v", x, ws)
	}
	assert.Equal(t, crus.OutcomeSkipped, final.Node(xs[2]).Outcome)
	assert.Contains(t, final.Node(xs[2]).Reason, "admin: bad DIMM")
	ws, _ := e.w.Node(xs[2])
	assert.True(t, ws.Fail && ws.Reason == "admin: bad DIMM", "the admin's node is left alone: %+v", ws)
}

// TestPreflightListsEveryProblemOnItsOwnLine: every problem at once, one
// per line, singular and plural right, an xname HSM does not know matched
// as HSM's problem.
func TestPreflightListsEveryProblemOnItsOwnLine(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	e.w.AddGroup(fake.StartingLabel, append(e.w.XNames(), "x9000c0s0b0n0")...)
	e.w.AddGroup(fake.UpgradingLabel, fake.XName(1))
	e.w.AddGroup(fake.FailedLabel, fake.XName(2), fake.XName(3))
	_, err := e.ex.Create(context.Background(), e.spec)
	require.Error(t, err)
	var pe *crus.PreflightError
	require.ErrorAs(t, err, &pe)
	assert.Len(t, pe.Problems, 3, "%v", err)
	assert.ErrorIs(t, err, hsm.ErrComponentNotFound)
	assert.ErrorIs(t, err, crus.ErrGroupNotEmpty)
	lines := strings.Split(err.Error(), "\n")
	assert.Len(t, lines, 4, "a heading and one line per problem")
	assert.Contains(t, err.Error(), "it has 1 member: ")
	assert.Contains(t, err.Error(), "it has 2 members: ")
	assert.Contains(t, err.Error(), "HSM does not know 1 node of the starting group: x9000c0s0b0n0")
}

// TestEventsOfSkippedNodesAndCommands: nodes skipped at Create get a node
// event; pause and resume events carry the step and the stage.
func TestEventsOfSkippedNodesAndCommands(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4}, 2)
	xs := e.w.XNames()
	e.w.AdminDrain(xs[3], "admin: ticket 7")
	s := e.create()
	nodes := e.eventsOf(crus.EventNode)
	require.Len(t, nodes, 1)
	assert.Equal(t, xs[3], nodes[0].Node)
	assert.Equal(t, crus.OutcomeSkipped, nodes[0].Outcome)
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventStepStarted && ev.Step == 1 {
			e.onEvent = nil
			_, err := e.ex.Pause(context.Background(), s.UpgradeID)
			require.NoError(t, err)
			e.w.Schedule(ev.Time.Add(time.Hour), func() {
				_, err := e.ex.Resume(context.Background(), s.UpgradeID)
				require.NoError(t, err)
			})
		}
	}
	_, err := e.ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	var pause, resume *crus.Event
	for _, ev := range e.eventsOf(crus.EventMessage) {
		switch {
		case strings.HasPrefix(ev.Message, "Pause requested"):
			pause = &ev
		case strings.HasPrefix(ev.Message, "Resumed"):
			resume = &ev
		}
	}
	require.NotNil(t, pause)
	require.NotNil(t, resume)
	assert.Equal(t, 1, pause.Step)
	assert.Equal(t, 2, pause.Steps)
	assert.NotEmpty(t, pause.Stage)
	assert.NotEmpty(t, resume.Stage)
}

// TestPermanentReadErrorsDoNotSpin: the workload manager answers every
// read with an error that says retrying is pointless, for two hours, past
// the deadlines of the nodes in flight. Run waits a poll between rounds
// (no tight loop of calls) and carries on once it can read again.
func TestPermanentReadErrorsDoNotSpin(t *testing.T) {
	for name, r := range map[string]crus.Rollout{"classic": {}, "rolling": {Strategy: crus.StrategyRolling}} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, fake.ClusterOptions{Nodes: 3}, 5)
			e.spec.Rollout = r
			start := e.w.Now()
			e.w.Outage("wlm.Nodes", start.Add(6*time.Minute), start.Add(133*time.Minute), errPermanentInjected)
			s := e.run()
			assert.Equal(t, 3, s.Counts().Upgraded+s.Counts().Failed)
			// A read every poll (30s) at most, not a storm: about 250
			// polls in the outage.
			assert.Less(t, e.w.Calls()["wlm.Nodes"], 1000)
		})
	}
}

// TestFailRetriesTheWorkloadManagerWhenTheGroupRefusesForGood: a node that
// does not return is failed in both halves. The failed group refuses it
// for good while the workload manager cannot be reached: the refusal of
// one half does not end the other's tries, so once the workload manager
// is back the node is failed there, out of service, and its outcome keeps
// the group's refusal.
func TestFailRetriesTheWorkloadManagerWhenTheGroupRefusesForGood(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 2}, 2)
	x := fake.XName(0)
	e.w.SetFaults(x, fake.NodeFaults{NeverReturns: true})
	start := e.w.Now()
	refused := batch.NewPermanent("hsm: the failed group is read-only")
	e.onEvent = func(ev crus.Event) {
		if ev.Kind == crus.EventPhase && ev.Phase == crus.PhaseFailing {
			e.w.FailNext("hsm.AddMembers", 1000, refused)
		}
	}
	// Failing happens after the return timeout (30 min after the boot):
	// the workload manager's writes are down from well before to well
	// after.
	e.w.Outage("wlm.Fail", start, start.Add(3*time.Hour), nil)
	s := e.run()
	n := s.Node(x)
	require.Equal(t, crus.OutcomeFailed, n.Outcome, "%+v", n)
	assert.Contains(t, n.Reason, "read-only", "the group's refusal stays with the outcome")
	assert.NotContains(t, n.Reason, "workload manager:", "the workload manager's outage is not a refusal")
	ws, ok := e.w.Node(x)
	require.True(t, ok)
	assert.True(t, ws.Fail, "failed in the workload manager once it could be reached: %+v", ws)
	assert.False(t, s.Progress.EndedAt.Before(start.Add(3*time.Hour)), "the session waited for the workload manager")
}

// TestRecordBelowTheFloorsStillRuns: a session stored by an older crus
// with a timeout below MinTimeout (which a new spec may no longer set) is
// read and run as it was, not refused as corrupt.
func TestRecordBelowTheFloorsStillRuns(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4, Busy: 0.5, MaxJob: time.Hour}, 2)
	s := e.create()
	ctx := context.Background()
	stored, err := e.store.Get(ctx, s.UpgradeID)
	require.NoError(t, err)
	stored.ReturnTimeout = crus.Duration(15 * time.Second)
	stored.Rollout.DrainTimeout = crus.Duration(30 * time.Second)
	require.NoError(t, e.store.Update(ctx, stored))
	require.Error(t, stored.Spec.Validate(), "a new spec may not set these")
	final, err := e.ex.Run(ctx, s.UpgradeID)
	require.NoError(t, err)
	assert.True(t, final.Completed)
	assert.Equal(t, crus.Duration(15*time.Second), final.ReturnTimeout)
}

// forgetful is a boot orchestrator whose sessions are deleted as soon as
// they are accepted, and whose client then does not know it had them (it
// restarted): Status answers bos.ErrSessionNotFound, as the BOS clients
// do for a session they never saw.
type forgetful struct {
	bos.Orchestrator
	mu      sync.Mutex
	gone    map[string]bool
	reboots map[string]int
	stop    func() // called at a third request of one session
}

func (f *forgetful) Reboot(ctx context.Context, req bos.Request) error {
	f.mu.Lock()
	f.reboots[req.Name]++
	if f.reboots[req.Name] == 3 {
		f.stop()
	}
	f.mu.Unlock()
	err := f.Orchestrator.Reboot(ctx, req)
	if err == nil {
		f.mu.Lock()
		f.gone[req.Name] = true
		f.mu.Unlock()
	}
	return err
}

func (f *forgetful) Status(ctx context.Context, name string, nodes []string) (bos.Status, error) {
	f.mu.Lock()
	gone := f.gone[name]
	f.mu.Unlock()
	if gone {
		return bos.Status{}, fmt.Errorf("%w: %s", bos.ErrSessionNotFound, name)
	}
	return f.Orchestrator.Status(ctx, name, nodes)
}

// TestDeletedBootSessionIsNotSentAgain: a boot session the orchestrator
// accepted and then no longer knows was deleted (by an admin, or by BOS's
// cleanup); it is not a request never accepted. Sending it again would
// create it anew and reboot its nodes a second time: the nodes are failed
// instead, their outcome unknown.
func TestDeletedBootSessionIsNotSentAgain(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 2}, 2)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	f := &forgetful{Orchestrator: e.w.BOS(), gone: map[string]bool{}, reboots: map[string]int{}, stop: stop}
	ex, err := crus.NewExecutor(e.w.HSM(), e.w.WLM(), f, e.cfg)
	require.NoError(t, err)
	e.ex = ex
	start := e.w.Now()
	s, err := ex.Run(ctx, e.create().UpgradeID)
	require.NoError(t, err, "the session must end without a boot sent again and again")
	assert.Less(t, e.w.Now().Sub(start), 30*time.Minute, "the deletion is acted on when seen, not at boot_timeout")
	assert.Len(t, messagesWith(s, "boot session complete: 0 booted, 0 failed"), 1, "one message for the deleted session")
	for name, n := range f.reboots {
		assert.Equal(t, 1, n, "boot session %s requested %d times", name, n)
	}
	assert.Len(t, f.reboots, 1)
	for _, n := range s.Progress.Nodes {
		assert.Equal(t, crus.OutcomeFailed, n.Outcome, "%s: %+v", n.XName, n)
		assert.Contains(t, n.Reason, "deleted", n.XName)
		ws, _ := e.w.Node(n.XName)
		assert.Equal(t, 1, ws.Reboots, "%s rebooted %d times", n.XName, ws.Reboots)
	}
}

// TestDrainTimeoutCountsFromTheDeliveredDrain: the workload manager takes
// no drain for three hours (drain_timeout is one, its action "fail"),
// while jobs of up to an hour keep starting on the nodes crus asked for.
// The drains get through once it recovers, and drain_timeout counts from
// then: the jobs end within the hour and the nodes are upgraded, not
// failed at once for the outage that kept the request from them.
func TestDrainTimeoutCountsFromTheDeliveredDrain(t *testing.T) {
	e := newEnv(t, fake.ClusterOptions{Nodes: 4, Busy: 1, MaxJob: time.Hour}, 2)
	e.spec.Rollout = crus.Rollout{DrainTimeout: crus.Duration(time.Hour), DrainTimeoutAction: crus.DrainFail}
	start := e.w.Now()
	e.w.Outage("wlm.Drain", start, start.Add(3*time.Hour), nil)
	e.w.KeepBusy(1, time.Hour, 10*time.Minute, start.Add(3*time.Hour))
	s := e.run()
	c := s.Counts()
	assert.Equal(t, 4, c.Upgraded, "%+v", c)
	assert.Zero(t, c.Failed)
	busy := 0
	for _, n := range s.Progress.Nodes {
		assert.False(t, n.Drained.Before(start.Add(3*time.Hour)), "%s drained at %s, during the outage?", n.XName, n.Drained.Sub(start))
		if n.Drained.After(start.Add(3*time.Hour + 5*time.Minute)) {
			busy++
		}
	}
	assert.Positive(t, busy, "some node still ran a job when its drain got through")
}
