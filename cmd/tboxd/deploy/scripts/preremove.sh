#!/bin/sh
# Stop the agent (it closes its open span and keeps its outbox) before
# its files go. The outbox in /var/lib/tboxd is never removed by the package.
set -e
if [ -d /run/systemd/system ]; then
	systemctl stop tboxd.service >/dev/null 2>&1 || true
	case "$1" in remove|purge|0) systemctl disable tboxd.service >/dev/null 2>&1 || true ;; esac
elif [ -x /etc/init.d/tboxd ]; then
	/etc/init.d/tboxd stop || true
fi
exit 0
