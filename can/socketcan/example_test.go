package socketcan_test

import (
	"errors"
	"fmt"
	"log"
	"net"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/socketcan"
)

func ExampleOpen() {
	allow := can.NewFilter(can.Key{ID: 0x3E8}, can.Key{ID: 0x18FEF100, Extended: true})
	conn, err := socketcan.Open("can0", socketcan.WithFilter(allow))
	if err != nil {
		log.Fatal(err) // "socketcan can0: open: no such network interface"
	}
	go func() {
		for e := range conn.Events() {
			if e.Kind == socketcan.Down {
				log.Printf("gap: %v", e) // frames are missed until Up
			}
		}
	}()
	for conn.Receive() {
		f := conn.Frame()
		fmt.Println(f.Time, f.ID, f.Payload())
	}
	if err := conn.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
	fmt.Println("dropped by the kernel:", conn.Stats().Dropped)
}

func ExampleErrorEvents() {
	f := can.Frame{
		ID:    socketcan.ErrClassController | socketcan.ErrClassBusOff,
		Flags: can.ErrorFrame,
		Len:   8,
		Bus:   "can0",
	}
	f.Data[1] = socketcan.CtrlTxPassive
	for _, e := range socketcan.ErrorEvents(&f) {
		fmt.Println(e.Kind)
	}
	// Output:
	// error-passive
	// bus-off
}
