# A/B boot counting for U-Boot, only when DISTRO_FEATURES has "ota" (see the .inc).
require ${@bb.utils.contains('DISTRO_FEATURES', 'ota', 'u-boot-ota.inc', '', d)}
