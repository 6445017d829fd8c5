# tboxd_0.1.0.bb: the CSOP T-Box mileage agent for a Yocto/OpenEmbedded image.
#
# Written and documented; not built in this repository's CI (no Yocto
# build host here). Put it in a layer (recipes-connectivity/tboxd/), with
# meta-oe for the `go` class variables below; it follows oe-core's go.bbclass
# (go-mod), which builds with the module cache fetched by the gomod:// SRC_URI
# entries (generate them with `bitbake -c update_gomod tboxd` or
# oe-go-mod-autogen.py), so that do_compile needs no network.
#
# Image integration:
#   IMAGE_INSTALL:append = " tboxd"
#   # with a TPM: the kernel's tpm_tis driver and /dev/tpmrm0 (meta-security's
#   # packagegroup-security-tpm2 for the tss group and tpm2-tools if wanted).
# Provision per device: /etc/tbox/profile.toml, the device key
# (tboxctl keygen --tpm --key /etc/tbox/device.sealed on the device, so
# the key never exists off it), the [mqtt] section; then
# `tboxd --config /etc/tbox/tboxd.toml --check-config`.

SUMMARY = "CSOP T-Box mileage agent: signed CAN odometer attestations over MQTT"
HOMEPAGE = "https://github.com/csop/tbox"
SECTION = "net"
# Set to the project's licence and its checksum before use.
LICENSE = "CLOSED"

SRC_URI = "git://github.com/csop/tbox.git;protocol=https;branch=main;destsuffix=${GO_SRCURI_DESTSUFFIX}"
SRCREV = "${AUTOREV}"
PV = "0.1.0+git"

GO_IMPORT = "github.com/csop/tbox"
GO_INSTALL = "${GO_IMPORT}/cmd/tboxd ${GO_IMPORT}/cmd/tboxctl"
# Static, stripped, no cgo, with the TPM backend (-tags tpm), as `make
# package` builds them: without the tag, key = "tpm:..." and `tboxctl
# keygen --tpm` only say that the binary was built without TPM support.
# Drop "-tags tpm" for a T-Box without a TPM (saves ~450 KiB).
CGO_ENABLED = "0"
GO_LINKSHARED = ""
GOBUILDFLAGS:append = " -trimpath -tags tpm"
GO_EXTRA_LDFLAGS = "-s -w -X main.version=${PV}"

inherit go-mod systemd update-rc.d useradd

# The dedicated user. To reach /dev/tpmrm0 it must be in the TPM's group
# (tss, from meta-security's tpm2-tss and its udev rule); with that layer,
# add: GROUPMEMS_PARAM:${PN} = "-a tboxd -g tss" (and RDEPENDS on it).
# systemd gives tboxd the user's groups (initgroups): the unit names none.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir /var/lib/tboxd --no-create-home --shell /sbin/nologin --user-group tboxd"

SYSTEMD_SERVICE:${PN} = "tboxd.service"
SYSTEMD_AUTO_ENABLE = "enable"
INITSCRIPT_NAME = "tboxd"
INITSCRIPT_PARAMS = "defaults 90 10"

do_install:append() {
    install -d ${D}${sysconfdir}/tbox ${D}${localstatedir}/lib/tboxd
    install -m 0640 ${S}/src/${GO_IMPORT}/cmd/tboxd/deploy/etc/tboxd.toml ${D}${sysconfdir}/tbox/tboxd.toml
    chown root:tboxd ${D}${sysconfdir}/tbox ${D}${sysconfdir}/tbox/tboxd.toml
    chmod 0750 ${D}${sysconfdir}/tbox
    chown tboxd:tboxd ${D}${localstatedir}/lib/tboxd
    chmod 0700 ${D}${localstatedir}/lib/tboxd
    install -d ${D}${datadir}/doc/tboxd
    install -m 0644 ${S}/src/${GO_IMPORT}/cmd/tboxd/tboxd.example.toml ${D}${datadir}/doc/tboxd/
    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        install -m 0644 ${S}/src/${GO_IMPORT}/cmd/tboxd/deploy/systemd/tboxd.service ${D}${systemd_system_unitdir}/
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -d ${D}${sysconfdir}/init.d
        install -m 0755 ${S}/src/${GO_IMPORT}/cmd/tboxd/deploy/sysvinit/tboxd ${D}${sysconfdir}/init.d/tboxd
    fi
}

FILES:${PN} += "${sysconfdir}/tbox ${localstatedir}/lib/tboxd ${datadir}/doc/tboxd"
CONFFILES:${PN} = "${sysconfdir}/tbox/tboxd.toml"
# The binaries are static Go: no QA for their missing GNU_HASH.
INSANE_SKIP:${PN} += "ldflags already-stripped"
