package slurm_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/internal/text"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// recorder is a Runner that runs the real program (so that the kernel's
// limits apply) and records the commands.
type recorder struct {
	mu   sync.Mutex
	cmds []slurm.Command
}

func (r *recorder) run(ctx context.Context, c slurm.Command) ([]byte, []byte, error) {
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
	return slurm.Exec(ctx, c)
}

// A reason of 200 KB (a BOS error message with a traceback) cannot be one
// argument: Linux refuses arguments over 128 KiB, so scontrol never runs.
// That must be a permanent error per node, not an error of the whole call
// that crus retries forever; and no command is run at all.
func TestCLIOverlongReasonIsPermanentPerNode(t *testing.T) {
	var rec recorder
	// /bin/true stands in for scontrol: it accepts anything, so only the
	// length of the argument can make the command fail.
	cli, err := slurm.NewCLI(slurm.Config{Scontrol: "true", Runner: rec.run})
	if err != nil {
		t.Fatal(err)
	}
	reason := "crus s1: boot failed: " + strings.Repeat("Traceback (most recent call last): x; ", 200_000/38)
	names := []string{"nid000001", "nid000002", "-h"}
	for op, call := range map[string]func() error{
		"Fail":  func() error { return cli.Fail(t.Context(), names, reason) },
		"Drain": func() error { return cli.Drain(t.Context(), names, reason) },
	} {
		err := call()
		perNode, rest := batch.Split(err)
		if rest != nil || len(perNode) != len(names) {
			t.Fatalf("%s with a %d-byte reason: per node %v, rest %v; want a permanent error for each node", op, len(reason), perNode, rest)
		}
		for _, n := range names[:2] {
			if e := perNode[n]; !errors.Is(e, wlm.ErrInvalidArgument) || !batch.IsPermanent(e) || !strings.Contains(e.Error(), "longer than") {
				t.Errorf("%s, node %s: %v; want wlm.ErrInvalidArgument saying the reason is too long", op, n, e)
			}
		}
	}
	if len(rec.cmds) != 0 {
		t.Errorf("%d commands ran; want none", len(rec.cmds))
	}
}

// Control characters are cleaned from a reason, not refused: a traceback's
// newlines and tabs used to make Fail refuse the reason, so the node was
// recorded failed by crus and never failed in Slurm.
func TestCLIReasonIsCleaned(t *testing.T) {
	var rec recorder
	cli, err := slurm.NewCLI(slurm.Config{Scontrol: "true", Runner: rec.run})
	if err != nil {
		t.Fatal(err)
	}
	err = cli.Fail(t.Context(), []string{"nid000001"}, "crus s1: boot failed:\n\tTraceback\r\n  File \"x\"\x1b[31m")
	if err != nil {
		t.Fatalf("Fail with control characters in the reason: %v", err)
	}
	want := `update NodeName=nid000001 State=FAIL Reason=crus s1: boot failed: Traceback File "x" [31m`
	if len(rec.cmds) != 1 || strings.Join(rec.cmds[0].Args, " ") != want {
		t.Errorf("commands %v; want one: scontrol %s", rec.cmds, want)
	}
	if err := cli.Drain(t.Context(), []string{"nid000001"}, "\n\t "); !errors.Is(err, wlm.ErrInvalidArgument) {
		t.Errorf("Drain with a reason of blanks: %v; want wlm.ErrInvalidArgument", err)
	}
}

// The core caps the reasons it builds to internal/text.MaxReason; the
// adapters must take every such reason.
func TestMaxReasonCoversTheCoreCap(t *testing.T) {
	if slurm.MaxReason < text.MaxReason {
		t.Errorf("slurm.MaxReason %d < text.MaxReason %d: reasons the core builds would be refused", slurm.MaxReason, text.MaxReason)
	}
	if slurm.MaxReason > 128<<10-len("Reason=") {
		t.Errorf("slurm.MaxReason %d does not fit in one argument (128 KiB)", slurm.MaxReason)
	}
}

// On a real cluster: a reason with control characters is cleaned and the
// node really failed; a reason of exactly MaxReason bytes is taken whole;
// one byte more is refused for the node, which stays as it was.
func TestCLIReasonsOnRealSlurm(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2})
	cli := newCLI(t, c, nil)
	a, b := c.Names()[0], c.Names()[1]

	if err := cli.Fail(ctx, []string{a}, "crus s1: boot failed:\n\tTraceback (most recent call last):\r\n  File \"bos.py\""); err != nil {
		t.Fatalf("Fail with a traceback as the reason: %v", err)
	}
	full := "crus s1: " + strings.Repeat("r", slurm.MaxReason-len("crus s1: "))
	if err := cli.Drain(ctx, []string{b}, full); err != nil {
		t.Fatalf("Drain with a %d-byte reason: %v", len(full), err)
	}
	err := cli.Drain(ctx, []string{a, b}, full+"!")
	if perNode, rest := batch.Split(err); rest != nil || len(perNode) != 2 || !batch.IsPermanent(perNode[a]) {
		t.Errorf("Drain with a reason of MaxReason+1 bytes: per node %v, rest %v; want a permanent error for each node", perNode, rest)
	}
	nodes, err := cli.Nodes(ctx, []string{a, b})
	if err != nil || len(nodes) != 2 {
		t.Fatalf("Nodes: %v, %v", nodes, err)
	}
	if n := nodes[0]; !n.Fail || n.Reason != `crus s1: boot failed: Traceback (most recent call last): File "bos.py"` {
		t.Errorf("node %s: %s, reason %q; want failed with the cleaned reason", a, n.Condition(), n.Reason)
	}
	if n := nodes[1]; !n.Drain || n.Reason != full {
		t.Errorf("node %s: %s, reason of %d bytes; want drained with the %d-byte reason whole", b, n.Condition(), len(n.Reason), len(full))
	}
	if err := cli.Resume(ctx, []string{a, b}); err != nil {
		t.Fatal(err)
	}
}

// scontrol strips a double quote at either end of a reason; the adapter
// must make Slurm store the reason as given.
func TestCLIReasonQuotesOnRealSlurm(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 1})
	cli := newCLI(t, c, nil)
	a := c.Names()[0]
	for _, reason := range []string{`"quoted" at the start`, `at the end "quoted"`, `"both"`, `"`, `a "middle" one`} {
		if err := cli.Drain(ctx, []string{a}, reason); err != nil {
			t.Fatalf("Drain(%q): %v", reason, err)
		}
		nodes, err := cli.Nodes(ctx, []string{a})
		if err != nil || len(nodes) != 1 {
			t.Fatalf("Nodes: %v, %v", nodes, err)
		}
		if nodes[0].Reason != reason {
			t.Errorf("Drain(%q): Slurm stored %q", reason, nodes[0].Reason)
		}
	}
	if err := cli.Resume(ctx, []string{a}); err != nil {
		t.Fatal(err)
	}
}
