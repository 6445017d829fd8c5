//go:build !linux

package signer

import (
	"errors"
	"unsafe"
)

func mlock(unsafe.Pointer, uintptr) error { return errors.New("mlock not supported on this OS") }

func munlock(unsafe.Pointer, uintptr) {}
