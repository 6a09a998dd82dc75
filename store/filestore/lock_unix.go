//go:build unix

package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// lockDir takes the store directory's lock: an exclusive flock on its lock
// file, which then names the holder. The kernel drops the lock when the
// process ends, however it ends.
func lockDir(dir string) (*os.File, error) {
	p := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("filestore: cannot open the lock file of store directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "unknown holder"
			}
			return nil, fmt.Errorf("%w: %s is locked by %s", ErrLocked, dir, h)
		}
		return nil, fmt.Errorf("filestore: locking store directory %s: %w", dir, err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(info), 0)
	}
	return f, nil
}

func unlockDir(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		f.Close()
		return fmt.Errorf("filestore: unlocking: %w", err)
	}
	return f.Close() // closing the descriptor releases the flock
}
