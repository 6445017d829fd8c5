//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// trimMapping drops the pages of bbolt's read-only, shared memory map of
// the database from the process's page tables. The file's pages stay in
// the page cache and fault back in when read again; nothing changes but
// the resident set, which otherwise keeps every record ever read: a
// drained backlog of 10,000 attestations held 10 MiB of tboxd's RSS. The
// read transaction keeps bbolt from remapping meanwhile.
func trimMapping(db *bbolt.DB) {
	db.View(func(tx *bbolt.Tx) error {
		trimTx(tx)
		return nil
	})
}

// trimTx is trimMapping within a transaction: pages the transaction still
// reads fault back in, unchanged. The range is the database's high-water
// mark (tx.Size()), which bbolt v1.5 keeps within its map: it grows the
// map before the file's pages (DB.allocate, mmap before the new pgid).
func trimTx(tx *bbolt.Tx) {
	unix.Syscall(unix.SYS_MADVISE, tx.DB().Info().Data, uintptr(tx.Size()), unix.MADV_DONTNEED)
}
