package store

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// OpenReadOnly opens the outbox in dir for tools that only look
// (tboxctl outbox): it creates no directory or file, writes nothing and
// repairs nothing; every write method returns ErrReadOnly.
//
// It returns an error matching ErrNoStore when dir is missing, is not a
// directory or holds no outbox.db; ErrLocked at once when a running agent
// holds the directory (read it through the agent's shell instead); and a
// *CorruptError for a damaged database, which only Open repairs.
func OpenReadOnly(dir string) (*Store, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errorf("state directory %s: %w: it does not exist", dir, ErrNoStore)
	case err != nil:
		return nil, errorf("state directory: %w", err)
	case !fi.IsDir():
		return nil, errorf("state directory %s: %w: not a directory", dir, ErrNoStore)
	}
	path := filepath.Join(dir, dbName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, errorf("state directory %s: %w: it holds no %s", dir, ErrNoStore, dbName)
	}
	lk, err := lockDirShared(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:      dir,
		path:     path,
		opt:      (*Options)(nil).resolve(),
		log:      slog.New(slog.DiscardHandler),
		lock:     lk,
		now:      time.Now,
		readOnly: true,
	}
	if err := s.openReadOnly(); err != nil {
		_ = lk.release()
		return nil, err
	}
	return s, nil
}

func (s *Store) openReadOnly() error {
	f, err := os.Open(s.path)
	if err != nil {
		return errorf("database: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return errorf("database: %w", err)
	}
	if fi.Size() == 0 {
		f.Close()
		return &CorruptError{Path: s.path, Err: errors.New("file is empty")}
	}
	_, err = verifyBolt(f, fi.Size())
	f.Close()
	if err != nil {
		return &CorruptError{Path: s.path, Err: err}
	}
	db, err := boltOpen(s.path, &bbolt.Options{ReadOnly: true, Timeout: 200 * time.Millisecond, FreelistType: bbolt.FreelistMapType})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return errorf("database %s: %w: a running agent holds it", s.path, ErrLocked)
	case err != nil:
		return &CorruptError{Path: s.path, Err: err}
	}
	s.db = db
	s.fileSize = fi.Size()
	if err := s.loadAll(); err != nil {
		_ = db.Close()
		s.db = nil
		return &CorruptError{Path: s.path, Err: err}
	}
	return nil
}
