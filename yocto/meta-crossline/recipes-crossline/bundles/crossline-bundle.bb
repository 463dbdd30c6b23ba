# nooelint: oelint.file.underscores,oelint.var.mandatoryvar.SRC_URI
# (a bundle has no version of its own and fetches nothing: its one image is crossline-image)
SUMMARY = "Crossline appliance update bundle (RAUC, verity)"
DESCRIPTION = "crossline-image's root file system as a signed RAUC bundle \
               (.raucb) for the A/B update: what mgmt stores and rolls out."
HOMEPAGE = "https://example.invalid/crossline"
BUGTRACKER = "https://example.invalid/crossline/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "crossline"

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "${CROSSLINE_RAUC_COMPATIBLE}"
# The crossline distro's version: the workspace's (conf/distro/crossline.conf).
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "Crossline appliance for ${MACHINE}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "crossline-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signed with scripts/yocto-dev-keys' development key unless the product sets
# CROSSLINE_RAUC_KEYS to the directory of its own (conf/distro/crossline.conf).
CROSSLINE_RAUC_KEYS ??= "${@os.path.normpath(os.path.join(d.getVar('FILE_DIRNAME'), '../../../keys'))}"
CROSSLINE_RAUC_COMPATIBLE ??= "crossline-${MACHINE}"
RAUC_KEY_FILE = "${CROSSLINE_RAUC_KEYS}/development-1.key.pem"
RAUC_CERT_FILE = "${CROSSLINE_RAUC_KEYS}/development-1.cert.pem"
RAUC_KEYRING_FILE = "${CROSSLINE_RAUC_KEYS}/ca.cert.pem"

# Refuse to build without the keys: skip with the reason.
# nooelint: oelint.task.noanonpython
python () {
    import os
    for var in ('RAUC_KEY_FILE', 'RAUC_CERT_FILE', 'RAUC_KEYRING_FILE'):
        path = d.getVar(var)
        if not os.path.isfile(path):
            raise bb.parse.SkipRecipe("%s: no file %s: run scripts/yocto-dev-keys, or set CROSSLINE_RAUC_KEYS to your keys' directory (yocto/README.md)" % (var, path))
}
