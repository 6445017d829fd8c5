package profile

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/diag"
	"github.com/csop/tbox/can/isotp"
)

func TestLoadPolled(t *testing.T) {
	obd := mustLoad(t, "testdata/ev_obd.toml")
	po, ok := obd.Poll()
	if !ok {
		t.Fatal("ev_obd.toml: no Poll")
	}
	want := Poll{Source: "obd", Request: can.Key{ID: 0x7DF}, Response: can.Key{ID: 0x7E8},
		Query: diag.Query{Service: 0x01, ID: 0xA6, Length: 4}, Scale: 0.1, Period: 200 * time.Millisecond}
	if *po != want {
		t.Errorf("Poll = %+v, want %+v", *po, want)
	}
	if got := obd.Resolution(Odometer); got != 100 {
		t.Errorf("Resolution = %v m, want 100 (0.1 km)", got)
	}
	// The kernel filter admits the response ID, never the request ID.
	keys := obd.Filter("").Keys()
	if !obd.Filter("").Match(&can.Frame{ID: 0x7E8}) || obd.Filter("").Match(&can.Frame{ID: 0x7DF}) || len(keys) != 3 {
		t.Errorf("Filter = %v, want 0x220, 0x542 and the response 0x7E8 alone", keys)
	}
	uds := mustLoad(t, "testdata/ev_uds.toml")
	pu, _ := uds.Poll()
	if pu.Query != (diag.Query{Service: 0x22, ID: 0xF1A0, Length: 8}) || pu.Scale != 0.001 || pu.Request.ID != 0x7E0 {
		t.Errorf("UDS Poll = %+v", *pu)
	}
	if _, ok := mustLoad(t, "testdata/ev.toml").Poll(); ok {
		t.Error("ev.toml (a broadcast odometer) has a Poll")
	}
	if _, err := obd.Encode(Odometer, 1000); !errors.Is(err, ErrPolled) {
		t.Errorf("Encode(polled odometer) err = %v, want ErrPolled", err)
	}
}

func TestLoadPolledErrors(t *testing.T) {
	rest := "\n[drive_mode]\nmessage = \"VCU_Status\"\nsignal = \"DriveMode\"\n"
	cases := []struct {
		name, odo, field string
		want             error
	}{
		{"unknown source", `source = "can"`, "odometer.source", ErrValue},
		{"no request", `source = "obd"` + "\nresponse_id = 0x7E8\npid = 0xA6", "odometer.request_id", ErrMissing},
		{"no response", `source = "obd"` + "\nrequest_id = 0x7DF\npid = 0xA6", "odometer.response_id", ErrMissing},
		{"same IDs", `source = "obd"` + "\nrequest_id = 0x7E8\nresponse_id = 0x7E8\npid = 0xA6", "odometer.response_id", ErrValue},
		{"ID too large", `source = "obd"` + "\nrequest_id = 0x20000000\nresponse_id = 0x7E8\npid = 0xA6", "odometer.request_id", ErrValue},
		{"no pid", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x7E8", "odometer.pid", ErrMissing},
		{"pid too large", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x7E8\npid = 0x1A6", "odometer.pid", ErrValue},
		{"other pid without length", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x7E8\npid = 0x31", "odometer.pid", ErrMissing},
		{"did for obd", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x7E8\npid = 0xA6\ndid = 1", "odometer.did", ErrValue},
		{"uds without did", `source = "uds"` + "\nrequest_id = 0x7E0\nresponse_id = 0x7E8\nlength = 4\nscale = 0.1", "odometer.did", ErrMissing},
		{"uds without scale", `source = "uds"` + "\nrequest_id = 0x7E0\nresponse_id = 0x7E8\ndid = 0x2BC\nlength = 4", "odometer.scale", ErrMissing},
		{"uds length 9", `source = "uds"` + "\nrequest_id = 0x7E0\nresponse_id = 0x7E8\ndid = 0x2BC\nlength = 9\nscale = 0.1", "odometer.length", ErrValue},
		{"uds scale 0", `source = "uds"` + "\nrequest_id = 0x7E0\nresponse_id = 0x7E8\ndid = 0x2BC\nlength = 4\nscale = 0.0", "odometer.scale", ErrValue},
		{"period below the rate bound", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x7E8\npid = 0xA6\nperiod = \"10ms\"", "odometer.period", ErrValue},
		{"period not a duration", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x7E8\npid = 0xA6\nperiod = \"often\"", "odometer.period", ErrValue},
		{"message with obd", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x7E8\npid = 0xA6\nmessage = \"CLU_Odometer\"", "odometer.message", ErrValue},
		{"response is biometric", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 0x5A1\npid = 0xA6", "odometer.response_id", ErrBiometric},
		{"response is a DMS message", `source = "obd"` + "\nrequest_id = 0x7DF\nresponse_id = 1441\npid = 0xA6", "odometer.response_id", ErrBiometric},
		{"poll key on a frame source", "message = \"CLU_Odometer\"\nsignal = \"Odometer\"\nperiod = \"1s\"", "odometer.period", ErrValue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prof := "dbc = \"ev.dbc\"\n[odometer]\n" + c.odo + rest + "[privacy]\nbiometric_messages = [\"0x5A1\"]\n"
			_, err := LoadFS(fstest.MapFS{"car.toml": {Data: []byte(prof)}, "ev.dbc": {Data: evDBC(t)}}, "car.toml")
			var ce *ConfigError
			if !errors.Is(err, c.want) || !errors.As(err, &ce) || ce.Field != c.field || ce.Line == 0 {
				t.Fatalf("err = %v (%+v), want %v at field %s with a line", err, ce, c.want, c.field)
			}
		})
	}
	// The drive mode may not sit on the response ID.
	prof := "dbc = \"ev.dbc\"\n[odometer]\nsource = \"obd\"\nrequest_id = 0x7DF\nresponse_id = 0x542\npid = 0xA6" + rest
	if _, err := LoadFS(fstest.MapFS{"car.toml": {Data: []byte(prof)}, "ev.dbc": {Data: evDBC(t)}}, "car.toml"); !errors.Is(err, ErrValue) {
		t.Errorf("drive mode on the response ID: err = %v, want ErrValue", err)
	}
}

func evDBC(t *testing.T) []byte {
	t.Helper()
	b, err := ReadFileLimit("testdata/ev.dbc", MaxDBCSize)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frames parses "ID#HEX" lines.
func frames(t *testing.T, lines string) []can.Frame {
	t.Helper()
	var log strings.Builder
	for i, l := range strings.Fields(lines) {
		fmt.Fprintf(&log, "(1700000000.%06d) can0 %s\n", i*1000, l)
	}
	r := can.NewReader(strings.NewReader(log.String()))
	var out []can.Frame
	for r.Receive() {
		out = append(out, *r.Frame())
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecodePolled(t *testing.T) {
	obd := mustLoad(t, "testdata/ev_obd.toml")
	uds := mustLoad(t, "testdata/ev_uds.toml")
	cases := []struct {
		name     string
		p        *Profile
		log      string
		want     []float64 // meters
		negative uint64
		refused  uint64
	}{
		{"OBD single frame, padded", obd, "7DF#0201A6CCCCCCCCCC 7E8#0641A600003039CC", []float64{1234500}, 0, 0},
		{"OBD unpadded", obd, "7E8#0641A600003039", []float64{1234500}, 0, 0},
		{"OBD other PID ignored", obd, "7E8#04410D32CCCCCCCC 7E8#0641A600003039CC", []float64{1234500}, 0, 0},
		{"other ECU ignored", obd, "7E9#0641A600FFFFFFCC 7E8#0641A600003039CC", []float64{1234500}, 0, 0},
		{"OBD negative", obd, "7E8#037F0112CCCCCCCC", nil, 1, 0},
		{"UDS multi-frame with the tester's flow control and noise", uds,
			"7E0#0322F1A0CCCCCCCC 123#1122334455667788 7E8#100B62F1A0000000 7E0#300000CCCCCCCCCC 220#0000000000000000 7E8#210000BC614ECCCC",
			[]float64{12345678}, 0, 0},
		{"UDS pending then answer", uds, "7E8#037F2278CCCCCCCC 7E8#100B62F1A0000000 7E8#210000BC614ECCCC", []float64{12345678}, 1, 0},
		{"UDS wrong sequence dropped, next answer read", uds,
			"7E8#100B62F1A0000000 7E8#220000BC614ECCCC 7E8#100B62F1A0000000 7E8#210000BC614ECCCC", []float64{12345678}, 0, 1},
		{"UDS oversized first frame refused", uds, "7E8#1FFF62F1A0000000 7E8#210000BC614ECCCC", nil, 0, 2},
		{"UDS short answer", uds, "7E8#0662F1A0000000CC", nil, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.p.NewDecoder()
			var got []float64
			for _, f := range frames(t, c.log) {
				for _, r := range d.Decode(&f, nil) {
					if r.Kind == Odometer {
						got = append(got, r.Value)
					}
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("readings %v, want %v", got, c.want)
			}
			for i := range got {
				if math.Abs(got[i]-c.want[i]) > 1e-6 {
					t.Errorf("reading %d = %v m, want %v", i, got[i], c.want[i])
				}
			}
			st := d.Stats()
			if st.Negative != c.negative || st.Transport != c.refused {
				t.Errorf("stats %+v, want %d negative, %d refused", st, c.negative, c.refused)
			}
		})
	}
}

// A response built by the simulator's side (Poll.Raw, Query.Response,
// isotp.Segment) decodes to the value it carries, floored to one unit.
func TestPollRoundTrip(t *testing.T) {
	for _, path := range []string{"testdata/ev_obd.toml", "testdata/ev_uds.toml"} {
		p := mustLoad(t, path)
		po, _ := p.Poll()
		for _, m := range []float64{0, 99.9, 100, 12345678.9, 429496729500} {
			raw, err := po.Raw(m)
			if err != nil {
				t.Fatalf("%s: Raw(%v): %v", path, m, err)
			}
			fs, err := isotp.Segment(po.Response, po.Query.Response(raw))
			if err != nil {
				t.Fatal(err)
			}
			d := p.NewDecoder()
			var got []Reading
			for i := range fs {
				got = d.Decode(&fs[i], got)
			}
			step := p.Resolution(Odometer)
			if len(got) != 1 || got[0].Value > m+1e-6 || got[0].Value < m-step {
				t.Errorf("%s: %v m decodes to %+v, want within one step (%v m) below", path, m, got, step)
			}
		}
		if _, err := po.Raw(-1); !errors.Is(err, ErrValue) {
			t.Errorf("Raw(-1) err = %v", err)
		}
	}
	po, _ := mustLoad(t, "testdata/ev_obd.toml").Poll()
	if _, err := po.Raw(429496729600); !errors.Is(err, ErrValue) {
		t.Errorf("OBD Raw(2^32 units) err = %v, want ErrValue", err)
	}
}
