//go:build !unix

package filestore

import (
	"errors"
	"os"
)

// openNoFollow: this system's opens follow symbolic links.
const openNoFollow = 0

func lockDir(dir string) (*os.File, error) {
	return nil, errors.New("filestore: locking the store directory needs flock, which this system lacks")
}

func unlockDir(f *os.File) error { return nil }
