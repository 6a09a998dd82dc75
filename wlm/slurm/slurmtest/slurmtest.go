// Package slurmtest runs a real, small Slurm cluster on the local machine
// for tests: munged, slurmctld, one slurmd per node (Debian's slurmd is
// built with multiple-slurmd support, so every node is a slurmd process on
// 127.0.0.1 with a port of its own) and, if asked, slurmrestd with JWT
// authentication. Everything lives in a temporary directory; every daemon
// is a child process of the test, found by its pid and stopped by it,
// never by name. A test process that is killed (go test -timeout) takes
// its daemons with it (the kernel's parent-death signal); what a job had
// running on the cluster is stopped, by pid, by the next test process's
// first Start (see Cluster.Reaped).
//
// It needs the Debian 12 packages munge, slurmctld, slurmd, slurm-client,
// slurmrestd and slurm-wlm-jwt-plugin, and root (slurmd runs jobs as their
// owner). New skips the test when they are missing, unless the CI
// environment variable is "true": there a cluster that cannot start fails
// the test.
//
// A node's reboot is simulated by stopping its slurmd and starting it
// again with -b, which makes it report "booted now": Slurm then shows a
// new BootTime, as after a real reboot, and sets the node DOWN "Node
// unexpectedly rebooted" (keeping a drain and its reason). Reset and
// Settle bring such a node back: they resume it until it stays idle,
// since one RESUME is not always enough (see Settle).
package slurmtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crus-go/crus/internal/freeport"
)

// ErrNotInstalled is returned by Start when the Slurm or munge programs are
// missing, or the process is not root.
var ErrNotInstalled = errors.New("slurmtest: Slurm is not installed here (apt-get install --no-install-recommends munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin) or not running as root")

// Options describe the cluster to start. The zero value is usable.
type Options struct {
	// Nodes is the number of compute nodes; default 8. They are named
	// nid%06d from FirstNID.
	Nodes int
	// FirstNID is the number of the first node; default 1.
	FirstNID int
	// REST starts slurmrestd too, on a free port of 127.0.0.1, with JWT
	// authentication.
	REST bool
	// RESTPlugins are the OpenAPI plugins slurmrestd loads (its -s
	// option). Default "openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38",
	// the ones Slurm 22.05 serves without slurmdbd.
	RESTPlugins string
	// StartTimeout bounds the wait for every node to be idle. Default 60s.
	StartTimeout time.Duration
}

// Cluster is a running test cluster.
type Cluster struct {
	// Dir holds everything: slurm.conf, keys, state, spool and logs.
	Dir string
	// Conf is the path of slurm.conf; pass it as SLURM_CONF.
	Conf string
	// RESTURL is the base URL of slurmrestd ("http://127.0.0.1:port"), if
	// Options.REST.
	RESTURL string
	// Reaped says what the first Start of this test process stopped that
	// a killed test process had left running (see reapStale), one line
	// per cluster directory; New logs it.
	Reaped []string

	names  []string
	ports  map[string]int
	opts   Options
	mu     sync.Mutex
	munged *proc
	ctld   *proc
	restd  *proc
	slurmd map[string]*proc
	closed bool
}

// proc is one daemon this package started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	reboot  bool // a slurmd started with -b
	done    chan struct{}
	err     error
	log     string
}

// Names returns the node names, in order.
func (c *Cluster) Names() []string { return slices.Clone(c.names) }

// required lists the programs a cluster needs.
var required = []string{"munged", "slurmctld", "slurmd", "scontrol", "sinfo", "squeue", "sbatch", "scancel"}

// Installed reports whether the programs a cluster needs are on $PATH and
// the process runs as root.
func Installed(rest bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrNotInstalled)
	}
	progs := required
	if rest {
		progs = append(slices.Clone(progs), "slurmrestd")
	}
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%w: %s not found", ErrNotInstalled, p)
		}
	}
	return nil
}

// New starts a cluster for the test and stops it when the test ends. When
// Slurm is not installed it skips the test, loudly, except under CI=true,
// where it fails it: CI installs Slurm (.ci/setup.d/20-slurm.sh) and a
// cluster that does not start there is a bug.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if err := Installed(opts.REST); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but no Slurm cluster can run here: %v", err)
		}
		t.Skipf("SKIPPING the real-Slurm test: %v", err)
	}
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("starting a Slurm test cluster: %v", err)
	}
	for _, r := range c.Reaped {
		t.Logf("slurmtest: %s", r)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("stopping the Slurm test cluster: %v", err)
		}
	})
	return c
}

// Start starts a cluster and waits until every node is idle. On failure it
// stops whatever it had started and returns an error that quotes the logs.
//
// The daemons are told their ports before they bind them, so another
// process can take one in between (see package freeport): a cluster that
// does not start is started again, on new ports, up to three times.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := Installed(opts.REST); err != nil {
		return nil, err
	}
	if opts.Nodes == 0 {
		opts.Nodes = 8
	}
	if opts.FirstNID == 0 {
		opts.FirstNID = 1
	}
	if opts.RESTPlugins == "" {
		opts.RESTPlugins = "openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	reaped := reapStaleOnce()
	var errs []error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		c, err := startOnce(ctx, opts)
		if err == nil {
			c.Reaped = reaped
			return c, nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// startAttempts is how many times Start tries to start a cluster.
const startAttempts = 3

// choosePorts chooses the cluster's ports: slurmctld's, slurmrestd's, then
// one per node. A variable for the test of the retry.
var choosePorts = freeport.Loopback

// startOnce starts a cluster on newly chosen ports.
func startOnce(ctx context.Context, opts Options) (_ *Cluster, err error) {
	dir, err := os.MkdirTemp("", "crus-slurm-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Conf: filepath.Join(dir, "slurm.conf"), opts: opts, slurmd: map[string]*proc{}, ports: map[string]int{}}
	defer func() {
		if err != nil {
			if cerr := c.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if err := recordOwner(dir); err != nil {
		return nil, err
	}
	// slurmrestd runs as nobody and must read slurm.conf.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	for _, d := range []string{"state", "spool", "log", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	for i := range opts.Nodes {
		name := fmt.Sprintf("nid%06d", opts.FirstNID+i)
		c.names = append(c.names, name)
		if err := os.Mkdir(filepath.Join(dir, "spool", name), 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := choosePorts(opts.Nodes + 2)
	if err != nil {
		return nil, err
	}
	c.ports["slurmctld"], c.ports["slurmrestd"] = ports[0], ports[1]
	for i, n := range c.names {
		c.ports[n] = ports[2+i]
	}
	if err := writeKey(filepath.Join(dir, "munge.key"), 1024); err != nil {
		return nil, err
	}
	if opts.REST {
		if err := writeKey(filepath.Join(dir, "jwt.key"), 32); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(c.Conf, []byte(c.slurmConf()), 0o644); err != nil {
		return nil, err
	}

	run := filepath.Join(dir, "run")
	c.munged, err = c.start("munged", nil, "munged", "--foreground",
		"--key-file="+filepath.Join(dir, "munge.key"), "--socket="+filepath.Join(run, "munge.sock"),
		"--pid-file="+filepath.Join(run, "munged.pid"), "--log-file="+filepath.Join(dir, "log", "munged.log"),
		"--seed-file="+filepath.Join(run, "munged.seed"))
	if err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, 10*time.Second, "munged socket", func() (bool, error) {
		_, err := os.Stat(filepath.Join(run, "munge.sock"))
		return err == nil, c.munged.exited()
	}); err != nil {
		return nil, err
	}
	// -i: ignore any saved state; the state directory is new anyway.
	c.ctld, err = c.start("slurmctld", nil, "slurmctld", "-D", "-i", "-f", c.Conf)
	if err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, 20*time.Second, "slurmctld to answer", func() (bool, error) {
		out, _ := c.Command(ctx, "scontrol", "ping")
		return bytes.Contains(out, []byte("is UP")), c.ctld.exited()
	}); err != nil {
		return nil, err
	}
	for _, n := range c.names {
		if err := c.StartNode(n, false); err != nil {
			return nil, err
		}
	}
	if opts.REST {
		c.RESTURL = fmt.Sprintf("http://127.0.0.1:%d", c.ports["slurmrestd"])
		// slurmrestd refuses to run as root. It is started as nobody rather
		// than told to drop root (-u, -g): a process that changes its own
		// user loses its parent-death signal and would outlive a killed
		// test.
		runAs, err := nobody()
		if err != nil {
			return nil, err
		}
		c.restd, err = c.startAs(runAs, "slurmrestd", []string{"SLURM_JWT=daemon"}, "slurmrestd", "-f", c.Conf,
			"-s", opts.RESTPlugins, fmt.Sprintf("127.0.0.1:%d", c.ports["slurmrestd"]))
		if err != nil {
			return nil, err
		}
		if err := c.waitFor(ctx, 20*time.Second, "slurmrestd to listen", func() (bool, error) {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.ports["slurmrestd"]), time.Second)
			if err == nil {
				conn.Close()
			}
			return err == nil, c.restd.exited()
		}); err != nil {
			return nil, err
		}
	}
	if err := c.waitIdle(ctx, opts.StartTimeout, c.anyExited); err != nil {
		return nil, err
	}
	return c, nil
}

// anyExited returns an error quoting the log of a daemon of the cluster
// that has exited (a slurmd that could not bind its port, say).
func (c *Cluster) anyExited() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range []*proc{c.munged, c.ctld, c.restd} {
		if p != nil {
			if err := p.exited(); err != nil {
				return err
			}
		}
	}
	for _, n := range c.names {
		if p := c.slurmd[n]; p != nil {
			if err := p.exited(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Cluster) slurmConf() string {
	dir := c.Dir
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by crus's slurmtest: a test cluster on one machine.
ClusterName=crustest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=%d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=%s/run/munge.sock
CredType=cred/munge
StateSaveLocation=%s/state
SlurmdSpoolDir=%s/spool/%%n
SlurmctldPidFile=%s/run/slurmctld.pid
SlurmdPidFile=%s/run/slurmd-%%n.pid
SlurmctldLogFile=%s/log/slurmctld.log
SlurmdLogFile=%s/log/slurmd-%%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0
ReturnToService=1
MpiDefault=none
# A stopped slurmd (a node rebooting) is seen not responding at the next
# failed ping: after about 14 s with 10, 35 s with 60.
SlurmdTimeout=10
ResumeTimeout=60
KillWait=5
InactiveLimit=0
`, c.ports["slurmctld"], dir, dir, dir, dir, dir, dir, dir)
	if c.opts.REST {
		fmt.Fprintf(&b, "AuthAltTypes=auth/jwt\nAuthAltParameters=jwt_key=%s/jwt.key\n", dir)
	}
	for _, n := range c.names {
		fmt.Fprintf(&b, "NodeName=%s NodeHostname=localhost NodeAddr=127.0.0.1 Port=%d CPUs=1 Sockets=1 CoresPerSocket=1 ThreadsPerCore=1 RealMemory=100 State=UNKNOWN\n", n, c.ports[n])
	}
	b.WriteString("PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE DefaultTime=60 State=UP\n")
	return b.String()
}

func writeKey(path string, size int) error {
	key := make([]byte, size)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return os.WriteFile(path, key, 0o600)
}

// env is the environment of every program the cluster runs.
func (c *Cluster) env(extra ...string) []string {
	return append(append(os.Environ(), "SLURM_CONF="+c.Conf, "SLURM_TIME_FORMAT=standard"), extra...)
}

// start starts a daemon as a child process, in a process group of its own,
// killed if the test process dies, and records its pid in the cluster's
// directory (see reapStale).
func (c *Cluster) start(name string, env []string, prog string, args ...string) (*proc, error) {
	return c.startAs(nil, name, env, prog, args...)
}

// startAs is start with the daemon running as runAs; nil means as this
// process.
func (c *Cluster) startAs(runAs *syscall.Credential, name string, env []string, prog string, args ...string) (*proc, error) {
	logPath := filepath.Join(c.Dir, "log", strings.ReplaceAll(name, " ", "-")+".out")
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(prog, args...)
	cmd.Env = c.env(env...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr(runAs)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("slurmtest: starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, started: time.Now(), done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := c.recordDaemon(p); err != nil {
		return nil, errors.Join(err, p.stop())
	}
	return p, nil
}

// exited returns an error quoting the daemon's log if it has exited.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("slurmtest: %s (pid %d) exited: %v; its log ends:\n%s", p.name, p.cmd.Process.Pid, p.err, tail(p.log, 20))
	default:
		return nil
	}
}

// stop sends SIGTERM to the daemon's pid, waits, and sends SIGKILL after
// 10 seconds. Since the daemon is a child of this process and reaped by
// Wait, it cannot linger as a zombie.
func (p *proc) stop() error {
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("slurmtest: stopping %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("slurmtest: killing %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond every 50ms until it holds, fails, or timeout passes.
func (c *Cluster) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slurmtest: waited %s for %s; slurmctld log ends:\n%s", timeout, what, tail(filepath.Join(c.Dir, "log", "slurmctld.log"), 15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Command runs a Slurm client program (scontrol, sinfo, squeue, sbatch,
// scancel) against the cluster and returns its combined output.
func (c *Cluster) Command(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = c.env()
	cmd.Dir = c.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("slurmtest: %s %s: %w: %s", prog, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// States returns each node's state as sinfo's %T prints it ("idle",
// "drained", "allocated", "down*", ...).
func (c *Cluster) States(ctx context.Context) (map[string]string, error) {
	out, err := c.Command(ctx, "sinfo", "--noheader", "--Node", "--format=%N %T")
	if err != nil {
		return nil, err
	}
	states := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 {
			states[f[0]] = f[1]
		}
	}
	return states, nil
}

// WaitIdle waits until every node is idle (not drained, responding).
func (c *Cluster) WaitIdle(ctx context.Context, timeout time.Duration) error {
	return c.waitIdle(ctx, timeout, func() error { return c.ctld.exited() })
}

// waitIdle waits until every node is idle, and gives up at once when
// dead reports a daemon gone.
func (c *Cluster) waitIdle(ctx context.Context, timeout time.Duration, dead func() error) error {
	var last map[string]string
	err := c.waitFor(ctx, timeout, "every node to be idle", func() (bool, error) {
		st, err := c.States(ctx)
		if err != nil {
			return false, nil
		}
		last = st
		for _, n := range c.names {
			if st[n] != "idle" {
				return false, dead()
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%w\nlast states: %v", err, last)
	}
	return nil
}

// StartNode starts the slurmd of a node; with reboot, it reports a fresh
// boot (-b), as after a reboot.
func (c *Cluster) StartNode(name string, reboot bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("slurmtest: cluster stopped")
	}
	if p := c.slurmd[name]; p != nil && p.exited() == nil {
		return fmt.Errorf("slurmtest: slurmd of %s is running (pid %d)", name, p.cmd.Process.Pid)
	}
	if _, ok := c.ports[name]; !ok {
		return fmt.Errorf("slurmtest: no node %s", name)
	}
	args := []string{"-D", "-f", c.Conf, "-N", name}
	if reboot {
		args = append(args, "-b")
	}
	p, err := c.start("slurmd "+name, nil, "slurmd", args...)
	if err != nil {
		return err
	}
	p.reboot = reboot
	c.slurmd[name] = p
	return nil
}

// StopNode stops the slurmd of a node (by its pid): Slurm sees the node
// stop responding.
func (c *Cluster) StopNode(name string) error {
	c.mu.Lock()
	p := c.slurmd[name]
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("slurmtest: no slurmd started for %s", name)
	}
	return p.stop()
}

// Reboot simulates a reboot of the node: its slurmd is stopped and started
// again with -b, so that Slurm records a new BootTime.
func (c *Cluster) Reboot(name string) error {
	if err := c.StopNode(name); err != nil {
		return err
	}
	return c.StartNode(name, true)
}

// Submit starts a batch job on the nodes (one task per node) that sleeps
// for runFor, with a time limit of limit (whole minutes, at least one), and
// returns its id. The job may stay pending if the nodes are busy.
func (c *Cluster) Submit(ctx context.Context, nodes []string, runFor, limit time.Duration) (string, error) {
	minutes := max(int((limit+time.Minute-1)/time.Minute), 1)
	out, err := c.Command(ctx, "sbatch", "--parsable", "--nodelist="+strings.Join(nodes, ","),
		"--nodes="+strconv.Itoa(len(nodes)), "--output=/dev/null", "--job-name=crus-test",
		"--time="+strconv.Itoa(minutes), "--wrap=sleep "+strconv.Itoa(max(int(runFor/time.Second), 1)))
	if err != nil {
		return "", err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	return id, nil
}

// Cancel cancels a job.
func (c *Cluster) Cancel(ctx context.Context, id string) error {
	_, err := c.Command(ctx, "scancel", id)
	return err
}

// JobState returns the state of a job as scontrol shows it ("RUNNING",
// "COMPLETED", ...), while Slurm still remembers it (MinJobAge, 300s).
func (c *Cluster) JobState(ctx context.Context, id string) (string, error) {
	out, err := c.Command(ctx, "scontrol", "show", "job", id)
	if err != nil {
		return "", err
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "JobState="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("slurmtest: no JobState for job %s in %q", id, out)
}

// Token returns a JWT for user from `scontrol token`, valid for lifespan.
func (c *Cluster) Token(ctx context.Context, user string, lifespan time.Duration) (string, error) {
	out, err := c.Command(ctx, "scontrol", "token", "username="+user, "lifespan="+strconv.Itoa(int(lifespan/time.Second)))
	if err != nil {
		return "", err
	}
	tok, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "SLURM_JWT=")
	if !ok {
		return "", fmt.Errorf("slurmtest: scontrol token said %q", out)
	}
	return tok, nil
}

// Reset returns the cluster to where it started: every job cancelled and
// gone, every node's slurmd running, every node resumed, idle and settled
// (see Settle).
func (c *Cluster) Reset(ctx context.Context) error {
	if _, err := c.Command(ctx, "scancel", "--full", "--user=root"); err != nil {
		return err
	}
	if err := c.waitNoJobs(ctx, 60*time.Second); err != nil {
		return err
	}
	for _, n := range c.names {
		c.mu.Lock()
		p := c.slurmd[n]
		c.mu.Unlock()
		if p == nil || p.exited() != nil {
			if err := c.StartNode(n, false); err != nil {
				return err
			}
		}
	}
	return c.Settle(ctx, 60*time.Second)
}

// settleQuiet is how long a node whose slurmd was restarted as after a
// reboot (with -b) a short while ago must read idle, without a break,
// before Settle trusts it. Measured on Slurm
// 22.05: the second registration that takes such a node down again comes
// about 0.7 s after the RESUME that prompts it.
const settleQuiet = 2 * time.Second

// recentStart is how long after its slurmd started with -b a node may
// still be taken down by a late registration.
const recentStart = 30 * time.Second

// Settle resumes every node that is not idle (drained, down or failed)
// and keeps doing so until every node is idle, responding and not
// drained, and stays so: a node whose slurmd was started with -b in the
// last recentStart must read idle for settleQuiet without a break.
//
// The loop is needed because one RESUME is not always enough. After a
// simulated reboot (slurmd -b), slurmctld sets the node DOWN "Node
// unexpectedly rebooted"; the RESUME that clears it makes slurmd register
// again, and that registration can derive a boot time one second later
// than the first (both come from the uptime, in whole seconds). Being
// later than the node's last response, it counts as one more unexpected
// reboot, and the node is DOWN again a second after it read IDLE. The
// next RESUME sticks. Waiting without resuming again would wait forever.
func (c *Cluster) Settle(ctx context.Context, timeout time.Duration) error {
	var last map[string]string
	idleSince := map[string]time.Time{}
	err := c.waitFor(ctx, timeout, "every node to be idle and to stay idle", func() (bool, error) {
		st, err := c.States(ctx)
		if err != nil {
			return false, nil
		}
		last = st
		now := time.Now()
		settled := true
		for _, n := range c.names {
			switch state := st[n]; {
			case state == "idle":
				if idleSince[n].IsZero() {
					idleSince[n] = now
				}
				if c.rebootedWithin(n, recentStart) && now.Sub(idleSince[n]) < settleQuiet {
					settled = false
				}
			case strings.HasSuffix(state, "*"):
				// Not responding: its slurmd has not registered yet (or
				// again, after a RESUME). Nothing to do but wait.
				delete(idleSince, n)
				settled = false
			default:
				// Drained, down or failed. One at a time: Slurm refuses
				// RESUME for a node that is not drained or down, and the
				// whole list with it.
				delete(idleSince, n)
				settled = false
				_, _ = c.Command(ctx, "scontrol", "update", "NodeName="+n, "State=RESUME")
			}
		}
		if !settled {
			return false, c.ctld.exited()
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%w\nlast states: %v", err, last)
	}
	return nil
}

// rebootedWithin reports whether the node's slurmd was started with -b
// in the last d. Without -b its boot time is the machine's, which does
// not move, so a second registration cannot look like a reboot.
func (c *Cluster) rebootedWithin(name string, d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.slurmd[name]
	return p != nil && p.reboot && time.Since(p.started) < d
}

// waitNoJobs waits until squeue shows no job at all.
func (c *Cluster) waitNoJobs(ctx context.Context, timeout time.Duration) error {
	return c.waitFor(ctx, timeout, "every job to end", func() (bool, error) {
		out, err := c.Command(ctx, "squeue", "--noheader", "--all", "--format=%i")
		return err == nil && len(bytes.TrimSpace(out)) == 0, nil
	})
}

// Close cancels every job, waits for them to end (slurmstepd outlives
// slurmd otherwise), then stops exactly the daemons it started, by pid,
// and removes the directory. It may be called more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	var errs []error
	if c.ctld != nil && c.ctld.exited() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if _, err := c.Command(ctx, "scancel", "--full", "--user=root"); err == nil {
			if err := c.waitNoJobs(ctx, 50*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		cancel()
	}
	c.mu.Lock()
	procs := []*proc{c.restd}
	for _, n := range c.names {
		procs = append(procs, c.slurmd[n])
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, p := range []*proc{c.ctld, c.munged} {
		if err := p.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the logs for whoever reads the error.
		return fmt.Errorf("%w (logs kept in %s)", errors.Join(errs...), c.Dir)
	}
	return os.RemoveAll(c.Dir)
}

// Pids returns the pid of every daemon of the cluster that is running,
// by name ("munged", "slurmctld", "slurmrestd", "slurmd nid000001", ...).
func (c *Cluster) Pids() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	procs := []*proc{c.munged, c.ctld, c.restd}
	for _, p := range c.slurmd {
		procs = append(procs, p)
	}
	for _, p := range procs {
		if p != nil && p.exited() == nil {
			out[p.name] = p.cmd.Process.Pid
		}
	}
	return out
}

// Ports returns the TCP ports the cluster's daemons listen on.
func (c *Cluster) Ports() []int {
	var out []int
	for name, p := range c.ports {
		if name != "slurmrestd" || c.opts.REST {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
