package hil

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// prepare returns the kit, skipping only when this machine cannot host the
// guest at all (not Linux, or not root with the kit missing).
func prepare(t *testing.T) *Kit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	k, err := Prepare(ctx)
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") == "" {
		t.Skipf("emulated T-Box: %v", err)
	}
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return k
}

// logWriter sends whole lines to t.Log.
type logWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// guestTests are the vcan tests of can/socketcan that must PASS in the guest.
var guestTests = []string{
	"TestVCANRoundTrip",
	"TestVCANErrorFramesBecomeEvents",
	"TestVCANFilter",
	"TestVCANCancelUnblocksRead",
	"TestVCANCloseUnblocksRead",
	"TestVCANReopen",
	"TestVCANReopenOnRequest",
	"TestVCANFlood",
	"TestVCANTimestamps",
	"TestVCANISOTP",
	"TestVCANFDNeedsMTU",
}

// TestSocketCANInGuest runs the socketcan tests, cross-compiled for ARM,
// against kernel vcan in one boot of the emulated T-Box.
func TestSocketCANInGuest(t *testing.T) {
	k := prepare(t)
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "socketcan.test")
	if err := CrossBuildTest(ctx, "./can/socketcan", bin); err != nil {
		t.Fatal(err)
	}
	res, err := k.Boot(ctx, Options{
		Files:   map[string]string{"/bin/socketcan.test": bin},
		Script:  "socketcan.test -test.v -test.count=1 -test.timeout=4m -test.bench=VCAN -test.benchtime=2000x 2>&1",
		Timeout: 6 * time.Minute,
		Console: &logWriter{t: t, prefix: "guest: "},
	})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	t.Logf("guest booted (vcan0 up) in %v, finished in %v", res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
	for _, name := range guestTests {
		switch {
		case regexp.MustCompile(`--- PASS: ` + name + ` \(`).MatchString(res.Console):
		case strings.Contains(res.Console, "--- SKIP: "+name+" "):
			t.Errorf("%s skipped in the guest: it must run there", name)
		default:
			t.Errorf("%s did not pass in the guest", name)
		}
	}
	if res.ExitCode != 0 {
		t.Errorf("guest test binary exited with %d", res.ExitCode)
	}
	metrics := regexp.MustCompile(`(?m)^HIL-METRIC .*$`).FindAllString(res.Console, -1)
	if len(metrics) == 0 {
		t.Error("no HIL-METRIC line from the flood test")
	}
	for _, m := range metrics {
		t.Log(m)
	}
	for _, m := range regexp.MustCompile(`(?m)^BenchmarkVCAN.*$`).FindAllString(res.Console, -1) {
		t.Log(m)
	}
}

// TestGuestDevices checks the harness's plumbing in one boot: the broker
// port forward, the virtio serial port, the ext4 disk (readable after
// power-off) and the armhf can-utils against vcan0.
func TestGuestDevices(t *testing.T) {
	k := prepare(t)
	dir := t.TempDir()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	brokerGot := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			brokerGot <- ""
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		line, _ := bufio.NewReader(c).ReadString('\n')
		brokerGot <- line
	}()

	disk := filepath.Join(dir, "disk.img")
	if err := MakeDisk(disk, 16); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "diag.sock")
	script := `
set -e
echo hello-broker | timeout 3 nc 10.0.2.100 1883 || true
echo persisted > /data/note.txt
sync
candump -n 1 vcan0 > /tmp/dump.txt &
sleep 1
cansend vcan0 123#DEADBEEF
wait
cat /tmp/dump.txt
exec 3<>/dev/hvc0
stty raw -echo <&3
echo serial-ready >&3
read -r reply <&3
echo "serial-reply: $reply"
echo hello-serial >&3
`
	r, err := k.Start(context.Background(), Options{
		Script: script, Disk: disk, BrokerPort: ln.Addr().(*net.TCPAddr).Port, Serial: sock,
		CanUtils: true, Timeout: 3 * time.Minute, Console: &logWriter{t: t, prefix: "guest: "},
	})
	if err != nil {
		t.Fatal(err)
	}
	// qemu creates the socket as it starts; the guest blocks reading hvc0.
	var sc net.Conn
	for i := 0; i < 100; i++ {
		if sc, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.Kill()
		r.Wait()
		t.Fatalf("serial socket: %v", err)
	}
	defer sc.Close()
	sc.SetReadDeadline(time.Now().Add(2 * time.Minute))
	br := bufio.NewReader(sc)
	if l, err := br.ReadString('\n'); l != "serial-ready\n" {
		r.Kill()
		r.Wait()
		t.Fatalf("first line on the serial socket: %q, %v; want serial-ready", l, err)
	}
	if _, err := io.WriteString(sc, "ping\n"); err != nil {
		t.Fatal(err)
	}
	serialLine, _ := br.ReadString('\n')
	res, err := r.Wait()
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("script exited with %d", res.ExitCode)
	}
	select {
	case got := <-brokerGot:
		if got != "hello-broker\n" {
			t.Errorf("host broker port received %q, want hello-broker", got)
		}
	case <-time.After(5 * time.Second):
		t.Error("the guest never connected to the host broker port")
	}
	if serialLine != "hello-serial\n" {
		t.Errorf("serial socket read %q, want hello-serial", serialLine)
	}
	if !strings.Contains(res.Console, "serial-reply: ping") {
		t.Error("guest did not read the host's line on /dev/hvc0")
	}
	if !regexp.MustCompile(`vcan0\s+123\s+\[4\]\s+DE AD BE EF`).MatchString(res.Console) {
		t.Error("candump in the guest did not print the frame cansend sent")
	}
	b, err := DiskFile(disk, "/note.txt")
	if err != nil || string(b) != "persisted\n" {
		t.Errorf("file on the disk image after power-off: %q, %v", b, err)
	}
	if _, err := DiskFile(disk, "/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DiskFile of a missing file: %v, want os.ErrNotExist", err)
	}
	t.Logf("boot with net, serial, disk and can-utils: ready in %v, done in %v", res.BootTime.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
}

// TestKillIsAPowerCut checks that Kill stops a guest that would run forever
// and that Wait reports the missing exit marker.
func TestKillIsAPowerCut(t *testing.T) {
	k := prepare(t)
	r, err := k.Start(context.Background(), Options{Script: "echo looping; while :; do sleep 1; done", Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.WaitOutput(ctx, "looping"); err != nil {
		r.Kill()
		r.Wait()
		t.Fatal(err)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	res, err := r.Wait()
	if !errors.Is(err, ErrNoExit) {
		t.Fatalf("Wait after Kill: %v, want ErrNoExit", err)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
}

func TestTimeoutKillsGuest(t *testing.T) {
	k := prepare(t)
	// The timeout must leave the guest time to boot (HIL-READY in the
	// console tail): 4 s on a quiet host, over 12 s seen on a busy one.
	_, err := k.Boot(context.Background(), Options{Script: "sleep 600", Timeout: 40 * time.Second})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Boot of a hanging guest: %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), "HIL-READY") {
		t.Errorf("timeout error lacks the console tail: %v", err)
	}
}
