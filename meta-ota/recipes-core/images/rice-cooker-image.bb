SUMMARY = "Rice cooker image: a small A/B-updatable system with ota-agent"
DESCRIPTION = "Minimal image with the OTA agent, its configuration and trusted \
keys, and its services; built as the A/B disk (rice-cooker-image.wks.in) and as \
a signed update bundle (ota-bundle.bbclass)."
LICENSE = "MIT"

inherit core-image ota-bundle

# kernel-image: each slot carries its kernel in /boot (the boot script loads it from
# the slot it boots). ota-agent-config is machine-specific (OTA_DISK, OTA_HARDWARE),
# so the image installs it, not ota-agent's RDEPENDS (which would make the agent's
# signature machine-specific); <bootloader>-env carries /etc/fw_env.config.
IMAGE_INSTALL = "packagegroup-core-boot kernel-image ota-agent ota-agent-config \
    ${PREFERRED_PROVIDER_virtual/bootloader}-env ${CORE_IMAGE_EXTRA_INSTALL}"
IMAGE_LINGUAS = ""

# The slot's ext4 is the update payload: a fixed-size filesystem that must fit the
# 512 MiB rootfs_a/rootfs_b partitions of the .wks (sizes in KiB).
IMAGE_FSTYPES += "ext4 wic wic.bmap"
IMAGE_ROOTFS_MAXSIZE = "524288"

# Disk layout, next to this recipe (set here, not in the machine: only this image
# has the A/B partitions). wic.bmap: the block map bmaptool-based factory lines flash
# with (oe-core's image_types_wic).
WKS_FILE = "rice-cooker-image.wks.in"
# U-Boot boots this disk: none of the EFI loaders wic would otherwise build.
WKS_FILE_DEPENDS = "${WKS_FILE_DEPENDS_DEFAULT}"
IMAGE_BOOT_FILES = "boot.scr"
# wic copies the ext4 and the factory env (see the .wks.in): build those first.
# "wic" is an image type, not an override: image.bbclass reads IMAGE_TYPEDEP:<type>.
# nooelint: oelint.vars.specific,oelint.vars.overrideappend
IMAGE_TYPEDEP:wic:append = " ext4"
do_image_wic[depends] += "virtual/bootloader:do_deploy"
OTA_ENV_IMAGE ?= "ota-env.bin"
WICVARS:append = " OTA_ENV_IMAGE IMGDEPLOYDIR IMAGE_NAME"
