// Package hil is the emulated T-Box: a 32-bit ARM guest with kernel vcan,
// booted in qemu, that runs cross-compiled binaries against real SocketCAN.
//
// # The guest
//
// The build machines' kernel has no CAN, so CAN code runs in a
// qemu-system-arm "virt" machine (Cortex-A15, TCG software emulation, never
// KVM) booting Debian's armmp-lpae kernel with an initramfs that is built
// for every boot:
//
//   - busybox (static, armhf) and its applet links;
//   - the kernel modules can, can-raw, can-isotp, can-dev, vcan, plus virtio_mmio and
//     the virtio net, console, block and ext4 modules when a boot asks for
//     the network, the serial port or a disk;
//   - the files of Options.Files (cross-compiled binaries, data), and with
//     Options.CanUtils the armhf can-utils with the libc they link against;
//   - an /init (guest/init.sh) that mounts proc, sys, devtmpfs and /tmp,
//     loads the modules, sets the clock from the kernel command line
//     (hil.time=<unix seconds>), creates vcan0 and brings it up, configures
//     eth0 and mounts /data when asked, prints "HIL-READY <uptime>", runs
//     Options.Script with sh, prints "HIL-EXIT <status>", syncs and powers
//     off.
//
// A boot to HIL-READY takes about 4 s on a 2-core machine; one boot runs
// many test cases.
//
// # The arm64 T-Box with real CAN controllers
//
// Options.Arch ArchARM64 boots qemu-system-aarch64 ("virt", Cortex-A57)
// with Debian's arm64 kernel and busybox instead; Options.Kvaser adds that
// many qemu kvaser_pci cards on one qemu can-bus, which the kernel's
// sja1000 and kvaser_pci drivers make can0, can1, ...; /init sets their bit
// rate and restart-ms (Options.Bitrate, Options.RestartMS) over rtnetlink
// with /bin/tboxctl link and brings them up, before HIL-READY. vcan0 is
// there too. A Machine (VCAN, Kvaser) names the guest, the binaries' GOARCH
// and which interface the car writes to and which tboxd reads, so that a
// scenario runs on either: TestKvaserDrive drives across the two
// controllers with the arm64 and the 32-bit binaries; TestKvaserBusDownUp
// takes tboxd's controller down and up mid-drive. qemu's SJA1000 models no
// ACK, no bit timing and no error counters, so no error state can be
// provoked there (README, "The arm64 T-Box").
//
// # The kit and its cache
//
// Prepare runs scripts/install.sh (embedded), which on a fresh Debian 12
// machine, as root, installs qemu-system-arm, busybox-static, cpio,
// e2fsprogs, socat, can-utils and mosquitto, adds the armhf architecture,
// and fetches with apt-get download busybox-static:armhf, the kernel that
// linux-image-armmp-lpae:armhf depends on, can-utils:armhf and
// libc6:armhf (and, for the arm64 guest, busybox-static:arm64 and the
// kernel of linux-image-arm64:arm64, into arm64/), unpacked with
// dpkg-deb -x into <repo>/.cache/hil (git
// ignored; HIL_CACHE overrides it). A failing apt-get update is retried once
// and then tolerated. With the cache complete Prepare takes milliseconds
// and needs no root. The script also runs standalone:
//
//	hil/scripts/install.sh [CACHE_DIR]
//
// # Running a scenario
//
//	kit, err := hil.Prepare(ctx)
//	bin := filepath.Join(dir, "tboxd")
//	err = hil.CrossBuild(ctx, "./cmd/tboxd", bin) // GOARCH=arm GOARM=7 CGO_ENABLED=0
//	res, err := kit.Boot(ctx, hil.Options{
//		Files:      map[string]string{"/bin/tboxd": bin},
//		Script:     "tboxd --config /etc/tbox.toml & sleep 30; kill %1",
//		BrokerPort: brokerPort, // the guest connects to hil.BrokerAddr
//		Disk:       img,        // hil.MakeDisk; mounted at /data
//		Timeout:    2 * time.Minute,
//	})
//	// res.ExitCode, res.Console, res.BootTime
//
// For a power cut, Start the guest, wait for a line with
// Running.WaitOutput, Kill it (SIGKILL to qemu), then Boot again on the same
// disk image or read it on the host with DiskFile.
//
// The guest reaches nothing but the broker (user networking with
// restrict=on). Options.Serial connects the guest's /dev/hvc0 to a unix
// socket on the host (qemu listens; set the guest side raw with
// "stty raw -echo" on an open descriptor).
//
// # Tests
//
// go test -count=1 -v ./hil/ cross-compiles the can/socketcan tests, runs
// them in one boot, and requires every vcan test to PASS there (a SKIP is a
// failure); the flood test prints its drop figures as a "HIL-METRIC" line.
// TestPowerCut replays a 16-hour drive with the ARM tboxctl into a state
// directory on the virtio disk and SIGKILLs qemu 21 times at seeded moments
// (during boot, mid-replay, as a batch's frames start, right after an
// attestation line), then checks the chain (no fork, contiguous, prev
// linked, verify clean) and that its meters equal the ground truth
// (HIL_POWERCUT_SEED changes the plan; about 2.5 minutes). TestVsimOnVCAN
// plays a drive with the ARM vsim --iface vcan0 --pace 20 and requires
// candump's capture to equal the host vsim's log frame for frame.
// TestShellOverSerial drives a diagnostic shell session from the host over
// the qemu serial port (/dev/hvc0) while the ARM tboxd attests the ARM
// vsim's drive on vcan0: id, status, att last (verified on the host),
// selftest, a challenge-response unlock signed with a service key that
// never enters the guest, and the service actions, among them a forced
// reopen of the CAN socket after which frames still arrive (about 15 s).
// The field scenarios judge tboxd from its outbox and logs:
// TestFieldOdometerAttacks (a rollback, a jump and a second device: the
// flags where README §C1 puts them, no distance credited twice),
// TestFieldOdometerGlitch (one 541#FFFFFFFFFFFFFFFF frame cansent mid-drive,
// issue 14: not credited, no ROLLBACK after it, the meters equal the truth),
// TestFieldBusOutage (vcan0 deleted and re-added mid-drive: the socket
// reopens by itself, GAP, no distance lost) and TestFieldFullBusLoad (cangen
// noise at the guest's highest rate: every profile frame counted, no drops;
// CPU and peak RSS against candump on the same traffic). The scenarios with
// the host broker and collector (a normal day, power cuts of a live drive,
// a week-long outage, biometric injection) are in hil/rig.
// The tests skip only when the machine cannot host the guest at all
// (ErrUnavailable: not Linux, or not root with the kit missing).
package hil
