package slurmtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A test process killed before it could stop its cluster (go test's
// -timeout, a kill -9) leaves behind the daemons the kernel does not kill
// with it: the parent-death signal reaches the daemons it started, but not
// the slurmstepd of a running job nor the job's processes, which slurmd
// starts. So that they do not run on, holding ports and CPU, each cluster
// directory records its owner (the test process) and the daemons it
// started, and the first Start of every test process stops, by pid, what
// a dead owner left: the daemons it recorded and the processes working in
// its directory. Pids are checked with their start time, so a pid that
// another process took since is left alone. The directory and its logs
// are kept.

const (
	ownerFile  = "owner"        // "pid start" of the test process
	daemonFile = "daemons"      // one "pid start name" line per daemon started
	reapedFile = "owner.reaped" // ownerFile once its leftovers were stopped
	dirPrefix  = "crus-slurm-"
)

// recordOwner writes, in a new cluster directory, which process owns it.
func recordOwner(dir string) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	st, err := startTime(os.Getpid())
	if err != nil {
		return fmt.Errorf("slurmtest: recording the cluster's owner: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %d\n", os.Getpid(), st), 0o644)
}

// recordDaemon adds a daemon that was just started to the directory's list.
func (c *Cluster) recordDaemon(p *proc) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	pid := p.cmd.Process.Pid
	st, err := startTime(pid)
	if err != nil {
		// Exited already: nothing to leave behind. Its exit is reported
		// by whoever waits for it.
		return nil
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, daemonFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("slurmtest: recording %s: %w", p.name, err)
	}
	_, err = fmt.Fprintf(f, "%d %d %s\n", pid, st, p.name)
	return errors.Join(err, f.Close())
}

var reapOnce sync.Once

// reapStaleOnce runs reapStale on the first call of the process and
// returns its report then; nil afterwards.
func reapStaleOnce() []string {
	var out []string
	reapOnce.Do(func() { out = reapStale(os.TempDir()) })
	return out
}

// reapStale stops what dead owners left running in the cluster directories
// under tmp and returns one line per directory it acted on.
func reapStale(tmp string) []string {
	if runtime.GOOS != "linux" {
		return nil
	}
	dirs, err := filepath.Glob(filepath.Join(tmp, dirPrefix+"*"))
	if err != nil {
		return nil
	}
	var report []string
	for _, dir := range dirs {
		pid, start, _, err := readPidLine(filepath.Join(dir, ownerFile))
		if err != nil || alive(pid, start) {
			continue // not a cluster's, being set up, or its owner runs
		}
		var killed []string
		var pids []int
		daemons, _ := readPidLines(filepath.Join(dir, daemonFile))
		for _, d := range daemons {
			if alive(d.pid, d.start) && kill(d.pid) == nil {
				killed = append(killed, fmt.Sprintf("%s (pid %d)", d.name, d.pid))
				pids = append(pids, d.pid)
			}
		}
		waitGone(pids, 5*time.Second)
		// A process may start another between the listing and the kill
		// (slurmstepd its job): list again until none is left.
		for range 5 {
			in := processesIn(dir)
			if len(in) == 0 {
				break
			}
			for _, p := range in {
				if kill(p) == nil {
					killed = append(killed, fmt.Sprintf("pid %d", p))
				}
			}
			waitGone(in, 5*time.Second)
		}
		if err := os.Rename(filepath.Join(dir, ownerFile), filepath.Join(dir, reapedFile)); err != nil {
			report = append(report, fmt.Sprintf("%s: %v", dir, err))
		}
		if len(killed) > 0 {
			report = append(report, fmt.Sprintf("stopped what a dead test process (pid %d) left running in %s: %s", pid, dir, strings.Join(killed, ", ")))
		}
	}
	return report
}

// waitGone waits until none of pids is a running process, or d passed.
// They are not children of this process: their new parent reaps them.
func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, p := range pids {
		for time.Now().Before(deadline) {
			if state, _, err := procStat(p); err != nil || state == "Z" || state == "X" {
				break // gone, or a zombie, which holds nothing but its pid
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

type pidLine struct {
	pid   int
	start uint64
	name  string
}

// readPidLine reads the first "pid start [name]" line of path.
func readPidLine(path string) (int, uint64, string, error) {
	lines, err := readPidLines(path)
	if err != nil {
		return 0, 0, "", err
	}
	if len(lines) == 0 {
		return 0, 0, "", fmt.Errorf("slurmtest: %s is empty", path)
	}
	return lines[0].pid, lines[0].start, lines[0].name, nil
}

// readPidLines reads the "pid start [name]" lines of path, skipping any it
// cannot read.
func readPidLines(path string) ([]pidLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []pidLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.SplitN(sc.Text(), " ", 3)
		if len(fs) < 2 {
			continue
		}
		pid, err1 := strconv.Atoi(fs[0])
		start, err2 := strconv.ParseUint(fs[1], 10, 64)
		if err1 != nil || err2 != nil || pid <= 0 {
			continue
		}
		l := pidLine{pid: pid, start: start}
		if len(fs) == 3 {
			l.name = fs[2]
		}
		out = append(out, l)
	}
	return out, sc.Err()
}
