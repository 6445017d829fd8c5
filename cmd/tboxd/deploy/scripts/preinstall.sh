#!/bin/sh
# The dedicated system user tboxd, on Debian (adduser/useradd) or busybox.
set -e
if ! id tboxd >/dev/null 2>&1; then
	if command -v useradd >/dev/null 2>&1; then
		useradd --system --home-dir /var/lib/tboxd --no-create-home --shell /usr/sbin/nologin --user-group tboxd
	elif command -v adduser >/dev/null 2>&1; then
		addgroup -S tboxd 2>/dev/null || true
		adduser -S -D -H -h /var/lib/tboxd -s /bin/false -G tboxd tboxd
	else
		echo "tboxd: no useradd nor adduser: create the user tboxd by hand" >&2
	fi
fi
# The TPM's group and the serial ports' group, where they exist.
for g in tss dialout; do
	if getent group "$g" >/dev/null 2>&1 || grep -q "^$g:" /etc/group 2>/dev/null; then
		if command -v usermod >/dev/null 2>&1; then usermod -a -G "$g" tboxd || true
		elif command -v addgroup >/dev/null 2>&1; then addgroup tboxd "$g" 2>/dev/null || true; fi
	fi
done
exit 0
