package slurmtest

import (
	"net"
	"os"
	"testing"

	"github.com/crus-go/crus/internal/freeport"
)

// TestStartRetriesOnTakenPort takes the port chosen for a slurmd before
// the daemon can bind it, as another process may: the first cluster does
// not start, and Start starts a second one on new ports.
func TestStartRetriesOnTakenPort(t *testing.T) {
	if err := Installed(false); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("SKIPPING the real-Slurm test: %v", err)
	}
	var taken net.Listener
	defer func() {
		if taken != nil {
			taken.Close()
		}
	}()
	calls := 0
	choosePorts = func(n int) ([]int, error) {
		calls++
		ports, err := freeport.Loopback(n)
		if err != nil || calls > 1 {
			return ports, err
		}
		// The first attempt: the last node's port is bound by someone else.
		taken, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[n-1] = taken.Addr().(*net.TCPAddr).Port
		return ports, nil
	}
	defer func() { choosePorts = freeport.Loopback }()

	c, err := Start(t.Context(), Options{Nodes: 2})
	if err != nil {
		t.Fatalf("Start with a port taken at the first attempt: %v", err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	if calls != 2 {
		t.Errorf("ports chosen %d times, want 2 (one failed start, one retry)", calls)
	}
	if got, want := c.ports[c.names[1]], taken.Addr().(*net.TCPAddr).Port; got == want {
		t.Errorf("the cluster runs a slurmd on the taken port %d", got)
	}
	if pids := c.Pids(); len(pids) != 4 {
		t.Errorf("daemons running: %v; want munged, slurmctld and 2 slurmd", pids)
	}
}
