package profile_test

import (
	"fmt"
	"log"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
)

func Example() {
	p, err := profile.Load("testdata/ev.toml")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("receive:", p.Filter("").Keys())

	// CLU_Odometer carries the odometer big-endian in 0.01 km:
	// 0x0012D687 = 1234567 -> 12345.67 km.
	f := can.Frame{ID: 0x541, Len: 8, Bus: "can0"}
	copy(f.Data[:], []byte{0x00, 0x12, 0xD6, 0x87})
	sport, _ := p.ModeValue("SPORT")
	m, err := p.Encode(profile.DriveMode, float64(sport))
	if err != nil {
		log.Fatal(err)
	}

	d := p.NewDecoder()
	var buf []profile.Reading
	buf = d.Decode(&f, buf[:0])
	buf = d.Decode(&m, buf)
	for _, r := range buf {
		if r.Kind == profile.DriveMode {
			fmt.Println(r.Kind, r.Value, r.Mode)
		} else {
			fmt.Printf("%v %.0f m\n", r.Kind, r.Value)
		}
	}
	// Output:
	// receive: [220 541 542]
	// odometer 12345670 m
	// drive_mode 2 SPORT
}
