// Package pbs is a small workload-manager adapter for a PBS-like
// scheduler, written as a site would write one outside crus's repository:
// it uses only crus's public packages, passes the conformance suite of
// wlm/wlmtest, and runs whole rolling upgrades on the test kit of
// crustest (see its tests).
//
// The scheduler is reached through [Server], a thin client of its API
// (pbsnodes and qstat in real life). PBS has no drain: a node marked
// offline takes no new jobs and lets its running ones finish, which is
// crus's drain. It has no fail either: the adapter marks a failed node
// offline with a comment that starts with "FAIL: ". The walltimes of
// nodes' jobs give wlm.JobEnder.
//
// Over a server that also has maintenance reservations ([Reserver]:
// pbs_rsub --hosts, pbs_ralter, pbs_rdel, pbs_rstat), [NewScheduling]
// returns an adapter that is a wlm.Scheduler too, so that crus's scheduled
// strategy books each node's slot ahead; it passes the conformance suite's
// RunSchedulerTests. Without it, or when PBS refuses reservations to a
// user who is not a manager, the strategy takes nodes as rolling by
// expected job ends. Over a server that also sets vnode priorities
// ([Prioritizer]), that adapter steers too (wlm.Steerer, steer.go): the
// nodes still to upgrade become the scheduler's last choice for new jobs.
package pbs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
)

// NodeInfo is a node as the server reports it.
type NodeInfo struct {
	Name string
	// State is PBS's comma-separated state: free, job-busy,
	// job-exclusive, offline, down, state-unknown.
	State   string
	Comment string   // set with the offline mark
	Jobs    []string // jobs running on it
	// BootTime is when the node last booted, as its mom reports it; zero
	// if unknown.
	BootTime time.Time
	// JobsEnd is when the walltime of its last job runs out (qstat -f:
	// stime + Resource_List.walltime); zero if it runs none or it is not
	// known.
	JobsEnd time.Time
	// Priority is the vnode's priority attribute (pbsnodes -a; 0 if
	// unset): the scheduler fills the nodes of higher priority first.
	Priority int
}

// Server is the scheduler's API the adapter needs.
type Server interface {
	// Nodes reports the named nodes that exist; unknown names are left
	// out.
	Nodes(ctx context.Context, names []string) ([]NodeInfo, error)
	// SetOffline marks the nodes offline with comment (pbsnodes -o -C),
	// or, with offline false, clears the mark and the comment
	// (pbsnodes -r). The nodes exist.
	SetOffline(ctx context.Context, names []string, offline bool, comment string) error
}

const failMark = "FAIL: "

// Manager is the adapter: a wlm.Manager that reports boot times and
// describes nodes in PBS's words.
type Manager struct{ s Server }

var (
	_ wlm.Manager          = (*Manager)(nil)
	_ wlm.BootTimeReporter = (*Manager)(nil)
	_ wlm.Describer        = (*Manager)(nil)
	_ wlm.JobEnder         = (*Manager)(nil)
)

// New returns an adapter for the server.
func New(s Server) *Manager { return &Manager{s} }

// ReportsBootTime implements wlm.BootTimeReporter.
func (m *Manager) ReportsBootTime() bool { return true }

// Nodes implements wlm.Manager.
func (m *Manager) Nodes(ctx context.Context, names []string) ([]wlm.Node, error) {
	if len(names) == 0 {
		return nil, nil
	}
	infos, err := m.s.Nodes(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("pbs: reading nodes: %w", err)
	}
	byName := map[string]NodeInfo{}
	for _, i := range infos {
		byName[i.Name] = i
	}
	var out []wlm.Node
	var unknown []string
	for _, name := range names {
		i, ok := byName[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		out = append(out, node(i))
	}
	return out, batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

// JobEnds implements wlm.JobEnder: when the walltime of each busy node's
// last job runs out. It lets crus's job_end order and scheduled strategy
// take nodes as their jobs end.
func (m *Manager) JobEnds(ctx context.Context, names []string) (map[string]time.Time, error) {
	if len(names) == 0 {
		return nil, nil
	}
	infos, _, unknown, err := m.lookup(ctx, names)
	if err != nil {
		return nil, err
	}
	ends := map[string]time.Time{}
	for _, i := range infos {
		if len(i.Jobs) > 0 && !i.JobsEnd.IsZero() {
			ends[i.Name] = i.JobsEnd
		}
	}
	return ends, batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

func node(i NodeInfo) wlm.Node {
	n := wlm.Node{Name: i.Name, State: wlm.StateUnknown, BootTime: i.BootTime, Steering: wlm.SteeringNone}
	if i.Priority < 0 {
		// As Steer reads it: a negative priority is its steering (see
		// SteerOffset).
		n.Steering = wlm.SteeringLast
	}
	words := strings.Split(i.State, ",")
	switch {
	case slices.Contains(words, "down"):
		n.State, n.NotResponding = wlm.StateDown, true
	case slices.Contains(words, "state-unknown"):
		n.NotResponding = true
	case slices.Contains(words, "job-busy"), slices.Contains(words, "job-exclusive"):
		n.State = wlm.StateAllocated
	case slices.Contains(words, "free") && len(i.Jobs) > 0:
		n.State = wlm.StateMixed
	case slices.Contains(words, "free"):
		n.State = wlm.StateIdle
	}
	if slices.Contains(words, "offline") {
		if reason, ok := strings.CutPrefix(i.Comment, failMark); ok {
			n.Fail, n.Reason = true, reason
		} else {
			n.Drain, n.Reason = true, i.Comment
		}
	}
	return n
}

// lookup reads the named nodes, and splits the names into the known
// ones and the unknown ones (each once).
func (m *Manager) lookup(ctx context.Context, names []string) (infos []NodeInfo, ok, unknown []string, err error) {
	infos, err = m.s.Nodes(ctx, names)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pbs: reading nodes: %w", err)
	}
	known := map[string]bool{}
	for _, i := range infos {
		known[i.Name] = true
	}
	for _, name := range names {
		switch {
		case known[name]:
			ok = append(ok, name)
		case !slices.Contains(unknown, name):
			unknown = append(unknown, name)
		}
	}
	return infos, ok, unknown, nil
}

// set marks the known nodes among names, and reports the unknown ones
// per node.
func (m *Manager) set(ctx context.Context, names []string, offline bool, comment string) error {
	if len(names) == 0 {
		return nil
	}
	_, ok, unknown, err := m.lookup(ctx, names)
	if err != nil {
		return err
	}
	if len(ok) > 0 {
		if err := m.s.SetOffline(ctx, ok, offline, comment); err != nil {
			return fmt.Errorf("pbs: pbsnodes: %w", err)
		}
	}
	return batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

// Drain implements wlm.Manager: the nodes are marked offline with the
// reason as comment.
func (m *Manager) Drain(ctx context.Context, names []string, reason string) error {
	if reason == "" {
		return fmt.Errorf("%w: drain needs a reason", wlm.ErrInvalidArgument)
	}
	return m.set(ctx, names, true, reason)
}

// Resume implements wlm.Manager: the offline mark is cleared.
func (m *Manager) Resume(ctx context.Context, names []string) error {
	return m.set(ctx, names, false, "")
}

// Fail implements wlm.Manager: the nodes are marked offline with the
// comment "FAIL: " and the reason.
func (m *Manager) Fail(ctx context.Context, names []string, reason string) error {
	if reason == "" {
		return fmt.Errorf("%w: fail needs a reason", wlm.ErrInvalidArgument)
	}
	return m.set(ctx, names, true, failMark+reason)
}

// Describe implements wlm.Describer in PBS's words: "free",
// "job-busy,offline", "down,offline".
func (m *Manager) Describe(n wlm.Node) string {
	var words []string
	switch n.State {
	case wlm.StateIdle, wlm.StateMixed:
		words = append(words, "free")
	case wlm.StateAllocated:
		words = append(words, "job-busy")
	case wlm.StateDown:
		words = append(words, "down")
	default:
		words = append(words, "state-unknown")
	}
	if n.Drain || n.Fail {
		words = append(words, "offline")
	}
	if n.Fail {
		words = append(words, "failed")
	}
	return strings.Join(words, ",")
}
