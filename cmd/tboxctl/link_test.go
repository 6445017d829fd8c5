package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

// TestLinkCommand: bad usage is exit 2, a missing interface 1, and a link
// that is no CAN controller (the loopback) is printed as such. The real
// controllers are set up in the emulated arm64 T-Box (hil TestKvaserDrive).
func TestLinkCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"link"}, 2, ""},
		{[]string{"link", "--iface", "can0", "--bitrate", "2000000"}, 2, ""},
		{[]string{"link", "--iface", "can0", "--bitrate", "500000", "--restart"}, 2, ""},
		{[]string{"link", "--iface", "nosuchcan9"}, 1, ""},
		{[]string{"link", "--iface", "lo"}, 0, "lo: kind= up=true (no bit rate: not a CAN controller)\n"},
	} {
		if runtime.GOOS != "linux" && c.code != 2 {
			continue
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, strings.NewReader(""), &out, &errb)
		if code != c.code || (c.out != "" && out.String() != c.out) {
			t.Errorf("tboxctl %s: exit %d, stdout %q, stderr %q; want exit %d, stdout %q",
				strings.Join(c.args, " "), code, out.String(), errb.String(), c.code, c.out)
		}
	}
}
