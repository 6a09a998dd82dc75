package scaletest

import (
	"fmt"
	"time"

	"github.com/crus-go/crus"
)

// Start is when the sessions of Session began.
var Start = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// Session returns the record of a classic session of n nodes in steps of
// step, halfway through: the first half of its steps done (about 1% of
// their nodes failed), one step in flight, the rest pending, and about
// 0.5% of all nodes skipped. Each step took ten minutes.
func Session(id string, n, step int) *crus.Session {
	steps := (n + step - 1) / step
	current := steps/2 + 1
	s := &crus.Session{
		UpgradeID: id, Kind: crus.Kind, APIVersion: crus.APIVersion, State: crus.StateUpdating,
		Spec: crus.Spec{StartingLabel: "starting", UpgradingLabel: "upgrading", FailedLabel: "failed",
			StepSize: step, TemplateID: "compute", WorkloadManagerType: "slurm"},
		Progress: crus.Progress{
			Stage: crus.StageBooting, Step: current, Steps: steps,
			CreatedAt: Start, StartedAt: Start, StageSince: Start.Add(time.Duration(current-1) * 10 * time.Minute),
			Nodes: make([]crus.NodeRecord, n),
		},
	}
	s.AddMessages(fmt.Sprintf("Session created: %d nodes to upgrade in %d steps of at most %d", n, steps, step))
	for i := range s.Progress.Nodes {
		nd := &s.Progress.Nodes[i]
		nd.XName, nd.Name = fmt.Sprintf("x%05dc0s0b0n0", i), fmt.Sprintf("nid%06d", i)
		k := i/step + 1
		at := Start.Add(time.Duration(k-1) * 10 * time.Minute)
		switch {
		case i%200 == 7:
			nd.Phase, nd.Outcome, nd.Reason = crus.PhaseDone, crus.OutcomeSkipped, "not in service at session start: down"
			continue
		case k > current:
			nd.Phase = crus.PhasePending
			continue
		}
		nd.Step = k
		nd.DrainRequested, nd.Drained = at, at.Add(5*time.Minute)
		nd.RebootRequested, nd.Booted = at.Add(5*time.Minute), at.Add(8*time.Minute)
		nd.Boot = fmt.Sprintf("crus-%s-%d", id, k)
		if k == current {
			nd.Phase, nd.Since, nd.Booted = crus.PhaseBooting, nd.RebootRequested, time.Time{}
			continue
		}
		nd.Returned, nd.Finished = at.Add(9*time.Minute), at.Add(10*time.Minute)
		nd.Phase, nd.Outcome = crus.PhaseDone, crus.OutcomeUpgraded
		if i%100 == 3 {
			nd.Outcome, nd.Reason, nd.Returned = crus.OutcomeFailed, "boot session reported the node failed", time.Time{}
		}
	}
	return s
}
