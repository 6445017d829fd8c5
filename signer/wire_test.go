package signer

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The wire form has the README contract's field order, lowercase 0x hex and plain JSON.
func TestWireForm(t *testing.T) {
	key := testKey(t, cowKey)
	a := sampleAttestation(key, 7)
	a.Prev = hex32(strings.Repeat("0a", 32))
	signed(t, key, a)
	got := string(a.AppendWire(nil))
	want := `{"v":1,"device":"0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826","seq":7,"batch":2811241,"batches":1,"meters":10412,` +
		`"modes":[{"mode":"ECO","meters":2412},{"mode":"SPORT","meters":8000}],` +
		`"prev":"0x` + strings.Repeat("0a", 32) + `","flags":2,"sig":"` + a.Sig.String() + `"}`
	if got != want {
		t.Errorf("wire form\n got %s\nwant %s", got, want)
	}
	if !regexp.MustCompile(`"sig":"0x[0-9a-f]{130}"`).MatchString(got) {
		t.Errorf("sig is not 130 lowercase hex digits: %s", got)
	}
	m, err := json.Marshal(a)
	if err != nil || string(m) != got {
		t.Errorf("json.Marshal = %s, %v; want the wire form", m, err)
	}
	// encoding/json agrees it is one valid object with the ten fields.
	var generic map[string]any
	if err := json.Unmarshal([]byte(got), &generic); err != nil || len(generic) != 10 {
		t.Errorf("not a JSON object of 10 fields: %v %v", generic, err)
	}
	// AppendWire appends.
	if b := a.AppendWire([]byte("x")); string(b) != "x"+got {
		t.Errorf("AppendWire does not append: %s", b)
	}
	// Empty modes are an empty array, not null.
	e := &Attestation{V: 1, Seq: 1, Batches: 1, Flags: FlagGap}
	if s := string(e.AppendWire(nil)); !strings.Contains(s, `"modes":[]`) {
		t.Errorf("empty modes: %s", s)
	}
}

func TestWireRoundTrip(t *testing.T) {
	key := testKey(t, cowKey)
	cases := []*Attestation{
		signed(t, key, sampleAttestation(key, 1)),
		{V: 1, Seq: 1<<64 - 1, Batch: 1<<64 - 1, Batches: 1<<32 - 1, Meters: 1<<64 - 1, Flags: 1<<32 - 1,
			Modes: []ModeMeters{{"UNKNOWN", 1<<64 - 1}}, Prev: hex32(strings.Repeat("ff", 32))},
		{V: 1, Seq: 1, Batches: 1, Flags: FlagGap},
		{V: 1, Modes: []ModeMeters{{"quote\" backslash\\ newline\n tab\t ctl\x01 del\x7f é 运动 \u2028", 5}}},
	}
	for _, a := range cases {
		b := a.AppendWire(nil)
		p, err := ParseWire(b)
		if err != nil {
			t.Fatalf("ParseWire(%s): %v", b, err)
		}
		if !reflect.DeepEqual(p, a) {
			t.Errorf("round trip\n got %+v\nwant %+v", *p, *a)
		}
		var u Attestation
		if err := json.Unmarshal(b, &u); err != nil || !reflect.DeepEqual(&u, a) {
			t.Errorf("json.Unmarshal: %v", err)
		}
		// encoding/json reads our strings the same way.
		var generic struct{ Modes []struct{ Mode string } }
		if err := json.Unmarshal(b, &generic); err != nil {
			t.Fatal(err)
		}
		for i, m := range generic.Modes {
			if m.Mode != a.Modes[i].Mode {
				t.Errorf("encoding/json reads mode %q, want %q", m.Mode, a.Modes[i].Mode)
			}
		}
	}
}

func TestParseWireRefuses(t *testing.T) {
	key := testKey(t, cowKey)
	good := string(signed(t, key, sampleAttestation(key, 7)).AppendWire(nil))
	if _, err := ParseWire([]byte(good)); err != nil {
		t.Fatalf("good: %v", err)
	}
	sub := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in %s", old, good)
		}
		return strings.Replace(good, old, new, 1)
	}
	dev := key.Address().String()
	for _, c := range []struct {
		name, in string
		want     error
		msg      string // part of the message
	}{
		{"v 2", sub(`"v":1`, `"v":2`), ErrUnknownVersion, "v is 2"},
		{"v 0", sub(`"v":1`, `"v":0`), ErrUnknownVersion, ""},
		{"v -1", sub(`"v":1`, `"v":-1`), ErrUnknownVersion, ""},
		{"v 2 with other fields", `{"v":2,"whatever":true}`, ErrUnknownVersion, ""},
		{"v string", sub(`"v":1`, `"v":"1"`), ErrMalformed, `"v"`},
		{"v 1.0", sub(`"v":1`, `"v":1.0`), ErrMalformed, `"v"`},
		{"v missing", sub(`"v":1,`, ``), ErrMalformed, `"v" missing`},
		{"seq missing", sub(`"seq":7,`, ``), ErrMalformed, `"seq" missing`},
		{"modes missing", sub(`"modes":[{"mode":"ECO","meters":2412},{"mode":"SPORT","meters":8000}],`, ``), ErrMalformed, `"modes" missing`},
		{"unknown field", sub(`"v":1,`, `"v":1,"vin":"WVW",`), ErrMalformed, `unknown field "vin"`},
		{"repeated field", sub(`"seq":7,`, `"seq":7,"seq":8,`), ErrMalformed, `"seq" appears twice`},
		{"seq negative", sub(`"seq":7`, `"seq":-7`), ErrMalformed, `"seq"`},
		{"seq fraction", sub(`"seq":7`, `"seq":7.5`), ErrMalformed, `"seq"`},
		{"seq exponent", sub(`"seq":7`, `"seq":7e0`), ErrMalformed, `"seq"`},
		{"seq string", sub(`"seq":7`, `"seq":"7"`), ErrMalformed, `"seq"`},
		{"seq null", sub(`"seq":7`, `"seq":null`), ErrMalformed, `"seq"`},
		{"seq 2^64", sub(`"seq":7`, `"seq":18446744073709551616`), ErrMalformed, "up to 18446744073709551615"},
		{"batches 2^32", sub(`"batches":1`, `"batches":4294967296`), ErrMalformed, "up to 4294967295"},
		{"flags 2^32", sub(`"flags":2`, `"flags":4294967296`), ErrMalformed, `"flags"`},
		{"device uppercase", sub(dev, strings.ToUpper(dev[2:4])+dev[4:]), ErrMalformed, `"device"`},
		{"device checksum case", sub(dev, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"), ErrMalformed, "lowercase"},
		{"device no 0x", sub(dev, dev[2:]+"00"), ErrMalformed, `"device"`},
		{"device short", sub(dev, dev[:40]), ErrMalformed, "found 38 digits"},
		{"device long", sub(dev, dev+"00"), ErrMalformed, "found 42 digits"},
		{"device number", sub(`"`+dev+`"`, `12`), ErrMalformed, "expected a string"},
		{"prev short", sub(`"prev":"0x00`, `"prev":"0x0`), ErrMalformed, `"prev"`},
		{"prev bad hex", sub(`"prev":"0x00`, `"prev":"0xzz`), ErrMalformed, `"prev"`},
		{"sig short", sub(`"}`, `"}`)[:len(good)-4] + `"}`, ErrMalformed, `"sig"`},
		{"modes null", sub(`"modes":[`, `"modes":null,"x":[`), ErrMalformed, `"modes"`},
		{"modes object", sub(`"modes":[{"mode":"ECO","meters":2412},{"mode":"SPORT","meters":8000}]`, `"modes":{}`), ErrMalformed, "expected an array"},
		{"mode unknown field", sub(`{"mode":"ECO",`, `{"mode":"ECO","km":1,`), ErrMalformed, `modes[0]: unknown field "km"`},
		{"mode repeated field", sub(`{"mode":"ECO",`, `{"mode":"ECO","mode":"X",`), ErrMalformed, `appears twice`},
		{"mode missing name", sub(`{"mode":"ECO",`, `{`), ErrMalformed, `modes[0]: field "mode" missing`},
		{"mode missing meters", sub(`,"meters":8000}`, `}`), ErrMalformed, `modes[1]: field "meters" missing`},
		{"mode number name", sub(`"mode":"ECO"`, `"mode":1`), ErrMalformed, `expected a string`},
		{"mode meters negative", sub(`"meters":2412`, `"meters":-2412`), ErrMalformed, `modes[0]: field "meters"`},
		{"mode element not object", sub(`{"mode":"ECO","meters":2412}`, `"ECO"`), ErrMalformed, `modes[0]`},
		{"array", `[` + good + `]`, ErrMalformed, "expected a JSON object"},
		{"two objects", good + good, ErrMalformed, "data after"},
		{"trailing garbage", good + "x", ErrMalformed, ""},
		{"truncated", good[:len(good)-20], ErrMalformed, "truncated"},
		{"empty", ``, ErrMalformed, ""},
		{"invalid UTF-8", sub(`"ECO"`, "\"EC\xffO\""), ErrMalformed, "UTF-8"},
		{"too big", `{"v":1,"x":"` + strings.Repeat("a", MaxWireSize) + `"}`, ErrMalformed, "at most"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := ParseWire([]byte(c.in))
			if !errors.Is(err, c.want) {
				t.Fatalf("ParseWire(%s) = %+v, %v; want %v", c.in, a, err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("message %q, want it to contain %q", err, c.msg)
			}
		})
	}
	// Whitespace around and inside is JSON and accepted.
	spaced := "\n " + strings.ReplaceAll(good, ",", " ,\n\t") + " \r\n"
	if _, err := ParseWire([]byte(spaced)); err != nil {
		t.Errorf("whitespace: %v", err)
	}
}

func FuzzParseWire(f *testing.F) {
	key := testKey(f, cowKey)
	a := sampleAttestation(key, 7)
	if err := Sign(key, testChainID, a); err != nil {
		f.Fatal(err)
	}
	good := a.AppendWire(nil)
	f.Add(good)
	f.Add((&Attestation{V: 1, Seq: 1, Batches: 1, Flags: FlagGap}).AppendWire(nil))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"modes":[{"mode":"\u00e9\n","meters":1}]}`))
	f.Add([]byte(`{"v":1,"seq":1,"seq":2}`))
	f.Add(good[:len(good)/2])
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseWire(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnknownVersion", err)
			}
			return
		}
		// What parses re-encodes and parses to the same attestation...
		w := a.AppendWire(nil)
		b2, err := ParseWire(w)
		if err != nil {
			t.Fatalf("re-encoded form %s does not parse: %v", w, err)
		}
		if !reflect.DeepEqual(a, b2) {
			t.Fatalf("round trip changed %+v to %+v", a, b2)
		}
		// ...encoding/json accepts it, and checking it never panics.
		if !json.Valid(w) {
			t.Fatalf("re-encoded form is not valid JSON: %s", w)
		}
		_ = Verify(testChainID, a)
		NewChainChecker(testChainID).Check(a)
	})
}
