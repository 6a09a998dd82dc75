package pbs_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/crus-go/crus/examples/pbs"
)

// server is an in-memory PBS-like server for the tests: nodes with jobs
// that end on their own, an offline mark with a comment, and moms that
// can be powered off and on (the two methods of wlmtest.Rebooter, which
// the kit's boot orchestrator calls too); maintenance reservations, and
// queued jobs that its scheduler starts only where they keep clear of
// them (reserve_test.go); vnode priorities, by which it places a job
// that names no node (steer_test.go). It takes its time from clock.
type server struct {
	clock interface{ Now() time.Time }

	mu    sync.Mutex
	nodes map[string]*pbsNode
	jobID int

	resv     map[string]*pbs.Resv // by ID
	resvID   int
	made     int  // reservations made (pbs_rsub)
	notAdmin bool // reservations and priorities are refused: crus does not run as a PBS manager
	queue    []*queued

	prioritySets int // calls that set priorities (qmgr)
}

type pbsNode struct {
	up      bool
	offline bool
	comment string
	jobs    map[string]pbsJob // by job id
	booted  time.Time
	lost    []string // jobs lost when the node was powered off
	// priority is the vnode's (qmgr set node priority): the scheduler
	// puts a job that names no node on the free node of highest
	// priority, then of least name (steer_test.go).
	priority int
}

type pbsJob struct {
	end      time.Time // when it ends
	walltime time.Time // when its walltime runs out, as qstat shows
}

func newServer(clock interface{ Now() time.Time }, names []string) *server {
	s := &server{clock: clock, nodes: map[string]*pbsNode{}}
	for _, n := range names {
		s.nodes[n] = &pbsNode{up: true, jobs: map[string]pbsJob{}, booted: clock.Now().Add(-24 * time.Hour).Truncate(time.Second)}
	}
	return s
}

// expire ends the jobs whose time has come. Callers hold the lock.
func (s *server) expire(n *pbsNode) {
	now := s.clock.Now()
	for id, j := range n.jobs {
		if !now.Before(j.end) {
			delete(n.jobs, id)
		}
	}
}

func (s *server) Nodes(ctx context.Context, names []string) ([]pbs.NodeInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatch()
	var out []pbs.NodeInfo
	for _, name := range names {
		n, ok := s.nodes[name]
		if !ok {
			continue
		}
		s.expire(n)
		i := pbs.NodeInfo{Name: name, Comment: n.comment, BootTime: n.booted, Priority: n.priority}
		for id, j := range n.jobs {
			i.Jobs = append(i.Jobs, id)
			if j.walltime.After(i.JobsEnd) {
				i.JobsEnd = j.walltime
			}
		}
		slices.Sort(i.Jobs)
		switch {
		case !n.up:
			i.State = "down"
		case len(n.jobs) > 0:
			i.State = "job-busy"
		default:
			i.State = "free"
		}
		if n.offline {
			i.State += ",offline"
		}
		out = append(out, i)
	}
	return out, nil
}

func (s *server) SetOffline(ctx context.Context, names []string, offline bool, comment string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		n, ok := s.nodes[name]
		if !ok {
			return fmt.Errorf("pbsnodes: Unknown node %s", name)
		}
		n.offline, n.comment = offline, comment
	}
	return nil
}

// run starts a job on the node for d, if it is up and not offline.
func (s *server) run(name string, d time.Duration) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	if !ok || !n.up || n.offline {
		return "", fmt.Errorf("qsub: node %s cannot run jobs", name)
	}
	s.jobID++
	id := fmt.Sprintf("%d.pbs", s.jobID)
	end := s.clock.Now().Add(d)
	n.jobs[id] = pbsJob{end: end, walltime: end}
	return id, nil
}

// end ends a job now.
func (s *server) end(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes[name].jobs, id)
}

// offline marks a node offline as an operator would.
func (s *server) setOffline(name, comment string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[name].offline, s.nodes[name].comment = true, comment
}

// PowerOff stops the node's mom: PBS sees it down, its jobs are lost.
func (s *server) PowerOff(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	if !ok {
		return fmt.Errorf("no node %s", name)
	}
	s.expire(n)
	for id := range n.jobs {
		n.lost = append(n.lost, id)
	}
	n.up, n.jobs = false, map[string]pbsJob{}
	return nil
}

// PowerOn boots the node: its mom reports a boot now.
func (s *server) PowerOn(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	if !ok {
		return fmt.Errorf("no node %s", name)
	}
	n.up, n.booted = true, s.clock.Now().Truncate(time.Second)
	return nil
}

// lostJobs returns the jobs lost to power-offs, by node.
func (s *server) lostJobs() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for name, n := range s.nodes {
		if len(n.lost) > 0 {
			out[name] = slices.Clone(n.lost)
		}
	}
	return out
}
