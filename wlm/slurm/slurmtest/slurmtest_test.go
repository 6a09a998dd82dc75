package slurmtest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// TestCluster starts a cluster, reboots a node, and checks that Close
// stops every daemon it started and frees every port.
func TestCluster(t *testing.T) {
	if err := slurmtest.Installed(true); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("SKIPPING the real-Slurm test: %v", err)
	}
	ctx := t.Context()
	start := time.Now()
	c, err := slurmtest.Start(ctx, slurmtest.Options{Nodes: 3, REST: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 nodes and slurmrestd up in %s", time.Since(start).Round(time.Millisecond))
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	pids := c.Pids()
	if len(pids) != 6 {
		t.Errorf("daemons running: %v; want munged, slurmctld, slurmrestd and 3 slurmd", pids)
	}
	bootTime := func() string {
		out, err := c.Command(ctx, "scontrol", "show", "node", "nid000002")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(f, "BootTime="); ok {
				return v
			}
		}
		return ""
	}
	before := bootTime()
	old := c.Pids()["slurmd nid000002"]
	time.Sleep(1100 * time.Millisecond) // BootTime has whole seconds
	if err := c.Reboot("nid000002"); err != nil {
		t.Fatal(err)
	}
	if now := c.Pids()["slurmd nid000002"]; now == old || now == 0 {
		t.Errorf("slurmd of nid000002: pid %d before the reboot, %d after", old, now)
	}
	deadline := time.Now().Add(10 * time.Second)
	for bootTime() == before || bootTime() == "None" {
		if time.Now().After(deadline) {
			t.Fatalf("BootTime of nid000002 still %s after a simulated reboot", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Slurm sets the node DOWN "Node unexpectedly rebooted"; the RESUME
	// that clears it makes slurmd register again, which often counts as
	// a second unexpected reboot. Reset must see it through.
	if err := c.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		st, err := c.States(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range c.Names() {
			if st[n] != "idle" {
				t.Fatalf("after Reset, node %s is %s (states %v): Reset returned before the cluster settled", n, st[n], st)
			}
		}
	}

	pids, ports, dir := c.Pids(), c.Ports(), c.Dir
	closed = true
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range pids {
		// Reaped children leave no /proc entry, not even a zombie.
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			t.Errorf("%s (pid %d) still exists after Close: %.60s", name, pid, status)
		}
	}
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Errorf("port %d still bound after Close: %v", p, err)
			continue
		}
		l.Close()
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left behind: %v", dir, err)
	}
}

// TestSettleResumesAgain takes a node down again just after Settle has
// resumed it, as Slurm does when a restarted slurmd registers a second
// time with a boot time a second later ("Node unexpectedly rebooted"),
// and checks that Settle resumes it again and returns only once it stays
// idle.
func TestSettleResumesAgain(t *testing.T) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2})
	ctx := t.Context()
	const node = "nid000001"
	if err := c.StopNode(node); err != nil {
		t.Fatal(err)
	}
	if err := c.StartNode(node, true); err != nil {
		t.Fatal(err)
	}
	down := func(ctx context.Context) error {
		_, err := c.Command(ctx, "scontrol", "update", "NodeName="+node, "State=DOWN", "Reason=slurmtest: as if unexpectedly rebooted")
		return err
	}
	if err := down(ctx); err != nil {
		t.Fatal(err)
	}
	knocked := make(chan error, 1)
	gctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	defer func() { cancel(); wg.Wait() }()
	go func() {
		defer wg.Done()
		// Once Settle has brought the node back, take it down again, once.
		for gctx.Err() == nil {
			if st, err := c.States(gctx); err == nil && st[node] == "idle" {
				knocked <- down(gctx)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if err := c.Settle(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-knocked:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("Settle returned before the node went down again: it did not wait for a recently started node to stay idle")
	}
	st, err := c.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[node] != "idle" {
		t.Fatalf("after Settle, %s is %s", node, st[node])
	}
}
