#!/bin/sh
# /init of the emulated T-Box (busybox sh). Written into the initramfs by
# hil.Kit.Start; /etc/hil/env holds the boot's configuration.
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
. /etc/hil/env

fail() { echo "HIL-ERROR $*"; echo "HIL-EXIT 125"; sync; poweroff -f; }

for m in $HIL_MODULES; do
	insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

# The clock: the host's time at boot, from the kernel command line.
for a in $(cat /proc/cmdline); do
	case $a in hil.time=*) date -s "@${a#hil.time=}" >/dev/null || fail "date";; esac
done

ip link set lo up
ip link add dev vcan0 type vcan || fail "ip link add vcan0"
ip link set vcan0 up || fail "ip link set vcan0 up"
# Real CAN controllers (Options.Kvaser): the bit rate and restart-ms over
# rtnetlink, which busybox ip cannot set, then up.
for i in $HIL_CAN; do
	tboxctl link --iface "$i" --bitrate "$HIL_BITRATE" --restart-ms "$HIL_RESTART_MS" || fail "tboxctl link $i"
done

if [ "$HIL_NET" = 1 ]; then
	ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 || fail "eth0"
fi
if [ "$HIL_DISK" = 1 ]; then
	mkdir -p /data && mount -t ext4 /dev/vda /data || fail "mount /dev/vda /data"
fi

echo "HIL-READY $(cut -d' ' -f1 /proc/uptime)"
cd /root
sh /etc/hil/script.sh
rc=$?
sync
[ "$HIL_DISK" = 1 ] && umount /data
echo "HIL-EXIT $rc"
poweroff -f
