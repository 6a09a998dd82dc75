package crustest_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/crustest"
	"github.com/crus-go/crus/wlm"
)

// mini is a tiny workload manager of one's own, in memory: what an
// adapter's test would put behind its wlm.Manager. It takes its time from
// the World, and powers nodes off and on for the World's boot
// orchestrator (the methods of wlmtest.Rebooter).
type mini struct {
	clock interface{ Now() time.Time }
	mu    sync.Mutex
	nodes map[string]*miniNode
}

type miniNode struct {
	up, drain, fail bool
	reason          string
	booted, jobEnd  time.Time
}

func (m *mini) each(names []string, f func(*miniNode)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var unknown []string
	for _, name := range names {
		if n, ok := m.nodes[name]; ok {
			f(n)
		} else {
			unknown = append(unknown, name)
		}
	}
	return batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

func (m *mini) Nodes(_ context.Context, names []string) ([]wlm.Node, error) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []wlm.Node
	var unknown []string
	for _, name := range names {
		n, ok := m.nodes[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		s := wlm.Node{Name: name, State: wlm.StateIdle, Drain: n.drain, Fail: n.fail, Reason: n.reason, BootTime: n.booted}
		switch {
		case !n.up:
			s.State, s.NotResponding = wlm.StateDown, true
		case now.Before(n.jobEnd):
			s.State = wlm.StateAllocated
		}
		out = append(out, s)
	}
	return out, batch.Nodes(unknown, wlm.ErrNodeNotFound)
}

func (m *mini) Drain(_ context.Context, names []string, reason string) error {
	return m.each(names, func(n *miniNode) { n.drain, n.reason = true, reason })
}

func (m *mini) Resume(_ context.Context, names []string) error {
	return m.each(names, func(n *miniNode) { n.drain, n.fail, n.reason = false, false, "" })
}

func (m *mini) Fail(_ context.Context, names []string, reason string) error {
	return m.each(names, func(n *miniNode) { n.fail, n.reason = true, reason })
}

func (m *mini) ReportsBootTime() bool { return true }

func (m *mini) PowerOff(_ context.Context, name string) error {
	return m.each([]string{name}, func(n *miniNode) { n.up, n.jobEnd = false, time.Time{} })
}

func (m *mini) PowerOn(_ context.Context, name string) error {
	now := m.clock.Now()
	return m.each([]string{name}, func(n *miniNode) { n.up, n.booted = true, now })
}

// ExampleWorld_UseManager runs a session against a workload manager of
// one's own, with the kit's HSM and boot orchestrator, and checks crus's
// promises on it.
func ExampleWorld_UseManager() {
	ctx := context.Background()
	w := crustest.New(crustest.Options{Nodes: 6, WorkloadManagerType: "mini"})
	m := &mini{clock: w, nodes: map[string]*miniNode{}}
	for i, name := range w.Names() {
		m.nodes[name] = &miniNode{up: true, booted: w.Now().Add(-time.Hour), jobEnd: w.Now().Add(time.Duration(i) * time.Hour)}
	}
	w.UseManager(m, m)

	ex, err := crus.NewExecutor(w.HSM(), w.WLM(), w.BOS(), w.Config())
	if err != nil {
		log.Fatal(err)
	}
	s, err := ex.Create(ctx, w.Spec(2))
	if err != nil {
		log.Fatal(err)
	}
	final, err := ex.Run(ctx, s.UpgradeID)
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Check(ctx, final); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d of %d upgraded\n", final.Progress.Result, final.Counts().Upgraded, final.Counts().Nodes)
	// Output:
	// complete: 6 of 6 upgraded
}
