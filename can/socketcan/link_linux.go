//go:build linux

package socketcan

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetLink configures a CAN controller over rtnetlink and brings it up: it
// takes the link down (a controller's bit timing cannot change while it
// is up), sets the bit rate and restart-ms, and sets it up. Needs
// CAP_NET_ADMIN. A vcan answers with an error matching ErrNotCAN.
func SetLink(name string, c LinkConfig) error {
	err := func() error {
		idx, err := ifindex(name)
		if err != nil {
			return err
		}
		if err := rtnl(linkMsg(rtmNewLink, nlmFRequest|nlmFAck, 1, idx, 0, iffUp, nil), nil); err != nil {
			return errorf("set down: %w", err)
		}
		if err := rtnl(linkMsg(rtmNewLink, nlmFRequest|nlmFAck, 2, idx, 0, 0, canConfigAttrs(c)), nil); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return errorf("bit rate %d, restart-ms %d: %w (%w)", c.Bitrate, c.RestartMS, ErrNotCAN, err)
			}
			return errorf("bit rate %d, restart-ms %d: %w", c.Bitrate, c.RestartMS, err)
		}
		if err := rtnl(linkMsg(rtmNewLink, nlmFRequest|nlmFAck, 3, idx, iffUp, iffUp, nil), nil); err != nil {
			return errorf("set up: %w", err)
		}
		return nil
	}()
	if err != nil {
		return opError("link", name, err)
	}
	return nil
}

// Restart restarts a bus-off controller now (`ip link set can0 type can
// restart`). The kernel refuses (EBUSY) when the controller is not
// bus-off, and (EINVAL) when restart-ms restarts it by itself.
func Restart(name string) error {
	err := func() error {
		idx, err := ifindex(name)
		if err != nil {
			return err
		}
		return rtnl(linkMsg(rtmNewLink, nlmFRequest|nlmFAck, 1, idx, 0, 0, canRestartAttrs()), nil)
	}()
	if err != nil {
		return opError("restart", name, err)
	}
	return nil
}

// Link reads a link's state, bit rate, restart-ms and error counters.
// A link without CAN data (vcan) has HasCAN false.
func Link(name string) (LinkInfo, error) {
	var l LinkInfo
	err := func() error {
		idx, err := ifindex(name)
		if err != nil {
			return err
		}
		return rtnl(linkMsg(rtmGetLink, nlmFRequest, 1, idx, 0, 0, nil), func(b []byte) error {
			var err error
			l, err = parseLink(b)
			return err
		})
	}()
	if err != nil {
		return l, opError("link state", name, err)
	}
	return l, nil
}

func ifindex(name string) (int32, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return int32(ifi.Index), nil
}

// rtnl sends one request and reads until its answer: an NLMSG_ERROR (an
// ack when its code is 0) or, for a get, the RTM_NEWLINK message given to
// onLink.
func rtnl(req []byte, onLink func([]byte) error) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return errorf("netlink timeout: %w", err)
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return errorf("netlink send: %w", err)
	}
	seq := binary.NativeEndian.Uint32(req[8:])
	buf := make([]byte, 1<<16)
	for {
		// read, not Recvfrom: Recvfrom decodes the sender's address and so links
		// every Sockaddr type of x/sys/unix (10 KiB); the sender is the kernel.
		n, err := unix.Read(fd, buf)
		if err != nil {
			return errorf("netlink receive: %w", err)
		}
		b := buf[:n]
		for len(b) >= nlmsgHdrLen {
			ln := int(binary.NativeEndian.Uint32(b))
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			if ln < nlmsgHdrLen || ln > len(b) {
				return errorf("netlink message: length %d outside the %d bytes received", ln, len(b))
			}
			body := b[nlmsgHdrLen:ln]
			b = b[min((ln+3)&^3, len(b)):]
			if mseq != seq {
				continue
			}
			switch typ {
			case nlmsgError:
				if len(body) < 4 {
					return errorf("netlink error message: %d bytes", len(body))
				}
				if code := int32(binary.NativeEndian.Uint32(body)); code != 0 {
					return syscall.Errno(-code)
				}
				return nil
			case rtmNewLink:
				if onLink != nil {
					return onLink(body)
				}
			}
		}
	}
}
