//go:build !linux

package slurmtest

import "syscall"

// sysProcAttr puts a daemon in a process group of its own. (Debian's Slurm
// packages, which the cluster needs, exist for Linux only.)
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
