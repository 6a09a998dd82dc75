package fake

import (
	"context"
	"slices"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// This file gives the fake workload manager wlm.Steerer, as Slurm's node
// weights behave: StartJobOnFree picks a node steered last only when the
// others free for the job do not suffice; among nodes steered alike the
// placement order stands.

var _ wlm.Steerer = (*WLM)(nil)

// Steer implements wlm.Steerer.
func (m *WLM) Steer(ctx context.Context, names []string, last bool) (err error) {
	w, err := m.w.begin(ctx, "wlm.Steer")
	if err != nil {
		return err
	}
	defer w.end("wlm.Steer", &err)
	var unknown []string
	for _, name := range names {
		n, ok := w.lookup(name)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		if w.setLast(n, last) {
			n.touched++
		}
	}
	return batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

// Steered returns the xnames of the nodes steered last, sorted.
func (w *World) Steered() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	if w.sim.steered == 0 {
		return out
	}
	for _, n := range w.order {
		if n.sim.last {
			out = append(out, n.xname)
		}
	}
	slices.Sort(out)
	return out
}

// IgnoreSteering has StartJobOnFree pick nodes as if none were steered
// (the Steer calls still succeed): a scheduler that ignores the order it
// was asked for, to measure what steering is worth.
func (w *World) IgnoreSteering(ignore bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sim.ignoreSteer = ignore
}

// AdminSteer steers one node as the site would, behind crus's back: not
// counted as crus touching it.
func (w *World) AdminSteer(xname string, last bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[xname]; ok {
		w.setLast(n, last)
	}
}

// setLast steers n, and reports whether that changed it. Callers hold
// the lock.
func (w *World) setLast(n *node, last bool) bool {
	if n.sim.last == last {
		return false
	}
	n.sim.last = last
	if last {
		w.sim.steered++
	} else {
		w.sim.steered--
	}
	return true
}
