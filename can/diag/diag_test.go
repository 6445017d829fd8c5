package diag

import (
	"errors"
	"testing"
)

var (
	obd = Query{Service: ServiceOBDCurrent, ID: 0xA6, Length: 4}
	uds = Query{Service: ServiceReadDID, ID: 0xF1A0, Length: 8}
)

func TestRequestResponse(t *testing.T) {
	if got := obd.Request(); string(got) != "\x01\xA6" {
		t.Errorf("OBD request = % X, want 01 A6", got)
	}
	if got := uds.Request(); string(got) != "\x22\xF1\xA0" {
		t.Errorf("UDS request = % X, want 22 F1 A0", got)
	}
	// SAE J1979: 41 A6 then 4 bytes; 1234.5 km is raw 12345 = 0x3039.
	if got := obd.Response(12345); string(got) != "\x41\xA6\x00\x00\x30\x39" {
		t.Errorf("OBD response = % X", got)
	}
	for _, q := range []Query{obd, uds} {
		for _, raw := range []uint64{0, 1, 12345, 1<<32 - 1} {
			v, err := q.Parse(q.Response(raw))
			if err != nil || v != raw {
				t.Errorf("%+v: Parse(Response(%d)) = %d, %v", q, raw, v, err)
			}
		}
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		q    Query
		p    []byte
		want uint64
		err  error
		nrc  byte
	}{
		{"trailing bytes ignored", obd, []byte{0x41, 0xA6, 0, 0, 0, 7, 0xA7, 1}, 7, nil, 0},
		{"other PID", obd, []byte{0x41, 0x0D, 0, 0, 0, 7}, 0, ErrOther, 0},
		{"other service", obd, []byte{0x49, 0x02, 1}, 0, ErrOther, 0},
		{"other DID", uds, []byte{0x62, 0xF1, 0xA1, 0, 0, 0, 0, 0, 0, 0, 1}, 0, ErrOther, 0},
		{"short value", obd, []byte{0x41, 0xA6, 0, 0}, 0, ErrShort, 0},
		{"short header", uds, []byte{0x62, 0xF1}, 0, ErrShort, 0},
		{"empty", uds, nil, 0, ErrOther, 0},
		{"negative to another service", uds, []byte{0x7F, 0x27, 0x35}, 0, ErrOther, 0},
		{"negative short", uds, []byte{0x7F, 0x22}, 0, ErrShort, 0},
	}
	for _, c := range cases {
		v, err := c.q.Parse(c.p)
		if c.err == nil && (err != nil || v != c.want) {
			t.Errorf("%s: Parse(% X) = %d, %v; want %d", c.name, c.p, v, err, c.want)
		}
		if c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("%s: Parse(% X) err = %v, want %v", c.name, c.p, err, c.err)
		}
	}
	_, err := uds.Parse([]byte{0x7F, 0x22, 0x78})
	var ne *NegativeError
	if !errors.As(err, &ne) || !ne.Pending() {
		t.Errorf("7F 22 78: err = %v, want a pending NegativeError", err)
	}
	_, err = uds.Parse([]byte{0x7F, 0x22, 0x31})
	if !errors.As(err, &ne) || ne.Pending() || ne.Code != 0x31 {
		t.Errorf("7F 22 31: err = %v, want request out of range", err)
	}
}

func TestValidate(t *testing.T) {
	for _, q := range []Query{
		{Service: ServiceOBDCurrent, ID: 0x100, Length: 4},
		{Service: 0x27, ID: 1, Length: 4},
		{Service: ServiceReadDID, ID: 1, Length: 0},
		{Service: ServiceReadDID, ID: 1, Length: 9},
	} {
		if q.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", q)
		}
	}
	if err := uds.Validate(); err != nil {
		t.Error(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{0x41, 0xA6, 0, 0, 0x30, 0x39}, true)
	f.Add([]byte{0x62, 0xF1, 0xA0, 0, 0, 0, 0, 0, 0x12, 0xD6, 0x87}, false)
	f.Add([]byte{0x7F, 0x22, 0x78}, false)
	f.Fuzz(func(t *testing.T, p []byte, isOBD bool) {
		q := uds
		if isOBD {
			q = obd
		}
		v, err := q.Parse(p)
		if err == nil {
			if len(p) < q.ResponseLen() {
				t.Fatalf("value from %d bytes, want %d", len(p), q.ResponseLen())
			}
			if string(q.Response(v)) != string(p[:q.ResponseLen()]) {
				t.Fatalf("Parse(% X) = %d, which does not encode back", p, v)
			}
		}
	})
}
