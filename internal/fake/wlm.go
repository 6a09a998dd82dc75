package fake

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// WLM is the World's workload manager, Slurm-like: nodes have jobs, drain
// keeps jobs running until they end, reboots are proven by boot times.
type WLM struct{ w *World }

var (
	_ wlm.Manager          = (*WLM)(nil)
	_ wlm.BootTimeReporter = (*WLM)(nil)
	_ wlm.JobEnder         = (*WLM)(nil)
)

// WLM returns the World's workload manager.
func (w *World) WLM() *WLM { return &WLM{w} }

// ReportsBootTime implements wlm.BootTimeReporter.
func (m *WLM) ReportsBootTime() bool { return !m.w.opts.NoBootTimes }

// Nodes implements wlm.Manager.
func (m *WLM) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	w, err := m.w.begin(ctx, "wlm.Nodes")
	if err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	out := make([]wlm.Node, len(names))
	err = w.nodesInto(names, out)
	// The unknown ones left out.
	return slices.DeleteFunc(out, func(n wlm.Node) bool { return n.Name == "" }), err
}

var _ wlm.NodesFiller = (*WLM)(nil)

// NodesInto implements wlm.NodesFiller: Nodes by position, with no slice
// made for the answer. It counts as a wlm.Nodes call.
func (m *WLM) NodesInto(ctx context.Context, names []string, out []wlm.Node) error {
	if len(out) != len(names) {
		return fmt.Errorf("fake: %d nodes for %d names", len(out), len(names))
	}
	w, err := m.w.begin(ctx, "wlm.Nodes")
	if err != nil {
		return err
	}
	defer w.mu.Unlock()
	return w.nodesInto(names, out)
}

// nodesInto sets out[k] to the state of names[k], the zero Node for an
// unknown one, which the error names. Callers hold the lock.
func (w *World) nodesInto(names []string, out []wlm.Node) error {
	var unknown []string
	for k, name := range names {
		n, ok := w.lookup(name)
		if !ok {
			out[k] = wlm.Node{}
			unknown = append(unknown, name)
			continue
		}
		out[k] = w.wlmNode(n)
	}
	return batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

// lookup finds a node by workload-manager name: by its NID when the name
// is the usual nid%06d of a node added in NID order (no hashing), by map
// otherwise. Callers hold the lock.
func (w *World) lookup(name string) (*node, bool) {
	if k := nidNumber(name); k >= 1 && k <= len(w.order) {
		// A node's name is nid%06d of its NID (AddNode), and name is that
		// of k: the same NID is the same name, with no string compared.
		if n := w.order[k-1]; n.nid == k {
			return n, !n.forgotten
		}
	}
	n, ok := w.byName[name]
	return n, ok
}

// nidNumber returns the number of a name of the form nid%06d, and -1 for
// any other name. (strconv.Atoi, which accepts signs and any length, was
// a third of the cost of a lookup at 100,000 nodes.)
func nidNumber(name string) int {
	if len(name) != 9 || name[:3] != "nid" {
		return -1
	}
	k := 0
	for i := 3; i < len(name); i++ {
		d := name[i] - '0'
		if d > 9 {
			return -1
		}
		k = k*10 + int(d)
	}
	return k
}

func (w *World) wlmNode(n *node) wlm.Node {
	s := wlm.Node{
		Name: n.name, Drain: n.drain, Fail: n.fail, Reason: n.reason, ReasonTime: n.reasonTime,
		Completing:      w.now.Before(n.completingUntil),
		RebootRequested: n.asap && !n.rebooting, RebootIssued: n.asap && n.rebooting,
		Steering: wlm.SteeringNone,
	}
	if n.sim.last {
		s.Steering = wlm.SteeringLast
	}
	switch {
	case !n.up:
		s.State, s.NotResponding = wlm.StateDown, true
	case len(n.jobs) > 0:
		s.State = wlm.StateAllocated
	default:
		s.State = wlm.StateIdle
	}
	if !w.opts.NoBootTimes {
		s.BootTime, s.AgentStartTime = n.bootTime, n.agentStart
	}
	return s
}

// each applies f to the named nodes, reporting unknown ones per node.
func (w *World) each(names []string, f func(n *node) error) error {
	var errs []error
	for _, name := range names {
		n, ok := w.lookup(name)
		if !ok {
			errs = append(errs, &batch.NodeError{Node: name, Err: wlm.ErrNodeNotFound})
			continue
		}
		n.touched++
		if err := f(n); err != nil {
			errs = append(errs, &batch.NodeError{Node: name, Err: err})
		}
		w.update(n)
	}
	return joinErrs(errs)
}

// Drain implements wlm.Manager.
func (m *WLM) Drain(ctx context.Context, names []string, reason string) (err error) {
	w, err := m.w.begin(ctx, "wlm.Drain")
	if err != nil {
		return err
	}
	defer w.end("wlm.Drain", &err)
	if reason == "" {
		return fmt.Errorf("%w: drain needs a reason", wlm.ErrInvalidArgument)
	}
	return w.each(names, func(n *node) error {
		if len(reason) > wlm.MaxReason {
			return fmt.Errorf("%w: a reason of %d bytes is longer than %d", wlm.ErrInvalidArgument, len(reason), wlm.MaxReason)
		}
		if n.faults.RefuseDrain {
			return fmt.Errorf("fake: node %s refuses to drain", n.name)
		}
		n.drain, n.reason, n.reasonTime = true, reason, w.now
		return nil
	})
}

// Resume implements wlm.Manager.
func (m *WLM) Resume(ctx context.Context, names []string) (err error) {
	w, err := m.w.begin(ctx, "wlm.Resume")
	if err != nil {
		return err
	}
	defer w.end("wlm.Resume", &err)
	return w.each(names, func(n *node) error {
		n.drain, n.fail, n.reason, n.reasonTime = false, false, "", time.Time{}
		return nil
	})
}

// Fail implements wlm.Manager.
func (m *WLM) Fail(ctx context.Context, names []string, reason string) (err error) {
	w, err := m.w.begin(ctx, "wlm.Fail")
	if err != nil {
		return err
	}
	defer w.end("wlm.Fail", &err)
	if reason == "" {
		return fmt.Errorf("%w: fail needs a reason", wlm.ErrInvalidArgument)
	}
	return w.each(names, func(n *node) error {
		if len(reason) > wlm.MaxReason {
			return fmt.Errorf("%w: a reason of %d bytes is longer than %d", wlm.ErrInvalidArgument, len(reason), wlm.MaxReason)
		}
		n.fail, n.reason, n.reasonTime = true, reason, w.now
		return nil
	})
}

// JobEnds implements wlm.JobEnder: the latest time limit of each busy
// node's jobs.
func (m *WLM) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	w, err := m.w.begin(ctx, "wlm.JobEnds")
	if err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	out := map[string]time.Time{}
	var unknown []string
	for _, name := range names {
		n, ok := w.lookup(name)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		for _, j := range n.jobs {
			if j.limit.After(out[name]) {
				out[name] = j.limit
			}
		}
	}
	return out, batch.Nodes(unknown, wlm.ErrNodeNotFound)
}
