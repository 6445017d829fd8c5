//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// dirLock is an exclusive flock on dir/lock, held from before the files
// are checked until Close, so a second process can neither race the repair
// at Open nor write the outbox.
type dirLock struct{ f *os.File }

func lockDir(dir string, timeout time.Duration) (*dirLock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, errorf("lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &dirLock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errorf("lock %s: %w after %v: another process holds the outbox", path, ErrLocked, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *dirLock) release() error {
	if l.f == nil {
		return nil
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	return l.f.Close()
}

// lockDirShared takes a shared flock on dir/lock without waiting, for a
// reader that must not run beside a writer. It creates nothing: a missing
// lock file means no agent ever ran there, and no lock is needed.
func lockDirShared(dir string) (*dirLock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &dirLock{}, nil
	}
	if err != nil {
		return nil, errorf("lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return &dirLock{f: f}, nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errorf("lock %s: %w: a running agent (tboxd) or replay holds the outbox", path, ErrLocked)
		}
		return nil, errorf("lock %s: %w", path, err)
	}
}
