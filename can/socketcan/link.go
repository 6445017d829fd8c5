package socketcan

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The link of a real CAN controller: its bit rate, restart-ms and state,
// set and read over rtnetlink as `ip link set can0 type can bitrate 500000
// restart-ms 100` does (busybox ip cannot: it knows no "type can"). vcan
// has none of this: its links report no CAN data.

// LinkConfig is what SetLink gives a CAN controller.
type LinkConfig struct {
	// Bitrate in bit/s (500000); the kernel computes the bit timing from
	// the controller's clock. Zero leaves the bit timing as it is.
	Bitrate uint32
	// RestartMS: after bus-off the kernel restarts the controller after
	// this many milliseconds; zero means it stays bus-off until restarted
	// by hand (Restart).
	RestartMS uint32
}

// CAN controller states (IFLA_CAN_STATE, enum can_state).
const (
	StateErrorActive  = 0
	StateErrorWarning = 1
	StateErrorPassive = 2
	StateBusOff       = 3
	StateStopped      = 4
	StateSleeping     = 5
)

var stateNames = [...]string{"error-active", "error-warning", "error-passive", "bus-off", "stopped", "sleeping"}

// LinkInfo is a CAN controller's link as the kernel reports it.
type LinkInfo struct {
	Name      string
	Up        bool   // IFF_UP
	Kind      string // "can" for a real controller, "vcan" for a virtual bus
	HasCAN    bool   // the link carried CAN data (bit rate, state)
	State     uint32 // StateErrorActive...
	Bitrate   uint32
	RestartMS uint32
	TxErr     uint16 // the controller's error counters (when it reports them)
	RxErr     uint16
}

// StateName is the state as `ip -details link` prints it, lower case.
func (l *LinkInfo) StateName() string {
	if int(l.State) < len(stateNames) {
		return stateNames[l.State]
	}
	return fmt.Sprintf("state-%d", l.State)
}

// ErrNotCAN: the link is not a CAN controller with a bit rate (a vcan, an
// Ethernet card).
var ErrNotCAN = errors.New("not a CAN controller link")

// rtnetlink wire constants (linux/rtnetlink.h, linux/if_link.h,
// linux/can/netlink.h), kept here so that the encoding builds and is tested
// on every OS.
const (
	nlmsgError    = 2
	rtmNewLink    = 16
	rtmGetLink    = 18
	nlmFRequest   = 0x1
	nlmFAck       = 0x4
	iffUp         = 0x1
	iflaIfname    = 3
	iflaLinkinfo  = 18
	iflaInfoKind  = 1
	iflaInfoData  = 2
	canBittiming  = 1
	canState      = 4
	canRestartMS  = 6
	canRestart    = 7
	canBerrCount  = 8
	nlmsgHdrLen   = 16
	ifinfomsgLen  = 16
	bittimingSize = 32 // struct can_bittiming: 8 x u32, bitrate first
	nlaNested     = 0x8000
	nlaTypeMask   = 0x3fff
)

// attr appends one rtattr: u16 length (header + data, unpadded), u16 type,
// the data, padding to 4 bytes.
func attr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func le32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// linkMsg is a request about one link: nlmsghdr (u32 length, u16 type, u16
// flags, u32 seq, u32 port), ifinfomsg (u8 family, u8 pad, u16 type, i32
// index, u32 flags, u32 change), then attrs.
func linkMsg(typ uint16, flags uint16, seq uint32, index int32, ifFlags, ifChange uint32, attrs []byte) []byte {
	b := make([]byte, 0, nlmsgHdrLen+ifinfomsgLen+len(attrs))
	b = binary.NativeEndian.AppendUint32(b, uint32(nlmsgHdrLen+ifinfomsgLen+len(attrs)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, 0, 0, 0, 0) // AF_UNSPEC, pad, ARPHRD 0
	b = binary.NativeEndian.AppendUint32(b, uint32(index))
	b = binary.NativeEndian.AppendUint32(b, ifFlags)
	b = binary.NativeEndian.AppendUint32(b, ifChange)
	return append(b, attrs...)
}

// canConfigAttrs is IFLA_LINKINFO{KIND "can", DATA{BITTIMING, RESTART_MS}}.
func canConfigAttrs(c LinkConfig) []byte {
	var data []byte
	if c.Bitrate != 0 {
		bt := make([]byte, bittimingSize)
		binary.NativeEndian.PutUint32(bt, c.Bitrate)
		data = attr(data, canBittiming, bt)
	}
	data = attr(data, canRestartMS, le32(c.RestartMS))
	return linkinfo(data)
}

// canRestartAttrs is IFLA_LINKINFO{KIND "can", DATA{RESTART 1}}.
func canRestartAttrs() []byte { return linkinfo(attr(nil, canRestart, le32(1))) }

func linkinfo(data []byte) []byte {
	info := attr(nil, iflaInfoKind, []byte("can\x00"))
	info = attr(info, iflaInfoData|nlaNested, data)
	return attr(nil, iflaLinkinfo|nlaNested, info)
}

// walkAttrs calls fn for each well-formed rtattr in b; it stops with an
// error at the first attribute whose length runs outside b.
func walkAttrs(b []byte, fn func(typ uint16, data []byte)) error {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
		if n < 4 || n > len(b) {
			return errorf("rtattr type %d: length %d outside the %d bytes left", typ, n, len(b))
		}
		fn(typ, b[4:n])
		n = (n + 3) &^ 3
		if n > len(b) {
			n = len(b)
		}
		b = b[n:]
	}
	return nil
}

// parseLink reads a RTM_NEWLINK message (after its nlmsghdr): the
// ifinfomsg and the attributes the harness and the shell need.
func parseLink(b []byte) (LinkInfo, error) {
	var l LinkInfo
	if len(b) < ifinfomsgLen {
		return l, errorf("link message: %d bytes, want at least %d", len(b), ifinfomsgLen)
	}
	l.Up = binary.NativeEndian.Uint32(b[8:])&iffUp != 0
	var inner error
	err := walkAttrs(b[ifinfomsgLen:], func(typ uint16, data []byte) {
		switch typ {
		case iflaIfname:
			l.Name = cstring(data)
		case iflaLinkinfo:
			if e := walkAttrs(data, func(typ uint16, data []byte) {
				switch typ {
				case iflaInfoKind:
					l.Kind = cstring(data)
				case iflaInfoData:
					if e := parseCANData(&l, data); e != nil && inner == nil {
						inner = e
					}
				}
			}); e != nil && inner == nil {
				inner = e
			}
		}
	})
	if err == nil {
		err = inner
	}
	if err != nil {
		return l, errorf("link message: %w", err)
	}
	return l, nil
}

func parseCANData(l *LinkInfo, b []byte) error {
	return walkAttrs(b, func(typ uint16, data []byte) {
		switch {
		case typ == canState && len(data) >= 4:
			l.State, l.HasCAN = binary.NativeEndian.Uint32(data), true
		case typ == canBittiming && len(data) >= 4:
			l.Bitrate, l.HasCAN = binary.NativeEndian.Uint32(data), true
		case typ == canRestartMS && len(data) >= 4:
			l.RestartMS = binary.NativeEndian.Uint32(data)
		case typ == canBerrCount && len(data) >= 4:
			l.TxErr, l.RxErr = binary.NativeEndian.Uint16(data), binary.NativeEndian.Uint16(data[2:])
		}
	})
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
