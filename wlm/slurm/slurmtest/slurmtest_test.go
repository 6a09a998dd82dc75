package slurmtest_test

import (
	"fmt"
	"net"
	"os"
	"strings"
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
	if err := c.Reset(ctx); err != nil {
		t.Fatal(err)
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
