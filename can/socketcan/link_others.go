//go:build !linux

package socketcan

// SetLink fails: rtnetlink exists only on Linux.
func SetLink(name string, c LinkConfig) error { return notSupported(name, "link") }

// Restart fails: rtnetlink exists only on Linux.
func Restart(name string) error { return notSupported(name, "restart") }

// Link fails: rtnetlink exists only on Linux.
func Link(name string) (LinkInfo, error) { return LinkInfo{}, notSupported(name, "link state") }
