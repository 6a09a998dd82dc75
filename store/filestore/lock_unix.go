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

// openNoFollow makes an open fail on a symbolic link.
const openNoFollow = syscall.O_NOFOLLOW

// lockDir takes the store directory's lock: an exclusive flock on its lock
// file, which then names the holder. The kernel drops the lock when the
// process ends, however it ends. A lock file that is a symbolic link (or
// not a regular file) is refused, never followed: crus would write its
// target.
func lockDir(dir string) (*os.File, error) {
	p := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: the lock file %s is a symbolic link; refusing to follow it (remove it)", ErrUnsafeDir, p)
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: cannot open the lock file of store directory %s: %w", dir, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: the lock file %s is not a regular file (remove it)", ErrUnsafeDir, p)
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
