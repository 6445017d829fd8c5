package can_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/csop/tbox/can"
)

func ExampleReader() {
	log := `(1700000000.000100) can0 1A3#0011223344556677
(1700000000.000200) can0 5A1#DEADBEEF
(1700000000.000300) can0 18FEF100#0102
(1700000000.000400) can0 1A3#R
(1700000000.000500) can0 1A3#8899
`
	filter := can.NewFilter(can.Key{ID: 0x1A3}, can.Key{ID: 0x18FEF100, Extended: true})
	r := can.NewReader(strings.NewReader(log), can.WithFilter(filter))
	for r.Receive() {
		f := r.Frame()
		fmt.Printf("line %d: %d.%06d %s %s % X\n", r.Line(), f.Time.Unix(), f.Time.Nanosecond()/1000,
			f.Bus, can.KeyOf(f), f.Payload())
	}
	if err := r.Err(); err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// line 1: 1700000000.000100 can0 1A3 00 11 22 33 44 55 66 77
	// line 3: 1700000000.000300 can0 18FEF100 01 02
	// line 5: 1700000000.000500 can0 1A3 88 99
}

func ExampleReader_error() {
	log := "(1700000000.000100) can0 1A3#0011\n(1700000000.000200) can0 1A3#00112\n"
	r := can.NewReader(strings.NewReader(log))
	for r.Receive() {
	}
	fmt.Println(r.Err())
	// Output:
	// line 2: candump syntax: data: want an even number of hex digits, found "00112"
}

func ExampleWriter() {
	w := can.NewWriter(os.Stdout)
	f := can.Frame{Time: time.Unix(1700000000, 123456789), Bus: "can0", ID: 0x123, Flags: can.FD | can.BRS, Len: 3}
	copy(f.Data[:], []byte{0x00, 0x11, 0x22})
	if err := w.Write(&f); err != nil {
		fmt.Println(err)
	}
	if err := w.Flush(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// (1700000000.123456) can0 123##1001122
}
