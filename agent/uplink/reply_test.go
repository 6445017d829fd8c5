package uplink

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csop/tbox/signer"
)

func testSigner(t testing.TB) *signer.FileKey {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.key")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkReply accepts only a receipt or refusal of this device signed by a
// configured collector on this chain; everything else is ignored by kind.
func TestCheckReply(t *testing.T) {
	coll, stranger := testSigner(t), testSigner(t)
	dev, other := signer.Address{0xd1}, signer.Address{0xd2}
	colls := []signer.Address{{0x99}, coll.Address()}
	const chain = 20220807
	ack := func(k signer.Signer, d signer.Address, chainID, seq uint64) string {
		r := signer.Receipt{Device: d, Seq: seq, Digest: [32]byte{byte(seq)}}
		if err := signer.SignReceipt(k, chainID, &r); err != nil {
			t.Fatal(err)
		}
		return string(r.AppendWire(nil))
	}
	nack := func(k signer.Signer, d signer.Address, seq uint64, reason string) string {
		r := signer.Refusal{Device: d, Seq: seq, Digest: [32]byte{byte(seq)}, Reason: reason}
		if err := signer.SignRefusal(k, chain, &r); err != nil {
			t.Fatal(err)
		}
		return string(r.AppendWire(nil))
	}
	for _, c := range []struct {
		name    string
		nack    bool
		payload string
		kind    string
		wantErr error
	}{
		{"receipt", false, ack(coll, dev, chain, 7), "", nil},
		{"refusal", true, nack(coll, dev, 7, "fork\nservice unlocked"), "", nil},
		{"old unsigned ack", false, `{"seq":7}`, IgnoredMalformed, ErrMalformedReply},
		{"unsigned nack", true, `{"seq":7,"reason":"bad"}`, IgnoredMalformed, ErrMalformedReply},
		{"receipt from another key", false, ack(stranger, dev, chain, 7), IgnoredForged, ErrForgedReply},
		{"receipt for another device", false, ack(coll, other, chain, 7), IgnoredForged, ErrForgedReply},
		{"receipt for another chain", false, ack(coll, dev, 1, 7), IgnoredForged, ErrForgedReply},
		{"refusal from another key", true, nack(stranger, dev, 7, "x"), IgnoredForged, ErrForgedReply},
		{"receipt on the nack topic", true, ack(coll, dev, chain, 7), IgnoredMalformed, ErrMalformedReply},
		{"oversize", false, ack(coll, dev, chain, 7) + strings.Repeat(" ", MaxReplySize), IgnoredOversize, ErrMalformedReply},
	} {
		r, n, kind, err := checkReply([]byte(c.payload), c.nack, dev, chain, colls)
		if kind != c.kind || !errors.Is(err, c.wantErr) || (err == nil) != (c.wantErr == nil) {
			t.Errorf("%s: kind %q, err %v; want %q, %v", c.name, kind, err, c.kind, c.wantErr)
			continue
		}
		if err == nil && (r == nil) == (n == nil) {
			t.Errorf("%s: receipt %v, refusal %v", c.name, r, n)
		}
	}
}

func FuzzCheckReply(f *testing.F) {
	coll := testSigner(f)
	dev := signer.Address{0xd1}
	r := signer.Receipt{Device: dev, Seq: 3, Digest: [32]byte{3}}
	_ = signer.SignReceipt(coll, 1, &r)
	f.Add(r.AppendWire(nil), false)
	f.Add([]byte(`{"seq":1,"digest":"0x00","reason":"\n","sig":"0x"}`), true)
	f.Add([]byte(`{"seq":1}`), false)
	colls := []signer.Address{coll.Address()}
	f.Fuzz(func(t *testing.T, p []byte, nack bool) {
		ack, ref, kind, err := checkReply(p, nack, dev, 1, colls)
		if err != nil {
			if kind == "" || ack != nil || ref != nil {
				t.Fatalf("error %v with kind %q", err, kind)
			}
			return
		}
		// Only a real signature passes: the fuzzer cannot forge one, so
		// whatever passes is the seed receipt.
		if nack || ack == nil || *ack != r {
			t.Fatalf("accepted %q as %v %v", p, ack, ref)
		}
	})
}
