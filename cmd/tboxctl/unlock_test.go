package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/signer"
)

// unlockCmd runs `tboxctl unlock` in process.
func unlockCmd(args ...string) result {
	var out, errb bytes.Buffer
	err := runUnlock(context.Background(), args, strings.NewReader(""), &out, &errb)
	code := exitCode(&errb, "unlock", err)
	return result{code, out.String(), errb.String()}
}

var responseLine = regexp.MustCompile(`^0x[0-9a-f]{130}\n$`)

func TestUnlockSigns(t *testing.T) {
	svcPath, svcAddr := newKey(t)
	_, devAddr := newKey(t)
	_, otherAddr := newKey(t)
	c, err := shell.NewChallenge(devAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"token", []string{"--challenge", c.Token()}},
		{"token with 0x and the device", []string{"--challenge", "0x" + c.Token(), "--device", devAddr.String()}},
		{"bare nonce and the device", []string{"--challenge", c.Token()[42:106], "--device", devAddr.String()}},
	} {
		r := unlockCmd(append([]string{"--service-key", svcPath}, tc.args...)...)
		if r.code != 0 || !responseLine.MatchString(r.stdout) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, r.code, r.stdout, r.stderr)
			continue
		}
		sig, err := shell.ParseResponse(r.stdout)
		if err != nil {
			t.Fatal(err)
		}
		if err := shell.VerifyUnlock(svcAddr, c, sig); err != nil {
			t.Errorf("%s: the response does not verify: %v", tc.name, err)
		}
		if !strings.Contains(r.stderr, devAddr.String()) || !strings.Contains(r.stderr, svcAddr.String()) {
			t.Errorf("%s: stderr %q names neither the device nor the service key", tc.name, r.stderr)
		}
	}

	mangled := []byte(c.Token())
	// Another hex digit in the device part (x^1 could leave the hex
	// alphabet: 'f' becomes 'g').
	if mangled[20] == '0' {
		mangled[20] = '1'
	} else {
		mangled[20] = '0'
	}
	loose := filepath.Join(t.TempDir(), "loose.key")
	data, _ := os.ReadFile(svcPath)
	os.WriteFile(loose, data, 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"--challenge", c.Token()}, "--service-key is required"},
		{"no challenge", []string{"--service-key", svcPath}, "--challenge is required"},
		{"mangled token", []string{"--service-key", svcPath, "--challenge", string(mangled)}, "check digits do not match"},
		{"another device", []string{"--service-key", svcPath, "--challenge", c.Token(), "--device", otherAddr.String()}, "but the challenge is for device " + devAddr.String()},
		{"bare nonce alone", []string{"--service-key", svcPath, "--challenge", c.Token()[42:106]}, "needs --device"},
		{"bad device", []string{"--service-key", svcPath, "--challenge", c.Token(), "--device", "0x12"}, "--device"},
		{"missing key file", []string{"--service-key", filepath.Join(t.TempDir(), "none"), "--challenge", c.Token()}, "none"},
		{"key file others can read", []string{"--service-key", loose, "--challenge", c.Token()}, "chmod 600"},
		{"extra argument", []string{"--service-key", svcPath, "--challenge", c.Token(), "sign-this"}, "unexpected argument"},
	} {
		r := unlockCmd(tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.name, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

// TestUnlockSession is the technician's round trip: the shell prints a
// challenge, tboxctl unlock answers it, the shell enters service mode.
func TestUnlockSession(t *testing.T) {
	svcPath, svcAddr := newKey(t)
	devPath, devAddr := newKey(t)
	dev, err := signer.LoadKeyFile(devPath)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := shell.New(shell.Config{ServiceKey: svcAddr.String()}, shell.Deps{Device: devAddr, Key: dev, UploadNow: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- sh.Serve(ctx, a) }()
	var mu sync.Mutex
	var screen bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 1024)
		for {
			n, err := b.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	wait := func(re *regexp.Regexp) []string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			mu.Lock()
			m := re.FindStringSubmatch(screen.String())
			mu.Unlock()
			if m != nil {
				return m
			}
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no %q on the shell's screen: %q", re, screen.String())
		return nil
	}
	b.Write([]byte("unlock\r"))
	tok := wait(regexp.MustCompile(`challenge ([0-9a-f]{114})\r\n`))[1]
	r := unlockCmd("--service-key", svcPath, "--challenge", tok)
	if r.code != 0 {
		t.Fatalf("tboxctl unlock: exit %d: %s", r.code, r.stderr)
	}
	b.Write([]byte("unlock " + strings.TrimSpace(r.stdout) + "\r\nupload now\r\n"))
	wait(regexp.MustCompile(`service mode unlocked for 10m0s\r\ntbox# upload now\r\nupload: uplink woken`))

	cancel()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve: %v", err)
	}
	a.Close()
	b.Close()
	<-readDone
}
