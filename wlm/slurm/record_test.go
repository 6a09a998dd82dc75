package slurm_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crus-go/crus/wlm/slurm/slurmtest"
)

var record = flag.Bool("record", false, "start a real Slurm cluster and record the outputs in testdata/ that the parser tests and fuzz seeds read")

// TestRecordTestdata records what real Slurm prints for nodes in the states
// the parser tests check (see parse_test.go for what each node must read
// as). Run it with: go test ./wlm/slurm -run TestRecordTestdata -record
func TestRecordTestdata(t *testing.T) {
	if !*record {
		t.Skip("recording only with -record")
	}
	ctx := t.Context()
	c := slurmtest.New(t, slurmtest.Options{Nodes: 6, REST: true})
	n := c.Names()
	must := func(out []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	scontrol := func(args ...string) []byte {
		// As the adapter runs it: times as Unix seconds, in UTC.
		cmd := exec.CommandContext(ctx, "scontrol", args...)
		cmd.Env = append(os.Environ(), "SLURM_CONF="+c.Conf, "SLURM_TIME_FORMAT=%s", "TZ=UTC")
		out, _ := cmd.Output() // exit status 1 for unknown nodes is part of the record
		return out
	}
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// nid000001 idle; nid000002 drained with a reason full of traps;
	// nid000003 busy and drained (draining); nid000004 failed;
	// nid000005 drained then rebooted (DOWN+DRAIN); nid000006 busy.
	must(c.Command(ctx, "scontrol", "update", "NodeName="+n[1], "State=DRAIN", "Reason=crus 1234: step 1 of 3 Reason=x [y@z] OS=a b"))
	if _, err := c.Submit(ctx, []string{n[2], n[5]}, time.Hour, 90*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, []string{n[5]}, time.Hour, 2*time.Hour); err != nil { // pending: the node is busy
		t.Fatal(err)
	}
	if !waitState(t, c, n[2], "allocated") || !waitState(t, c, n[5], "allocated") {
		t.FailNow()
	}
	must(c.Command(ctx, "scontrol", "update", "NodeName="+n[2], "State=DRAIN", "Reason=crus 1234: drain busy"))
	must(c.Command(ctx, "scontrol", "update", "NodeName="+n[3], "State=FAIL", "Reason=crus 1234: did not return"))
	must(c.Command(ctx, "scontrol", "update", "NodeName="+n[4], "State=DRAIN", "Reason=crus 1234: step 2 of 3"))
	// Slurm calls a reboot "unexpected" (DOWN) when the new boot time is
	// later than the node's last answer, both in whole seconds: wait a
	// second so it is.
	time.Sleep(1500 * time.Millisecond)
	if err := c.Reboot(n[4]); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, func() bool { return strings.Contains(string(scontrol("show", "node", n[4])), "State=DOWN+DRAIN") }) {
		b, _ := os.ReadFile(filepath.Join(c.Dir, "log", "slurmctld.log"))
		t.Fatalf("%s", b[max(0, len(b)-2500):])
	}

	write("show-node.txt", scontrol("--all", "show", "node", "nid[000001-000006],nosuch"))
	cmd := exec.CommandContext(ctx, "squeue", "--noheader", "--all", "--states=RUNNING,COMPLETING,SUSPENDED", "--nodelist=nid[000001-000006]", "--format=%i|%T|%e|%N")
	cmd.Env = append(os.Environ(), "SLURM_CONF="+c.Conf, "SLURM_TIME_FORMAT=%s", "TZ=UTC")
	write("squeue.txt", must(cmd.Output()))
	write("sinfo.json", must(c.Command(ctx, "sinfo", "--json")))
	write("squeue.json", must(c.Command(ctx, "squeue", "--json")))

	tok, err := c.Token(ctx, "root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, token string) []byte {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.RESTURL+path, nil)
		if token != "" {
			req.Header.Set("X-SLURM-USER-NAME", "root")
			req.Header.Set("X-SLURM-USER-TOKEN", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		t.Logf("GET %s: %s", path, resp.Status)
		return []byte(fmt.Sprintf("%d\n%s", resp.StatusCode, b))
	}
	write("rest-v0.0.38-nodes.txt", get("/slurm/v0.0.38/nodes", tok))
	write("rest-v0.0.38-jobs.txt", get("/slurm/v0.0.38/jobs", tok))
	write("rest-v0.0.38-node-unknown.txt", get("/slurm/v0.0.38/node/nosuch", tok))
	write("rest-v0.0.38-nodes-bad-token.txt", get("/slurm/v0.0.38/nodes", tok[:len(tok)-4]+"AAAA"))
	write("rest-v0.0.38-nodes-no-token.txt", get("/slurm/v0.0.38/nodes", ""))
	openapi := get("/openapi/v3", tok)
	// Keep only the list of paths: the whole document is 300 kB.
	var paths []string
	for _, line := range strings.Split(string(openapi), "\n") {
		if strings.HasPrefix(line, "    \"\\/slurm") && strings.HasSuffix(line, "{") {
			paths = append(paths, line)
		}
	}
	write("rest-openapi-paths.txt", []byte(strings.Join(paths, "\n")+"\n"))

	// A node just resumed: IDLE+NOT_RESPONDING, BootTime=None for a moment.
	must(c.Command(ctx, "scontrol", "update", "NodeName="+n[4], "State=RESUME"))
	write("show-node-resumed.txt", scontrol("show", "node", n[4]))
}

func waitFor(t *testing.T, cond func() bool) bool {
	t.Helper()
	for range 100 {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func waitState(t *testing.T, c *slurmtest.Cluster, node, state string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		st, err := c.States(ctx)
		if err == nil && strings.HasPrefix(st[node], state) {
			return true
		}
		select {
		case <-ctx.Done():
			t.Errorf("node %s not %s: %v", node, state, st)
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
