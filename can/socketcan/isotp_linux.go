package socketcan

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/isotp"
)

// ISO-TP socket options (linux/can/isotp.h).
const (
	solCANISOTP     = unix.SOL_CAN_BASE + unix.CAN_ISOTP
	canISOTPOpts    = 1
	isotpTxPadding  = 0x004
	isotpOptionsLen = 12 // struct can_isotp_options
)

// ErrNoISOTP reports a kernel without the ISO-TP protocol (module
// can-isotp not loaded or not built).
var ErrNoISOTP = errors.New("kernel ISO-TP (can-isotp) not available")

// ISOTPConn is a kernel ISO-TP socket (CAN_ISOTP): it sends whole messages
// to one ID and receives whole messages from another; the kernel does the
// segmentation and the flow control. Frames it sends are padded to 8
// bytes with isotp.Pad.
type ISOTPConn struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	f     *os.File
	iface string
	buf   [isotp.MaxPayload + 1]byte
}

// DialISOTP opens a kernel ISO-TP socket on iface that sends to tx and
// receives from rx. It fails with ErrNoISOTP when the kernel lacks the
// protocol, ErrNoInterface or ErrDown as Open does.
func DialISOTP(iface string, tx, rx can.Key) (*ISOTPConn, error) {
	fail := func(err error) (*ISOTPConn, error) {
		return nil, opError("open ISO-TP", iface, err)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return fail(ErrNoInterface)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fail(ErrDown)
	}
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.CAN_ISOTP)
	if err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
			return fail(errorf("%w: %w", ErrNoISOTP, err))
		}
		return fail(errorf("socket: %w", err))
	}
	var opts [isotpOptionsLen]byte
	*(*uint32)(unsafe.Pointer(&opts[0])) = isotpTxPadding // flags, native endian
	opts[9] = isotp.Pad                                   // txpad_content
	if err := unix.SetsockoptString(fd, solCANISOTP, canISOTPOpts, string(opts[:])); err != nil {
		unix.Close(fd)
		return fail(errorf("ISO-TP options: %w", err))
	}
	addr := &unix.SockaddrCAN{Ifindex: ifi.Index, TxID: canAddr(tx), RxID: canAddr(rx)}
	if err := unix.Bind(fd, addr); err != nil {
		unix.Close(fd)
		return fail(errorf("bind: %w", err))
	}
	return &ISOTPConn{f: os.NewFile(uintptr(fd), "isotp:"+iface), iface: iface}, nil
}

func canAddr(k can.Key) uint32 {
	if k.Extended {
		return k.ID | unix.CAN_EFF_FLAG
	}
	return k.ID
}

// Send sends one message (the kernel segments it).
func (c *ISOTPConn) Send(payload []byte) error {
	if _, err := c.f.Write(payload); err != nil {
		return opError("write ISO-TP", c.iface, err)
	}
	return nil
}

// Receive returns the next whole message, valid until the next call, or
// ctx's error when ctx ends first. A message longer than isotp.MaxPayload
// is cut to it.
func (c *ISOTPConn) Receive(ctx context.Context) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) > 200*time.Millisecond {
			dl = time.Now().Add(200 * time.Millisecond) // look at ctx again
		}
		c.f.SetReadDeadline(dl)
		n, err := c.f.Read(c.buf[:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return nil, opError("read ISO-TP", c.iface, err)
		}
		return c.buf[:min(n, isotp.MaxPayload)], nil
	}
}

// Close closes the socket.
func (c *ISOTPConn) Close() error { return c.f.Close() }
