package hil

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// An initramfs is a gzipped cpio archive in the "newc" format:
//
//	"070701" then 13 fields of 8 hex digits: ino, mode, uid, gid, nlink,
//	mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize
//	(with the NUL), check (0); the name and its NUL padded to a multiple of
//	4 bytes (counting the 110-byte header); the data padded to 4 bytes. The
//	archive ends with an entry named "TRAILER!!!".
//
// Written here rather than with cpio(1) so no staging tree is needed and
// device nodes (/dev/console) need no privileges.

// Mode bits of a cpio entry.
const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
	modeChar = 0o020000
)

type cpioEntry struct {
	name         string // without leading slash
	mode         uint32
	data         []byte // file content or link target
	src          string // host file to copy, when data is nil
	rmaj, rminor uint32
}

// initramfs collects entries; parent directories are added automatically.
type initramfs struct {
	entries map[string]*cpioEntry
}

func newInitramfs() *initramfs { return &initramfs{entries: map[string]*cpioEntry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (r *initramfs) dir(p string) {
	p = clean(p)
	for d := p; d != "" && d != "."; d = path.Dir(d) {
		if _, ok := r.entries[d]; !ok {
			r.entries[d] = &cpioEntry{name: d, mode: modeDir | 0o755}
		}
	}
}

func (r *initramfs) add(e *cpioEntry) {
	e.name = clean(e.name)
	if d := path.Dir(e.name); d != "." {
		r.dir(d)
	}
	r.entries[e.name] = e
}

// file adds the host file src at guest path p, keeping its permission bits.
func (r *initramfs) file(p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	r.add(&cpioEntry{name: p, mode: modeFile | uint32(st.Mode().Perm()), src: src})
	return nil
}

func (r *initramfs) bytes(p string, perm uint32, b []byte) {
	r.add(&cpioEntry{name: p, mode: modeFile | perm, data: b})
}

func (r *initramfs) symlink(p, target string) {
	r.add(&cpioEntry{name: p, mode: modeLink | 0o777, data: []byte(target)})
}

func (r *initramfs) charDev(p string, major, minor uint32) {
	r.add(&cpioEntry{name: p, mode: modeChar | 0o600, rmaj: major, rminor: minor})
}

// write writes the gzipped archive, parents before children.
func (r *initramfs) write(w io.Writer) error {
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names) // "a" sorts before "a/b"
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	cw := &cpioWriter{w: zw}
	for i, n := range names {
		e := r.entries[n]
		data := e.data
		if data == nil && e.src != "" {
			if data, err = os.ReadFile(e.src); err != nil {
				return err
			}
		}
		if err := cw.entry(uint32(i+1), e.mode, e.rmaj, e.rminor, n, data); err != nil {
			return err
		}
	}
	if err := cw.entry(0, 0, 0, 0, "TRAILER!!!", nil); err != nil {
		return err
	}
	return zw.Close()
}

type cpioWriter struct {
	w   io.Writer
	off int64
}

func (c *cpioWriter) put(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if k := c.off % 4; k != 0 {
		return c.put(make([]byte, 4-k))
	}
	return nil
}

func (c *cpioWriter) entry(ino, mode, rmaj, rmin uint32, name string, data []byte) error {
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	if err := c.put([]byte(hdr)); err != nil {
		return err
	}
	if err := c.put(append([]byte(name), 0)); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.put(data); err != nil {
		return err
	}
	return c.pad()
}
