package slurm_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus/batch"
	"github.com/crus-go/crus/wlm"
	"github.com/crus-go/crus/wlm/slurm"
	"github.com/crus-go/crus/wlm/slurm/slurmtest"
	"github.com/crus-go/crus/wlm/wlmtest"
)

// steerHarness queues real sbatch jobs that name no node, for the
// Steerer suite. The cluster has 4 nodes, all of them the harness's.
type steerHarness struct{ harness }

type placedJob struct{ slurmJob }

func (h *steerHarness) SubmitAny(ctx context.Context, limit time.Duration) (wlmtest.PlacedJob, error) {
	minutes := max(int((limit+time.Minute-1)/time.Minute), 1)
	out, err := h.c.Command(ctx, "sbatch", "--parsable", "--nodes=1", "--output=/dev/null", "--job-name=crus-test",
		"--time="+strconv.Itoa(minutes), "--wrap=sleep "+strconv.Itoa(minutes*60))
	if err != nil {
		return nil, err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	return &placedJob{slurmJob{c: h.c, id: id}}, nil
}

// Node reads the job's node from `scontrol show job` while it runs.
func (j *placedJob) Node(ctx context.Context) (string, error) {
	out, err := j.c.Command(ctx, "scontrol", "--oneliner", "show", "job", j.id)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(out))
	if !slices.Contains(f, "JobState=RUNNING") {
		return "", nil
	}
	for _, w := range f {
		if v, ok := strings.CutPrefix(w, "NodeList="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no NodeList for running job %s in %q", j.id, out)
}

func TestCLISteerer(t *testing.T)  { testSteerer(t, false) }
func TestRESTSteerer(t *testing.T) { testSteerer(t, true) }

// testSteerer runs the Steerer suite on a cluster of 4 nodes, with the
// CLI adapter or the REST one (which steers through its Fallback).
func testSteerer(t *testing.T, rest bool) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 4, REST: rest})
	opts := conformanceOptions
	opts.ReadsSteering = true // from the weights, by scontrol and slurmrestd alike
	wlmtest.RunSteererTests(t, func(ctx context.Context, t *testing.T) (wlmtest.SteererHarness, error) {
		var m wlm.Manager = newCLI(t, c, nil)
		if rest {
			m = newREST(t, c, newCLI(t, c, nil), nil)
		}
		return &steerHarness{harness{c: c, m: m}}, nil
	}, opts)
}

// TestSteeringLostAtReconfigure: on the real cluster, both adapters read
// a steered node as steered, and as not steered once `scontrol
// reconfigure` has put slurm.conf's weights back: what lets a session see
// its steering lost at its next poll (wlm.Node.Steering).
func TestSteeringLostAtReconfigure(t *testing.T) {
	c := slurmtest.New(t, slurmtest.Options{Nodes: 2, REST: true})
	ctx := t.Context()
	cli := newCLI(t, c, nil)
	readers := map[string]wlm.Manager{"cli": cli, "rest": newREST(t, c, newCLI(t, c, nil), nil)}
	names := c.Names()
	// scontrol update and scontrol reconfigure return once slurmctld has
	// done them: the next read shows it, with no wait.
	places := func(what string, want ...wlm.Steering) {
		t.Helper()
		for kind, m := range readers {
			nodes, err := m.Nodes(ctx, names)
			if err != nil {
				t.Fatalf("%s: %s Nodes: %v", what, kind, err)
			}
			var got []wlm.Steering
			for _, n := range nodes {
				got = append(got, n.Steering)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s reads %s as %v; want %v", what, kind, names, got, want)
			}
		}
	}
	places("before any steering", wlm.SteeringNone, wlm.SteeringNone)
	if err := cli.Steer(ctx, names[:1], true); err != nil {
		t.Fatal(err)
	}
	places("the first node steered last", wlm.SteeringLast, wlm.SteeringNone)
	if _, err := c.Command(ctx, "scontrol", "reconfigure"); err != nil {
		t.Fatal(err)
	}
	places("after scontrol reconfigure", wlm.SteeringNone, wlm.SteeringNone)
}

// TestCLISteerRefusedToUser: Slurm updates nodes only for its
// administrators; run as nobody, Steer fails with wlm.ErrPermissionDenied,
// permanent, and no weight changes.
func TestCLISteerRefusedToUser(t *testing.T) {
	var rec recorder
	c, asNobody := clusterAsNobody(t, rec.run)
	ctx := t.Context()
	err := newCLI(t, c, asNobody).Steer(ctx, c.Names(), true)
	if !errors.Is(err, wlm.ErrPermissionDenied) || !batch.IsPermanent(err) {
		t.Errorf("Steer as nobody: %v; want wlm.ErrPermissionDenied, permanent", err)
	}
	if n := len(rec.cmds); n != 2 {
		t.Errorf("Steer as nobody ran %d commands (%v); want a read and one update", n, rec.cmds)
	}
	out, err := c.Command(ctx, "scontrol", "show", "node")
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Count(string(out), " Weight=1 "); w != 2 {
		t.Errorf("after a refused Steer, %d of 2 nodes have weight 1:\n%s", w, out)
	}
}

// recordedSteered is what `scontrol --all show node` printed for a node
// whose weight 1 was steered (Slurm 22.05.8, scontrol update
// NodeName=nid000002 Weight=8388609).
const recordedSteered = `NodeName=nid000002 Arch=x86_64 CoresPerSocket=1 
   CPUAlloc=0 CPUEfctv=1 CPUTot=1 CPULoad=2.48
   AvailableFeatures=(null)
   ActiveFeatures=(null)
   Gres=(null)
   NodeAddr=127.0.0.1 NodeHostName=localhost Port=37183 Version=22.05.8
   OS=Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0 
   RealMemory=100 AllocMem=0 FreeMem=21600 Sockets=1 Boards=1
   State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=8388609 Owner=N/A MCS_label=N/A
   Partitions=batch 
   BootTime=1796073134 SlurmdStartTime=1796073593
   LastBusyTime=1796073680
   CfgTRES=cpu=1,mem=100M,billing=1
   AllocTRES=
   CapWatts=n/a
   CurrentWatts=0 AveWatts=0
   ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s

`

// fakeScontrol stands in for scontrol in the Steer unit tests: it knows
// nodes and their weights, answers `scontrol --all show node <hostlist>`
// as Slurm 22.05 does (with "Node X not found" and exit 1 for an unknown
// name), and carries out `scontrol update NodeName=<hostlist> Weight=N`,
// refusing the whole list when one name is unknown, as Slurm does, and
// every update when deny is set, as Slurm does to a user who is not one
// of its administrators.
type fakeScontrol struct {
	mu      sync.Mutex
	weights map[string]uint32
	shown   map[string]string // a node's record as shown, instead of a made-up one
	deny    bool
	cmds    []string // every command run, without the program
}

func newFake(weights map[string]uint32) *fakeScontrol {
	return &fakeScontrol{weights: weights, shown: map[string]string{}}
}

func (f *fakeScontrol) cli(t *testing.T) *slurm.CLI {
	t.Helper()
	m, err := slurm.NewCLI(slurm.Config{Runner: f.run, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// take returns the commands run since the last take.
func (f *fakeScontrol) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.cmds
	f.cmds = nil
	return out
}

// updates returns the update commands among cmds.
func updates(cmds []string) []string {
	return slices.DeleteFunc(slices.Clone(cmds), func(c string) bool { return !strings.HasPrefix(c, "update ") })
}

func (f *fakeScontrol) run(ctx context.Context, cmd slurm.Command) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := cmd.Args
	f.cmds = append(f.cmds, strings.Join(a, " "))
	switch {
	case len(a) == 4 && a[0] == "--all" && a[1] == "show" && a[2] == "node":
		names, err := slurm.ExpandHostlist(a[3])
		if err != nil {
			return exit1(ctx, "", err.Error())
		}
		var out strings.Builder
		missing := false
		for _, n := range names {
			w, ok := f.weights[n]
			switch {
			case !ok:
				fmt.Fprintf(&out, "Node %s not found\n", n)
				missing = true
			case f.shown[n] != "":
				out.WriteString(f.shown[n])
			default:
				fmt.Fprintf(&out, "NodeName=%s Arch=x86_64 CoresPerSocket=1\n   State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=%d Owner=N/A MCS_label=N/A\n   BootTime=1796073134 SlurmdStartTime=1796073593\n\n", n, w)
			}
		}
		if missing {
			return exit1(ctx, out.String(), "")
		}
		return []byte(out.String()), nil, nil
	case len(a) == 3 && a[0] == "update" && strings.HasPrefix(a[1], "NodeName=") && strings.HasPrefix(a[2], "Weight="):
		if f.deny {
			return exit1(ctx, "", "slurm_update error: Invalid user id")
		}
		names, err := slurm.ExpandHostlist(strings.TrimPrefix(a[1], "NodeName="))
		if err != nil {
			return exit1(ctx, "", "slurm_update error: Invalid node name specified")
		}
		w, err := strconv.ParseUint(strings.TrimPrefix(a[2], "Weight="), 10, 32)
		if err != nil || w > 4294967280 {
			return exit1(ctx, "", "scontrol: error: Weight value is not valid\nNo changes specified")
		}
		for _, n := range names {
			if _, ok := f.weights[n]; !ok {
				return exit1(ctx, "", "slurm_update error: Invalid node name specified")
			}
		}
		for _, n := range names {
			f.weights[n] = uint32(w)
			delete(f.shown, n)
		}
		return nil, nil, nil
	}
	return exit1(ctx, "", "fake scontrol: unexpected command")
}

// exit1 returns what a Runner returns for a program that printed stdout
// and stderr and exited 1.
func exit1(ctx context.Context, stdout, stderr string) ([]byte, []byte, error) {
	return slurm.Exec(ctx, slurm.Command{Path: "sh", Args: []string{"-c", `printf %s "$1"; printf %s "$2" >&2; exit 1`, "sh", stdout, stderr}})
}

const sw = slurm.SteerWeight

// TestCLISteerGroupsByWeight: one read, then one update per weight to
// set, the nodes that go to it together; a node already as asked is in
// none; giving the places back takes the offset off again.
func TestCLISteerGroupsByWeight(t *testing.T) {
	site := map[string]uint32{"nid000001": 1, "nid000002": 1, "nid000003": 5, "nid000004": 1 + sw, "nid000005": 2}
	f := newFake(maps.Clone(site))
	m := f.cli(t)
	all := slices.Sorted(maps.Keys(site))
	for _, step := range []struct {
		last    bool
		cmds    []string
		weights map[string]uint32
	}{
		{true, []string{
			"--all show node nid[000001-000005]",
			"update NodeName=nid[000001-000002] Weight=8388609",
			"update NodeName=nid000005 Weight=8388610",
			"update NodeName=nid000003 Weight=8388613",
		}, map[string]uint32{"nid000001": 1 + sw, "nid000002": 1 + sw, "nid000003": 5 + sw, "nid000004": 1 + sw, "nid000005": 2 + sw}},
		// nid000004 reads as steered: the site's weights stay below
		// SteerWeight.
		{false, []string{
			"--all show node nid[000001-000005]",
			"update NodeName=nid[000001-000002,000004] Weight=1",
			"update NodeName=nid000005 Weight=2",
			"update NodeName=nid000003 Weight=5",
		}, map[string]uint32{"nid000001": 1, "nid000002": 1, "nid000003": 5, "nid000004": 1, "nid000005": 2}},
	} {
		if err := m.Steer(t.Context(), all, step.last); err != nil {
			t.Fatal(err)
		}
		if got := f.take(); !slices.Equal(got, step.cmds) {
			t.Errorf("Steer(last %v) ran\n%q\nwant\n%q", step.last, got, step.cmds)
		}
		if !maps.Equal(f.weights, step.weights) {
			t.Errorf("after Steer(last %v): weights %v, want %v", step.last, f.weights, step.weights)
		}
	}
}

// TestCLISteerIdempotent: steering a steered node or giving back its
// place to a node never steered runs the read alone; so does any call on
// a node whose weight is at 2*SteerWeight or more, which is the site's.
func TestCLISteerIdempotent(t *testing.T) {
	f := newFake(map[string]uint32{"nid000001": 1 + sw, "nid000002": 7 + sw, "nid000003": 1, "nid000004": 2 * sw, "nid000005": 4294967280})
	m := f.cli(t)
	for _, tt := range []struct {
		names []string
		last  bool
	}{
		{[]string{"nid000001", "nid000002", "nid000004", "nid000005"}, true},
		{[]string{"nid000003", "nid000004", "nid000005"}, false},
	} {
		if err := m.Steer(t.Context(), tt.names, tt.last); err != nil {
			t.Errorf("Steer(%v, %v): %v", tt.names, tt.last, err)
		}
		if got := f.take(); len(got) != 1 || len(updates(got)) != 0 {
			t.Errorf("Steer(%v, %v) ran %q; want one read and no update", tt.names, tt.last, got)
		}
	}
	want := map[string]uint32{"nid000001": 1 + sw, "nid000002": 7 + sw, "nid000003": 1, "nid000004": 2 * sw, "nid000005": 4294967280}
	if !maps.Equal(f.weights, want) {
		t.Errorf("weights %v; want %v unchanged", f.weights, want)
	}
}

// TestCLISteerRecorded reads the weight from what a real scontrol
// printed: a node at weight 1+SteerWeight is steered already, and given
// its place back at weight 1.
func TestCLISteerRecorded(t *testing.T) {
	f := newFake(map[string]uint32{"nid000002": 0})
	f.shown["nid000002"] = recordedSteered
	m := f.cli(t)
	if err := m.Steer(t.Context(), []string{"nid000002"}, true); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); len(updates(got)) != 0 {
		t.Errorf("steering the recorded node (Weight=8388609) ran %q; want no update", got)
	}
	if err := m.Steer(t.Context(), []string{"nid000002"}, false); err != nil {
		t.Fatal(err)
	}
	if got := updates(f.take()); !slices.Equal(got, []string{"update NodeName=nid000002 Weight=1"}) {
		t.Errorf("giving the recorded node its place back ran %q; want it set to weight 1", got)
	}
}

// TestCLISteerUnknownInBatch: an unknown node is reported alone,
// per node, with wlm.ErrNodeNotFound; it never reaches an update (Slurm
// would refuse the whole list), and the known nodes are steered.
func TestCLISteerUnknownInBatch(t *testing.T) {
	f := newFake(map[string]uint32{"nid000001": 1, "nid000002": 1})
	m := f.cli(t)
	err := m.Steer(t.Context(), []string{"nid000001", "nosuch", "nid000002"}, true)
	perNode, rest := batch.Split(err)
	if rest != nil || len(perNode) != 1 || !errors.Is(perNode["nosuch"], wlm.ErrNodeNotFound) {
		t.Errorf("Steer with an unknown node: %v (per node %v, rest %v); want wlm.ErrNodeNotFound for nosuch alone", err, perNode, rest)
	}
	if got := updates(f.take()); !slices.Equal(got, []string{"update NodeName=nid[000001-000002] Weight=8388609"}) {
		t.Errorf("updates %q; want the known nodes alone steered", got)
	}
	if f.weights["nid000001"] != 1+sw || f.weights["nid000002"] != 1+sw {
		t.Errorf("weights %v; want the known nodes steered", f.weights)
	}
}

// TestCLISteerRefused: Slurm refuses the update to a user who is not one
// of its administrators: wlm.ErrPermissionDenied, permanent, for the whole
// call, and no further update is tried.
func TestCLISteerRefused(t *testing.T) {
	f := newFake(map[string]uint32{"nid000001": 1, "nid000002": 2})
	f.deny = true
	m := f.cli(t)
	err := m.Steer(t.Context(), []string{"nid000001", "nid000002", "nosuch"}, true)
	if !errors.Is(err, wlm.ErrPermissionDenied) || !batch.IsPermanent(err) || !strings.Contains(err.Error(), "Invalid user id") {
		t.Errorf("Steer refused: %v; want wlm.ErrPermissionDenied, permanent, with Slurm's words", err)
	}
	if perNode, _ := batch.Split(err); !errors.Is(perNode["nosuch"], wlm.ErrNodeNotFound) {
		t.Errorf("Steer refused, with an unknown node: per node %v; want nosuch not found", perNode)
	}
	if got := updates(f.take()); len(got) != 1 {
		t.Errorf("updates %q; want the first alone (the next would be refused alike)", got)
	}
}

// TestCLISteerBadInput: no names, refused names and a cancelled context
// run nothing; a node shown without a weight is an error for it alone.
func TestCLISteerBadInput(t *testing.T) {
	f := newFake(map[string]uint32{"nid000001": 1, "nid000002": 1})
	f.shown["nid000002"] = "NodeName=nid000002 Arch=x86_64\n   State=IDLE ThreadsPerCore=1 Weight=lots Owner=N/A\n\n"
	m := f.cli(t)
	for _, names := range [][]string{nil, {}} {
		if err := m.Steer(t.Context(), names, true); err != nil {
			t.Errorf("Steer(%#v): %v; want no error", names, err)
		}
	}
	err := m.Steer(t.Context(), []string{"-h", "nid1 Weight=0"}, true)
	if perNode, rest := batch.Split(err); rest != nil || len(perNode) != 2 || !errors.Is(perNode["-h"], wlm.ErrInvalidArgument) {
		t.Errorf("Steer of refused names: %v; want wlm.ErrInvalidArgument for each", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Steer(ctx, []string{"nid000001"}, true); !errors.Is(err, context.Canceled) {
		t.Errorf("Steer with a cancelled context: %v", err)
	}
	if got := f.take(); len(got) != 0 {
		t.Errorf("ran %q; want nothing", got)
	}
	err = m.Steer(t.Context(), []string{"nid000001", "nid000002"}, true)
	perNode, rest := batch.Split(err)
	if rest != nil || len(perNode) != 1 || perNode["nid000002"] == nil || errors.Is(err, wlm.ErrNodeNotFound) {
		t.Errorf("Steer of a node shown without a weight: %v; want an error for it alone", err)
	}
	if got := updates(f.take()); !slices.Equal(got, []string{"update NodeName=nid000001 Weight=8388609"}) {
		t.Errorf("updates %q; want nid000001 alone steered", got)
	}
}

// TestRESTSteer: slurmrestd cannot set weights; REST steers through its
// Fallback, and without one the call is unsupported (permanent), before
// any request.
func TestRESTSteer(t *testing.T) {
	f := newFake(map[string]uint32{"nid000001": 1})
	for _, fb := range []*slurm.CLI{nil, f.cli(t)} {
		m, err := slurm.NewREST(slurm.RESTConfig{URL: "http://127.0.0.1:1", User: "root", Token: slurm.StaticToken("t"), Fallback: fb})
		if err != nil {
			t.Fatal(err)
		}
		err = m.Steer(t.Context(), []string{"nid000001"}, true)
		if fb == nil {
			if !errors.Is(err, wlm.ErrUnsupported) || !batch.IsPermanent(err) {
				t.Errorf("Steer without Fallback: %v; want wlm.ErrUnsupported", err)
			}
			continue
		}
		if err != nil || f.weights["nid000001"] != 1+sw {
			t.Errorf("Steer through Fallback: %v, weight %d; want it steered", err, f.weights["nid000001"])
		}
	}
}
