package shell

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/csop/tbox/signer"
)

// recordingSigner records every digest the device key is asked to sign.
type recordingSigner struct {
	signer.Signer
	mu      sync.Mutex
	digests [][32]byte
}

func (r *recordingSigner) SignDigest(d [32]byte) (signer.Signature, error) {
	r.mu.Lock()
	r.digests = append(r.digests, d)
	r.mu.Unlock()
	return r.Signer.SignDigest(d)
}

// check fails unless every digest signed was the fixed selftest message.
func (r *recordingSigner) check(t testing.TB, dev signer.Address) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.digests {
		if d != SelftestDigest(dev) {
			t.Fatalf("the device key signed %x, which is not the selftest message", d)
		}
	}
}

func TestChallengeToken(t *testing.T) {
	dev := newKey(t, "device.key").Address()
	c, err := NewChallenge(dev)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := NewChallenge(dev)
	if c.Nonce == c2.Nonce {
		t.Fatal("two challenges share a nonce")
	}
	tok := c.Token()
	if len(tok) != TokenHexLen || strings.ToLower(tok) != tok {
		t.Fatalf("token %q: want %d lowercase hex digits", tok, TokenHexLen)
	}
	for _, in := range []string{tok, "0x" + tok, strings.ToUpper(tok), " " + tok + "\n"} {
		got, err := ParseChallenge(in)
		if err != nil || got != c {
			t.Errorf("ParseChallenge(%.12q...) = %v, %v; want the challenge back", in, got, err)
		}
	}
	flip := func(i int) string {
		b := []byte(tok)
		if b[i] == '0' {
			b[i] = '1'
		} else {
			b[i] = '0'
		}
		return string(b)
	}
	v2 := "02" + tok[2:]
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"truncated", tok[:len(tok)-1]},
		{"one more digit", tok + "0"},
		{"not hex", "zz" + tok[2:]},
		{"device digit changed", flip(10)},
		{"nonce digit changed", flip(60)},
		{"check digit changed", flip(len(tok) - 1)},
		{"version 2", v2},
		{"bare nonce", tok[42:106]},
	} {
		if _, err := ParseChallenge(tc.in); !errors.Is(err, ErrBadChallenge) {
			t.Errorf("%s: ParseChallenge error %v, want ErrBadChallenge", tc.name, err)
		}
	}
}

// highS returns the malleable twin of sig: s' = N - s, v flipped.
func highS(sig signer.Signature) signer.Signature {
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:64])
	s.Negate()
	b := s.Bytes()
	out := sig
	copy(out[32:64], b[:])
	out[64] ^= 27 ^ 28
	return out
}

func TestVerifyUnlock(t *testing.T) {
	dev := newKey(t, "device.key")
	svc := newKey(t, "service.key")
	other := newKey(t, "other.key")
	c, _ := NewChallenge(dev.Address())
	good, err := SignUnlock(svc, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyUnlock(svc.Address(), c, good); err != nil {
		t.Fatalf("the service key's response is refused: %v", err)
	}
	otherDev, _ := NewChallenge(other.Address())
	otherDev.Nonce = c.Nonce
	forOther, _ := SignUnlock(svc, otherDev)
	fresh, _ := NewChallenge(dev.Address())
	wrongKey, _ := SignUnlock(dev, c)
	badV := good
	badV[64] = 1
	zeroR := good
	clear(zeroR[:32])
	for _, tc := range []struct {
		name string
		c    Challenge
		sig  signer.Signature
		want error
	}{
		{"signed by another key", c, wrongKey, ErrWrongKey},
		{"same nonce, another device", c, forOther, ErrWrongKey},
		{"response to an earlier challenge", fresh, good, ErrWrongKey},
		{"high s", c, highS(good), ErrBadResponse},
		{"v not 27 or 28", c, badV, ErrBadResponse},
		{"r zero", c, zeroR, ErrBadResponse},
	} {
		if err := VerifyUnlock(svc.Address(), tc.c, tc.sig); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseResponse(t *testing.T) {
	svc := newKey(t, "service.key")
	c, _ := NewChallenge(svc.Address())
	sig, _ := SignUnlock(svc, c)
	for _, in := range []string{sig.String(), sig.String()[2:], strings.ToUpper(sig.String()[2:])} {
		if got, err := ParseResponse(in); err != nil || got != sig {
			t.Errorf("ParseResponse(%.12q...) = %v; want the signature back", in, err)
		}
	}
	for _, in := range []string{"", "0x", sig.String()[:100], sig.String() + "00", "0x" + strings.Repeat("g", 130)} {
		if _, err := ParseResponse(in); !errors.Is(err, ErrBadResponse) {
			t.Errorf("ParseResponse(%q): %v, want ErrBadResponse", in, err)
		}
	}
}

func TestParseServiceKey(t *testing.T) {
	k := newKey(t, "service.key")
	pub := k.PublicKey()
	unc := pub.SerializeUncompressed()
	for _, in := range []string{
		fmt.Sprintf("%x", pub.SerializeCompressed()),
		fmt.Sprintf("0x%x", pub.SerializeCompressed()),
		fmt.Sprintf("%x", unc),
		fmt.Sprintf("%x", unc[1:]),
		k.Address().String(),
		"0X" + strings.ToUpper(k.Address().String()[2:]),
	} {
		got, err := ParseServiceKey(in)
		if err != nil || got != k.Address() {
			t.Errorf("ParseServiceKey(%.16q...) = %s, %v; want %s", in, got, err, k.Address())
		}
	}
	notOnCurve := append([]byte{0x02}, bytes.Repeat([]byte{0xff}, 32)...)
	for _, in := range []string{"", "zz", "0x1234", fmt.Sprintf("%x", notOnCurve), "0x" + strings.Repeat("g", 40),
		k.Address().String()[2:], // an address without 0x: 20 bytes, neither a key nor an address
	} {
		if _, err := ParseServiceKey(in); !errors.Is(err, ErrBadServiceKey) {
			t.Errorf("ParseServiceKey(%q): %v, want ErrBadServiceKey", in, err)
		}
	}
	if _, err := New(Config{ServiceKey: "nonsense"}, Deps{}); !errors.Is(err, ErrBadServiceKey) {
		t.Errorf("New with a bad service key: %v, want ErrBadServiceKey", err)
	}
}

// TestDomainSeparation: what the shell's protocol signs can never be taken
// for an attestation or any other Ethereum message: the signed preimages
// start with an ASCII tag, never 0x19 (EIP-191/712) or an RLP list byte.
func TestDomainSeparation(t *testing.T) {
	for _, tag := range []string{UnlockTag, SelftestTag} {
		if tag[0] == 0x19 || tag[0] >= 0xc0 {
			t.Errorf("tag %q starts with %#x", tag, tag[0])
		}
	}
	if strings.HasPrefix(UnlockTag, SelftestTag) || strings.HasPrefix(SelftestTag, UnlockTag) {
		t.Error("one tag is a prefix of the other")
	}
	dev := newKey(t, "device.key")
	c := Challenge{Device: dev.Address()}
	if SelftestDigest(dev.Address()) == c.Digest() {
		t.Error("the selftest message equals an unlock message")
	}
	// The device key's selftest signature does not unlock, even for a
	// device whose service key were its own key.
	sig, _ := dev.SignDigest(SelftestDigest(dev.Address()))
	if err := VerifyUnlock(dev.Address(), c, sig); err == nil {
		t.Error("a selftest signature passed as an unlock response")
	}
	// The selftest message is fixed per device.
	if SelftestDigest(dev.Address()) != SelftestDigest(dev.Address()) {
		t.Error("the selftest message changes")
	}
}

func TestLimiter(t *testing.T) {
	l := limiter{max: 3, base: 10 * time.Second, cap: time.Minute}
	now := time.Unix(1700000000, 0)
	var got []time.Duration
	for range 7 {
		got = append(got, l.fail(now))
	}
	want := []time.Duration{0, 0, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lockouts %v, want %v", got, want)
	}
	var le *LockoutError
	if err := l.check(now.Add(59 * time.Second)); !errors.As(err, &le) || !errors.Is(err, ErrLockedOut) || le.Failures != 7 {
		t.Errorf("check during a lockout: %v", err)
	}
	if err := l.check(now.Add(time.Minute)); err != nil {
		t.Errorf("check after the lockout: %v", err)
	}
	l.ok()
	if d := l.fail(now); d != 0 {
		t.Errorf("a failure after a success locked out for %s", d)
	}
}

func FuzzChallenge(f *testing.F) {
	c := Challenge{Device: signer.Address{1, 2, 3}, Nonce: [32]byte{4, 5, 6}}
	f.Add(c.Token())
	f.Add("0x" + c.Token())
	f.Add(strings.Repeat("0", TokenHexLen))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChallenge(s)
		if err != nil {
			if !errors.Is(err, ErrBadChallenge) {
				t.Fatalf("error %v does not wrap ErrBadChallenge", err)
			}
			return
		}
		back, err := ParseChallenge(c.Token())
		if err != nil || back != c {
			t.Fatalf("token round trip: %v", err)
		}
		ParseResponse(s)
		ParseServiceKey(s)
	})
}
