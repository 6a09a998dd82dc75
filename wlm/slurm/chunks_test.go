package slurm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// TestChunks: a step whose hostlist would be too long for one argument is
// split over several commands, and the calls still act on every node.
func TestChunks(t *testing.T) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 8})
	var mu sync.Mutex
	var cmds []string
	m, err := NewCLI(Config{SlurmConf: c.Conf, Runner: func(ctx context.Context, cmd Command) ([]byte, []byte, error) {
		mu.Lock()
		cmds = append(cmds, cmd.String())
		mu.Unlock()
		return Exec(ctx, cmd)
	}})
	if err != nil {
		t.Fatal(err)
	}
	m.maxHostlst = 25 // "nid[000001,000003,000005]" is 25 bytes
	names := []string{"nid000001", "nid000003", "nid000005", "nid000007", "nid000008"}
	if got := m.chunks(names); !slices.Equal(got, []string{"nid[000001,000003]", "nid[000005,000007-000008]"}) {
		t.Errorf("chunks = %q", got)
	}
	ctx := t.Context()
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := cmds
		cmds = nil
		return out
	}
	if err := m.Drain(ctx, names, "crus chunks"); err != nil {
		t.Fatal(err)
	}
	if got := take(); len(got) != 2 {
		t.Errorf("Drain ran %q; want 2 commands", got)
	}
	nodes, err := m.Nodes(ctx, c.Names())
	if err != nil || len(nodes) != 8 {
		t.Fatalf("Nodes: %v, %v", nodes, err)
	}
	for _, n := range nodes {
		if n.Drained() != slices.Contains(names, n.Name) {
			t.Errorf("%s: %s", n.Name, n.Condition())
		}
	}
	take()
	if err := m.Resume(ctx, names); err != nil {
		t.Fatal(err)
	}
	if got := take(); len(got) != 4 {
		t.Errorf("Resume ran %q; want 2 reads and 2 updates", got)
	}
}

// TestCLIStops: a command that hangs is stopped at Config.Timeout, or
// when the context is cancelled, and the error says which.
func TestCLIStops(t *testing.T) {
	hang := filepath.Join(t.TempDir(), "scontrol")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := NewCLI(Config{Scontrol: hang, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = m.Nodes(t.Context(), []string{"nid000001"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 300ms") || time.Since(start) > 10*time.Second {
		t.Errorf("hanging scontrol: %v after %s", err, time.Since(start))
	}
	m, err = NewCLI(Config{Scontrol: hang})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	err = m.Drain(ctx, []string{"nid000001"}, "crus test")
	if !errors.Is(err, context.Canceled) || errors.Is(err, wlm.ErrNodeNotFound) {
		t.Errorf("cancelled: %v", err)
	}
}
