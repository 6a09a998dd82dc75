package slurmtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts a daemon in a process group of its own (a terminal's
// Ctrl-C does not reach it) and has the kernel kill it if the test process
// dies before stopping it. With runAs, the daemon runs as that user and
// group from its first instruction: Go sets the parent-death signal after
// the user, so it holds (a daemon that drops root itself, as slurmrestd's
// -u does, loses it).
func sysProcAttr(runAs *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: runAs}
}

// nobody is the user and group slurmrestd runs as: it refuses root.
func nobody() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("slurmtest: slurmrestd runs as nobody: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("slurmtest: user nobody: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("slurmtest: user nobody: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false}, nil
}

// startTime returns when the process pid started, in clock ticks since
// boot (field 22 of /proc/pid/stat): with the pid, it names one process,
// not whichever process gets the pid next.
func startTime(pid int) (uint64, error) {
	_, st, err := procStat(pid)
	return st, err
}

// procStat returns the state (field 3 of /proc/pid/stat: R, S, Z, ...)
// and the start time of the process pid.
func procStat(pid int) (string, uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, err
	}
	// The command name, in parentheses, may hold spaces and parentheses:
	// the fields that follow begin after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, errors.New("slurmtest: /proc stat without a command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return "", 0, errors.New("slurmtest: /proc stat too short")
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return f[0], st, err
}

// alive reports whether the process that started at start still runs
// with pid: a zombie (exited, not yet reaped by its new parent) does not.
func alive(pid int, start uint64) bool {
	state, st, err := procStat(pid)
	return err == nil && st == start && state != "Z" && state != "X"
}

// processesIn returns the pids of the processes that work for the cluster
// in dir without being its daemons: slurmstepd and a job's processes,
// which slurmd starts. They are the processes whose working directory is
// dir or below it and whose environment names the cluster's slurm.conf
// (both, so that a shell reading the logs is not one of them).
func processesIn(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	conf := []byte("SLURM_CONF=" + filepath.Join(dir, "slurm.conf") + "\x00")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || (cwd != dir && !strings.HasPrefix(cwd, dir+"/")) {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !(bytes.HasPrefix(env, conf) || bytes.Contains(env, append([]byte{0}, conf...))) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// kill sends SIGKILL to pid.
func kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
