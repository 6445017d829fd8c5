package signer

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// A second public test key: the collector's, in these tests.
const collectorKey = "0101010101010101010101010101010101010101010101010101010101010101"

func sampleReceipt(t testing.TB, device Address) (*Receipt, *Refusal) {
	t.Helper()
	coll := testKey(t, collectorKey)
	r := &Receipt{Device: device, Seq: 7, Digest: hex32(strings.Repeat("ab", 32))}
	if err := SignReceipt(coll, testChainID, r); err != nil {
		t.Fatal(err)
	}
	n := &Refusal{Device: device, Seq: 8, Digest: hex32(strings.Repeat("cd", 32)), Reason: "fork: seq 8 is stored\nservice unlocked"}
	if err := SignRefusal(coll, testChainID, n); err != nil {
		t.Fatal(err)
	}
	return r, n
}

func TestReceiptSignVerify(t *testing.T) {
	dev := testKey(t, cowKey).Address()
	coll := testKey(t, collectorKey).Address()
	r, n := sampleReceipt(t, dev)
	if got, err := VerifyReceipt(testChainID, r, []Address{{1}, coll}); err != nil || got != coll {
		t.Fatalf("VerifyReceipt = %s, %v; want %s", got, err, coll)
	}
	if got, err := VerifyRefusal(testChainID, n, []Address{coll}); err != nil || got != coll {
		t.Fatalf("VerifyRefusal = %s, %v; want %s", got, err, coll)
	}
	// The device key is not a collector.
	if _, err := VerifyReceipt(testChainID, r, []Address{dev}); !errors.Is(err, ErrNotCollector) {
		t.Errorf("receipt checked against the device's own address: %v, want ErrNotCollector", err)
	}
	if _, err := VerifyReceipt(testChainID, r, nil); !errors.Is(err, ErrNotCollector) {
		t.Errorf("no collector addresses: %v, want ErrNotCollector", err)
	}
}

// Any changed field, another device, another chain ID or the ack's
// signature on a nack makes verification fail.
func TestReceiptTampering(t *testing.T) {
	dev := testKey(t, cowKey).Address()
	coll := []Address{testKey(t, collectorKey).Address()}
	r, n := sampleReceipt(t, dev)
	for _, c := range []struct {
		name string
		mod  func(r *Receipt)
	}{
		{"seq", func(r *Receipt) { r.Seq++ }},
		{"digest", func(r *Receipt) { r.Digest[31] ^= 1 }},
		{"device", func(r *Receipt) { r.Device[0] ^= 1 }},
	} {
		c2 := *r
		c.mod(&c2)
		if _, err := VerifyReceipt(testChainID, &c2, coll); !errors.Is(err, ErrNotCollector) && !errors.Is(err, ErrBadSignature) {
			t.Errorf("receipt with changed %s: %v, want ErrNotCollector", c.name, err)
		}
	}
	if _, err := VerifyReceipt(testChainID+1, r, coll); !errors.Is(err, ErrNotCollector) {
		t.Errorf("receipt on another chain ID: %v", err)
	}
	for _, c := range []struct {
		name string
		mod  func(n *Refusal)
	}{
		{"seq", func(n *Refusal) { n.Seq++ }},
		{"digest", func(n *Refusal) { n.Digest[0] ^= 1 }},
		{"reason", func(n *Refusal) { n.Reason += "." }},
		{"device", func(n *Refusal) { n.Device[19] ^= 1 }},
	} {
		c2 := *n
		c.mod(&c2)
		if _, err := VerifyRefusal(testChainID, &c2, coll); !errors.Is(err, ErrNotCollector) && !errors.Is(err, ErrBadSignature) {
			t.Errorf("refusal with changed %s: %v, want ErrNotCollector", c.name, err)
		}
	}
	// An ack's signature does not make a nack (distinct type hashes).
	forged := &Refusal{Device: dev, Seq: r.Seq, Digest: r.Digest, Sig: r.Sig}
	if _, err := VerifyRefusal(testChainID, forged, coll); !errors.Is(err, ErrNotCollector) && !errors.Is(err, ErrBadSignature) {
		t.Errorf("receipt signature on a refusal: %v", err)
	}
	// The malleable high-s twin is refused.
	hs := *r
	hs.Sig = highS(hs.Sig)
	if _, err := VerifyReceipt(testChainID, &hs, coll); !errors.Is(err, ErrHighS) {
		t.Errorf("high-s receipt: %v, want ErrHighS", err)
	}
}

// highS returns the other valid signature of the same digest: s -> N - s,
// v flipped.
func highS(sig Signature) Signature {
	var n = mustHex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
	var out Signature
	copy(out[:32], sig[:32])
	var borrow int
	for i := 31; i >= 0; i-- {
		d := int(n[i]) - int(sig[32+i]) - borrow
		borrow = 0
		if d < 0 {
			d += 256
			borrow = 1
		}
		out[32+i] = byte(d)
	}
	out[64] = 27 + 28 - sig[64]
	return out
}

func TestReceiptWire(t *testing.T) {
	dev := testKey(t, cowKey).Address()
	r, n := sampleReceipt(t, dev)
	w := string(r.AppendWire(nil))
	want := `{"seq":7,"digest":"0x` + strings.Repeat("ab", 32) + `","sig":"` + r.Sig.String() + `"}`
	if w != want {
		t.Fatalf("ack wire\n got %s\nwant %s", w, want)
	}
	got, err := ParseReceipt(dev, []byte(w))
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("ParseReceipt = %+v, %v", got, err)
	}
	nw := n.AppendWire(nil)
	if !strings.Contains(string(nw), `"reason":"fork: seq 8 is stored\nservice unlocked"`) {
		t.Fatalf("nack wire %s: reason not escaped as JSON", nw)
	}
	gotN, err := ParseRefusal(dev, nw)
	if err != nil || !reflect.DeepEqual(gotN, n) {
		t.Fatalf("ParseRefusal = %+v, %v", gotN, err)
	}

	sig := r.Sig.String()
	dig := "0x" + strings.Repeat("ab", 32)
	for _, c := range []struct{ name, in string }{
		{"empty", ``},
		{"old unsigned ack", `{"seq":7}`},
		{"no sig", `{"seq":7,"digest":"` + dig + `"}`},
		{"seq 0", `{"seq":0,"digest":"` + dig + `","sig":"` + sig + `"}`},
		{"seq negative", `{"seq":-7,"digest":"` + dig + `","sig":"` + sig + `"}`},
		{"seq string", `{"seq":"7","digest":"` + dig + `","sig":"` + sig + `"}`},
		{"seq twice", `{"seq":7,"seq":8,"digest":"` + dig + `","sig":"` + sig + `"}`},
		{"unknown field", `{"seq":7,"digest":"` + dig + `","sig":"` + sig + `","x":1}`},
		{"upper hex", `{"seq":7,"digest":"` + strings.ToUpper(dig) + `","sig":"` + sig + `"}`},
		{"short digest", `{"seq":7,"digest":"0xab","sig":"` + sig + `"}`},
		{"trailing data", `{"seq":7,"digest":"` + dig + `","sig":"` + sig + `"} {}`},
		{"too large", `{"seq":7,"digest":"` + dig + `","sig":"` + sig + `"}` + strings.Repeat(" ", MaxReceiptWireSize)},
	} {
		if _, err := ParseReceipt(dev, []byte(c.in)); !errors.Is(err, ErrMalformedReceipt) {
			t.Errorf("ParseReceipt(%s): %v, want ErrMalformedReceipt", c.name, err)
		}
	}
	for _, c := range []struct{ name, in string }{
		{"no reason", `{"seq":7,"digest":"` + dig + `","sig":"` + sig + `"}`},
		{"reason number", `{"seq":7,"digest":"` + dig + `","reason":1,"sig":"` + sig + `"}`},
		{"reason too long", `{"seq":7,"digest":"` + dig + `","reason":"` + strings.Repeat("x", MaxReasonLen+1) + `","sig":"` + sig + `"}`},
		{"invalid UTF-8", "{\"seq\":7,\"digest\":\"" + dig + "\",\"reason\":\"\xff\",\"sig\":\"" + sig + "\"}"},
	} {
		if _, err := ParseRefusal(dev, []byte(c.in)); !errors.Is(err, ErrMalformedReceipt) {
			t.Errorf("ParseRefusal(%s): %v, want ErrMalformedReceipt", c.name, err)
		}
	}
}

func TestTruncateReason(t *testing.T) {
	for _, in := range []string{"", "short", strings.Repeat("é", MaxReasonLen), strings.Repeat("\xff", MaxReasonLen+3), "ab\xffcd"} {
		out := TruncateReason(in)
		r := &Refusal{Seq: 1, Reason: out}
		if err := r.validate(); err != nil {
			t.Errorf("TruncateReason(%q) = %q: %v", in, out, err)
		}
		if len(in) <= MaxReasonLen && strings.ToValidUTF8(in, "\uFFFD") == in && out != in {
			t.Errorf("TruncateReason changed a valid short reason %q to %q", in, out)
		}
	}
}

func FuzzParseReceipt(f *testing.F) {
	dev := testKey(f, cowKey).Address()
	r, n := sampleReceipt(f, dev)
	f.Add(r.AppendWire(nil))
	f.Add(n.AppendWire(nil))
	f.Add([]byte(`{"seq":7}`))
	f.Add([]byte(`{"seq":1,"digest":"0x","reason":"\u0000\n","sig":"0x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseReceipt(dev, b); err != nil {
			if !errors.Is(err, ErrMalformedReceipt) {
				t.Fatalf("ParseReceipt error %v does not wrap ErrMalformedReceipt", err)
			}
		} else {
			r2, err := ParseReceipt(dev, r.AppendWire(nil))
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("receipt round trip: %+v -> %+v, %v", r, r2, err)
			}
			_, _ = VerifyReceipt(testChainID, r, nil) // never panics
		}
		if n, err := ParseRefusal(dev, b); err != nil {
			if !errors.Is(err, ErrMalformedReceipt) {
				t.Fatalf("ParseRefusal error %v does not wrap ErrMalformedReceipt", err)
			}
		} else {
			n2, err := ParseRefusal(dev, n.AppendWire(nil))
			if err != nil || !reflect.DeepEqual(n, n2) {
				t.Fatalf("refusal round trip: %+v -> %+v, %v", n, n2, err)
			}
			_, _ = VerifyRefusal(testChainID, n, nil)
		}
	})
}
