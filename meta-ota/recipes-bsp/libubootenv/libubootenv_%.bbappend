# fw_printenv/fw_setenv read our /etc/fw_env.config, only when DISTRO_FEATURES has "ota".
require ${@bb.utils.contains('DISTRO_FEATURES', 'ota', 'libubootenv-ota.inc', '', d)}
