# ota-bootloader.bbclass: puts the A/B boot script, fw_env.config and the factory
# environment (recipes-bsp/u-boot/u-boot-ota.inc) into the U-Boot recipe that the
# machine uses, whatever that recipe is called.
#
# Inherited globally from meta-ota/conf/layer.conf instead of a `u-boot_%.bbappend`:
# a bbappend only reaches the recipe named in its file name, while BSPs build U-Boot
# as u-boot-imx, u-boot-fslc, u-boot-ti-staging, u-boot-rockchip, u-boot-<board>...
# Here the target is the recipe providing virtual/bootloader:
#
#   OTA_UBOOT_RECIPES   recipe names (PN) to extend. Default: the machine's
#                       PREFERRED_PROVIDER_virtual/bootloader. A BSP whose U-Boot
#                       recipe is not that provider (or that builds a second one)
#                       lists it here, e.g. OTA_UBOOT_RECIPES = "u-boot-myboard".
#
# Nothing happens unless DISTRO_FEATURES has "ota" and PN is in OTA_UBOOT_RECIPES;
# for every other recipe this class only defines variables and functions that no
# task uses, so it changes no signature (yocto-check-layer's signature tests). A
# target recipe that does not inherit oe-core's uboot-config (it is not a U-Boot
# recipe: barebox, grub...) stops the parse with an error naming OTA_UBOOT_RECIPES.

OTA_UBOOT_RECIPES ??= "${PREFERRED_PROVIDER_virtual/bootloader}"

require recipes-bsp/u-boot/u-boot-ota.inc

# An anonymous function: which recipe is the target is only known per recipe.
# nooelint: oelint.task.noanonpython
python () {
    if 'ota' not in (d.getVar('DISTRO_FEATURES') or '').split():
        return
    if d.getVar('PN') not in (d.getVar('OTA_UBOOT_RECIPES') or '').split():
        return
    if not bb.data.inherits_class('uboot-config', d):
        bb.fatal("meta-ota: %s is in OTA_UBOOT_RECIPES (default: "
                 "PREFERRED_PROVIDER_virtual/bootloader) but is not a U-Boot recipe (it "
                 "does not inherit uboot-config): the A/B boot script needs U-Boot. Set "
                 "OTA_UBOOT_RECIPES to the U-Boot recipe of this machine." % d.getVar('PN'))
    d.prependVar('FILESEXTRAPATHS', d.getVar('OTA_UBOOT_FILESDIR') + ':')
    d.appendVar('SRC_URI', ' ' + d.getVar('OTA_UBOOT_SRC_URI'))
    d.appendVar('DEPENDS', ' u-boot-tools-native')
    # oe-core's u-boot.inc compiles UBOOT_ENV_SRC with `mkimage -T script` into
    # boot.scr, installs it in /boot and deploys it.
    d.setVar('UBOOT_ENV', 'boot')
    d.setVar('UBOOT_ENV_SUFFIX', 'scr')
    d.setVar('UBOOT_ENV_SRC', 'boot.cmd')
    d.appendVarFlag('do_compile', 'prefuncs', ' ota_uboot_render_bootscript')
    d.appendVarFlag('do_deploy', 'postfuncs', ' ota_uboot_deploy_env')
}
