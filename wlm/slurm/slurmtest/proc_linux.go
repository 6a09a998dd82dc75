package slurmtest

import "syscall"

// sysProcAttr puts a daemon in a process group of its own (a terminal's
// Ctrl-C does not reach it) and has the kernel kill it if the test process
// dies before stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
