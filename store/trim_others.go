//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import "go.etcd.io/bbolt"

// trimMapping is a no-op on this OS.
func trimMapping(db *bbolt.DB) {}

// trimTx is a no-op on this OS.
func trimTx(tx *bbolt.Tx) {}
