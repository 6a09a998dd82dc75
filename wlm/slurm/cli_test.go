package slurm_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/freeport"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// TestCLIRefusesNames checks that malformed names are refused, per node,
// before any command runs, while the valid names of the batch are acted
// on.
func TestCLIRefusesNames(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2})
	var cnt counter
	cli := newCLI(t, c, cnt.run)
	good := c.Names()[0]
	bad := []string{"nid1 State=RESUME", "-h", "nid[1-2]", "a,b", "x=y", ""}

	err := cli.Drain(ctx, bad, "crus test")
	cmds, _ := cnt.take()
	if len(cmds) != 0 {
		t.Errorf("Drain of refused names ran %q", cmds)
	}
	perNode, rest := batch.Split(err)
	if rest != nil || len(perNode) != len(bad) {
		t.Fatalf("Drain(%q): per node %v, rest %v", bad, perNode, rest)
	}
	for _, b := range bad {
		if !errors.Is(perNode[b], wlm.ErrInvalidArgument) {
			t.Errorf("name %q: error %v, want wlm.ErrInvalidArgument", b, perNode[b])
		}
	}

	err = cli.Drain(ctx, append([]string{good}, bad...), "crus test")
	if perNode, rest := batch.Split(err); rest != nil || len(perNode) != len(bad) {
		t.Fatalf("Drain with one good name: per node %v, rest %v", perNode, rest)
	}
	cmds, _ = cnt.take()
	if len(cmds) != 1 || cmds[0] != "scontrol update NodeName="+good+" State=DRAIN Reason=crus test" {
		t.Errorf("commands %q; want one update of %s alone", cmds, good)
	}
	nodes, err := cli.Nodes(ctx, []string{"-h", good})
	if perNode, rest := batch.Split(err); len(nodes) != 1 || !nodes[0].Drained() || rest != nil || len(perNode) != 1 {
		t.Errorf("Nodes: %v, %v", nodes, err)
	}
	if err := cli.Resume(ctx, []string{good}); err != nil {
		t.Fatal(err)
	}
}

// TestCLIErrors checks the errors of the whole call: a missing program, a
// cluster that does not answer, and a command that takes too long.
func TestCLIErrors(t *testing.T) {
	ctx := t.Context()
	m, err := slurm.NewCLI(slurm.Config{Scontrol: "/nonexistent/scontrol"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Nodes(ctx, []string{"nid000001"})
	var ce *slurm.CommandError
	if !errors.As(err, &ce) || ce.ExitCode != -1 || batch.IsPermanent(err) {
		t.Errorf("missing scontrol: %v; want a *slurm.CommandError, not permanent", err)
	}
	if perNode, _ := batch.Split(err); len(perNode) > 0 {
		t.Errorf("missing scontrol reported per node: %v", perNode)
	}

	// The cluster's slurm.conf with the controller on a port where
	// nothing listens: scontrol cannot reach it.
	c := slurmtest.New(t, slurmtest.Options{Nodes: 1})
	conf, err := os.ReadFile(c.Conf)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := freeport.Loopback(1)
	if err != nil {
		t.Fatal(err)
	}
	port := ports[0]
	bad := regexp.MustCompile(`(?m)^SlurmctldPort=.*$`).ReplaceAllString(string(conf), fmt.Sprintf("SlurmctldPort=%d", port)) + "MessageTimeout=1\n"
	badConf := filepath.Join(t.TempDir(), "slurm.conf")
	if err := os.WriteFile(badConf, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err = slurm.NewCLI(slurm.Config{SlurmConf: badConf, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Drain(ctx, []string{"nid000001"}, "crus test")
	if !errors.As(err, &ce) || ce.ExitCode <= 0 {
		t.Errorf("a slurm.conf that does not exist: %v; want scontrol's failure", err)
	} else if perNode, _ := batch.Split(err); len(perNode) > 0 {
		t.Errorf("a failing controller reported per node: %v", perNode)
	}
	t.Logf("error for the whole call: %v", err)
}

func TestConfigValidate(t *testing.T) {
	if _, err := slurm.NewCLI(slurm.Config{Timeout: -1}); err == nil {
		t.Error("negative timeout accepted")
	}
	if _, err := slurm.NewCLI(slurm.Config{SlurmConf: "a\nb"}); err == nil {
		t.Error("newline in SlurmConf accepted")
	}
}
