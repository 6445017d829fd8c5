package signer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

func TestGenerateAndLoadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.key")
	addr, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %04o, want 0600", perm)
	}
	k, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if k.Address() != addr {
		t.Errorf("loaded address %s, generated %s", k.Address(), addr)
	}
	if AddressOf(k.PublicKey()) != addr {
		t.Errorf("public key address mismatch")
	}
	// The key signs what it says it signs.
	d := keccak256([]byte("x"))
	sig, err := k.SignDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := recoverDigest(d, sig); err != nil || got != addr {
		t.Errorf("recover = %s, %v; want %s", got, err, addr)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key", len(entries))
	}
	// Two keys differ.
	addr2, err := GenerateKeyFile(path + "2")
	if err != nil {
		t.Fatal(err)
	}
	if addr2 == addr {
		t.Error("two generated keys have the same address")
	}
}

func TestGenerateKeyFileRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	for _, existing := range []string{"a key", ""} {
		path := filepath.Join(dir, fmt.Sprintf("key%d", len(existing)))
		if err := os.WriteFile(path, []byte(existing), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := GenerateKeyFile(path)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("GenerateKeyFile over an existing file: %v, want fs.ErrExist", err)
		}
		if b, _ := os.ReadFile(path); string(b) != existing {
			t.Errorf("existing file changed to %q", b)
		}
	}
	// A dangling symlink counts as existing too.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeyFile(link); !errors.Is(err, fs.ErrExist) {
		t.Errorf("GenerateKeyFile over a symlink: %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("symlink target created")
	}
	// A missing directory is an error, not a panic.
	if _, err := GenerateKeyFile(filepath.Join(dir, "no", "such", "dir", "key")); err == nil {
		t.Error("GenerateKeyFile in a missing directory succeeded")
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.key")
	if _, err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode fs.FileMode
		want error
	}{
		{0o600, nil},
		{0o400, nil},
		{0o640, ErrKeyPermissions},
		{0o604, ErrKeyPermissions},
		{0o660, ErrKeyPermissions},
		{0o644, ErrKeyPermissions},
		{0o602, ErrKeyPermissions},
		{0o620, ErrKeyPermissions},
		{0o666, ErrKeyPermissions},
	} {
		t.Run(fmt.Sprintf("%04o", c.mode), func(t *testing.T) {
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyFile(path)
			if !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
				t.Fatalf("LoadKeyFile: %v, want %v", err, c.want)
			}
			if c.want != nil {
				msg := err.Error()
				if !strings.Contains(msg, "chmod 600 "+path) || !strings.Contains(msg, path) {
					t.Errorf("message %q does not tell how to fix it", msg)
				}
				var kfe *KeyFileError
				if !errors.As(err, &kfe) || kfe.Path != path {
					t.Errorf("error %T does not carry the path", err)
				}
			}
		})
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadKeyFile(dir); !errors.Is(err, ErrBadKey) && !errors.Is(err, ErrKeyPermissions) {
		t.Errorf("directory: %v, want ErrBadKey", err)
	}
}

// secp256k1 group order N.
var groupOrder = mustHex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")

func sec1(t *testing.T, k ecPrivateKey) []byte {
	t.Helper()
	der, err := asn1.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Bytes: der})
}

func TestLoadKeyFileRefusesBadKeys(t *testing.T) {
	good := testKey(t, cowKey)
	priv := mustHex(cowKey)
	pub := good.PublicKey().SerializeUncompressed()
	pubBits := asn1.BitString{Bytes: pub, BitLength: 520}
	goodPEM := sec1(t, ecPrivateKey{1, priv, oidSecp256k1, pubBits})

	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256DER, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8DER, err := x509.MarshalPKCS8PrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(goodPEM)
	other := testKey(t, "0000000000000000000000000000000000000000000000000000000000000001").PublicKey().SerializeUncompressed()
	paramsP256, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})

	for _, c := range []struct {
		name string
		data []byte
		want string // part of the message
	}{
		{"empty", nil, "not PEM"},
		{"not PEM", []byte("hello, this is not a key\n"), "not PEM"},
		{"truncated PEM", goodPEM[:len(goodPEM)/2], "truncated"},
		{"truncated DER", pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Bytes: block.Bytes[:len(block.Bytes)-10]}), "truncated"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: block.Bytes}), `"RSA PRIVATE KEY"`},
		{"PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8DER}), "openssl ec"},
		{"wrong curve P-256", pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Bytes: p256DER}), "curve 1.2.840.10045.3.1.7, expected secp256k1 (1.3.132.0.10)"},
		{"wrong curve in EC PARAMETERS", append(pem.EncodeToMemory(&pem.Block{Type: pemECParameters, Bytes: paramsP256}), goodPEM...), "curve 1.2.840.10045.3.1.7"},
		{"no curve", sec1(t, ecPrivateKey{Version: 1, PrivateKey: priv}), "no curve"},
		{"version 2", sec1(t, ecPrivateKey{2, priv, oidSecp256k1, pubBits}), "version 2"},
		{"short scalar", sec1(t, ecPrivateKey{1, priv[1:], oidSecp256k1, asn1.BitString{}}), "31 bytes, expected 32"},
		{"zero scalar", sec1(t, ecPrivateKey{1, make([]byte, 32), oidSecp256k1, asn1.BitString{}}), "zero"},
		{"scalar = N", sec1(t, ecPrivateKey{1, groupOrder, oidSecp256k1, asn1.BitString{}}), "group order"},
		{"scalar > N", sec1(t, ecPrivateKey{1, bytes.Repeat([]byte{0xff}, 32), oidSecp256k1, asn1.BitString{}}), "group order"},
		{"public key mismatch", sec1(t, ecPrivateKey{1, priv, oidSecp256k1, asn1.BitString{Bytes: other, BitLength: 520}}), "does not match"},
		{"trailing DER", pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Bytes: append(bytes.Clone(block.Bytes), 0, 0)}), "after the ECPrivateKey"},
		{"two keys", append(bytes.Clone(goodPEM), goodPEM...), "after the"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: block.Bytes}), "headers"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.key")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := LoadKeyFile(path)
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("LoadKeyFile = %v, %v; want ErrBadKey", k, err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, c.want) {
				t.Errorf("message %q, want the path and %q", msg, c.want)
			}
		})
	}

	// The good key and openssl's two-block layout (EC PARAMETERS, then the
	// key) load, with the right address; so does a key without its public key.
	params, _ := asn1.Marshal(oidSecp256k1)
	for name, data := range map[string][]byte{
		"good":               goodPEM,
		"with EC PARAMETERS": append(pem.EncodeToMemory(&pem.Block{Type: pemECParameters, Bytes: params}), goodPEM...),
		"without public key": sec1(t, ecPrivateKey{1, priv, oidSecp256k1, asn1.BitString{}}),
	} {
		path := filepath.Join(t.TempDir(), "good.key")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKeyFile(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if k.Address() != good.Address() {
			t.Errorf("%s: address %s, want %s", name, k.Address(), good.Address())
		}
	}
}

// The private key never shows in fmt output or logs.
func TestFileKeyRedacted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.key")
	if _, err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	privHex := hex.EncodeToString(privateScalar(t, path))
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("key loaded", "key", k, "keyValue", *k)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("key", "k", k)

	outputs := map[string]string{"logs": logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		outputs[verb+" pointer"] = fmt.Sprintf(verb, k)
		outputs[verb+" value"] = fmt.Sprintf(verb, *k)
		outputs[verb+" nested"] = fmt.Sprintf(verb, struct{ K *FileKey }{k})
	}
	outputs["String"] = k.String()
	outputs["GoString"] = k.GoString()
	for name, out := range outputs {
		if strings.Contains(strings.ToLower(out), privHex) {
			t.Errorf("%s prints the private key: %s", name, out)
		}
		if !strings.Contains(out, "REDACTED") && !strings.Contains(name, "nested") {
			t.Errorf("%s = %q, want REDACTED", name, out)
		}
	}
	if !strings.Contains(logs.String(), `"key":"REDACTED"`) {
		t.Errorf("JSON log %s, want \"key\":\"REDACTED\"", logs.String())
	}
}

// privateScalar reads the private scalar from a key file, for the test only.
func privateScalar(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	var k ecPrivateKey
	if _, err := asn1.Unmarshal(block.Bytes, &k); err != nil {
		t.Fatal(err)
	}
	return k.PrivateKey
}

// openssl reads the files this package writes, and this package reads keys
// that openssl generates.
func TestOpenSSLInterop(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.key")
	addr, err := GenerateKeyFile(ours)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "ec", "-in", ours, "-text", "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl ec: %v\n%s", err, out)
	}
	text := string(out)
	if !strings.Contains(text, "ASN1 OID: secp256k1") {
		t.Errorf("openssl does not see secp256k1:\n%s", text)
	}
	priv, pub := opensslHex(t, text, "priv"), opensslHex(t, text, "pub")
	if !bytes.Equal(leftPad(priv, 32), privateScalar(t, ours)) {
		t.Error("openssl reads another private key")
	}
	p, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatalf("openssl pub: %v", err)
	}
	if AddressOf(p) != addr {
		t.Errorf("openssl public key has address %s, want %s", AddressOf(p), addr)
	}

	theirs := filepath.Join(dir, "theirs.key")
	if out, err := exec.Command(openssl, "ecparam", "-name", "secp256k1", "-genkey", "-out", theirs).CombinedOutput(); err != nil {
		t.Fatalf("openssl ecparam: %v\n%s", err, out)
	}
	if err := os.Chmod(theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(openssl, "ec", "-in", theirs, "-text", "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl ec: %v\n%s", err, out)
	}
	p, err = secp256k1.ParsePubKey(opensslHex(t, string(out), "pub"))
	if err != nil {
		t.Fatal(err)
	}
	if AddressOf(p) != k.Address() {
		t.Errorf("openssl key loads with address %s, openssl's public key gives %s", k.Address(), AddressOf(p))
	}
}

// opensslHex extracts a colon-separated hex block such as "pub:" from
// `openssl ec -text` output.
func opensslHex(t *testing.T, text, label string) []byte {
	t.Helper()
	m := regexp.MustCompile(`(?s)\n` + label + `:\s*\n((?:\s+[0-9a-f:]+\n)+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s: in openssl output:\n%s", label, text)
	}
	h := strings.NewReplacer(":", "", " ", "", "\n", "").Replace(m[1])
	return mustHex(h)
}

func leftPad(b []byte, n int) []byte {
	for len(b) > n && b[0] == 0 {
		b = b[1:]
	}
	return append(make([]byte, n-len(b)), b...)
}
