package crus_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/wlm"
)

// reordering is the fake workload manager answering Nodes in the reverse
// of the order asked (as an adapter that sorts its answer might).
type reordering struct{ *fake.WLM }

func (m reordering) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	out, err := m.WLM.Nodes(ctx, names)
	slices.Reverse(out)
	return out, err
}

// filling and reorderingFilling answer job ends by position too
// (wlm.JobEndsFiller), from the map of the manager they wrap.
type filling struct{ *fake.WLM }

func (m filling) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	return wlm.JobEndsAt(ctx, m.WLM, names, ends)
}

type reorderingFilling struct{ reordering }

func (m reorderingFilling) JobEndsInto(ctx context.Context, names []string, ends []time.Time) error {
	return wlm.JobEndsAt(ctx, m.WLM, names, ends)
}

// TestRunWhateverTheShapeOfAnswers: the executor reads the nodes it
// observes by position when the workload manager answers in the order
// asked (and then keeps the pending ones out of Observation.Nodes), by
// name when it does not; and job ends by position from a
// wlm.JobEndsFiller, else from the map. No shape changes a decision: on
// the same world every rollout ends with the same record, node by node
// and message by message.
func TestRunWhateverTheShapeOfAnswers(t *testing.T) {
	all := maps.Clone(rollouts)
	all["scheduled"] = crus.Rollout{Strategy: crus.StrategyScheduled}
	for name, r := range all {
		t.Run(name, func(t *testing.T) {
			var want *crus.Session
			for _, shape := range []string{"in order", "reordered", "ends by position", "reordered, ends by position"} {
				e := newEnv(t, fake.ClusterOptions{Nodes: 30, Busy: 0.8, MaxJob: 3 * time.Hour, Options: fake.Options{Seed: 3}}, 4)
				e.w.KeepBusy(0.5, 3*time.Hour, 10*time.Minute, e.w.Now().Add(24*time.Hour))
				e.spec.Rollout = r
				var m wlm.Manager = e.w.WLM()
				switch shape {
				case "reordered":
					m = reordering{e.w.WLM()}
				case "ends by position":
					m = filling{e.w.WLM()}
				case "reordered, ends by position":
					m = reorderingFilling{reordering{e.w.WLM()}}
				}
				var err error
				e.ex, err = crus.NewExecutor(e.w.HSM(), m, e.w.BOS(), e.cfg)
				require.NoError(t, err)
				got := e.run()
				if want == nil {
					want = got
					continue
				}
				if d := cmp.Diff(want.Progress.Nodes, got.Progress.Nodes); d != "" {
					t.Errorf("%s: the nodes differ from those in order (-in order +%s):\n%s", shape, shape, d)
				}
				if d := cmp.Diff(want.Messages, got.Messages); d != "" {
					t.Errorf("%s: the messages differ from those in order (-in order +%s):\n%s", shape, shape, d)
				}
			}
		})
	}
}

// TestNextObservesEveryNode: the observation Next returns holds every
// node of the scope in its map, and every job end asked for, the pending
// ones the executor reads by position included.
func TestNextObservesEveryNode(t *testing.T) {
	for _, r := range []crus.Rollout{{}, {Strategy: crus.StrategyRolling, Order: crus.OrderJobEnd}, {Strategy: crus.StrategyScheduled}} {
		e := newEnv(t, fake.ClusterOptions{Nodes: 30, Busy: 0.8, MaxJob: 3 * time.Hour, Options: fake.Options{Seed: 3}}, 4)
		e.spec.Rollout = r
		s := e.create()
		obs, _, err := e.ex.Next(context.Background(), s)
		require.NoError(t, err)
		sc := crus.ScopeFor(s)
		require.NotEmpty(t, sc.Nodes)
		for _, x := range sc.Nodes {
			_, ok := obs.Nodes[x]
			require.True(t, ok, "%s: %s of the scope is not in Observation.Nodes", r.Strategy, x)
		}
		// And every job end asked for, read by position too.
		if r.Order != crus.OrderJobEnd && r.Strategy != crus.StrategyScheduled {
			assert.Empty(t, sc.JobEnds, "%s %s", r.Strategy, r.Order)
			continue
		}
		require.NotEmpty(t, sc.JobEnds, r.Strategy)
		name := map[string]string{}
		for _, n := range s.Progress.Nodes {
			name[n.XName] = n.Name
		}
		var names []string
		for _, x := range sc.JobEnds {
			names = append(names, name[x])
		}
		ends, err := e.w.WLM().JobEnds(context.Background(), names)
		require.NoError(t, err)
		require.NotEmpty(t, ends, "%s: a busy cluster runs jobs on the candidates", r.Strategy)
		want := map[string]time.Time{}
		for _, x := range sc.JobEnds {
			if t, ok := ends[name[x]]; ok {
				want[x] = t
			}
		}
		assert.Equal(t, want, obs.JobEnds, "%s: Observation.JobEnds of Next", r.Strategy)
	}
}
