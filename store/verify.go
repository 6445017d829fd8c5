package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// verifyBolt walks a bbolt file with bounds-checked reads before bbolt maps
// it. bbolt trusts its file: a page id past the end of the file faults on
// the mmap, a freelist page is read by its own count, and without a synced
// freelist its Open walks the whole tree in a goroutine that panics on a
// damaged page. Neither can be recovered, so a
// damaged file must be refused here, in plain Go, before bbolt.Open.
//
// It mirrors bbolt v1.5 (internal/common): the meta page bbolt would pick
// (the valid one with the highest txid), the page header {id u64, flags u16,
// count u16, overflow u32}, branch elements {pos u32, ksize u32, pgid u64},
// leaf elements {flags u32, pos u32, ksize u32, vsize u32} with pos relative
// to the element, and bucket values {root u64, sequence u64} followed by an
// inline leaf page when root is 0. Values are in the machine's byte order,
// as bbolt writes them.
//
// Every page reachable from the root must lie below the high-water mark and
// inside the file, identify itself with its own id, be a branch or a leaf,
// be referenced once, and hold its elements and keys inside its bytes, in
// strictly increasing key order. A synced freelist, if any, must list pages
// below the high-water mark that nothing references.
//
// It returns the number (0 or 1) of a meta page that is invalid while the
// other is good, or -1. That is what a torn meta write leaves: bbolt falls
// back to the previous transaction, and the next commit rewrites the page.
func verifyBolt(r io.ReaderAt, size int64) (badMeta int, err error) {
	m, ps, badMeta, err := pickMeta(r, size)
	if err != nil {
		return -1, err
	}
	w := &boltWalker{r: r, size: size, ps: int64(ps), hwm: m.pgid, seen: make(map[uint64]bool)}
	if err := w.bucket(m.root, 0, "root"); err != nil {
		return -1, err
	}
	if m.freelist != pgidNoFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return -1, err
		}
	}
	return badMeta, nil
}

const (
	pgidNoFreelist  = ^uint64(0)
	boltMagic       = uint32(0xED0CDAED)
	boltVersion     = 2
	pageHeaderSize  = 16
	elemSize        = 16 // branch and leaf elements are both 16 bytes
	metaSize        = 64
	metaSumOffset   = 56
	branchPageFlag  = 0x01
	leafPageFlag    = 0x02
	metaPageFlag    = 0x04
	freelistFlag    = 0x10
	bucketLeafFlag  = 0x01
	bucketHeaderLen = 16
	maxTreeDepth    = 64
)

var ne = binary.NativeEndian

type boltMeta struct {
	pageSize                   uint32
	root, freelist, pgid, txid uint64
}

// parseMeta decodes and validates a meta page's payload (the 64 bytes after
// the page header), as bbolt's Meta.Validate does.
func parseMeta(b []byte) (boltMeta, error) {
	var m boltMeta
	if len(b) < metaSize {
		return m, errorf("meta: expected %d bytes, found %d", metaSize, len(b))
	}
	if got := ne.Uint32(b[0:]); got != boltMagic {
		return m, errorf("meta: magic: expected %08x, found %08x", boltMagic, got)
	}
	if got := ne.Uint32(b[4:]); got != boltVersion {
		return m, errorf("meta: version: expected %d, found %d", boltVersion, got)
	}
	h := fnv.New64a()
	h.Write(b[:metaSumOffset])
	if got, want := ne64(b[metaSumOffset:]), h.Sum64(); got != want {
		return m, errorf("meta: checksum: stored %016x, computed %016x", got, want)
	}
	m.pageSize = ne.Uint32(b[8:])
	m.root = ne64(b[16:])
	m.freelist = ne64(b[32:])
	m.pgid = ne64(b[40:])
	m.txid = ne64(b[48:])
	return m, nil
}

func readMetaAt(r io.ReaderAt, off int64) (boltMeta, error) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if _, err := r.ReadAt(buf, off); err != nil {
		return boltMeta{}, errorf("meta at offset %d: %w", off, err)
	}
	return parseMeta(buf[pageHeaderSize:])
}

// pickMeta finds the page size as bbolt's getPageSize does and returns the
// meta bbolt will use: the valid one of pages 0 and 1 with the higher txid.
func pickMeta(r io.ReaderAt, size int64) (m boltMeta, ps, badMeta int, err error) {
	if m, err := readMetaAt(r, 0); err == nil {
		ps = int(m.pageSize)
	} else {
		for i := 0; i <= 14; i++ {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			if m, err := readMetaAt(r, pos); err == nil {
				ps = int(m.pageSize)
				break
			}
		}
	}
	if ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return m, 0, -1, errorf("page size: expected a power of two in 512..65536 from a valid meta page, found %d", ps)
	}
	m0, err0 := readMetaAt(r, 0)
	m1, err1 := readMetaAt(r, int64(ps))
	badMeta = -1
	switch {
	case err0 != nil && err1 != nil:
		return m, 0, -1, errorf("both meta pages invalid: page 0: %v; page 1: %v", err0, err1)
	case err0 != nil:
		m, badMeta = m1, 0
	case err1 != nil:
		m, badMeta = m0, 1
	case m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	if int(m.pageSize) != ps {
		return m, 0, -1, errorf("meta: page size: expected %d, found %d", ps, m.pageSize)
	}
	if m.pgid < 3 || m.pgid > uint64(size)/uint64(ps) {
		return m, 0, -1, errorf("meta: high-water mark: expected 3..%d pages (file is %d bytes), found %d", uint64(size)/uint64(ps), size, m.pgid)
	}
	if m.root < 2 || m.root >= m.pgid {
		return m, 0, -1, errorf("meta: root page: expected 2..%d, found %d", m.pgid-1, m.root)
	}
	if m.freelist != pgidNoFreelist && (m.freelist < 2 || m.freelist >= m.pgid) {
		return m, 0, -1, errorf("meta: freelist page: expected 2..%d, found %d", m.pgid-1, m.freelist)
	}
	return m, ps, badMeta, nil
}

type boltWalker struct {
	r    io.ReaderAt
	size int64
	ps   int64
	hwm  uint64
	seen map[uint64]bool
	hdr  [pageHeaderSize]byte
	// bufs holds one page buffer per tree depth: a page's bytes are in use
	// (its keys bound its children's) until the walk leaves it, and only
	// then does a page at the same depth reuse them. Allocating a buffer
	// per page made the walk of a 10 MB outbox allocate 10 MB at Open.
	bufs [][]byte
}

// page reads page id and its overflow pages, checking that it is inside the
// file, below the high-water mark, self-identified and referenced once.
func (w *boltWalker) page(id uint64, depth int, where string) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, errorf("%s: page id: expected 2..%d, found %d", where, w.hwm-1, id)
	}
	hdr := w.hdr[:]
	if _, err := w.r.ReadAt(hdr, int64(id)*w.ps); err != nil {
		return nil, errorf("%s: page %d: %w", where, id, err)
	}
	if got := ne64(hdr); got != id {
		return nil, errorf("%s: page %d: header id: expected %d, found %d", where, id, id, got)
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+overflow >= w.hwm || int64(id+overflow+1) > w.size/w.ps {
		return nil, errorf("%s: page %d: overflow %d: runs past the high-water mark %d or the end of the file", where, id, overflow, w.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, errorf("%s: page %d: referenced twice", where, i)
		}
		w.seen[i] = true
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	n := int64(overflow+1) * w.ps
	if int64(cap(w.bufs[depth])) < n {
		w.bufs[depth] = make([]byte, n)
	}
	b := w.bufs[depth][:n]
	if _, err := w.r.ReadAt(b, int64(id)*w.ps); err != nil {
		return nil, errorf("%s: page %d: %w", where, id, err)
	}
	return b, nil
}

// bucket checks the tree rooted at page id.
func (w *boltWalker) bucket(id uint64, depth int, where string) error {
	return w.node(id, depth, where, nil, nil)
}

// node checks page id, whose keys must lie in [lo, hi) (nil: unbounded).
func (w *boltWalker) node(id uint64, depth int, where string, lo, hi []byte) error {
	if depth > maxTreeDepth {
		return errorf("%s: page %d: tree deeper than %d", where, id, maxTreeDepth)
	}
	p, err := w.page(id, depth, where)
	if err != nil {
		return err
	}
	return w.pageBody(p, id, depth, where, lo, hi)
}

// elem returns the key (and for a leaf, the value) of element i of page p.
func elem(p []byte, i int, leaf bool) (flags uint32, key, val []byte, child uint64, err error) {
	off := int64(pageHeaderSize + i*elemSize)
	e := p[off : off+elemSize]
	var pos, ksize, vsize int64
	if leaf {
		flags = ne.Uint32(e[0:])
		pos, ksize, vsize = int64(ne.Uint32(e[4:])), int64(ne.Uint32(e[8:])), int64(ne.Uint32(e[12:]))
	} else {
		pos, ksize = int64(ne.Uint32(e[0:])), int64(ne.Uint32(e[4:]))
		child = ne64(e[8:])
	}
	start := off + pos
	if start+ksize+vsize > int64(len(p)) {
		return 0, nil, nil, 0, errorf("element %d: key and value at %d+%d+%d run past the page's %d bytes", i, start, ksize, vsize, len(p))
	}
	return flags, p[start : start+ksize], p[start+ksize : start+ksize+vsize], child, nil
}

func (w *boltWalker) pageBody(p []byte, id uint64, depth int, where string, lo, hi []byte) error {
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if flags != branchPageFlag && flags != leafPageFlag {
		return errorf("%s: page %d: type: expected branch or leaf, found flags %#x", where, id, flags)
	}
	leaf := flags == leafPageFlag
	if pageHeaderSize+count*elemSize > len(p) {
		return errorf("%s: page %d: %d elements do not fit in %d bytes", where, id, count, len(p))
	}
	if !leaf && count == 0 {
		return errorf("%s: page %d: branch page with no elements", where, id)
	}
	var prev []byte
	for i := 0; i < count; i++ {
		eflags, key, val, child, err := elem(p, i, leaf)
		if err != nil {
			return errorf("%s: page %d: %w", where, id, err)
		}
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return errorf("%s: page %d: element %d: keys out of order", where, id, i)
		}
		if (lo != nil && bytes.Compare(key, lo) < 0) || (hi != nil && bytes.Compare(key, hi) >= 0) {
			return errorf("%s: page %d: element %d: key outside its parent's range", where, id, i)
		}
		prev = key
		if !leaf {
			var next []byte = hi
			if i+1 < count {
				_, next, _, _, err = elem(p, i+1, false)
				if err != nil {
					return errorf("%s: page %d: %w", where, id, err)
				}
			}
			if err := w.node(child, depth+1, where, key, next); err != nil {
				return err
			}
			continue
		}
		if eflags&bucketLeafFlag == 0 {
			continue
		}
		sub := fmt.Sprintf("%s/%q", where, key)
		if len(val) < bucketHeaderLen {
			return errorf("%s: bucket header: expected %d bytes, found %d", sub, bucketHeaderLen, len(val))
		}
		root := ne64(val)
		if root != 0 {
			if err := w.bucket(root, depth+1, sub); err != nil {
				return err
			}
			continue
		}
		inline := val[bucketHeaderLen:]
		if len(inline) < pageHeaderSize {
			return errorf("%s: inline page: expected at least %d bytes, found %d", sub, pageHeaderSize, len(inline))
		}
		if f := ne.Uint16(inline[8:]); f != leafPageFlag {
			return errorf("%s: inline page: type: expected leaf, found flags %#x", sub, f)
		}
		if err := w.pageBody(inline, 0, depth+1, sub, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// freelist checks a synced freelist page: its ids must be below the
// high-water mark and unreferenced, or bbolt would hand out live pages.
func (w *boltWalker) freelist(id uint64) error {
	p, err := w.page(id, 0, "freelist") // after the tree: any buffer will do
	if err != nil {
		return err
	}
	if f := ne.Uint16(p[8:]); f != freelistFlag {
		return errorf("freelist: page %d: type: expected freelist, found flags %#x", id, f)
	}
	idx, count := int64(0), int64(ne.Uint16(p[10:]))
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return errors.New("freelist: page too small for its count")
		}
		c := ne64(p[pageHeaderSize:])
		if c > uint64(len(p))/8 {
			return errorf("freelist: page %d: %d ids do not fit in %d bytes", id, c, len(p))
		}
		idx, count = 1, int64(c)
	}
	if count > int64(len(p))/8 || pageHeaderSize+(idx+count)*8 > int64(len(p)) {
		return errorf("freelist: page %d: %d ids do not fit in %d bytes", id, count, len(p))
	}
	var prev uint64
	for i := idx; i < idx+count; i++ {
		fid := ne64(p[pageHeaderSize+i*8:])
		if fid < 2 || fid >= w.hwm {
			return errorf("freelist: page %d: free id %d outside 2..%d", id, fid, w.hwm-1)
		}
		// bbolt writes the ids sorted; a repeated one would be handed
		// out twice.
		if fid <= prev {
			return errorf("freelist: page %d: free id %d after %d: expected increasing ids", id, fid, prev)
		}
		prev = fid
		if w.seen[fid] {
			return errorf("freelist: page %d: free id %d is referenced", id, fid)
		}
	}
	return nil
}
