//go:build !linux

package slurmtest

import (
	"errors"
	"syscall"
)

// sysProcAttr puts a daemon in a process group of its own. (Debian's Slurm
// packages, which the cluster needs, exist for Linux only.)
func sysProcAttr(runAs *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: runAs}
}

var errNotLinux = errors.New("slurmtest: needs Linux")

func nobody() (*syscall.Credential, error)     { return nil, errNotLinux }
func startTime(pid int) (uint64, error)        { return 0, errNotLinux }
func procStat(pid int) (string, uint64, error) { return "", 0, errNotLinux }
func alive(pid int, start uint64) bool         { return false }
func processesIn(dir string) []int             { return nil }
func kill(pid int) error                       { return errNotLinux }
