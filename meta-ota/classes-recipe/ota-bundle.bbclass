# ota-bundle.bbclass: after the image is built, make its signed update bundle and its
# factory disk image.
#
#   inherit ota-bundle            (in an image recipe, e.g. rice-cooker-image.bb)
#
# do_ota_bundle runs `ota-sign bundle` (from ota-sign-native) on the image's ext4
# rootfs and writes ${OTA_BUNDLE_NAME}/ (manifest.json, manifest.json.sig, the full
# image) into DEPLOY_DIR_IMAGE, and ${OTA_DELTA_BUNDLE_NAME}/ (a BSDIFF40 delta from
# OTA_DELTA_FROM) when a previous release is configured:
#   OTA_SIGNING_KEY         PEM private key (required: a clear fatal error when unset;
#                           its contents are part of the task signature, so a new key
#                           re-signs). The layer's development key is accepted with a
#                           loud warning: its private half is public.
#   OTA_PRODUCT             manifest product (default from ota-agent-config: rice-cooker)
#   OTA_VERSION             SemVer 2.0.0 of this release. Default: DISTRO_VERSION
#                           when that is SemVer (e.g. "1.4.0"); otherwise (oe-core's
#                           "nodistro.0", "5.0") the task stops with an error naming
#                           OTA_VERSION: a bundle version must order releases.
#   OTA_SECURITY_VERSION    anti-rollback counter (default 0)
#   OTA_HARDWARE            compatible hardware revisions, space separated (optional)
#   OTA_EXPIRES_IN_DAYS     manifest expiry (optional)
#   OTA_DELTA_FROM          the previous release's rootfs ext4 (optional): also make
#                           the delta bundle against it (devices on that release
#                           download the delta, all others the full bundle)
#
# do_ota_factory_disk runs scripts/mkdisk with the image's .wks.in layout and writes
# ${IMAGE_LINK_NAME}.factory.img, its block map (.factory.img.bmap, for `bmaptool
# copy`) and its manifest (.factory.json: what was flashed where, with SHA-256s, and
# the bmap's SHA-256) for the factory line; OTA_FACTORY_SLOT_B = "copy" fills
# rootfs_b too.

OTA_SIGNING_KEY ??= ""
OTA_PRODUCT ??= "rice-cooker"
OTA_VERSION ??= "${DISTRO_VERSION}"
OTA_SECURITY_VERSION ??= "0"
OTA_HARDWARE ??= ""
OTA_EXPIRES_IN_DAYS ??= ""
OTA_DELTA_FROM ??= ""
OTA_BUNDLE_COMPRESS ??= "bzip2"
OTA_BUNDLE_NAME ??= "${IMAGE_NAME}.ota-bundle"
OTA_BUNDLE_LINK_NAME ??= "${IMAGE_LINK_NAME}.ota-bundle"
OTA_DELTA_BUNDLE_NAME ??= "${IMAGE_NAME}.ota-delta-bundle"
OTA_DELTA_BUNDLE_LINK_NAME ??= "${IMAGE_LINK_NAME}.ota-delta-bundle"
OTA_DEV_SIGNING_KEY = "${OTA_LAYERDIR}/files/dev-keys/ota-dev-DO-NOT-SHIP.key.pem"

OTA_MKDISK ??= "${OTA_LAYERDIR}/../scripts/mkdisk"
OTA_FACTORY_SLOT_B ??= "empty"
OTA_ENV_IMAGE ??= "ota-env.bin"

OTA_BUNDLE_DIR = "${WORKDIR}/ota-bundle"
OTA_FACTORY_DIR = "${WORKDIR}/ota-factory"

def ota_key_checksums(d):
    """file-checksums entries for the signing key and the delta base, if set."""
    files = [d.getVar('OTA_SIGNING_KEY'), d.getVar('OTA_DELTA_FROM')]
    return ' '.join('%s:True' % f for f in files if f)

# SemVer 2.0.0 (semver.org, "Backus-Naur Form Grammar"): MAJOR.MINOR.PATCH without
# leading zeros, optional -prerelease (dot-separated identifiers, numeric ones
# without leading zeros) and +build metadata. What ota-sign accepts.
OTA_SEMVER_RE = "^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"

python ota_check_version() {
    import re
    version = d.getVar('OTA_VERSION') or ''
    if not re.fullmatch(d.getVar('OTA_SEMVER_RE'), version):
        bb.fatal("OTA_VERSION is %r (its default is DISTRO_VERSION = %r), which is not a "
                 "SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-pre][+build]): set OTA_VERSION "
                 "in local.conf or your distro, e.g. OTA_VERSION = \"1.0.0\"."
                 % (version, d.getVar('DISTRO_VERSION')))
}

python ota_check_signing_key() {
    import filecmp, os
    key = d.getVar('OTA_SIGNING_KEY')
    if not key:
        bb.fatal("OTA_SIGNING_KEY is not set: set it in local.conf to the PEM private key "
                 "that signs update bundles (for a demo only: OTA_SIGNING_KEY = "
                 "\"${OTA_LAYERDIR}/files/dev-keys/ota-dev-DO-NOT-SHIP.key.pem\")")
    if not os.path.isfile(key):
        bb.fatal("OTA_SIGNING_KEY %s: no such file" % key)
    dev = d.getVar('OTA_DEV_SIGNING_KEY')
    if os.path.isfile(dev) and filecmp.cmp(key, dev, shallow=False):
        bb.warn("*" * 72)
        bb.warn("OTA bundle signed with the meta-ota DEVELOPMENT key %s. Its private "
                "half is published: anyone can sign updates that devices trusting it "
                "install. Never ship this; set OTA_SIGNING_KEY to your release key." % key)
        bb.warn("*" * 72)
}

do_ota_bundle[doc] = "Signs the update bundle of this image with ota-sign (OTA_SIGNING_KEY)"
do_ota_bundle[depends] += "ota-sign-native:do_populate_sysroot"
do_ota_bundle[file-checksums] += "${@ota_key_checksums(d)}"
do_ota_bundle[prefuncs] += "ota_check_version ota_check_signing_key"
do_ota_bundle[cleandirs] = "${OTA_BUNDLE_DIR}"
do_ota_bundle[dirs] = "${OTA_BUNDLE_DIR}"
do_ota_bundle () {
    set -- --key "${OTA_SIGNING_KEY}" --product "${OTA_PRODUCT}" \
        --version "${OTA_VERSION}" --security-version "${OTA_SECURITY_VERSION}" \
        --image "rootfs=${IMGDEPLOYDIR}/${IMAGE_NAME}.ext4"
    for hw in ${OTA_HARDWARE}; do
        set -- "$@" --hardware "$hw"
    done
    if [ -n "${OTA_EXPIRES_IN_DAYS}" ]; then
        set -- "$@" --expires-in "${OTA_EXPIRES_IN_DAYS}"
    fi
    if [ -n "${OTA_BUNDLE_COMPRESS}" ]; then
        set -- "$@" --compress "${OTA_BUNDLE_COMPRESS}"
    fi
    ota-sign bundle "$@" --out "${OTA_BUNDLE_DIR}/${OTA_BUNDLE_NAME}"
    ln -sfn "${OTA_BUNDLE_NAME}" "${OTA_BUNDLE_DIR}/${OTA_BUNDLE_LINK_NAME}"
    if [ -n "${OTA_DELTA_FROM}" ]; then
        ota-sign bundle "$@" --delta-from "rootfs=${OTA_DELTA_FROM}" \
            --out "${OTA_BUNDLE_DIR}/${OTA_DELTA_BUNDLE_NAME}"
        ln -sfn "${OTA_DELTA_BUNDLE_NAME}" "${OTA_BUNDLE_DIR}/${OTA_DELTA_BUNDLE_LINK_NAME}"
    fi
}
# After the ext4 exists (IMGDEPLOYDIR), deployed through sstate like the images.
addtask ota_bundle after do_image_ext4 before do_image_complete do_build
SSTATETASKS += "do_ota_bundle"
do_ota_bundle[sstate-inputdirs] = "${OTA_BUNDLE_DIR}"
do_ota_bundle[sstate-outputdirs] = "${DEPLOY_DIR_IMAGE}"
python do_ota_bundle_setscene () {
    sstate_setscene(d)
}
addtask do_ota_bundle_setscene

do_ota_factory_disk[doc] = "Builds the factory disk image and its manifest with scripts/mkdisk"
do_ota_factory_disk[depends] += " \
    gptfdisk-native:do_populate_sysroot \
    dosfstools-native:do_populate_sysroot \
    mtools-native:do_populate_sysroot \
    u-boot-tools-native:do_populate_sysroot \
    bmaptool-native:do_populate_sysroot \
    virtual/bootloader:do_deploy \
"
do_ota_factory_disk[file-checksums] += "${OTA_MKDISK}:True"
do_ota_factory_disk[cleandirs] = "${OTA_FACTORY_DIR}"
do_ota_factory_disk[dirs] = "${OTA_FACTORY_DIR}"
do_ota_factory_disk () {
    rootfs="${IMGDEPLOYDIR}/${IMAGE_NAME}.ext4"
    slot_b=""
    if [ "${OTA_FACTORY_SLOT_B}" = "copy" ]; then
        slot_b="--part rootfs_b=$rootfs"
    fi
    boot_files=""
    for f in ${IMAGE_BOOT_FILES}; do
        boot_files="$boot_files --boot-file ${DEPLOY_DIR_IMAGE}/$f"
    done
    "${OTA_MKDISK}" --layout "${OTA_WKS_LAYOUT}" \
        --env-image "${DEPLOY_DIR_IMAGE}/${OTA_ENV_IMAGE}" \
        --part "rootfs_a=$rootfs" $slot_b $boot_files \
        --manifest "${OTA_FACTORY_DIR}/${IMAGE_NAME}.factory.json" \
        --bmap "${OTA_FACTORY_DIR}/${IMAGE_NAME}.factory.img.bmap" \
        --out "${OTA_FACTORY_DIR}/${IMAGE_NAME}.factory.img"
    ln -sf "${IMAGE_NAME}.factory.img" "${OTA_FACTORY_DIR}/${IMAGE_LINK_NAME}.factory.img"
    ln -sf "${IMAGE_NAME}.factory.img.bmap" "${OTA_FACTORY_DIR}/${IMAGE_LINK_NAME}.factory.img.bmap"
    ln -sf "${IMAGE_NAME}.factory.json" "${OTA_FACTORY_DIR}/${IMAGE_LINK_NAME}.factory.json"
}
# The layout: the image's .wks.in, found like wic finds it.
OTA_WKS_LAYOUT ??= "${@os.path.join(d.getVar('FILE_DIRNAME'), d.getVar('WKS_FILE') or '')}"
addtask ota_factory_disk after do_image_ext4 before do_image_complete do_build
SSTATETASKS += "do_ota_factory_disk"
do_ota_factory_disk[sstate-inputdirs] = "${OTA_FACTORY_DIR}"
do_ota_factory_disk[sstate-outputdirs] = "${DEPLOY_DIR_IMAGE}"
python do_ota_factory_disk_setscene () {
    sstate_setscene(d)
}
addtask do_ota_factory_disk_setscene
