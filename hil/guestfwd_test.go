package hil

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGuestfwdCarriesEachConnection: the guest reaches the host's broker
// port through qemu's guestfwd once per connection, not once per boot.
// tboxd opens a connection of its own at start (the look for a retained
// receipt) before the uplink's, and reconnects after a broker restart; a
// guestfwd to a chardev would give the second connection nothing. The
// guest opens three connections, one after the other, and one more while
// another is open; the host must accept each and answer it.
func TestGuestfwdCarriesEachConnection(t *testing.T) {
	k := prepare(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got []string
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSpace(line)
				mu.Lock()
				got = append(got, line)
				mu.Unlock()
				fmt.Fprintf(c, "host-saw-%s\n", line)
			}()
		}
	}()
	defer func() { ln.Close(); wg.Wait() }()

	// busybox nc waits after its input ends: timeout ends it once the
	// host's answer is in.
	script := `
for i in 1 2 3; do
	echo "conn-$i" | timeout 3 nc 10.0.2.100 1883 > /tmp/reply-$i || true
	echo "GUEST-REPLY $(cat /tmp/reply-$i)"
done
(sleep 1; echo conn-late) | timeout 4 nc 10.0.2.100 1883 > /tmp/reply-late &
echo "conn-open" | timeout 3 nc 10.0.2.100 1883 > /tmp/reply-open || true
wait
echo "GUEST-REPLY $(cat /tmp/reply-open)"
echo "GUEST-REPLY $(cat /tmp/reply-late)"
`
	res, err := k.Boot(context.Background(), Options{Script: script, BrokerPort: ln.Addr().(*net.TCPAddr).Port,
		Timeout: 3 * time.Minute, Console: &logWriter{t: t, prefix: "guest: "}})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	for _, c := range []string{"1", "2", "3", "open", "late"} {
		if want := "GUEST-REPLY host-saw-conn-" + c; !strings.Contains(res.Console, want) {
			t.Errorf("connection %s: the guest did not get the host's answer (%q not on the console)", c, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 {
		t.Errorf("the host accepted %d connections with a line (%q), want 5", len(got), got)
	}
}
