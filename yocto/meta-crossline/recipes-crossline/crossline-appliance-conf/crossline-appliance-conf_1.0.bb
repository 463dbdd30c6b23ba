SUMMARY = "Crossline appliance configuration, mgmt's CA and bootstrap token"
DESCRIPTION = "What ties an image to its mgmt: /etc/crossline/appliance.toml \
               (mgmt's URL), /etc/crossline/mgmt-ca.pem (the only CA the \
               appliance trusts) and /etc/crossline/bootstrap.token \
               (enrollment), all read-only. The integrator sets \
               CROSSLINE_MGMT_URL, CROSSLINE_MGMT_CA and \
               CROSSLINE_BOOTSTRAP_TOKEN; without them this recipe is skipped \
               with the reason, so crossline-image refuses to build."
HOMEPAGE = "https://example.invalid/crossline"
BUGTRACKER = "https://example.invalid/crossline/issues"
SECTION = "net"
CVE_PRODUCT = "crossline"
LICENSE = "AGPL-3.0-or-later"
# Nothing is fetched but the configuration file: the licence text is oe-core's.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/AGPL-3.0-or-later;md5=a4af3f9f0c0fc9de318e4df46665906e"

# mqtts://<mgmt>:8883
CROSSLINE_MGMT_URL ??= ""
# Absolute paths of the PEM file `crossline-mgmt tls ca` prints and of a file
# holding the token `crossline-mgmt enroll token` prints.
CROSSLINE_MGMT_CA ??= ""
CROSSLINE_BOOTSTRAP_TOKEN ??= ""

SRC_URI = "file://appliance.toml"

S = "${UNPACKDIR}"

inherit allarch useradd

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system crossline"

# Refuse to build without the integrator's settings: skip with the reason.
# nooelint: oelint.task.noanonpython
python () {
    import os
    url = d.getVar('CROSSLINE_MGMT_URL')
    if not url.startswith('mqtts://'):
        raise bb.parse.SkipRecipe("set CROSSLINE_MGMT_URL to mgmt's broker, mqtts://<mgmt>:8883 (yocto/README.md)")
    for var, what in (('CROSSLINE_MGMT_CA', "mgmt's CA (`crossline-mgmt tls ca > mgmt-ca.pem`)"),
                      ('CROSSLINE_BOOTSTRAP_TOKEN', "a file holding `crossline-mgmt enroll token`'s token")):
        path = d.getVar(var)
        if not path or not os.path.isabs(path) or not os.path.isfile(path):
            raise bb.parse.SkipRecipe("set %s to the absolute path of %s (yocto/README.md)" % (var, what))
    d.appendVarFlag('do_install', 'file-checksums', ' %s:True %s:True' % (d.getVar('CROSSLINE_MGMT_CA'), d.getVar('CROSSLINE_BOOTSTRAP_TOKEN')))
}

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${sysconfdir}/crossline
    sed -e 's|@CROSSLINE_MGMT_URL@|${CROSSLINE_MGMT_URL}|' ${UNPACKDIR}/appliance.toml > ${D}${sysconfdir}/crossline/appliance.toml
    chmod 0444 ${D}${sysconfdir}/crossline/appliance.toml
    if ! grep -q -- '-----BEGIN CERTIFICATE-----' ${CROSSLINE_MGMT_CA}; then
        bbfatal "CROSSLINE_MGMT_CA (${CROSSLINE_MGMT_CA}) holds no PEM certificate"
    fi
    install -m 0444 ${CROSSLINE_MGMT_CA} ${D}${sysconfdir}/crossline/mgmt-ca.pem
    install -m 0440 -g crossline ${CROSSLINE_BOOTSTRAP_TOKEN} ${D}${sysconfdir}/crossline/bootstrap.token
}

FILES:${PN} += "${sysconfdir}/crossline"
