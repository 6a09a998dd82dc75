package pbs

import (
	"context"
	"fmt"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// This file gives the adapter crus's optional wlm.Steerer, with vnode
// priorities: PBS's scheduler sorts the vnodes a job may use by their
// priority attribute, higher first (node_sort_key "sort_priority HIGH",
// its default), so a node of lower priority than every other gets new
// work last. The scheduled strategy steers the nodes it has still to
// upgrade so, and gives them their place back once done.
//
// A priority lies in -1024..1023. A node steered last gets its site
// priority minus SteerOffset, below every site priority and in the same
// order among steered nodes, and gets it back by adding SteerOffset. So
// the adapter reads a negative priority as its own steering: a site that
// sets negative priorities itself cannot be steered by it (its nodes of
// negative priority would be taken for steered ones).

// SteerOffset is what steering takes off a node's priority.
const SteerOffset = 1024

// Prioritizer is the part of the server's API that sets vnode
// priorities (qmgr -c "set node N priority = P": a PBS manager only).
type Prioritizer interface {
	// SetPriority sets the priority of each node of prios. The nodes
	// exist.
	SetPriority(ctx context.Context, prios map[string]int) error
}

var _ wlm.Steerer = (*Scheduling)(nil)

// Steer implements wlm.Steerer through vnode priorities. Over a server
// without them it returns wlm.ErrUnsupported: crus then does without
// steering.
func (m *Scheduling) Steer(ctx context.Context, names []string, last bool) error {
	if m.p == nil {
		return fmt.Errorf("pbs: steer: the server sets no vnode priorities: %w", wlm.ErrUnsupported)
	}
	if len(names) == 0 {
		return nil
	}
	infos, _, unknown, err := m.lookup(ctx, names)
	if err != nil {
		return err
	}
	set := map[string]int{}
	for _, i := range infos {
		switch {
		case last && i.Priority >= 0:
			set[i.Name] = i.Priority - SteerOffset
		case !last && i.Priority < 0:
			set[i.Name] = i.Priority + SteerOffset
		}
	}
	if len(set) > 0 {
		if err := m.p.SetPriority(ctx, set); err != nil {
			return classify("qmgr set node priority", err)
		}
	}
	return batch.Nodes(unknown, wlm.ErrNodeNotFound)
}
