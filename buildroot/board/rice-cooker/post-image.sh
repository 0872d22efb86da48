#!/bin/sh
# Buildroot post-image script (BR2_ROOTFS_POST_IMAGE_SCRIPT): the A/B disk image
# (genimage.cfg) and the signed update bundle of this build (host ota-sign).
#   $1 = BINARIES_DIR
# Environment:
#   OTA_SIGNING_KEY       PEM private key (required; the meta-ota development key is
#                         accepted with a loud warning: its private half is public)
#   OTA_VERSION           release version (default 0.0.0-dev)
#   OTA_SECURITY_VERSION  anti-rollback counter (default 0)
#   OTA_DELTA_FROM        previous release's rootfs.ext4: also ship a delta (optional)
set -eu

BINARIES_DIR=$1
BOARD_DIR=$(dirname "$0")
DEV_KEY=${BR2_EXTERNAL_OTA_PATH:?}/../meta-ota/files/dev-keys/ota-dev-DO-NOT-SHIP.key.pem

if [ -z "${OTA_SIGNING_KEY:-}" ]; then
    echo "post-image.sh: OTA_SIGNING_KEY is not set: export it (the PEM private key that" \
         "signs update bundles; for a demo only: OTA_SIGNING_KEY=$DEV_KEY)" >&2
    exit 1
fi
if [ ! -f "$OTA_SIGNING_KEY" ]; then
    echo "post-image.sh: OTA_SIGNING_KEY $OTA_SIGNING_KEY: no such file" >&2
    exit 1
fi
if cmp -s "$OTA_SIGNING_KEY" "$DEV_KEY"; then
    echo "************************************************************************" >&2
    echo "post-image.sh: WARNING: signing with the meta-ota DEVELOPMENT key. Its" >&2
    echo "private half is published: never ship this bundle." >&2
    echo "************************************************************************" >&2
fi

# boot.scr: the layer's boot script template with this board's values (boot.vars).
UBOOT_FILES=$BR2_EXTERNAL_OTA_PATH/../meta-ota/recipes-bsp/u-boot/files
sh "$UBOOT_FILES/render-bootscript" "$BOARD_DIR/boot.vars" "$UBOOT_FILES/boot.cmd.in" "$BINARIES_DIR/boot.cmd"
"$HOST_DIR/bin/mkimage" -A arm64 -O linux -T script -C none -n "ota boot" \
    -d "$BINARIES_DIR/boot.cmd" "$BINARIES_DIR/boot.scr" >/dev/null

# The empty data partition (genimage's vfat would copy the root path).
rm -f "$BINARIES_DIR/data.vfat"
"$HOST_DIR/sbin/mkfs.vfat" -n DATA -C "$BINARIES_DIR/data.vfat" $((128 * 1024)) >/dev/null

support/scripts/genimage.sh -c "$BOARD_DIR/genimage.cfg"

# The full bundle always; the delta bundle too when a previous release is given
# (devices on that release download the delta, all others the full image).
set -- --key "$OTA_SIGNING_KEY" --product rice-cooker \
    --version "${OTA_VERSION:-0.0.0-dev}" --security-version "${OTA_SECURITY_VERSION:-0}" \
    --image "rootfs=$BINARIES_DIR/rootfs.ext4" --compress bzip2
rm -rf "$BINARIES_DIR/ota-bundle" "$BINARIES_DIR/ota-delta-bundle"
"$HOST_DIR/bin/ota-sign" bundle "$@" --out "$BINARIES_DIR/ota-bundle"
if [ -n "${OTA_DELTA_FROM:-}" ]; then
    "$HOST_DIR/bin/ota-sign" bundle "$@" --delta-from "rootfs=$OTA_DELTA_FROM" \
        --out "$BINARIES_DIR/ota-delta-bundle"
fi
echo "post-image.sh: disk $BINARIES_DIR/sdcard.img, bundle(s) in $BINARIES_DIR/ota-*bundle/"
