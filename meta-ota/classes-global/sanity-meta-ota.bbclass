# Warns once per build when meta-ota is in bblayers.conf but DISTRO_FEATURES lacks
# "ota": the layer's U-Boot hook (boot script, fw_env.config) then does nothing
# and an image built with it would not be able to fall back after a bad update.
#
# Inherited globally from meta-ota/conf/layer.conf. Silence it (e.g. for a build that
# only wants the ota-sign-native tool) with SKIP_META_OTA_FEATURE_CHECK = "1".

addhandler ota_bbappend_distrocheck
ota_bbappend_distrocheck[eventmask] = "bb.event.SanityCheck"
python ota_bbappend_distrocheck() {
    skip_check = e.data.getVar('SKIP_META_OTA_FEATURE_CHECK') == "1"
    if 'ota' not in e.data.getVar('DISTRO_FEATURES').split() and not skip_check:
        bb.warn("meta-ota is in bblayers.conf but 'ota' is not in DISTRO_FEATURES: its "
                "U-Boot hook (boot-count script, fw_env.config) is inactive. Add "
                "DISTRO_FEATURES:append = \" ota\" to local.conf or your distro "
                "(see README.md, section Yocto), or set SKIP_META_OTA_FEATURE_CHECK = \"1\".")
}
