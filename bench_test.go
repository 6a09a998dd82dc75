package crus

import (
	"fmt"
	"testing"
	"time"

	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/wlm"
)

// benchSession is a rolling job_end session of n nodes (step n/100) half
// way through: half the nodes upgraded, a full window in flight in every
// phase, and an observation in which a tenth of the window has come back,
// so the decision finishes nodes, boots drained ones and ranks candidates
// to refill the window.
func benchSession(n int) (*Session, Observation) {
	step := n / 100
	s := &Session{
		UpgradeID: "bench", Kind: Kind, APIVersion: APIVersion, State: StateUpdating,
		Spec: Spec{
			StartingLabel: "start", UpgradingLabel: "upg", FailedLabel: "fail",
			StepSize: step, TemplateID: "tmpl", WorkloadManagerType: "slurm",
			Rollout: Rollout{Strategy: StrategyRolling, Order: OrderJobEnd},
		}.WithDefaults(),
		Progress: Progress{Stage: StageQuiescing, CreatedAt: t0, StartedAt: t0, Step: 40},
	}
	now := t0.Add(20 * time.Hour)
	obs := Observation{
		Now: now, Nodes: map[string]wlm.Node{}, Unknown: map[string]string{}, Boots: map[string]bos.Status{},
		MissingBoots: map[string]bool{}, JobEnds: map[string]time.Time{}, BootTimes: true, BootTimeSlack: time.Second,
		UpgradingObserved: true,
	}
	s.Progress.Nodes = make([]NodeRecord, n)
	boot := bos.Status{Name: "crus-bench-7", Phase: bos.PhaseRunning, Nodes: map[string]bos.NodeStatus{}}
	for i := range n {
		x := fmt.Sprintf("x%04dc%ds%db%dn%d", 1000+i/256, i%256/32, i%32/4, i%4/2, i%2)
		nr := NodeRecord{XName: x, Name: fmt.Sprintf("nid%06d", i+1), Phase: PhasePending, Since: t0}
		w := wlm.Node{Name: nr.Name, State: wlm.StateAllocated, BootTime: t0.Add(-24 * time.Hour)}
		switch {
		case i < n/2: // upgraded
			nr.Phase, nr.Outcome, nr.Step = PhaseDone, OutcomeUpgraded, 1+i/step
		case i < n/2+step: // the window
			nr.Step, nr.Grouped, nr.DrainRequested = 40, true, now.Add(-time.Hour)
			w.Drain, w.Reason = true, "crus bench: rolling upgrade"
			switch k := (i - n/2) * 10 / step; {
			case k < 4:
				nr.Phase = PhaseQuiescing
			case k < 5:
				nr.Phase, w.State = PhaseQuiesced, wlm.StateIdle
			case k < 8:
				nr.Phase, nr.Boot, nr.RebootRequested = PhaseBooting, boot.Name, now.Add(-5*time.Minute)
				w.State, w.NotResponding = wlm.StateDown, true
				boot.Nodes[x] = bos.NodeStatus{}
			case k < 9:
				nr.Phase, nr.Booted, nr.RebootRequested = PhaseReturning, now.Add(-time.Minute), now.Add(-12*time.Minute)
				w.State, w.NotResponding = wlm.StateDown, true
			default: // back with a new boot time: upgraded in this decision
				nr.Phase, nr.Booted, nr.RebootRequested = PhaseReturning, now.Add(-time.Minute), now.Add(-12*time.Minute)
				w.State, w.BootTime = wlm.StateIdle, now.Add(-30*time.Second)
			}
			obs.Nodes[x] = w
			obs.Upgrading = append(obs.Upgrading, x)
		}
		s.Progress.Nodes[i] = nr
	}
	obs.Boots[boot.Name] = boot
	// The candidates the executor observes: the first lookahead pending.
	sc := ScopeFor(s)
	for _, x := range sc.Nodes {
		if _, ok := obs.Nodes[x]; !ok {
			obs.Nodes[x] = wlm.Node{Name: x, State: wlm.StateAllocated}
		}
	}
	for k, x := range sc.JobEnds {
		obs.JobEnds[x] = now.Add(time.Duration(k%97) * 7 * time.Minute)
	}
	return s, obs
}

// BenchmarkPlan measures one planning decision. "plain" is Plan as a
// caller outside the executor sees it (one pass over all records);
// "executor" is what the executor does each iteration: ScopeFor and Plan
// through its node index.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		s, obs := benchSession(n)
		b.Run(fmt.Sprintf("plain/%dk", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Plan(s, obs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("executor/%dk", n/1000), func(b *testing.B) {
			benchExecutorPlan(b, s, obs, func(d Decision) string {
				if len(d.Changes) < n/1000 {
					return fmt.Sprintf("only %d changes: the decision did not do its work", len(d.Changes))
				}
				return ""
			})
		})
	}
}

// benchExecutorPlan measures what the executor does each iteration:
// ScopeFor and Plan through its node index. check says what is wrong
// with a decision ("" if nothing).
func benchExecutorPlan(b *testing.B, s *Session, obs Observation, check func(Decision) string) {
	idx := newNodeIndex(s)
	obs = withView(s, idx, obs) // as the executor observes
	defer func(was bool) { checkObservedAt = was }(checkObservedAt)
	checkObservedAt = false // the tests' check: not what is measured
	b.ReportAllocs()
	for b.Loop() {
		scopeWith(s, idx, false)
		d, err := planWith(s, obs, idx)
		if err != nil {
			b.Fatal(err)
		}
		if msg := check(d); msg != "" {
			b.Fatal(msg)
		}
	}
}
