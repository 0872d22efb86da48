################################################################################
#
# ota-agent
#
################################################################################

# Built from the checkout holding this external tree (the Cargo workspace is its
# parent directory). For a release build from git instead, set
# OTA_AGENT_SITE/OTA_AGENT_SITE_METHOD/OTA_AGENT_VERSION in a package override.
OTA_AGENT_VERSION = 0.1.0
OTA_AGENT_SITE = $(BR2_EXTERNAL_OTA_PATH)/..
OTA_AGENT_SITE_METHOD = local
OTA_AGENT_LICENSE = MIT or Apache-2.0
OTA_AGENT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude .git --exclude buildroot

# One workspace, several packages: cargo runs in the agent's directory (it still
# finds the workspace root and its Cargo.lock) and builds/installs only the agent.
OTA_AGENT_SUBDIR = agent

# A local site skips Buildroot's download-time `cargo vendor`, so vendor after the
# rsync (this step needs crates.io, like the download step of a tarball would).
# The repository's .cargo/config.toml points at Debian's cross gcc for developer
# builds; Buildroot's toolchain must win, so it is replaced by the vendor config.
define OTA_AGENT_CARGO_VENDOR
	mkdir -p $(@D)/.cargo
	cd $(@D) && $(PKG_COMMON_CARGO_ENV) $(HOST_DIR)/bin/cargo vendor \
		--locked --versioned-dirs VENDOR > $(@D)/.cargo/config.toml
endef
OTA_AGENT_POST_RSYNC_HOOKS += OTA_AGENT_CARGO_VENDOR

# The service files are shared with the Yocto recipe (meta-ota).
OTA_AGENT_FILES = $(BR2_EXTERNAL_OTA_PATH)/../meta-ota/recipes-rust/ota-agent/files

define OTA_AGENT_INSTALL_INIT_SYSTEMD
	for unit in ota-agent.service ota-mark-good.service ota-resume.service; do \
		sed -e 's,@BINDIR@,/usr/bin,g' $(OTA_AGENT_FILES)/$$unit > $(@D)/$$unit; \
		$(INSTALL) -D -m 0644 $(@D)/$$unit $(TARGET_DIR)/usr/lib/systemd/system/$$unit; \
	done
endef

define OTA_AGENT_INSTALL_INIT_SYSV
	sed -e 's,@BINDIR@,/usr/bin,g' $(OTA_AGENT_FILES)/ota-agent.init > $(@D)/S99ota-agent
	$(INSTALL) -D -m 0755 $(@D)/S99ota-agent $(TARGET_DIR)/etc/init.d/S99ota-agent
	sed -e 's,@BINDIR@,/usr/bin,g' $(OTA_AGENT_FILES)/ota-resume.init > $(@D)/S99ota-resume
	$(INSTALL) -D -m 0755 $(@D)/S99ota-resume $(TARGET_DIR)/etc/init.d/S99ota-resume
endef

$(eval $(cargo-package))
