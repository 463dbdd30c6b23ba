# With DISTRO = "crossline": meta-crossline's system.conf
# (files/<MACHINE>/system.conf) and keyring.
FILESEXTRAPATHS:prepend:crossline := "${THISDIR}/files:"

# The CA that signs crossline-bundle's signing certificate, installed as
# /usr/lib/rauc/ca.cert.pem: scripts/yocto-dev-keys' development CA unless a
# product points CROSSLINE_RAUC_KEYS at its own (conf/distro/crossline.conf).
RAUC_KEYRING_FILE:crossline = "${CROSSLINE_RAUC_KEYS}/ca.cert.pem"

# Without the keyring, skip the recipe with the reason (an image needing it
# then says why) instead of failing the whole parse on a missing file://.
# Acts only under the crossline distro, like everything in this bbappend.
# nooelint: oelint.task.noanonpython,oelint.vars.noncoreoverride
python () {
    import os
    if 'crossline' not in (d.getVar('OVERRIDES') or '').split(':'):
        return
    keyring = d.getVar('RAUC_KEYRING_FILE')
    if not os.path.isfile(keyring):
        raise bb.parse.SkipRecipe("no RAUC keyring at %s: run scripts/yocto-dev-keys, or set CROSSLINE_RAUC_KEYS to your keys' directory (yocto/README.md)" % keyring)
}

do_install:prepend:crossline() {
    sed -i -e 's|@CROSSLINE_RAUC_COMPATIBLE@|${CROSSLINE_RAUC_COMPATIBLE}|' ${UNPACKDIR}/system.conf
}
