package crus_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/wlm"
)

// crashBeforeResume stops its run (cancels stop) at the first resume,
// before sending it: crus stopped between recording that it would
// resume nodes and doing so.
type crashBeforeResume struct {
	wlm.Manager
	once sync.Once
	stop context.CancelFunc
}

func (m *crashBeforeResume) ReportsBootTime() bool {
	r, ok := m.Manager.(wlm.BootTimeReporter)
	return ok && r.ReportsBootTime()
}

func (m *crashBeforeResume) Resume(ctx context.Context, names []string) error {
	crashed := false
	m.once.Do(func() { m.stop(); crashed = true })
	if crashed {
		return context.Canceled
	}
	return m.Manager.Resume(ctx, names)
}

// TestResumeRecordedNotSentBeforeATakeUp: crus records that it resumes
// the step's rebooted nodes, then stops before it sends the resume, and
// runs again only after their return_timeout has passed. The nodes are
// back, idle and drained by crus: the new run sends the resume and they
// are upgraded. Before, it judged them at once, resumed long ago and not
// in service, and failed them ("could not be resumed"); the booking
// property test found it with a crash and slow backends.
func TestResumeRecordedNotSentBeforeATakeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := crustest.New(crustest.Options{Nodes: 4, Seed: 3, RealClock: true})
		ctx, stop := context.WithCancel(context.Background())
		m := &crashBeforeResume{Manager: w.WLM(), stop: stop}
		ex, err := crus.NewExecutor(w.HSM(), m, w.BOS(), w.Config())
		require.NoError(t, err)
		s, err := ex.Create(context.Background(), w.Spec(2))
		require.NoError(t, err)
		_, err = ex.Run(ctx, s.UpgradeID)
		require.ErrorIs(t, err, context.Canceled)
		mid, err := ex.Get(context.Background(), s.UpgradeID)
		require.NoError(t, err)
		resuming := 0
		for _, n := range mid.Progress.Nodes {
			if n.Phase == crus.PhaseResuming {
				resuming++
			}
		}
		require.Equal(t, 2, resuming, "stopped with the step's nodes recorded resuming")

		time.Sleep(time.Duration(mid.Spec.ReturnTimeout) + 10*time.Minute)
		final, err := ex.Run(context.Background(), s.UpgradeID)
		require.NoError(t, err)
		for _, n := range final.Progress.Nodes {
			assert.Equal(t, crus.OutcomeUpgraded, n.Outcome, "%s: %s", n.XName, n.Reason)
		}
		require.NoError(t, w.Check(context.Background(), final))
	})
}

// TestBootRequestReadsItsNodesFirst: between the observation a boot
// request comes from and its sending (minutes, with slow backends), an
// administrator resumes one of its drained nodes and a job lands on it.
// The executor reads the nodes again just before sending: the request is
// not sent, the next decision sends it for the node still drained, and no
// node is rebooted under a job (before, the job's node was).
func TestBootRequestReadsItsNodesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := crustest.New(crustest.Options{Nodes: 4, Seed: 3, RealClock: true})
		cfg := w.Config()
		var once sync.Once
		var resumed string
		cfg.OnEvent = func(ev crus.Event) {
			// Called at the record of the decision that sends the first
			// boot request, before it is sent.
			if ev.Kind != crus.EventPhase || ev.Phase != crus.PhaseBooting {
				return
			}
			once.Do(func() {
				resumed = ev.Node
				require.NoError(t, w.AdminResume(resumed))
				require.NoError(t, w.StartJob(resumed, time.Hour, 2*time.Hour))
			})
		}
		ctx := context.Background()
		final := runKitSession(t, w, cfg, 2)
		require.NotEmpty(t, resumed)
		require.NoError(t, w.Check(ctx, final), "no node rebooted under a job")
		for _, n := range final.Progress.Nodes {
			if n.XName != resumed {
				assert.Equal(t, crus.OutcomeUpgraded, n.Outcome, "%s: %s", n.XName, n.Reason)
			}
		}
	})
}

// TestBootRequestReadFailing: the read of a boot request's nodes just
// before it is sent fails, even with an error that says retrying is
// pointless: the request is not sent, and sent at a later decision. It
// is not the orchestrator refusing the request for good, which would
// abort the session (as it did, in CI, when the property test's workload
// manager refused reads for good just then).
func TestBootRequestReadFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := crustest.New(crustest.Options{Nodes: 4, Seed: 3, RealClock: true})
		cfg := w.Config()
		var once sync.Once
		cfg.OnEvent = func(ev crus.Event) {
			if ev.Kind == crus.EventPhase && ev.Phase == crus.PhaseBooting {
				// The next read is the boot request's.
				once.Do(func() { w.FailNext("wlm.Nodes", 1, batch.NewPermanent("refused for good")) })
			}
		}
		ctx := context.Background()
		final := runKitSession(t, w, cfg, 2)
		assert.Equal(t, crus.ResultComplete, final.Progress.Result, final.Progress.Abort)
		for _, n := range final.Progress.Nodes {
			assert.Equal(t, crus.OutcomeUpgraded, n.Outcome, "%s: %s", n.XName, n.Reason)
		}
		require.NoError(t, w.Check(ctx, final))
	})
}

// runKitSession creates a session of the kit's World w in steps of step,
// runs it to its end with an executor of cfg, and returns the final record.
func runKitSession(t *testing.T, w *crustest.World, cfg crus.Config, step int) *crus.Session {
	t.Helper()
	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), cfg)
	require.NoError(t, err)
	s, err := ex.Create(context.Background(), w.Spec(step))
	require.NoError(t, err)
	final, err := ex.Run(context.Background(), s.UpgradeID)
	require.NoError(t, err)
	return final
}
