package signer

import (
	"errors"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// cowKey is keccak256("cow"), the key of the EIP-712 Mail example.
const cowKey = "c85ef7d79691fe79573b1a7064c19c1a9819ebdbd1faaab1a8ec92344438aaf4"

// testKey returns a FileKey for a fixed, public test scalar.
func testKey(t testing.TB, privHex string) *FileKey {
	t.Helper()
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(mustHex(privHex)); overflow || s.IsZero() {
		t.Fatalf("bad test key %s", privHex)
	}
	k := secp256k1.NewPrivateKey(&s)
	return &FileKey{key: k, addr: AddressOf(k.PubKey())}
}

// Published private key -> address pairs.
func TestAddressVectors(t *testing.T) {
	for _, c := range []struct{ source, priv, addr string }{
		// web3.js docs, web3-eth-accounts.rst (signTransaction, sign, recover examples).
		{"web3.js accounts docs", "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"},
		// web3.js docs, web3-eth-accounts.rst (create, privateKeyToAccount examples).
		{"web3.js create", "348ce564d427a3311b6536bbcff9390d69395b06ed6c486954e971d960fe8709", "0xb8CE9ab6943e0eCED004cDe8e3bBed6568B2Fa01"},
		{"web3.js create with entropy", "d7325de5c2c1cf0009fac77d3d04a9c004b038883446b065871bc3e831dcd098", "0xF2CD2AA0c7926743B1D4310b2BC984a0a453c3d4"},
		{"web3.js create randomHex", "cc505ee6067fba3f6fc2050643379e190e087aeffe5d958ab9f2f3ed3800fa4e", "0xe78150FaCD36E8EB00291e251424a0515AA1FF05"},
		// EIP-712 Mail example signer, keccak256("cow") (MetaMask/eth-sig-util tests).
		{"EIP-712 cow", cowKey, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
		// Private key 1: the generator point G.
		{"private key 1", "0000000000000000000000000000000000000000000000000000000000000001", "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"},
	} {
		t.Run(c.source, func(t *testing.T) {
			want, err := ParseAddress(c.addr)
			if err != nil {
				t.Fatal(err)
			}
			k := testKey(t, c.priv)
			if got := AddressOf(k.PublicKey()); got != want {
				t.Errorf("AddressOf = %s, want %s", got, want)
			}
			if got := k.Address(); got != want {
				t.Errorf("Address() = %s, want %s", got, want)
			}
		})
	}
}

// web3.js docs: web3.eth.accounts.sign('Some data', 0x4c08...) gives this
// messageHash and signature, and recover gives the address back. Both
// web3.js and decred use RFC 6979 nonces, so the signature is reproduced
// byte for byte.
func TestWeb3SignVector(t *testing.T) {
	// keccak256("\x19Ethereum Signed Message:\n9Some data")
	msg := []byte("\x19Ethereum Signed Message:\n9Some data")
	hash := keccak256(msg)
	if want := hex32("1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"); hash != want {
		t.Fatalf("messageHash = %x, want %x", hash, want)
	}
	var want Signature
	copy(want[:], mustHex("b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd"+
		"6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a029"+"1c"))
	k := testKey(t, "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
	got, err := k.SignDigest(hash)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("SignDigest\n got %s\nwant %s", got, want)
	}
	addr, err := recoverDigest(hash, want)
	if err != nil {
		t.Fatal(err)
	}
	if addr != mustAddress("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23") {
		t.Errorf("recover = %s", addr)
	}
	// web3.js docs also: hashMessage("Hello World").
	if got, want := keccak256([]byte("\x19Ethereum Signed Message:\n11Hello World")), hex32("a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2"); got != want {
		t.Errorf("hashMessage(Hello World) = %x, want %x", got, want)
	}
}

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // "" for an error
	}{
		{"0x2c7536e3605d9c16a7a3d7b1898e529396a65c23", "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"},
		{"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"},
		{"0X2C7536E3605D9C16A7A3D7B1898E529396A65C23", "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"},
		{"2c7536e3605d9c16a7a3d7b1898e529396a65c23", ""},
		{"0x2c7536e3605d9c16a7a3d7b1898e529396a65c2", ""},
		{"0x2c7536e3605d9c16a7a3d7b1898e529396a65c233", ""},
		{"0x2c7536e3605d9c16a7a3d7b1898e529396a65cgg", ""},
		{"", ""},
	} {
		a, err := ParseAddress(c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParseAddress(%q) = %s, want an error", c.in, a)
		case c.want != "" && err != nil:
			t.Errorf("ParseAddress(%q): %v", c.in, err)
		case c.want != "" && a.String() != c.want:
			t.Errorf("ParseAddress(%q) = %s, want %s", c.in, a, c.want)
		}
	}
	var a Address
	if err := a.UnmarshalText([]byte("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23")); err != nil {
		t.Fatal(err)
	}
	if b, _ := a.MarshalText(); string(b) != "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23" {
		t.Errorf("MarshalText = %s", b)
	}
}

func TestRecoverRefusesMalformedSignatures(t *testing.T) {
	k := testKey(t, cowKey)
	d := keccak256([]byte("digest"))
	good, err := k.SignDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	n := mustHex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141") // group order N
	for _, c := range []struct {
		name   string
		mutate func(s *Signature)
		want   error
	}{
		{"v 0", func(s *Signature) { s[64] = 0 }, ErrBadSignature},
		{"v 1", func(s *Signature) { s[64] -= 27 }, ErrBadSignature},
		{"v 29", func(s *Signature) { s[64] = 29 }, ErrBadSignature},
		{"r zero", func(s *Signature) { clear(s[:32]) }, ErrBadSignature},
		{"r = N", func(s *Signature) { copy(s[:32], n) }, ErrBadSignature},
		{"s zero", func(s *Signature) { clear(s[32:64]) }, ErrBadSignature},
		{"s = N", func(s *Signature) { copy(s[32:64], n) }, ErrBadSignature},
		{"high s", func(s *Signature) { *s = highSTwin(*s) }, ErrHighS},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := good
			c.mutate(&s)
			if _, err := recoverDigest(d, s); !errors.Is(err, c.want) {
				t.Errorf("recoverDigest: %v, want %v", err, c.want)
			}
		})
	}
	if addr, err := recoverDigest(d, good); err != nil || addr != k.Address() {
		t.Errorf("good signature: %s, %v", addr, err)
	}
}

// highSTwin returns the other valid signature for the same digest and key:
// s' = N - s and the recovery parity flipped.
func highSTwin(sig Signature) Signature {
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:64])
	s.Negate()
	b := s.Bytes()
	copy(sig[32:64], b[:])
	sig[64] ^= 27 ^ 28
	return sig
}
