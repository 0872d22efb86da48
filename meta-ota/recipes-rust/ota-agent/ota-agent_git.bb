SUMMARY = "A/B over-the-air update agent for embedded Linux appliances"
DESCRIPTION = "ota-agent: one static binary that downloads signed update bundles, \
writes the inactive A/B slot, switches the boot target and marks slots good. It \
also answers as fw_printenv/fw_setenv."

require ota.inc

OTA_CARGO_PACKAGE = "ota-agent"

# Static and self-contained where the C library is musl (the size budget is for a
# static binary, docs/architecture.md "Budgets"); glibc builds stay dynamic.
RUSTFLAGS:append:libc-musl = " -C target-feature=+crt-static"

inherit systemd update-rc.d

SRC_URI += " \
    file://ota-agent.service \
    file://ota-mark-good.service \
    file://ota-booted.service \
    file://ota-agent.init \
    file://ota-resume.service \
    file://ota-resume.init \
"

do_install:append() {
    # The agent doubles as fw_printenv/fw_setenv (argv[0] dispatch):
    # offered as links unless libubootenv-bin is installed (alternatives would be
    # overkill for two names; the packages simply conflict on the paths).
    ln -sf ota-agent ${D}${bindir}/fw_printenv
    ln -sf ota-agent ${D}${bindir}/fw_setenv

    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        install -m 0644 ${UNPACKDIR}/ota-agent.service ${UNPACKDIR}/ota-mark-good.service \
            ${UNPACKDIR}/ota-resume.service ${UNPACKDIR}/ota-booted.service \
            ${D}${systemd_system_unitdir}/
        sed -i -e 's,@BINDIR@,${bindir},g' \
            ${D}${systemd_system_unitdir}/ota-agent.service \
            ${D}${systemd_system_unitdir}/ota-mark-good.service \
            ${D}${systemd_system_unitdir}/ota-resume.service \
            ${D}${systemd_system_unitdir}/ota-booted.service
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -d ${D}${INIT_D_DIR}
        install -m 0755 ${UNPACKDIR}/ota-agent.init ${D}${INIT_D_DIR}/ota-agent
        sed -i -e 's,@BINDIR@,${bindir},g' ${D}${INIT_D_DIR}/ota-agent
        # Resume without a person on images that drop the daemon (it skips itself
        # while the daemon runs): after S99ota-agent (mark-good).
        sed -e 's,@BINDIR@,${bindir},g' ${UNPACKDIR}/ota-resume.init >${D}${INIT_D_DIR}/ota-resume
        chmod 0755 ${D}${INIT_D_DIR}/ota-resume
        for r in 2 3 4 5; do
            install -d ${D}${sysconfdir}/rc$r.d
            ln -sf ../init.d/ota-resume ${D}${sysconfdir}/rc$r.d/S99ota-resume
        done
    fi
}

PACKAGES =+ "${PN}-fw-utils"
# nooelint: oelint.var.filesoverride - a package of our own
FILES:${PN}-fw-utils = "${bindir}/fw_printenv ${bindir}/fw_setenv"
# The device configuration (/etc/ota-agent.toml, trusted keys) is its own recipe so
# a product layer can replace it without touching the agent. It is machine-specific,
# so the image installs it (rice-cooker-image.bb): an RDEPENDS here would make this
# recipe's signature differ per machine.
RCONFLICTS:${PN}-fw-utils = "libubootenv-bin u-boot-fw-utils"

SYSTEMD_SERVICE:${PN} = "ota-agent.service ota-mark-good.service ota-resume.service ota-booted.service"
# mark-good runs only on a trial boot: the boot script puts ota.trial=1 on the kernel
# command line then (recipes-bsp/u-boot/files/boot*.cmd.in), and the unit and the
# init script test for it.
INITSCRIPT_NAME = "ota-agent"
# Late (99): mark-good runs once the rest of the system came up.
INITSCRIPT_PARAMS = "defaults 99"
