package socketcan

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestCANConfigAttrs pins the request `ip link set can0 type can bitrate
// 500000 restart-ms 100` sends: IFLA_LINKINFO{KIND "can",
// DATA{BITTIMING{bitrate 500000, the rest 0}, RESTART_MS 100}}.
func TestCANConfigAttrs(t *testing.T) {
	ne := binary.NativeEndian
	var want []byte
	h := func(n, typ uint16) { want = ne.AppendUint16(ne.AppendUint16(want, n), typ) }
	h(4+8+4+36+8, iflaLinkinfo|nlaNested) // linkinfo
	h(8, iflaInfoKind)
	want = append(want, "can\x00"...)
	h(4+36+8, iflaInfoData|nlaNested)
	h(36, canBittiming)
	want = ne.AppendUint32(want, 500000)
	want = append(want, make([]byte, 28)...)
	h(8, canRestartMS)
	want = ne.AppendUint32(want, 100)
	got := canConfigAttrs(LinkConfig{Bitrate: 500000, RestartMS: 100})
	if !bytes.Equal(got, want) {
		t.Fatalf("attrs\n got % x\nwant % x", got, want)
	}
	msg := linkMsg(rtmNewLink, nlmFRequest|nlmFAck, 7, 3, 0, 0, got)
	if n := ne.Uint32(msg); int(n) != len(msg) || len(msg) != 32+len(want) {
		t.Errorf("nlmsghdr length %d, message %d bytes, want %d", n, len(msg), 32+len(want))
	}
	if idx := int32(ne.Uint32(msg[20:])); idx != 3 {
		t.Errorf("ifinfomsg index %d, want 3", idx)
	}
}

// linkReply builds the body of a RTM_NEWLINK answer for can0.
func linkReply(up bool, state, bitrate, restart uint32, txerr, rxerr uint16) []byte {
	ne := binary.NativeEndian
	b := make([]byte, ifinfomsgLen)
	if up {
		ne.PutUint32(b[8:], iffUp)
	}
	b = attr(b, iflaIfname, []byte("can0\x00"))
	bt := make([]byte, bittimingSize)
	ne.PutUint32(bt, bitrate)
	var data []byte
	data = attr(data, canBittiming, bt)
	data = attr(data, canState, le32(state))
	data = attr(data, canRestartMS, le32(restart))
	data = attr(data, canBerrCount, ne.AppendUint16(ne.AppendUint16(nil, txerr), rxerr))
	info := attr(nil, iflaInfoKind, []byte("can\x00"))
	info = attr(info, iflaInfoData|nlaNested, data)
	return attr(b, iflaLinkinfo|nlaNested, info)
}

func TestParseLink(t *testing.T) {
	l, err := parseLink(linkReply(true, StateErrorPassive, 500000, 100, 130, 7))
	if err != nil {
		t.Fatal(err)
	}
	want := LinkInfo{Name: "can0", Up: true, Kind: "can", HasCAN: true, State: StateErrorPassive,
		Bitrate: 500000, RestartMS: 100, TxErr: 130, RxErr: 7}
	if l != want {
		t.Errorf("parseLink = %+v, want %+v", l, want)
	}
	if l.StateName() != "error-passive" {
		t.Errorf("StateName = %q", l.StateName())
	}
	// A vcan: a kind, no CAN data.
	b := attr(make([]byte, ifinfomsgLen), iflaLinkinfo|nlaNested, attr(nil, iflaInfoKind, []byte("vcan\x00")))
	if l, err := parseLink(b); err != nil || l.Kind != "vcan" || l.HasCAN {
		t.Errorf("vcan link: %+v, %v", l, err)
	}
	// Cut short inside an attribute: an error, no panic.
	full := linkReply(true, 0, 500000, 100, 0, 0)
	if _, err := parseLink(full[:len(full)-6]); err == nil {
		t.Error("a truncated link message parsed without error")
	}
	if _, err := parseLink(full[:10]); err == nil {
		t.Error("a message shorter than ifinfomsg parsed without error")
	}
}

// FuzzParseLink: whatever bytes come back, parseLink returns, never panics.
func FuzzParseLink(f *testing.F) {
	f.Add(linkReply(true, StateBusOff, 500000, 100, 256, 0))
	f.Add(linkReply(false, 9, 0, 0, 0, 0))
	f.Add([]byte{})
	f.Add(make([]byte, ifinfomsgLen+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseLink(b)
		if err == nil {
			_ = l.StateName()
		}
	})
}
