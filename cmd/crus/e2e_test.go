package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crus-go/crus"
	"github.com/crus-go/crus/api"
	"github.com/crus-go/crus/bos"
	"github.com/crus-go/crus/internal/bosserver"
	"github.com/crus-go/crus/internal/demo"
	"github.com/crus-go/crus/internal/fake"
	"github.com/crus-go/crus/internal/freeport"
	"github.com/crus-go/crus/internal/hsmserver"
	"github.com/crus-go/crus/store/filestore"
)

// crusBin is the crus command built for the tests, run as a separate
// process as an administrator would.
var crusBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crus-e2e-")
	if err != nil {
		panic(err)
	}
	crusBin = filepath.Join(dir, "crus")
	if out, err := exec.Command("go", "build", "-o", crusBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building crus: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// worldBooter puts the simulated nodes of a fake.World behind the BOS test
// server: a BOS session's reboot reboots the World's nodes, which its
// workload manager sees go down and come back with a new boot time.
type worldBooter struct{ w *fake.World }

const worldTemplate, worldGroup = "cli-world-boot", "cli-world-all"

func (b worldBooter) Reboot(session string, xnames []string) {
	if err := b.w.BOS().Reboot(context.Background(), bos.Request{Name: "w-" + session, Template: worldTemplate, Limit: xnames}); err != nil {
		panic(fmt.Sprintf("world reboot: %v", err)) // the test's own setup is wrong
	}
}

func (b worldBooter) Result(session, xname string) (bool, string) {
	st, err := b.w.BOS().Status(context.Background(), "w-"+session, []string{xname})
	if err != nil {
		return false, ""
	}
	r := st.Nodes[xname]
	return r.Result != bos.ResultInProgress, r.Reason
}

// cluster is what `crus serve` runs against: the HSM and BOS test servers
// (real HTTP, checked against their API documents) in front of a
// simulated cluster whose workload manager is the in-memory one, on a
// clock running 240 times faster than real time.
type cluster struct {
	world *fake.World
	clock *demo.Paced
	hsm   string
	bos   string
}

func newCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	world := fake.NewCluster(fake.ClusterOptions{
		Options: fake.Options{Seed: 11, Start: time.Now().UTC().Truncate(time.Second)},
		Nodes:   nodes, Busy: 0.5, MaxJob: 30 * time.Minute,
	})
	xnames := world.XNames()
	world.AddGroup(worldGroup, xnames...)
	world.AddTemplate(worldTemplate, worldGroup)
	hsmSrv, hsmURL := hsmserver.NewTest(t, hsmserver.Options{})
	for _, x := range xnames {
		n, _ := world.Node(x)
		hsmSrv.AddComponent(x, n.NID)
	}
	hsmSrv.SetGroup(fake.StartingLabel, xnames...)
	hsmSrv.SetGroup(fake.UpgradingLabel)
	hsmSrv.SetGroup(fake.FailedLabel)
	bosSrv, bosURL := bosserver.NewTest(t, bosserver.Options{
		Now: world.Now, PendingDelay: 10 * time.Second, Groups: hsmSrv.Group, Booter: worldBooter{world},
	})
	bosSrv.AddTemplate(fake.Template, []string{fake.UpgradingLabel}, nil)
	c := &cluster{world: world, clock: demo.NewPaced(world, 240), hsm: hsmURL, bos: strings.TrimSuffix(bosURL, "/")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.clock.Run(ctx, 20*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done })
	testBackends = func(b *backends, cfg *crus.Config) {
		b.manager = world.WLM()
		if cfg != nil {
			cfg.Clock = c.clock
		}
	}
	t.Cleanup(func() { testBackends = nil })
	return c
}

// freeAddr returns an address of 127.0.0.1 on which nothing listens, for
// a `crus serve` to listen on, chosen where no other listener of the tests
// nor an outgoing connection takes it meanwhile (see package freeport).
func freeAddr(t *testing.T) string {
	t.Helper()
	ports, err := freeport.Loopback(1)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
}

// serving is one `crus serve` run in this process (it needs the
// simulated workload manager, which has no address).
type serving struct {
	cancel context.CancelFunc
	code   chan int
}

func (c *cluster) serve(t *testing.T, addr, dir string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{cancel: cancel, code: make(chan int, 1)}
	args := []string{"--listen", addr, "--hsm-url", c.hsm, "--bos-url", c.bos, "--store-dir", dir, "--poll-interval", "30s"}
	go func() { s.code <- serve(ctx, args) }()
	// Wait until it answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("crus serve did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop is SIGTERM's path: the context ends, serve shuts down gracefully.
func (s *serving) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.code:
		if code != exitOK {
			t.Errorf("crus serve exited %d after a graceful stop", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("crus serve did not stop")
	}
}

// cli runs the crus command and returns its output and exit code.
func cli(t *testing.T, server string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(crusBin, append(args, "--server", "http://"+server)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if errOut.Len() > 0 {
		t.Logf("crus %s: stderr: %s", strings.Join(args, " "), errOut.String())
	}
	return out.String(), code
}

func mustCLI(t *testing.T, server string, args ...string) string {
	t.Helper()
	out, code := cli(t, server, args...)
	if code != 0 {
		t.Fatalf("crus %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// watcher runs `crus watch` in the background (not on a terminal: a plain
// line log).
type watcher struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
	code  int
}

func watch(t *testing.T, server, id string) *watcher {
	t.Helper()
	w := &watcher{cmd: exec.Command(crusBin, "watch", id, "--server", "http://"+server), done: make(chan struct{})}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stderr = os.Stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.mu.Unlock()
		}
		err := w.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			w.code = ee.ExitCode()
		}
	}()
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		<-w.done
	})
	return w
}

func (w *watcher) wait(t *testing.T, within time.Duration) (int, []string) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(within):
		w.mu.Lock()
		t.Fatalf("crus watch did not end; it printed:\n%s", strings.Join(w.lines, "\n"))
	}
	return w.code, w.lines
}

func describeJSON(t *testing.T, server, id string) crus.Session {
	t.Helper()
	var s crus.Session
	if err := json.Unmarshal([]byte(mustCLI(t, server, "describe", id, "-o", "json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls describe until cond holds (a generous deadline: the
// cluster runs on a clock paced against real time).
func waitFor(t *testing.T, server, id, what string, cond func(crus.Session) bool) crus.Session {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s := describeJSON(t, server, id)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %+v", what, s.Counts())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCLIEndToEnd: an administrator's session with the crus command
// against `crus serve` on loopback — create, list, describe, pause,
// resume, watch — through a restart of the server in the middle of the
// session; then a second session cancelled with delete.
func TestCLIEndToEnd(t *testing.T) {
	const nodes, step = 24, 4
	c := newCluster(t, nodes)
	addr, dir := freeAddr(t), t.TempDir()
	srv := c.serve(t, addr, dir)

	// Create, with the original CLI's flag names.
	out := mustCLI(t, addr, "create", "--starting-label", fake.StartingLabel, "--upgrading-label", fake.UpgradingLabel,
		"--failed-label", fake.FailedLabel, "--upgrade-step-size", fmt.Sprint(step), "--upgrade-template-id", fake.Template,
		"--workload-manager-type", "slurm", "-o", "json")
	var created crus.Session
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create -o json: %v\n%s", err, out)
	}
	id := created.UpgradeID
	if len(created.Progress.Nodes) != nodes || created.StepSize != step {
		t.Fatalf("created %+v", created.Counts())
	}
	// A second create of the same nodes is refused, naming the holder.
	out, code := cli(t, addr, "create", "--starting-label", fake.StartingLabel, "--upgrading-label", "u2",
		"--failed-label", "f2", "--upgrade-step-size", "2", "--upgrade-template-id", fake.Template)
	if code != exitFail {
		t.Errorf("a conflicting create exited %d: %s", code, out)
	}
	// Bad input: every problem reported, exit 1.
	if _, code := cli(t, addr, "create", "--starting-label", "BAD", "--upgrade-step-size", "0"); code != exitFail {
		t.Errorf("a bad create exited %d", code)
	}

	// List and describe.
	var list []api.Summary
	if err := json.Unmarshal([]byte(mustCLI(t, addr, "list", "-o", "json")), &list); err != nil || len(list) != 1 || list[0].UpgradeID != id {
		t.Fatalf("list: %v %+v", err, list)
	}
	if table := mustCLI(t, addr, "list"); !strings.Contains(table, id) || !strings.Contains(table, "UPGRADE_ID") {
		t.Errorf("list table:\n%s", table)
	}
	if y := mustCLI(t, addr, "describe", id, "-o", "yaml"); !strings.Contains(y, "upgrade_id: "+id) {
		t.Errorf("describe -o yaml:\n%s", y)
	}
	if d := mustCLI(t, addr, "describe", id); !strings.Contains(d, "upgrade_id:") || !strings.Contains(d, "messages:") {
		t.Errorf("describe:\n%s", d)
	}
	if _, code := cli(t, addr, "describe", "00000000-0000-0000-0000-00000000dead"); code != exitFail {
		t.Errorf("describe of an unknown id exited %d", code)
	}

	// Watch from the start, through everything that follows.
	w := watch(t, addr, id)

	// Pause at once: nothing new is taken; resume.
	if out := mustCLI(t, addr, "pause", id); !strings.Contains(out, "paused") {
		t.Errorf("pause: %s", out)
	}
	if s := describeJSON(t, addr, id); !s.Progress.Paused {
		t.Errorf("not paused: %+v", s.Progress.Stage)
	}
	mustCLI(t, addr, "resume", id)

	// Restart the server in the middle of the session.
	mid := waitFor(t, addr, id, "some nodes upgraded", func(s crus.Session) bool {
		c := s.Counts()
		return c.Upgraded >= step && c.Pending > 0
	})
	srv.stop(t)
	t.Logf("server stopped with %d of %d upgraded", mid.Counts().Upgraded, nodes)
	srv = c.serve(t, addr, dir)
	defer srv.stop(t)

	code, lines := w.wait(t, 3*time.Minute)
	final := describeJSON(t, addr, id)
	fc := final.Counts()
	if !final.Completed || fc.Upgraded != nodes {
		t.Fatalf("after the restart: completed %v, %+v", final.Completed, fc)
	}
	if code != exitOK {
		t.Errorf("watch exited %d; want 0", code)
	}
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, fmt.Sprintf("%d/%d done", nodes, nodes)) || !strings.Contains(text, " done") {
		t.Errorf("watch output lacks the end:\n%s", text)
	}
	if len(lines) < 5 {
		t.Errorf("watch printed %d lines:\n%s", len(lines), text)
	}
	if m := c.world.MaxOut(); m > step {
		t.Errorf("%d nodes out at once; the cap is %d", m, step)
	}
	if v := c.world.Violations(); len(v) > 0 {
		t.Errorf("violations: %v", v)
	}

	// The timeline of the finished session.
	svg := filepath.Join(t.TempDir(), "timeline.svg")
	mustCLI(t, addr, "timeline", id, "--file", svg)
	data, err := os.ReadFile(svg)
	if err != nil || !bytes.HasPrefix(data, []byte("<svg")) || !bytes.Contains(data, []byte("step 1")) {
		t.Errorf("timeline: %v %.200s", err, data)
	}

	// A second session, cancelled: the nodes not yet taken stay in service
	// (untouched), and watch says it was cancelled.
	out = mustCLI(t, addr, "create", "--starting-label", fake.StartingLabel, "--upgrading-label", fake.UpgradingLabel,
		"--failed-label", fake.FailedLabel, "--upgrade-step-size", "2", "--upgrade-template-id", fake.Template, "-o", "json")
	var second crus.Session
	if err := json.Unmarshal([]byte(out), &second); err != nil {
		t.Fatal(err)
	}
	w2 := watch(t, addr, second.UpgradeID)
	waitFor(t, addr, second.UpgradeID, "the second session started", func(s crus.Session) bool { return s.Counts().InFlight > 0 })
	if out := mustCLI(t, addr, "delete", second.UpgradeID); !strings.Contains(out, "deletion requested") {
		t.Errorf("delete: %s", out)
	}
	code, _ = w2.wait(t, 3*time.Minute)
	if code != exitCancelled {
		t.Errorf("watch of a cancelled session exited %d; want %d", code, exitCancelled)
	}
	s2 := describeJSON(t, addr, second.UpgradeID)
	if s2.Progress.Result != crus.ResultCancelled || s2.Counts().Untouched == 0 {
		t.Errorf("cancelled session: %s %+v", s2.Progress.Result, s2.Counts())
	}
	for _, n := range s2.Progress.Nodes {
		if n.Outcome == crus.OutcomeUntouched {
			if st, _ := c.world.Node(n.XName); st.Drain || st.Fail {
				t.Errorf("untouched node %s is out of service (%s)", n.XName, st.Reason)
			}
		}
	}
	// Deleting the finished session removes it, and says so.
	if out := mustCLI(t, addr, "delete", id); !strings.Contains(out, id+" record deleted") {
		t.Errorf("delete of a finished session: %q; want it to say the record is deleted", out)
	}
	if _, code := cli(t, addr, "describe", id); code != exitFail {
		t.Errorf("describe of a deleted session exited %d", code)
	}
}

// TestConfigCheck: every problem of a configuration is reported at once,
// and each backend is contacted once.
func TestConfigCheck(t *testing.T) {
	stdoutWas := stdout
	defer func() { stdout = stdoutWas }()
	var buf bytes.Buffer
	stdout = &buf

	// A configuration with several mistakes.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("hsm:\n  url: ftp://nowhere\nbos:\n  version: v3\ntoken:\n  source: file\nslurm:\n  adapter: pbs\nauth:\n  mode: jwt\nexecutor:\n  call_timeout: 500ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"config", "check", "--config", bad, "--store-dir", t.TempDir()}); code != exitFail {
		t.Errorf("a bad configuration: exit %d", code)
	}
	for _, want := range []string{"hsm.url", "bos.version", "token.file", "slurm.adapter", "auth.jwks_url", "executor.call_timeout must be at least 1s, got 500ms"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("config check does not report %s:\n%s", want, buf.String())
		}
	}

	// A good one, against the test servers: HSM and BOS answer (one
	// request each); the store opens; Slurm's scontrol is not installed
	// here, and that is reported, not hidden.
	hsmSrv, hsmURL := hsmserver.NewTest(t, hsmserver.Options{})
	bosSrv, bosURL := bosserver.NewTest(t, bosserver.Options{})
	buf.Reset()
	code := run([]string{"config", "check", "--hsm-url", hsmURL, "--bos-url", bosURL, "--store-dir", t.TempDir(), "--scontrol", "/nonexistent/scontrol"})
	out := buf.String()
	for _, want := range []string{"ok    hsm", "ok    bos", "ok    store", "FAIL  slurm"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	if code != exitFail {
		t.Errorf("config check with a missing scontrol exited %d", code)
	}
	count := func(m map[string]int) int {
		n := 0
		for _, v := range m {
			n += v
		}
		return n
	}
	if n := count(hsmSrv.Requests()); n != 1 {
		t.Errorf("HSM got %d requests: %v", n, hsmSrv.Requests())
	}
	if n := count(bosSrv.Requests()); n != 1 {
		t.Errorf("BOS got %d requests: %v", n, bosSrv.Requests())
	}
}

// TestPlan: crus plan reads the cluster's nodes, states and job ends and
// prints every strategy's prediction and its choice.
func TestPlan(t *testing.T) {
	c := newCluster(t, 64)
	stdoutWas := stdout
	defer func() { stdout = stdoutWas }()
	var buf bytes.Buffer
	stdout = &buf
	code := run([]string{"plan", "--starting-label", fake.StartingLabel, "--upgrade-step-size", "8",
		"--hsm-url", c.hsm, "-o", "json"})
	if code != exitOK {
		t.Fatalf("plan exited %d: %s", code, buf.String())
	}
	var out struct {
		Nodes      int    `json:"nodes"`
		Choice     string `json:"choice"`
		Strategies []struct {
			Strategy      string  `json:"strategy"`
			MakespanHours float64 `json:"makespan_hours"`
			MaxOut        int     `json:"max_out"`
			Upgraded      int     `json:"upgraded"`
			Out           []int   `json:"out_every_10m"`
			Error         string  `json:"error"`
		} `json:"strategies"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if out.Nodes != 64 || out.Choice == "" || len(out.Strategies) < 5 {
		t.Fatalf("plan: %+v", out)
	}
	for _, s := range out.Strategies {
		if s.Error != "" {
			t.Errorf("%s: %s", s.Strategy, s.Error)
			continue
		}
		if s.Strategy != "reboot-asap" && s.MaxOut > 8 {
			t.Errorf("%s: %d out at once, cap 8", s.Strategy, s.MaxOut)
		}
		if s.Upgraded != 64 || s.MakespanHours <= 0 || len(s.Out) == 0 {
			t.Errorf("%s: %+v", s.Strategy, s)
		}
	}
	buf.Reset()
	if code := run([]string{"plan", "--starting-label", fake.StartingLabel, "--upgrade-step-size", "8",
		"--hsm-url", c.hsm}); code != exitOK || !strings.Contains(buf.String(), "crus would choose") {
		t.Errorf("plan table (exit %d):\n%s", code, buf.String())
	}
	t.Logf("\n%s", buf.String())

	// Values no cluster has: a usage error, before anything is read.
	for _, bad := range [][]string{
		{"--load", "2"}, {"--load", "NaN"}, {"--reboot-time", "-5m"}, {"--reboot-time", "0s"},
		{"--drain-timeout", "-1h"}, {"--drain-timeout", "30s"}, {"--upgrade-step-size", "-1"},
	} {
		var errOut bytes.Buffer
		stderrWas := stderr
		stderr = &errOut
		code := run(append([]string{"plan", "--starting-label", fake.StartingLabel, "--upgrade-step-size", "8",
			"--hsm-url", "http://127.0.0.1:1"}, bad...))
		stderr = stderrWas
		if code != exitUsage || !strings.Contains(errOut.String(), bad[0]) {
			t.Errorf("plan %v: exit %d, %q", bad, code, errOut.String())
		}
	}
}

// TestPlanTakesNoStore: crus plan reads the cluster and, with --session
// and --store, that store; it neither opens, locks nor creates the
// configuration's store directory (it once did, so planning a session of
// a local store that is also the configuration's failed on its own lock,
// and planning anywhere made the directory), and takes no flag of the
// store's or BOS's.
func TestPlanTakesNoStore(t *testing.T) {
	c := newCluster(t, 16)
	dir := t.TempDir()
	st, err := filestore.Open(dir, filestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := crus.NewExecutor(c.world.HSM(), c.world.WLM(), c.world.BOS(), crus.Config{Store: st, Clock: c.world})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ex.Create(context.Background(), crus.Spec{StartingLabel: fake.StartingLabel, UpgradingLabel: fake.UpgradingLabel,
		FailedLabel: fake.FailedLabel, StepSize: 4, TemplateID: fake.Template, WorkloadManagerType: "slurm"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	stdoutWas, stderrWas := stdout, stderr
	defer func() { stdout, stderr = stdoutWas, stderrWas }()
	var out, errOut bytes.Buffer
	stdout, stderr = &out, &errOut
	t.Setenv("CRUS_STORE_DIR", dir)
	if code := run([]string{"plan", "--session", s.UpgradeID, "--store", dir, "--hsm-url", c.hsm, "-o", "json"}); code != exitOK {
		t.Fatalf("plan --session of the configuration's own store: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	var got struct {
		Nodes int `json:"nodes"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Nodes != 16 {
		t.Fatalf("plan --session: %v, %+v\n%s", err, got, out.String())
	}
	absent := filepath.Join(t.TempDir(), "absent")
	t.Setenv("CRUS_STORE_DIR", absent)
	out.Reset()
	if code := run([]string{"plan", "--starting-label", fake.StartingLabel, "--upgrade-step-size", "4", "--hsm-url", c.hsm}); code != exitOK {
		t.Fatalf("plan: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(absent); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("crus plan made the configuration's store directory (%v)", err)
	}
	for _, flag := range []string{"--store-dir", "--etcd-endpoints", "--etcd-prefix", "--bos-url", "--bos-version", "--bos-v1-sessions"} {
		errOut.Reset()
		if code := run([]string{"plan", "--starting-label", fake.StartingLabel, "--hsm-url", c.hsm, flag, "x"}); code != exitUsage || !strings.Contains(errOut.String(), "not defined") {
			t.Errorf("crus plan %s x: exit %d, %q; want a usage error", flag, code, errOut.String())
		}
	}
}

// TestServeScheduled: a scheduled session created with `crus create` and
// run by `crus serve` books its nodes with the workload manager, and
// leaves no reservation behind. (The service wraps the workload manager
// to count its calls; the wrapper once dropped wlm.Scheduler, and the
// service ran every scheduled session as a rolling one.)
func TestServeScheduled(t *testing.T) {
	const nodes = 16
	c := newCluster(t, nodes)
	c.world.KeepBusy(0.7, 30*time.Minute, 5*time.Minute, c.world.Now().Add(24*time.Hour))
	addr, dir := freeAddr(t), t.TempDir()
	srv := c.serve(t, addr, dir)
	defer srv.stop(t)
	out := mustCLI(t, addr, "create", "--starting-label", fake.StartingLabel, "--upgrading-label", fake.UpgradingLabel,
		"--failed-label", fake.FailedLabel, "--upgrade-step-size", "2", "--upgrade-template-id", fake.Template,
		"--strategy", "scheduled", "--reboot-time", "12m", "--booking-slack", "30m", "-o", "json")
	var created crus.Session
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create -o json: %v\n%s", err, out)
	}
	id := created.UpgradeID
	prefix := "crus-" + id + "-"
	booked := 0
	final := waitFor(t, addr, id, "the session to end", func(s crus.Session) bool {
		booked = max(booked, len(c.world.Reservations(prefix)))
		return s.Completed
	})
	if booked == 0 {
		t.Errorf("no reservation of the session was ever seen: the service did not book (%s)", final.Spec.Strategy)
	}
	if fc := final.Counts(); fc.Upgraded+fc.Failed != nodes {
		t.Errorf("final counts %+v", fc)
	}
	if left := c.world.Reservations(prefix); len(left) > 0 {
		t.Errorf("reservations left behind: %v", left)
	}
}
