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
# kernel with its modules, can-utils and the libc it links against.
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
	  for p in "$KERNEL" "$MODULES" "$BUSYBOX" "$CANUTILS" "$LIBDIR"; do [ -e "$p" ] || exit 1; done
	  for b in qemu-system-arm cpio gzip mkfs.ext4 debugfs socat candump mosquitto swtpm chromium; do
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

# Guest architecture.
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
	log "adding dpkg architecture armhf"
	dpkg --add-architecture armhf
	updated=0
	apt_update
fi
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }
if [ -z "$(candidate busybox-static:armhf)" ] || [ "$(candidate busybox-static:armhf)" = "(none)" ]; then
	apt_update
fi

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

tmp=$kitenv.tmp
cat >"$tmp" <<KIT
KVER=$kver
KERNEL=$kernel
MODULES=$modules
BUSYBOX=$busybox
CANUTILS=$canutils
LIBDIR=$libdir
LOADER=$libdir/ld-linux-armhf.so.3
KIT
mv "$tmp" "$kitenv"
kit_ok || { log "kit incomplete after install (a host tool is missing)"; exit 1; }
cat "$kitenv"
