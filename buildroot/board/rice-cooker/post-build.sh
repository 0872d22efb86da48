#!/bin/sh
# Buildroot post-build script (BR2_ROOTFS_POST_BUILD_SCRIPT): the device
# configuration of the rice cooker, from the same sources as the Yocto layer.
#   $1 = TARGET_DIR
# Environment (optional): OTA_TRUSTED_KEYS (space-separated public PEM files; default:
# the DEVELOPMENT key, with a loud warning), OTA_SERVER, OTA_HARDWARE, OTA_DISK.
set -eu

TARGET_DIR=$1
META=${BR2_EXTERNAL_OTA_PATH:?}/../meta-ota
DEV_PUB=$META/files/dev-keys/ota-dev-DO-NOT-SHIP.pub.pem

# Where U-Boot's env lives on this disk (docs/contract.md), read by the agent.
install -D -m 0644 "$META/recipes-bsp/u-boot/files/fw_env.config" "$TARGET_DIR/etc/fw_env.config"

sed -e "s,@@OTA_PRODUCT@@,rice-cooker,g" \
    -e "s,@@OTA_HARDWARE@@,${OTA_HARDWARE:-rc-v2},g" \
    -e "s,@@OTA_DISK@@,${OTA_DISK:-/dev/vda},g" \
    -e "s,@@OTA_BOOT_TRIES@@,3,g" \
    -e "s,@@OTA_SERVER@@,${OTA_SERVER:-https://updates.example.com/ota},g" \
    -e "s,@@OTA_CHANNEL@@,stable,g" \
    "$META/recipes-ota/ota-agent-config/files/ota-agent.toml.in" > "$TARGET_DIR/etc/ota-agent.toml"
if grep -q '@@' "$TARGET_DIR/etc/ota-agent.toml"; then
    echo "post-build.sh: ota-agent.toml.in has a placeholder this script does not fill" >&2
    exit 1
fi

mkdir -p "$TARGET_DIR/etc/ota/keys" "$TARGET_DIR/etc/ota/health.d" "$TARGET_DIR/data"
for key in ${OTA_TRUSTED_KEYS:-$DEV_PUB}; do
    if cmp -s "$key" "$DEV_PUB"; then
        echo "post-build.sh: WARNING: the device trusts the meta-ota DEVELOPMENT key;" \
             "set OTA_TRUSTED_KEYS before shipping" >&2
    fi
    install -m 0644 "$key" "$TARGET_DIR/etc/ota/keys/"
done
