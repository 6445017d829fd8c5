//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import (
	"time"
)

// dirLock is a no-op on this OS: bbolt's own file lock on outbox.db still
// keeps a second process out once the database is open, but the checks and
// repairs at Open are not protected against a concurrent Open.
type dirLock struct{}

func lockDir(dir string, timeout time.Duration) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) release() error { return nil }

func lockDirShared(dir string) (*dirLock, error) { return &dirLock{}, nil }
