package signer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func mlock(p unsafe.Pointer, n uintptr) error {
	return unix.Mlock(unsafe.Slice((*byte)(p), n))
}

func munlock(p unsafe.Pointer, n uintptr) {
	unix.Munlock(unsafe.Slice((*byte)(p), n))
}
