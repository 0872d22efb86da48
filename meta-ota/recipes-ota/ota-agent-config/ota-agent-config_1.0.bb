SUMMARY = "ota-agent device configuration and trusted update keys"
DESCRIPTION = "/etc/ota-agent.toml and /etc/ota/keys/*.pem for the ota-agent, \
from OTA_* variables. A product layer overrides the variables (or replaces this \
recipe); it warns while the development key or the example server is in use."
LICENSE = "MIT"
# nooelint: oelint.var.licenseremotefile - no source tree: the common MIT text
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

SRC_URI = "file://ota-agent.toml.in"

OTA_PRODUCT ?= "rice-cooker"
OTA_HARDWARE ?= "${MACHINE}"
OTA_DISK ?= "/dev/mmcblk0"
OTA_BOOT_TRIES ?= "3"
OTA_SERVER ?= "https://updates.example.com/ota"
OTA_CHANNEL ?= "stable"
# Public keys (PEM, SPKI) the device trusts; list the next key too before rotating.
OTA_TRUSTED_KEYS ?= "${OTA_LAYERDIR}/files/dev-keys/ota-dev-DO-NOT-SHIP.pub.pem"
OTA_DEV_PUBLIC_KEY = "${OTA_LAYERDIR}/files/dev-keys/ota-dev-DO-NOT-SHIP.pub.pem"

# The keys are outside SRC_URI: make their contents part of the task signature.
do_install[file-checksums] += "${@' '.join('%s:True' % k for k in d.getVar('OTA_TRUSTED_KEYS').split())}"

# At build time, not parse time: a warning per build of this recipe.
python ota_config_placeholder_check () {
    import filecmp, os
    dev = d.getVar('OTA_DEV_PUBLIC_KEY')
    for key in d.getVar('OTA_TRUSTED_KEYS').split():
        if os.path.exists(key) and os.path.exists(dev) and filecmp.cmp(key, dev, shallow=False):
            bb.warn("ota-agent-config: the device trusts the DEVELOPMENT key %s (its private "
                    "half is public in meta-ota): anyone can sign updates for it. Set "
                    "OTA_TRUSTED_KEYS to your release public key(s) before shipping." % key)
    if 'example.com' in d.getVar('OTA_SERVER'):
        bb.warn("ota-agent-config: OTA_SERVER is the placeholder %s; set it to your "
                "update server." % d.getVar('OTA_SERVER'))
}

do_install[prefuncs] += "ota_config_placeholder_check"
do_install() {
    install -d ${D}${sysconfdir}/ota/keys ${D}${sysconfdir}/ota/health.d
    sed -e 's,@@OTA_PRODUCT@@,${OTA_PRODUCT},g' \
        -e 's,@@OTA_HARDWARE@@,${OTA_HARDWARE},g' \
        -e 's,@@OTA_DISK@@,${OTA_DISK},g' \
        -e 's,@@OTA_BOOT_TRIES@@,${OTA_BOOT_TRIES},g' \
        -e 's,@@OTA_SERVER@@,${OTA_SERVER},g' \
        -e 's,@@OTA_CHANNEL@@,${OTA_CHANNEL},g' \
        ${UNPACKDIR}/ota-agent.toml.in > ${D}${sysconfdir}/ota-agent.toml
    if grep -q '@@' ${D}${sysconfdir}/ota-agent.toml; then
        bbfatal "ota-agent.toml.in has a placeholder this recipe does not fill"
    fi
    for key in ${OTA_TRUSTED_KEYS}; do
        install -m 0644 "$key" ${D}${sysconfdir}/ota/keys/
    done
}

PACKAGE_ARCH = "${MACHINE_ARCH}"
CONFFILES:${PN} = "${sysconfdir}/ota-agent.toml"
