package slurm_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

// TestControlPlaneCost measures, on a real 52-node cluster, what each call
// costs for a 50-node step: commands run by the CLI adapter, HTTP requests
// made by the REST adapter. A poll (Nodes) must cost one of either,
// whatever the number of nodes.
func TestControlPlaneCost(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 52, REST: true})
	var cnt counter
	cli := newCLI(t, c, cnt.run)
	// The token is read once here, so that it does not count below.
	tok, err := c.Token(ctx, "root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := slurm.NewREST(slurm.RESTConfig{URL: c.RESTURL, User: "root", Token: slurm.StaticToken(tok),
		Fallback: cli, HTTPClient: &http.Client{Transport: &cnt}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	step := c.Names()[1:51]
	if len(step) != 50 {
		t.Fatal(len(step))
	}
	type row struct {
		call        string
		cmds, reqs  int
		maxC, maxR  int // the documented bound
		commandList []string
	}
	var rows []row
	measure := func(call string, maxCmds, maxReqs int, f func() error) {
		t.Helper()
		cnt.take()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		cmds, reqs := cnt.take()
		rows = append(rows, row{call, len(cmds), len(reqs), maxCmds, maxReqs, append(cmds, reqs...)})
	}
	nodes := func(m wlm.Manager, want func(wlm.Node) bool) func() error {
		return func() error {
			got, err := m.Nodes(ctx, step)
			if err != nil {
				return err
			}
			if len(got) != len(step) {
				return fmt.Errorf("%d nodes", len(got))
			}
			for _, n := range got {
				if !want(n) {
					return fmt.Errorf("node %s is %s", n.Name, n.Condition())
				}
			}
			return nil
		}
	}
	reason := "crus cost: rolling upgrade, step 1 of 1"

	measure("CLI Nodes (poll)", 1, 0, nodes(cli, wlm.Node.InService))
	measure("REST Nodes (poll, first: discovers the version)", 0, 2, nodes(rest, wlm.Node.InService))
	measure("REST Nodes (poll)", 0, 1, nodes(rest, wlm.Node.InService))
	measure("CLI Drain", 1, 0, func() error { return cli.Drain(ctx, step, reason) })
	measure("CLI Nodes (poll)", 1, 0, nodes(cli, wlm.Node.Drained))
	measure("REST Nodes (poll)", 0, 1, nodes(rest, wlm.Node.Drained))
	measure("CLI JobEnds", 1, 0, func() error { _, err := cli.JobEnds(ctx, step); return err })
	measure("REST JobEnds", 0, 2, func() error { _, err := rest.JobEnds(ctx, step); return err })
	measure("CLI Resume (50 drained)", 2, 0, func() error { return cli.Resume(ctx, step) })
	measure("CLI Resume (50 in service)", 1, 0, func() error { return cli.Resume(ctx, step) })
	measure("CLI Fail", 1, 0, func() error { return cli.Fail(ctx, step, reason) })
	measure("REST Resume (v0.0.38: through the CLI)", 2, 0, func() error { return rest.Resume(ctx, step) })
	measure("REST Drain (v0.0.38: through the CLI)", 1, 0, func() error { return rest.Drain(ctx, step, reason) })
	withUnknown := append(slices.Clone(step), "zz-no-such-node")
	measure("CLI Drain, one unknown node in the batch", 4, 0, func() error {
		perNode, rest := batch.Split(cli.Drain(ctx, withUnknown, reason))
		if len(perNode) != 1 || rest != nil || !errors.Is(perNode["zz-no-such-node"], wlm.ErrNodeNotFound) {
			return fmt.Errorf("per node %v, rest %v", perNode, rest)
		}
		return nil
	})
	measure("CLI Resume (50 drained)", 2, 0, func() error { return cli.Resume(ctx, step) })

	var b strings.Builder
	fmt.Fprintf(&b, "control-plane cost for a %d-node step on a real %d-node Slurm 22.05 cluster:\n", len(step), len(c.Names()))
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-48s %d commands, %d HTTP requests\n", r.call, r.cmds, r.reqs)
		if r.cmds > r.maxC || r.reqs > r.maxR {
			t.Errorf("%s: %d commands and %d requests, documented at most %d and %d: %q", r.call, r.cmds, r.reqs, r.maxC, r.maxR, r.commandList)
		}
	}
	t.Log(b.String())
}

// TestAdaptersAgree puts nodes of a real cluster in assorted states and
// checks that both adapters read every node the same way.
func TestAdaptersAgree(t *testing.T) {
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 6, REST: true})
	cli := newCLI(t, c, nil)
	rest := newREST(t, c, cli, nil)
	n := c.Names()
	if _, err := c.Submit(ctx, n[1:3], time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, func() bool {
		ends, err := cli.JobEnds(ctx, n[1:3])
		return err == nil && len(ends) == 2
	}) {
		t.Fatal("the job did not start")
	}
	if err := cli.Drain(ctx, n[2:4], "crus agree: drained"); err != nil {
		t.Fatal(err)
	}
	if err := cli.Fail(ctx, n[4:5], "crus agree: failed"); err != nil {
		t.Fatal(err)
	}
	if err := c.StopNode(n[5]); err != nil {
		t.Fatal(err)
	}
	a, err := cli.Nodes(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rest.Nodes(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("CLI and REST disagree (-cli +rest):\n%s", diff)
	}
	wantDraining := []bool{false, false, true, false, false, false}
	wantDrained := []bool{false, false, false, true, false, false}
	for i, node := range a {
		if node.Draining() != wantDraining[i] || node.Drained() != wantDrained[i] {
			t.Errorf("%s (%s): draining %v drained %v", node.Name, node.Condition(), node.Draining(), node.Drained())
		}
	}
	ea, err := cli.JobEnds(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := rest.JobEnds(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ea, eb); diff != "" || len(ea) != 2 {
		t.Errorf("job ends %v; CLI and REST (-cli +rest):\n%s", ea, diff)
	}
}
