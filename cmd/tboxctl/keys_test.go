package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
)

var addressLine = regexp.MustCompile(`^0x[0-9a-f]{40}\n$`)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.key")

	r := tboxctl(t, nil, "keygen", "--key", path)
	if r.code != 0 {
		t.Fatalf("keygen: exit %d, stderr %q", r.code, r.stderr)
	}
	if !addressLine.MatchString(r.stdout) {
		t.Fatalf("keygen printed %q, want one lowercase 0x address", r.stdout)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatalf("the new key does not load: %v", err)
	}
	if got := k.Address().String() + "\n"; got != r.stdout {
		t.Errorf("keygen printed %q, the key's address is %q", r.stdout, got)
	}
	if a := tboxctl(t, nil, "address", "--key", path); a.code != 0 || a.stdout != r.stdout {
		t.Errorf("address: exit %d, %q; keygen printed %q", a.code, a.stdout, r.stdout)
	}

	// A second keygen must not replace the key: exit 2, the file named,
	// the key unchanged.
	before, _ := os.ReadFile(path)
	again := tboxctl(t, nil, "keygen", "--key", path)
	if again.code != 2 {
		t.Errorf("keygen over an existing key: exit %d, want 2", again.code)
	}
	if !strings.Contains(again.stderr, path) || !strings.Contains(again.stderr, "overwrite") {
		t.Errorf("keygen over an existing key: stderr %q does not name the file and the refusal", again.stderr)
	}
	if again.stdout != "" {
		t.Errorf("keygen over an existing key printed %q", again.stdout)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("keygen over an existing key changed the key file")
	}

	// Two keys are two devices.
	other := tboxctl(t, nil, "keygen", "--key", filepath.Join(dir, "other.key"))
	if other.code != 0 || other.stdout == r.stdout {
		t.Errorf("second key: exit %d, address %q (first %q)", other.code, other.stdout, r.stdout)
	}
}

// badKeys writes key files that must be refused and returns name -> path.
func badKeys(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	good, _ := newKey(t)
	pemBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"wrong curve": write("p256.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600),
		"truncated":   write("truncated.key", pemBytes[:len(pemBytes)/2], 0o600),
		"mode 0644":   write("open.key", pemBytes, 0o644),
		"not PEM":     write("text.key", []byte("not a key\n"), 0o600),
		"empty":       write("empty.key", nil, 0o600),
		"missing":     filepath.Join(dir, "no-such.key"),
		"directory":   dir,
	}
}

func TestBadKeyFile(t *testing.T) {
	logLine := "(1700000000.000000) can0 541#0012D68700000000\n"
	for name, path := range badKeys(t) {
		for _, cmd := range [][]string{
			{"address", "--key", path},
			{"replay", "--profile", evProfile, "--key", path},
		} {
			t.Run(name+"/"+cmd[0], func(t *testing.T) {
				r := tboxctl(t, strings.NewReader(logLine), cmd...)
				if r.code != 2 {
					t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
				}
				if !strings.Contains(r.stderr, path) {
					t.Errorf("stderr %q does not name the key file %s", r.stderr, path)
				}
				if r.stdout != "" {
					t.Errorf("stdout %q, want nothing", r.stdout)
				}
			})
		}
	}
}

// TestBadKeyFileSays checks that the message says what is wrong.
func TestBadKeyFileSays(t *testing.T) {
	keys := badKeys(t)
	for _, tc := range []struct{ key, says string }{
		{"wrong curve", "secp256k1"},
		{"mode 0644", "0644"},
		{"missing", "no such file"},
		{"directory", "is a directory, expected a regular file"},
	} {
		r := tboxctl(t, nil, "address", "--key", keys[tc.key])
		if !strings.Contains(r.stderr, tc.says) {
			t.Errorf("%s: stderr %q does not say %q", tc.key, r.stderr, tc.says)
		}
	}
}

// TestKeyPathNotAFile: a FIFO where the key should be is refused at once
// (opening it would wait for a writer forever), keygen into a missing
// directory says so without naming a temporary file, and a refusal to
// overwrite is said once.
func TestKeyPathNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "device.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan result, 1)
	go func() { done <- tboxctl(t, nil, "address", "--key", fifo) }()
	select {
	case r := <-done:
		if r.code != 2 || !strings.Contains(r.stderr, "is a named pipe (FIFO), expected a regular file") {
			t.Errorf("FIFO key: exit %d, stderr %q", r.code, r.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tboxctl address --key FIFO still blocked after 5 s")
	}

	missing := filepath.Join(dir, "nosuch", "device.key")
	r := tboxctl(t, nil, "keygen", "--key", missing)
	if r.code == 0 || !strings.Contains(r.stderr, "directory "+filepath.Dir(missing)+" does not exist") || strings.Contains(r.stderr, ".keygen-") {
		t.Errorf("keygen into a missing directory: exit %d, stderr %q", r.code, r.stderr)
	}

	key := filepath.Join(dir, "k")
	if r := tboxctl(t, nil, "keygen", "--key", key); r.code != 0 {
		t.Fatalf("keygen: %q", r.stderr)
	}
	r = tboxctl(t, nil, "keygen", "--key", key)
	if r.code != 2 || strings.Count(r.stderr, "overwrite") != 1 {
		t.Errorf("keygen over a key: exit %d, stderr %q, want exit 2 and the refusal said once", r.code, r.stderr)
	}
}
