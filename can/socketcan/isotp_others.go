//go:build !linux

package socketcan

import (
	"context"
	"errors"

	"github.com/csop/tbox/can"
)

// ErrNoISOTP reports a kernel without the ISO-TP protocol.
var ErrNoISOTP = errors.New("kernel ISO-TP (can-isotp) not available")

// ISOTPConn is a kernel ISO-TP socket. On this OS it cannot be opened.
type ISOTPConn struct{}

// DialISOTP fails: SocketCAN exists only on Linux.
func DialISOTP(iface string, tx, rx can.Key) (*ISOTPConn, error) {
	return nil, notSupported(iface, "open ISO-TP")
}

func (c *ISOTPConn) Send(payload []byte) error { return notSupported("", "write ISO-TP") }
func (c *ISOTPConn) Receive(ctx context.Context) ([]byte, error) {
	return nil, notSupported("", "read ISO-TP")
}
func (c *ISOTPConn) Close() error { return nil }
