#!/bin/sh
# install.sh prepares the emulated ARM T-Box on a Debian 12 machine (run as root).
#
#   hil/scripts/install.sh [CACHE_DIR]
#
# Host packages: qemu-system-arm, busybox-static, cpio, e2fsprogs, socat,
# can-utils, mosquitto, swtpm and swtpm-tools (the TPM-sealed key's tests),
# chromium (the collector status page's headless browser test) and
# postgresql (the collector's shared ledger tests start their own cluster
# with its initdb and pg_ctl).
# Guest files (armhf, from the Debian archive through
# apt-get download, unpacked with dpkg-deb -x): busybox-static, the armmp-lpae
# kernel with its modules, can-utils and the libc it links against. For the
# second emulated T-Box (arm64, qemu-system-aarch64 from the same
# qemu-system-arm package, qemu's kvaser_pci CAN cards and the kernel's
# sja1000 driver): busybox-static:arm64 and the kernel that
# linux-image-arm64:arm64 depends on, into debs-arm64/ and arm64/ (the ARM64_*
# keys of kit.env).
# CACHE_DIR defaults to <repo root>/.cache/hil. The script is idempotent: when
# the cache is complete it only checks and prints the kit (kit.env).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 1 ] && [ -n "$1" ]; then
	cache=$1
else
	root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
	cache=$root/.cache/hil
fi
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
kitenv=$cache/kit.env
log() { echo "hil-install: $*" >&2; }

# kit_ok reports whether kit.env exists and every path it names exists.
kit_ok() {
	[ -s "$kitenv" ] || return 1
	# shellcheck disable=SC1090
	( . "$kitenv"
	  for p in "$KERNEL" "$MODULES" "$BUSYBOX" "$CANUTILS" "$LIBDIR" \
		"${ARM64_KERNEL:-}" "${ARM64_MODULES:-}" "${ARM64_BUSYBOX:-}"; do [ -n "$p" ] && [ -e "$p" ] || exit 1; done
	  for b in qemu-system-arm qemu-system-aarch64 cpio gzip mkfs.ext4 debugfs socat candump mosquitto swtpm chromium; do
		command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || exit 1
	  done
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || exit 1 ) || return 1
}

if kit_ok; then
	cat "$kitenv"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || { log "must run as root to install packages (the kit in $cache is incomplete)"; exit 77; }
command -v apt-get >/dev/null 2>&1 || { log "apt-get not found: a Debian 12 machine is required"; exit 77; }
export DEBIAN_FRONTEND=noninteractive

updated=0
# apt_update refreshes the indexes once per run. One index failing (a mirror
# mid-sync) must not stop us: retry once, then go on with what resolves.
apt_update() {
	[ $updated -eq 0 ] || return 0
	updated=1
	apt-get update -q >&2 || { sleep 2; apt-get update -q >&2 || log "apt-get update failed twice; continuing with the indexes we have"; }
}

# Host packages.
missing=
for p in qemu-system-arm busybox-static cpio e2fsprogs socat can-utils mosquitto gzip swtpm swtpm-tools chromium postgresql; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	log "installing host packages:$missing"
	apt_update
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >&2
fi

# Guest architectures.
for arch in armhf arm64; do
	if ! dpkg --print-foreign-architectures | grep -qx $arch && [ "$(dpkg --print-architecture)" != $arch ]; then
		log "adding dpkg architecture $arch"
		dpkg --add-architecture $arch
		updated=0
		apt_update
	fi
done
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
for p in busybox-static:armhf busybox-static:arm64; do
	if [ -z "$(candidate $p)" ] || [ "$(candidate $p)" = "(none)" ]; then
		apt_update
	fi
done

# Resolve the kernel through the metapackage.
kpkg=$(apt-cache depends linux-image-armmp-lpae:armhf 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { log "cannot resolve linux-image-armmp-lpae:armhf (apt-cache depends found no linux-image-<version>)"; exit 1; }
kver=${kpkg#linux-image-}
kver=${kver%:armhf}
log "kernel package $kpkg (version $kver)"

debs=$cache/debs
mkdir -p "$debs"
for p in busybox-static:armhf "$kpkg" can-utils:armhf libc6:armhf; do
	name=${p%:armhf}
	if ls "$debs/${name}_"*_armhf.deb >/dev/null 2>&1; then
		continue
	fi
	log "downloading $p"
	(cd "$debs" && apt-get download -q "$p" >&2) || { apt_update; (cd "$debs" && apt-get download -q "$p" >&2); }
done

rootfs=$cache/armhf
if [ ! -e "$rootfs/.unpacked" ]; then
	rm -rf "$rootfs"
	mkdir -p "$rootfs"
	for d in "$debs"/*.deb; do
		log "unpacking $(basename "$d")"
		dpkg-deb -x "$d" "$rootfs"
	done
	touch "$rootfs/.unpacked"
fi

kernel=$rootfs/boot/vmlinuz-$kver
modules=$rootfs/lib/modules/$kver
busybox=$rootfs/bin/busybox
canutils=$rootfs/usr/bin
libdir=$rootfs/lib/arm-linux-gnueabihf
for p in "$kernel" "$modules" "$busybox" "$canutils/candump" "$libdir/libc.so.6" "$libdir/ld-linux-armhf.so.3"; do
	[ -e "$p" ] || { log "expected $p after unpacking, not found"; exit 1; }
done

# The arm64 guest: its own download and unpack directories, so that the
# armhf tree above never receives an arm64 package.
k64pkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$k64pkg" ] || { log "cannot resolve linux-image-arm64:arm64 (apt-cache depends found no linux-image-<version>)"; exit 1; }
k64ver=${k64pkg#linux-image-}
k64ver=${k64ver%:arm64}
log "arm64 kernel package $k64pkg (version $k64ver)"
debs64=$cache/debs-arm64
mkdir -p "$debs64"
for p in busybox-static:arm64 "$k64pkg"; do
	name=${p%:arm64}
	if ls "$debs64/${name}_"*_arm64.deb >/dev/null 2>&1; then
		continue
	fi
	log "downloading $p"
	(cd "$debs64" && apt-get download -q "$p" >&2) || { apt_update; (cd "$debs64" && apt-get download -q "$p" >&2); }
done
rootfs64=$cache/arm64
if [ ! -e "$rootfs64/.unpacked" ]; then
	rm -rf "$rootfs64"
	mkdir -p "$rootfs64"
	for d in "$debs64"/*.deb; do
		log "unpacking $(basename "$d")"
		dpkg-deb -x "$d" "$rootfs64"
	done
	touch "$rootfs64/.unpacked"
fi
for p in "$rootfs64/boot/vmlinuz-$k64ver" "$rootfs64/lib/modules/$k64ver" "$rootfs64/bin/busybox"; do
	[ -e "$p" ] || { log "expected $p after unpacking, not found"; exit 1; }
done

tmp=$kitenv.tmp
cat >"$tmp" <<KIT
KVER=$kver
KERNEL=$kernel
MODULES=$modules
BUSYBOX=$busybox
CANUTILS=$canutils
LIBDIR=$libdir
LOADER=$libdir/ld-linux-armhf.so.3
ARM64_KVER=$k64ver
ARM64_KERNEL=$rootfs64/boot/vmlinuz-$k64ver
ARM64_MODULES=$rootfs64/lib/modules/$k64ver
ARM64_BUSYBOX=$rootfs64/bin/busybox
KIT
mv "$tmp" "$kitenv"
kit_ok || { log "kit incomplete after install (a host tool is missing)"; exit 1; }
cat "$kitenv"
