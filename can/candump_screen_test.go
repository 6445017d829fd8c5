package can

import (
	"errors"
	"strings"
	"testing"
)

// TestReaderScreenForms: candump's screen output with absolute timestamps
// (candump -ta, with -x, -a, -e) reads as the same frames as candump -l.
// The lines are as can-utils' lib.c formats them; candump.c prints a blank
// before the timestamp, and each case is read with it and without.
func TestReaderScreenForms(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Frame
	}{
		{"-ta standard", "(1700000000.123456)  can0  1A3   [8]  00 11 22 33 44 55 66 77",
			Frame{Time: ts, Bus: "can0", ID: 0x1A3, Len: 8, Data: data(0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77)}},
		{"-ta no data", "(1700000000.123456)  can0  7FF   [0] ",
			Frame{Time: ts, Bus: "can0", ID: 0x7FF}},
		{"-ta extended", "(1700000000.123456)  can0  18FEF100   [2]  01 02",
			Frame{Time: ts, Bus: "can0", ID: 0x18FEF100, Flags: Extended, Len: 2, Data: data(1, 2)}},
		{"-ta remote", "(1700000000.123456)  can0  123   [5]  remote request",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: Remote, Len: 5}},
		{"-ta FD", "(1700000000.123456)  can0  123  [12]  00 11 22 33 44 55 66 77 88 99 AA BB",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD, Len: 12, Data: data(0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB)}},
		{"-ta FD of 2 bytes", "(1700000000.123456)  can0  123  [02]  01 02",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Flags: FD, Len: 2, Data: data(1, 2)}},
		{"-ta -x received", "(1700000000.123456)  can0  RX - -  123   [1]  AB",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 1, Data: data(0xAB)}},
		{"-ta -x FD with BRS", "(1700000000.123456)  can1  TX B -  123  [01]  AB",
			Frame{Time: ts, Bus: "can1", ID: 0x123, Flags: FD | BRS, Len: 1, Data: data(0xAB)}},
		{"-ta -a ascii", "(1700000000.123456)  can0  123   [2]  41 42                     'AB'",
			Frame{Time: ts, Bus: "can0", ID: 0x123, Len: 2, Data: data(0x41, 0x42)}},
		{"-ta error frame", "(1700000000.123456)  can0  20000004   [8]  00 04 00 00 00 00 00 00   ERRORFRAME",
			Frame{Time: ts, Bus: "can0", ID: 4, Flags: ErrorFrame, Len: 8, Data: data(0, 4)}},
	} {
		for _, lead := range []string{"", " "} {
			t.Run(tc.name+map[string]string{"": "", " ": " as candump prints it"}[lead], func(t *testing.T) {
				got, err := readAll(t, lead+tc.line+"\n")
				if err != nil {
					t.Fatalf("Err() = %v", err)
				}
				if len(got) != 1 || !sameFrame(&got[0], &tc.want) {
					t.Fatalf("read %+v, want %+v", got, tc.want)
				}
			})
		}
	}
}

// TestReaderErrorFrameDetails: candump -e writes the decoded error frame on
// tab-indented lines below it; they are skipped, not errors.
func TestReaderErrorFrameDetails(t *testing.T) {
	log := "(1700000000.000001)  can0  20000004   [8]  00 04 00 00 00 00 00 00   ERRORFRAME\n" +
		"\tcontroller-problem{rx-error-warning}\n" +
		"(1700000000.000002)  can0  123   [1]  01\n"
	got, err := readAll(t, log)
	if err != nil || len(got) != 2 || got[1].ID != 0x123 {
		t.Fatalf("read %v, err %v; want the error frame and 123", got, err)
	}
	// A tab-indented line anywhere else is not candump's.
	if _, err := readAll(t, "\tcontroller-problem\n"); !errors.Is(err, ErrSyntax) {
		t.Errorf("a stray indented line: %v, want ErrSyntax", err)
	}
}

// TestReaderNoTimestamps: output that has no absolute time to replay by is
// refused with the flag to record with.
func TestReaderNoTimestamps(t *testing.T) {
	for _, tc := range []struct{ name, line, flag string }{
		{"plain candump", "  can0  123   [8]  00 11 22 33 44 55 66 77", "plain candump"},
		{"plain candump -x", "  can0  RX - -  123   [1]  00", "plain candump"},
		{"-td delta", "(000.002310)  can0  123   [1]  00", "-td"},
		{"-tz zero", "(012.000100)  can0  123   [1]  00", "-tz"},
		{"-tA date", "(2023-11-14 22:13:20.123456)  can0  123   [1]  00", "-tA"},
		// As candump prints them, with a blank before the timestamp.
		{"-td delta as printed", " (000.002310)  can0  123   [1]  00", "-td"},
		{"-tA date as printed", " (2023-11-14 22:13:20.123456)  can0  123   [1]  00", "-tA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(t, tc.line+"\n")
			if !errors.Is(err, ErrNoTimestamp) {
				t.Fatalf("Err() = %v, want ErrNoTimestamp", err)
			}
			if !strings.Contains(err.Error(), "candump -l") || !strings.Contains(err.Error(), "candump -ta") {
				t.Errorf("%q does not say how to record", err)
			}
			if !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("%q does not name what was found (%s)", err, tc.flag)
			}
		})
	}
}

// TestReaderScreenMalformed: screen lines that candump cannot have written.
func TestReaderScreenMalformed(t *testing.T) {
	const pre = "(1700000000.123456)  can0  "
	for _, tc := range []struct{ name, line string }{
		{"no length", pre + "123  00 11"},
		{"too few bytes", pre + "123   [3]  00 11"},
		{"too many bytes", pre + "123   [1]  00 11"},
		{"classic 9", pre + "123   [9]  00 11 22 33 44 55 66 77 88"},
		{"FD length 9", pre + "123  [09]  00 11 22 33 44 55 66 77 88"},
		{"bad id", pre + "12G   [0] "},
		{"id 4 digits", pre + "1234   [0] "},
		{"binary view", pre + "123   [1]  00000001"},
		{"bad -x flags", pre + "RX X -  123   [0] "},
		{"trailing junk", pre + "123   [1]  00   junk"},
		{"ERRORFRAME on a data frame", pre + "123   [1]  00   ERRORFRAME"},
		{"remote FD", pre + "123  [08]  remote request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readAll(t, tc.line+"\n"); !errors.Is(err, ErrSyntax) {
				t.Fatalf("Err() = %v, want ErrSyntax", err)
			}
		})
	}
}

// TestReaderTruncatedLastLine: a log cut mid-line (candump killed) delivers
// every frame before the cut, then ErrTruncated, which callers may treat as
// a warning; a damaged line in the middle stays a plain error.
func TestReaderTruncatedLastLine(t *testing.T) {
	log := "(1700000000.000001) can0 001#01\n(1700000000.000002) can0 002#02\n(1700000000.00"
	got, err := readAll(t, log)
	if len(got) != 2 {
		t.Errorf("read %d frames before the cut, want 2", len(got))
	}
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("Err() = %v, want ErrTruncated", err)
	}
	_, err = readAll(t, "(1700000000.00\n(1700000000.000002) can0 002#02\n")
	if errors.Is(err, ErrTruncated) || !errors.Is(err, ErrSyntax) {
		t.Errorf("a damaged first line: %v, want ErrSyntax and not ErrTruncated", err)
	}
}
