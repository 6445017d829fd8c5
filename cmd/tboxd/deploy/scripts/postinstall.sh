#!/bin/sh
# Owners of the state and configuration directories; enable the service.
# It is started (or restarted on an upgrade) only when the configuration
# checks out: a fresh install needs the device provisioned first.
set -e
if id tboxd >/dev/null 2>&1; then
	chown tboxd:tboxd /var/lib/tboxd && chmod 700 /var/lib/tboxd
	chown root:tboxd /etc/tbox /etc/tbox/tboxd.toml 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl enable tboxd.service || true
	if /usr/bin/tboxd --config /etc/tbox/tboxd.toml --check-config >/dev/null 2>&1; then
		systemctl restart tboxd.service || true
	else
		echo "tboxd: provision /etc/tbox (see /etc/tbox/tboxd.toml), then: systemctl start tboxd" >&2
	fi
elif [ -x /etc/init.d/tboxd ]; then
	if command -v update-rc.d >/dev/null 2>&1; then update-rc.d tboxd defaults >/dev/null || true; fi
	if /usr/bin/tboxd --config /etc/tbox/tboxd.toml --check-config >/dev/null 2>&1; then
		/etc/init.d/tboxd restart || true
	fi
fi
exit 0
