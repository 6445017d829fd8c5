//go:build !linux

package socketcan

import (
	"context"
	"runtime"

	"github.com/csop/tbox/can"
)

// Conn is a SocketCAN socket. On this OS it cannot be opened.
type Conn struct{ iface string }

func notSupported(iface, op string) error {
	return &OpError{Op: op, Iface: iface, Err: errorf("%w on OS %s", ErrNotSupported, runtime.GOOS)}
}

// Open fails: SocketCAN exists only on Linux.
func Open(iface string, opts ...Option) (*Conn, error) { return nil, notSupported(iface, "open") }

func (c *Conn) Receive() bool     { return false }
func (c *Conn) Frame() *can.Frame { return &can.Frame{} }
func (c *Conn) Err() error        { return notSupported(c.iface, "read") }
func (c *Conn) ReadFrame(ctx context.Context) (can.Frame, error) {
	return can.Frame{}, notSupported(c.iface, "read")
}
func (c *Conn) WriteFrame(f *can.Frame) error { return notSupported(c.iface, "write") }
func (c *Conn) Events() <-chan Event          { return nil }
func (c *Conn) Stats() Stats                  { return Stats{} }
func (c *Conn) Interface() string             { return c.iface }
func (c *Conn) Reopen() error                 { return notSupported(c.iface, "reopen") }
func (c *Conn) Close() error                  { return nil }
