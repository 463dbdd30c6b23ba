SUMMARY = "Crossline branch appliance daemon"
DESCRIPTION = "crossline-appliance drives the branch's GSM/LTE modems, analog \
               lines and ALSA audio, keeps the local event log and syncs it \
               with mgmt over MQTT. Built with oe-core's cargo class from the \
               Crossline workspace this layer lives in (Cargo.lock, --frozen)."
HOMEPAGE = "https://example.invalid/crossline"
BUGTRACKER = "https://example.invalid/crossline/issues"
SECTION = "net"
# The workspace's `license` line (Cargo.toml): scripts/yocto-check verifies it.
LICENSE = "AGPL-3.0-or-later"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=30;endline=30;md5=c7953a78dbc0a0651b1cb8b96d902796"
CVE_PRODUCT = "crossline"

# alsa-sys links alsa-lib (the `alsa` feature of crossline-audio).
DEPENDS = "alsa-lib"

# crate:// entries for every crates.io package of Cargo.lock
# (scripts/yocto-crates writes it; scripts/yocto-check checks it).
require ${BPN}-crates.inc

SRC_URI += "file://crossline-appliance.service \
            file://crossline-appliance.tmpfiles \
            file://61-crossline-modems.rules \
            "

# The source is the Crossline checkout holding this layer
# (yocto/meta-crossline/recipes-crossline/crossline-appliance/../../../..):
# the workspace root with its Cargo.lock. The crate:// and file:// entries
# above are still fetched and checked.
CROSSLINE_SRCDIR ??= "${@os.path.normpath(os.path.join(d.getVar('FILE_DIRNAME'), '../../../..'))}"

inherit externalsrc cargo pkgconfig systemd useradd

EXTERNALSRC = "${CROSSLINE_SRCDIR}"
EXTERNALSRC_BUILD = "${WORKDIR}/build"

# Only the appliance's binary, from the workspace manifest.
CARGO_BUILD_FLAGS += "-p crossline-appliance --bin crossline-appliance"

# FXO lines on the Raspberry Pi's GPIO need crossline-line's `rpi` feature
# (rpi: meta-raspberrypi's machine override).
PACKAGECONFIG ??= ""
PACKAGECONFIG:rpi ??= "gpio"
PACKAGECONFIG[gpio] = "--features crossline-line/rpi,,"

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system crossline; --system gpio"
USERADD_PARAM:${PN} = "--system --gid crossline --home-dir /data/crossline --no-create-home --shell /sbin/nologin crossline"

SYSTEMD_SERVICE:${PN} = "crossline-appliance.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/crossline-appliance.service ${D}${systemd_system_unitdir}/
    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${UNPACKDIR}/crossline-appliance.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/crossline-appliance.conf
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${UNPACKDIR}/61-crossline-modems.rules ${D}${nonarch_base_libdir}/udev/rules.d/
}

FILES:${PN} += "${systemd_system_unitdir}/crossline-appliance.service \
                ${nonarch_libdir}/tmpfiles.d/crossline-appliance.conf \
                ${nonarch_base_libdir}/udev/rules.d/61-crossline-modems.rules \
                "

# The configuration, mgmt's CA and the bootstrap token are
# crossline-appliance-conf's (the integrator's settings); crossline-image
# installs both.
