package shell

import (
	"bytes"
	"strings"
	"testing"

	"github.com/csop/tbox/store"
)

// feedAll runs in through an editor and returns the lines, with "!long"
// for a line refused as too long and "!cancel" for ^C.
func feedAll(e *editor, in string) []string {
	var out []string
	for i := 0; i < len(in); i++ {
		switch e.Feed(in[i]) {
		case editLine:
			out = append(out, e.Line())
		case editTooLong:
			out = append(out, "!long")
		case editCancel:
			out = append(out, "!cancel")
		}
	}
	return out
}

func TestEditor(t *testing.T) {
	long := strings.Repeat("a", 300)
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"CR", "status\r", []string{"status"}},
		{"LF", "status\n", []string{"status"}},
		{"CRLF is one line end", "status\r\nid\r\n", []string{"status", "id"}},
		{"empty lines", "a\r\rb\n\n", []string{"a", "", "b", ""}},
		{"LF CR is two", "a\n\r", []string{"a", ""}},
		{"DEL", "statx\x7fus\r", []string{"status"}},
		{"BS", "statx\x08us\r", []string{"status"}},
		{"backspace on empty", "\x7f\x7fid\r", []string{"id"}},
		{"NUL ignored", "sta\x00tus\x00\r", []string{"status"}},
		{"high bytes ignored", "\xff\xfei\xc3\xa9d\r", []string{"id"}},
		{"control bytes ignored", "i\x01\x02\x1ad\x7f\x7fid\r", []string{"id"}},
		{"tab is a space", "att\tlast\r", []string{"att last"}},
		{"CSI arrow", "\x1b[Astatus\r", []string{"status"}},
		{"CSI with params", "sta\x1b[1;5Ctus\r", []string{"status"}},
		{"bracketed paste markers", "\x1b[200~id\x1b[201~\r", []string{"id"}},
		{"SS3 function key", "\x1bOPid\r", []string{"id"}},
		{"two-byte escape", "\x1bcid\r", []string{"id"}},
		{"long CSI stays one sequence", "\x1b[" + strings.Repeat("1;", 500) + "mid\r", []string{"id"}},
		{"CR ends a broken CSI", "\x1b[12\rid\r", []string{"", "id"}},
		{"ESC ESC", "\x1b\x1b[Bid\r", []string{"id"}},
		{"too long", long + "\rid\r", []string{"!long", "id"}},
		{"exactly the limit", strings.Repeat("b", 256) + "\r", []string{strings.Repeat("b", 256)}},
		{"one over the limit", strings.Repeat("b", 257) + "\r", []string{"!long"}},
		{"backspace after overflow keeps it too long", long + "\x7f\x7f\r", []string{"!long"}},
		{"^C cancels", "reboot\x03id\r", []string{"!cancel", "id"}},
		{"^C clears an overflow", long + "\x03id\r", []string{"!cancel", "id"}},
		{"^U erases", "reboot\x15id\r", []string{"id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := feedAll(newEditor(256), tc.in)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("lines %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEditorEcho(t *testing.T) {
	e := newEditor(4)
	feedAll(e, "ab\x7fc\x1b[Adefg")
	if got, want := string(e.Echo()), "ab\b \bcde\a"; got != want {
		t.Errorf("echo %q, want %q (no echo of escapes, one bell at the limit)", got, want)
	}
	feedAll(e, "\r")
	if got := string(e.Echo()); got != "\r\n" {
		t.Errorf("echo of CR %q, want CRLF", got)
	}
}

// FuzzLine feeds arbitrary bytes to a whole session (editor, parser,
// commands) with a service key configured. Nothing may panic, a line never
// outgrows the limit, the output holds no byte that could drive a terminal,
// and the device key signs nothing but the selftest message.
func FuzzLine(f *testing.F) {
	for _, s := range []string{
		"status\r", "help\r\nhelp att\r\n", "att show 3\r", "att show 99999999999999999999\r",
		"unlock\r", "unlock 0x" + strings.Repeat("ab", 65) + "\r", "unlock zz\r", "selftest\r",
		"log 5\rlog -1\r", "\x1b[A\x1b[1;5C\x1bOP\r", "\x00\x00\xff\x7f\x08\x03\x15\r",
		strings.Repeat("x", 300) + "\r", "upload now\rreopen can can0\rflush\r", "ATT LAST\r",
		"config\rprofile\rid\rlock\rexit\r",
	} {
		f.Add([]byte(s))
	}
	dev := newKey(f, "device.key")
	svc := newKey(f, "service.key")
	ob := &memOutbox{}
	ob.fill(f, dev, 3, 1, "reason \x1b]0;pwned\x07")
	rec := &recordingSigner{Signer: dev}
	sh, err := New(Config{ServiceKey: hexPub(svc)}, Deps{
		Device: dev.Address(), ChainID: testChainID, Outbox: ob, Key: rec,
		Status: func() Status {
			return Status{Buses: []BusStatus{{Name: "can\x1b[31m0", State: "up"}},
				Outbox: OutboxStatus{LastNack: store.Nack{Seq: 3, Reason: ob.recs[3].NackReason}}}
		},
		ConfigText:  func() string { return "a = \"\x1b[2J\"" },
		ProfileText: func() string { return "p\x9bq" },
		Logs:        NewLogRing(4),
		UploadNow:   func() {},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ss := &session{sh: sh, out: newOutQueue(1 << 22), ed: newEditor(sh.cfg.MaxLine)}
		ss.input(in)
		if len(ss.ed.buf) > sh.cfg.MaxLine {
			t.Fatalf("line buffer %d bytes, limit %d", len(ss.ed.buf), sh.cfg.MaxLine)
		}
		out := ss.out.take(nil)
		for i, c := range out {
			if !(c >= 0x20 && c < 0x7f) && c != '\r' && c != '\n' && c != '\b' && c != bell {
				t.Fatalf("output byte %#x at %d: %q", c, i, tail(string(out[:i+1]), 80))
			}
		}
		if bytes.Contains(out, []byte("service mode unlocked")) {
			t.Fatalf("random input unlocked service mode: %q", out)
		}
		rec.check(t, dev.Address())
	})
}

// BenchmarkInput measures how fast a session consumes line noise (random
// bytes: edits, escapes, unknown commands and their answers). A serial line
// at 115200 baud carries about 11.5 KB/s.
func BenchmarkInput(b *testing.B) {
	sh, err := New(Config{}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(i*7919 + i>>3)
	}
	ss := &session{sh: sh, out: newOutQueue(1 << 20), ed: newEditor(sh.cfg.MaxLine)}
	var drain []byte
	b.SetBytes(int64(len(junk)))
	for b.Loop() {
		ss.input(junk)
		drain = ss.out.take(drain)
	}
}
