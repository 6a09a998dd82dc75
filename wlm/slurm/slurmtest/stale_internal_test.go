package slurmtest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv marks the test process that TestReapsWhatAKilledTestLeft
// starts, and kills.
const helperEnv = "SLURMTEST_KILLED_HELPER"

// TestKilledHelper is not a test: run by TestReapsWhatAKilledTestLeft, it
// starts a cluster with slurmrestd, runs a job, prints the cluster's
// directory and waits to be killed.
func TestKilledHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("run by TestReapsWhatAKilledTestLeft")
	}
	c, err := Start(t.Context(), Options{Nodes: 1, REST: true})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(t.Context(), c.Names(), time.Hour, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.waitFor(t.Context(), 60*time.Second, "the job to run", func() (bool, error) {
		st, err := c.JobState(t.Context(), id)
		return st == "RUNNING", err
	}); err != nil {
		t.Fatal(err)
	}
	// Wait for the job's processes too (slurmstepd, the script, sleep),
	// which slurmd starts and the kernel does not kill with this process.
	if err := c.waitFor(t.Context(), 60*time.Second, "the job's processes", func() (bool, error) {
		var names []string
		for _, p := range processesIn(c.Dir) {
			b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "comm"))
			names = append(names, strings.TrimSpace(string(b)))
		}
		return slices.Contains(names, "slurmstepd") && slices.Contains(names, "sleep"), nil
	}); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("DIR " + c.Dir + "\n")
	select {}
}

// TestReapsWhatAKilledTestLeft kills a test process that runs a cluster
// with a job, as go test's -timeout does: the daemons it started die with
// it (slurmrestd too, which runs as nobody), the job's slurmstepd and
// processes do not, and the next Start stops them, by pid.
func TestReapsWhatAKilledTestLeft(t *testing.T) {
	if err := Installed(true); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %v", err)
		}
		t.Skipf("SKIPPING the real-Slurm test: %v", err)
	}
	if os.Getenv(helperEnv) != "" {
		t.Skip("in the helper")
	}
	// Not t.TempDir, whose parent only root may enter: munged wants its
	// socket's directories open to all, slurmrestd (nobody) reads
	// slurm.conf.
	tmp, err := os.MkdirTemp("", "crus-reap-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledHelper$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "TMPDIR="+tmp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
		reapStale(tmp) // whatever the test failed to reach
	}()
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "DIR "); ok {
			dir = d
			break
		}
		t.Logf("helper: %s", sc.Text())
	}
	if dir == "" {
		t.Fatalf("the helper printed no cluster directory: %v", sc.Err())
	}
	daemons, err := readPidLines(filepath.Join(dir, daemonFile))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range daemons {
		names = append(names, d.name)
	}
	for _, want := range []string{"munged", "slurmctld", "slurmd nid000001", "slurmrestd"} {
		if !slices.Contains(names, want) {
			t.Errorf("daemons recorded: %q; no %s", names, want)
		}
	}
	// While the helper runs, its cluster is left alone.
	if report := reapStale(tmp); len(report) != 0 {
		t.Errorf("reapStale acted on a running test's cluster: %q", report)
	}
	for _, d := range daemons {
		if !alive(d.pid, d.start) {
			t.Errorf("%s (pid %d) stopped while its test process runs", d.name, d.pid)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	// The kernel kills every daemon the helper started.
	var pids []int
	for _, d := range daemons {
		pids = append(pids, d.pid)
	}
	waitGone(pids, 30*time.Second)
	for _, d := range daemons {
		if alive(d.pid, d.start) {
			t.Errorf("%s (pid %d) outlived the test process that started it", d.name, d.pid)
		}
	}
	left := processesIn(dir)
	t.Logf("left running in %s after the kill: pids %v", dir, left)
	if len(left) == 0 {
		t.Errorf("nothing left running in %s: the job's processes should outlive the kill", dir)
	}

	// Someone reading the dead cluster's logs is not one of its processes.
	reader := exec.Command("sleep", "600")
	reader.Dir = filepath.Join(dir, "log")
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		reader.Process.Kill()
		reader.Wait()
	}()

	report := reapStale(tmp)
	t.Logf("reapStale: %q", report)
	if len(report) != 1 || !strings.Contains(report[0], dir) {
		t.Errorf("reapStale reported %q; want one line about %s", report, dir)
	}
	if now := processesIn(dir); len(now) > 0 {
		t.Errorf("still running in %s after reapStale: pids %v", dir, now)
	}
	// (A killed child stays a zombie until Wait: look at its state.)
	if state, _, err := procStat(reader.Process.Pid); err != nil || state == "Z" {
		t.Errorf("reapStale stopped a process reading the logs: state %q, %v", state, err)
	}
	if _, err := os.Stat(filepath.Join(dir, reapedFile)); err != nil {
		t.Errorf("the directory is not marked as reaped: %v", err)
	}
	if again := reapStale(tmp); len(again) != 0 {
		t.Errorf("a second reapStale did something: %q", again)
	}
}

// TestAliveNeedsTheStartTime: a pid names a process only with its start
// time; a pid another process took since is not the one recorded.
func TestAliveNeedsTheStartTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	st, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !alive(os.Getpid(), st) {
		t.Error("this process is not alive with its own start time")
	}
	if alive(os.Getpid(), st+1) {
		t.Error("alive with another start time")
	}
	lines, err := readPidLines(writeFile(t, "12 34 slurmd nid000001\nbad\n-1 2 x\n56 78\n9 nine\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []pidLine{{12, 34, "slurmd nid000001"}, {56, 78, ""}}
	if !slices.Equal(lines, want) {
		t.Errorf("readPidLines = %v, want %v", lines, want)
	}
}

func writeFile(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
