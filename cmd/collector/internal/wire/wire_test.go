package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/csop/tbox/signer"
)

// sample returns the wire form of an attestation as a device sends it.
func sample(modes ...signer.ModeMeters) []byte {
	a := &signer.Attestation{V: signer.Version, Seq: 7, Batch: 2811241, Batches: 1, Meters: 10412, Modes: modes, Flags: signer.FlagClock}
	for i := range a.Device {
		a.Device[i] = byte(0xcd + i)
	}
	for i := range a.Prev {
		a.Prev[i] = byte(i * 7)
	}
	for i := range a.Sig {
		a.Sig[i] = byte(255 - i)
	}
	return a.AppendWire(nil)
}

// seeds are real wire forms and adversarial variants of them: those
// signer.ParseWire accepts, and those it refuses.
func seeds() (accepted, refused [][]byte) {
	w := sample(signer.ModeMeters{Mode: "ECO", Meters: 2412}, signer.ModeMeters{Mode: "SPORT", Meters: 8000})
	s := string(w)
	rep := func(old, new string) []byte { return []byte(strings.Replace(s, old, new, 1)) }
	max := &signer.Attestation{V: 1, Seq: 1<<64 - 1, Batch: 1<<64 - 1, Batches: 1<<32 - 1, Meters: 1<<64 - 1, Flags: 1<<32 - 1,
		Modes: []signer.ModeMeters{{Mode: "UNKNOWN", Meters: 1<<64 - 1}}}
	var many []signer.ModeMeters
	for range signer.MaxModes + 1 {
		many = append(many, signer.ModeMeters{Mode: "M", Meters: 1})
	}
	accepted = [][]byte{
		w,
		sample(),
		sample(signer.ModeMeters{Mode: "运动 é \u2028 del\x7f", Meters: 5}),
		sample(signer.ModeMeters{Mode: "quote\" backslash\\ nl\n ctl\x01", Meters: 5}), // escaped by AppendWire
		sample(signer.ModeMeters{Mode: "", Meters: 0}),
		sample(many[:signer.MaxModes]...),
		max.AppendWire(nil),
		(&signer.Attestation{V: 1}).AppendWire(nil),
		rep(`"batches":1`, `"batches":4294967295`),
		// valid JSON, not the canonical form: decided by signer.ParseWire
		rep(`"device":"0xcd`, `"device":"0x\u0063d`),
		rep(`"seq":7,"batch":2811241`, `"batch":2811241,"seq":7`),
		rep(`{"mode":"ECO","meters":2412}`, `{"meters":2412,"mode":"ECO"}`),
		rep(`"ECO"`, `"E\u0043O"`),
		rep(`"ECO"`, `"E\nCO"`),
		rep(`"ECO"`, `"E\ud800CO"`),
		[]byte(" " + s),
		[]byte(s + " "),
		[]byte(s + "\n"),
		rep(`,"seq"`, `, "seq"`),
		rep(`"seq":7`, `"seq" : 7`),
		rep(`"seq"`, `"s\u0065q"`),
	}
	refused = [][]byte{
		sample(many...), // one mode too many
		// numbers
		rep(`"seq":7`, `"seq":07`),
		rep(`"seq":7`, `"seq":-7`),
		rep(`"seq":7`, `"seq":-0`),
		rep(`"seq":7`, `"seq":7.0`),
		rep(`"seq":7`, `"seq":7e0`),
		rep(`"seq":7`, `"seq":7E1`),
		rep(`"seq":7`, `"seq":18446744073709551616`),
		rep(`"seq":7`, `"seq":99999999999999999999999999`),
		rep(`"seq":7`, `"seq":"7"`),
		rep(`"seq":7`, `"seq":null`),
		rep(`"seq":7`, `"seq":`),
		rep(`"batches":1`, `"batches":4294967296`),
		rep(`"flags":8`, `"flags":4294967296`),
		rep(`"v":1`, `"v":2`),
		rep(`"v":1`, `"v":10`),
		rep(`"v":1`, `"v":01`),
		rep(`"v":1`, `"v":1.0`),
		rep(`"v":1`, `"v":-1`),
		rep(`"v":1`, `"v":"1"`),
		// hex
		rep(`"device":"0xcd`, `"device":"0xCD`),
		rep(`"device":"0xcd`, `"device":"0Xcd`),
		rep(`"device":"0xcd`, `"device":"0xc`),
		rep(`"device":"0xcd`, `"device":"0xcdcd`),
		rep(`"device":"0xcd`, `"device":"0xgd`),
		// keys
		rep(`"seq":7`, `"seq":7,"seq":7`),
		rep(`"seq":7`, `"seq":7,"extra":1`),
		rep(`"seq":7,`, ``),
		rep(`{"v":1,`, `{"v":1,"v":1,`),
		rep(`{"mode":"ECO","meters":2412}`, `{"mode":"ECO","meters":2412,"mode":"X"}`),
		rep(`{"mode":"ECO","meters":2412}`, `{"mode":"ECO","meters":2412,"x":0}`),
		rep(`{"mode":"ECO","meters":2412}`, `{"mode":"ECO"}`),
		rep(`{"mode":"ECO","meters":2412}`, `{"mode":7,"meters":2412}`),
		rep(`{"mode":"ECO","meters":2412}`, `[]`),
		rep(`{"mode":"ECO","meters":2412}`, `{"mode":"ECO","meters":2412},`),
		rep(`"modes":[`, `"modes":null,"x":[`),
		// strings
		rep(`"ECO"`, `"E`+"\n"+`CO"`),
		rep(`"ECO"`, `"E`+"\xff"+`CO"`),
		rep(`"ECO"`, `"E`+"\xed\xa0\x80"+`CO"`), // a UTF-16 surrogate in UTF-8
		rep(`"ECO"`, `"ECO`),
		// whitespace, structure, trailing bytes
		[]byte(s + "x"),
		[]byte(s + "{}"),
		[]byte(s[:len(s)-1]),
		[]byte(s[:len(s)/2]),
		[]byte("\ufeff" + s),
		[]byte("[" + s + "]"),
		[]byte(`{}`),
		[]byte(``),
		[]byte(`null`),
		append(bytes.Repeat([]byte(" "), signer.MaxWireSize), w...),
	}
	return accepted, refused
}

// FuzzParseInto: ParseInto accepts and refuses exactly what
// signer.ParseWire does, with the same attestation and the same error.
func FuzzParseInto(f *testing.F) {
	accepted, refused := seeds()
	for _, s := range append(accepted, refused...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		same(t, b)
	})
}

func same(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := signer.ParseWire(b)
	var got signer.Attestation
	err := ParseInto(&got, b)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: ParseInto error %v, signer.ParseWire error %v", b, err, wantErr)
	}
	if err != nil {
		if err.Error() != wantErr.Error() {
			t.Fatalf("%q: ParseInto error %q, signer.ParseWire error %q", b, err, wantErr)
		}
		for _, kind := range []error{signer.ErrMalformed, signer.ErrUnknownVersion} {
			if errors.Is(err, kind) != errors.Is(wantErr, kind) {
				t.Fatalf("%q: errors.Is(%v) differs", b, kind)
			}
		}
		if !reflect.DeepEqual(got, signer.Attestation{}) {
			t.Fatalf("%q: refused, but the attestation is left %+v", b, got)
		}
		return
	}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("%q:\nParseInto        %+v\nsigner.ParseWire %+v", b, got, *want)
	}
	p, err := Parse(b)
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("%q: Parse %+v, %v", b, p, err)
	}
}

// The seeds keep their edge: each is accepted or refused as listed, by
// both parsers.
func TestSeeds(t *testing.T) {
	accepted, refused := seeds()
	for _, s := range accepted {
		same(t, s)
		if _, err := Parse(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range refused {
		same(t, s)
		if _, err := Parse(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// What devices send takes the one-pass path, not the fallback: else the
// collector is as slow as before without any test failing.
func TestCanonicalTaken(t *testing.T) {
	for _, b := range [][]byte{
		sample(signer.ModeMeters{Mode: "ECO", Meters: 2412}, signer.ModeMeters{Mode: "SPORT", Meters: 8000}),
		sample(),
		sample(signer.ModeMeters{Mode: "运动", Meters: 1}),
		(&signer.Attestation{V: 1, Seq: 1<<64 - 1, Batch: 1<<64 - 1, Batches: 1<<32 - 1, Meters: 1<<64 - 1, Flags: 1<<32 - 1}).AppendWire(nil),
	} {
		var a signer.Attestation
		if !canonical(&a, b) {
			t.Errorf("%s: not read as canonical", b)
		}
	}
	// The fallback: whitespace is valid JSON, not canonical.
	var a signer.Attestation
	if canonical(&a, append(sample(), ' ')) {
		t.Error("trailing space read as canonical")
	}
}

func TestParseAllocs(t *testing.T) {
	b := sample(signer.ModeMeters{Mode: "ECO", Meters: 2412}, signer.ModeMeters{Mode: "SPORT", Meters: 8000})
	var a signer.Attestation
	n := testing.AllocsPerRun(100, func() {
		if err := ParseInto(&a, b); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 { // the modes slice and their names
		t.Errorf("%v allocations per parse, want at most 2", n)
	}
}

func BenchmarkParse(b *testing.B) {
	w := sample(signer.ModeMeters{Mode: "ECO", Meters: 2412}, signer.ModeMeters{Mode: "SPORT", Meters: 8000})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		var a signer.Attestation
		for b.Loop() {
			if err := ParseInto(&a, w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signer.ParseWire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := signer.ParseWire(w); err != nil {
				b.Fatal(err)
			}
		}
	})
}
