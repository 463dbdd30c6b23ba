SUMMARY = "Crossline branch appliance image"
DESCRIPTION = "A small systemd image running crossline-appliance, updated \
               A/B by RAUC with signed verity bundles (crossline-bundle). No \
               compilers, debuggers, package manager or login over the \
               network."
HOMEPAGE = "https://example.invalid/crossline"
BUGTRACKER = "https://example.invalid/crossline/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "crossline"

inherit core-image

# Nothing of debug-tweaks, tools-debug, tools-sdk, dev-pkgs, package-management.
IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""

# core-image-base's two package groups, then the appliance.
IMAGE_INSTALL = "packagegroup-core-boot \
                 packagegroup-base-extended \
                 ${CORE_IMAGE_EXTRA_INSTALL} \
                 crossline-appliance \
                 crossline-appliance-conf \
                 rauc \
                 alsa-utils \
                 kernel-image \
                 kernel-modules \
                 "

# The RAUC slots hold whole root file systems (the kernel included): ext4 for
# crossline-bundle, wic for the first flash.
IMAGE_FSTYPES = "ext4 wic.bz2 wic.bmap"
IMAGE_FSTYPES:qemux86-64 = "ext4 wic"

# A/B layouts: boot, rootfs A, rootfs B, data (+ meta-rauc-community's parts).
WKS_FILE:rpi = "crossline-rpi-dual.wks.in"
WKS_FILE:qemux86-64 = "qemux86-grub-efi.wks"
do_image_wic[depends] += "${@'boot-image:do_deploy' if d.getVar('MACHINE') == 'qemux86-64' else ''}"

# Block-hash-index friendly ext4 (RAUC adaptive updates): 4 KiB aligned, 4 KiB
# blocks, a fixed directory hash seed.
IMAGE_ROOTFS_ALIGNMENT = "4"
# (ext4: the image type override image.bbclass sets)
# nooelint: oelint.vars.specific
EXTRA_IMAGECMD:ext4 = "-i 4096 -b 4096 -E hash_seed=3f9c5a1e-6b8d-4c2f-9e71-0a5d2b8c4e17"

# The crossline distro (systemd, rauc) or one like it.
REQUIRED_DISTRO_FEATURES = "systemd rauc"
inherit features_check
