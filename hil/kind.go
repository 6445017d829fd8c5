package hil

// A Machine is a kind of emulated T-Box that a scenario can run on: the
// guest, the binaries it runs, and which interface the car writes to and
// which the agent reads. A scenario written against a Machine runs on each.
type Machine struct {
	Name   string // for test names: "armhf-vcan", "arm64-kvaser"
	Arch   string // Options.Arch
	GOARCH string // the agent's binaries for this guest: "arm" (GOARM=7) or "arm64"
	Kvaser int    // Options.Kvaser
	// Vehicle is the interface the car's side (vsim, cansend, an ECU)
	// writes to; TBox the one tboxd reads. On vcan they are one bus; on
	// the Kvaser machine two controllers on one qemu can-bus, so every
	// frame crosses the sja1000 driver twice.
	Vehicle string
	TBox    string
}

// The machines.
var (
	// VCAN is the 32-bit ARM T-Box (Cortex-A15, armmp-lpae kernel) on
	// kernel vcan: no bit rate, no error states.
	VCAN = Machine{Name: "armhf-vcan", Arch: ArchARMHF, GOARCH: "arm", Vehicle: "vcan0", TBox: "vcan0"}
	// Kvaser is the arm64 T-Box (Cortex-A57, arm64 kernel) with two qemu
	// kvaser_pci cards on one qemu can-bus: the car on can0, tboxd on can1,
	// both at DefaultBitrate on the kernel's sja1000 driver.
	Kvaser = Machine{Name: "arm64-kvaser", Arch: ArchARM64, GOARCH: "arm64", Kvaser: 2, Vehicle: "can0", TBox: "can1"}
)

// Options returns o set up for the machine (Arch, Kvaser).
func (m Machine) Options(o Options) Options {
	o.Arch, o.Kvaser = m.Arch, m.Kvaser
	return o
}
