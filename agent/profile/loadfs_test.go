package profile

import (
	"errors"
	"io"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"
)

// growingFile is a regular file that says it is empty and then reads on
// (as /proc files and a file being appended to do), up to max bytes.
type growingFile struct{ n, max int64 }

type growingInfo struct{}

func (growingInfo) Name() string       { return "car.dbc" }
func (growingInfo) Size() int64        { return 0 }
func (growingInfo) Mode() fs.FileMode  { return 0o444 }
func (growingInfo) ModTime() time.Time { return time.Time{} }
func (growingInfo) IsDir() bool        { return false }
func (growingInfo) Sys() any           { return nil }

func (f *growingFile) Stat() (fs.FileInfo, error) { return growingInfo{}, nil }
func (f *growingFile) Close() error               { return nil }
func (f *growingFile) Read(p []byte) (int, error) {
	if f.n >= f.max {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > f.max-f.n {
		n = f.max - f.n
	}
	clear(p[:n])
	f.n += n
	return int(n), nil
}

// growingFS serves car.dbc as a growingFile and the rest from files (only
// Open: LoadFS must not depend on fs.ReadFileFS).
type growingFS struct {
	files fstest.MapFS
	dbc   *growingFile
}

func (g growingFS) Open(name string) (fs.File, error) {
	if name == "car.dbc" {
		return g.dbc, nil
	}
	return g.files.Open(name)
}

// TestLoadFSBounded: LoadFS reads no more than the limits either, whatever
// a file's size says.
func TestLoadFSBounded(t *testing.T) {
	g := growingFS{
		files: fstest.MapFS{"car.toml": {Data: []byte(odoOnly)}},
		dbc:   &growingFile{max: 4 * MaxDBCSize},
	}
	_, err := LoadFS(g, "car.toml")
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("LoadFS: %v, want ErrTooLarge", err)
	}
	if g.dbc.n > MaxDBCSize+1<<16 {
		t.Errorf("LoadFS read %d bytes of the DBC, the limit is %d", g.dbc.n, MaxDBCSize)
	}
	fsys := fstest.MapFS{"car.toml": {Data: []byte(odoOnly)}, "car.dbc": {Data: []byte(twoMessages), Mode: fs.ModeNamedPipe}}
	if _, err := LoadFS(fsys, "car.toml"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("LoadFS with a named pipe as the DBC: %v, want ErrNotRegular", err)
	}
}
