package etcdtest

import "syscall"

// sysProcAttr makes the kernel kill the server if the test process dies
// first, so that no etcd outlives its test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
