//go:build !linux

package agent

// kernelUnsynced has no kernel status to read on this OS.
func kernelUnsynced() (bool, error) { return false, nil }
