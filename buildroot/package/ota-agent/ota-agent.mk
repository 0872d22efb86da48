################################################################################
#
# ota-agent
#
################################################################################

# Source: the project's git at a pinned commit. The project has no public git
# address yet: OTA_AGENT_SITE is a placeholder (.invalid never resolves); set the
# real one on the command line or in a package override, e.g.
#   make OTA_AGENT_SITE=/srv/git/ota.git          (a path or any git URL)
# OTA_AGENT_VERSION is the commit (ota-sign builds the same one).
#
# The crates: Buildroot's cargo-package infrastructure vendors them in the download
# post-process (support/download/cargo-post-process runs `cargo vendor --locked`),
# so `make source` stores one tarball with the sources and VENDOR/ in DL_DIR, and
# every build after that runs `cargo build --offline` from it: no network.
#
# Developers of this repository build their checkout instead, through Buildroot's
# own mechanism (local.mk, BR2_PACKAGE_OVERRIDE_FILE):
#   OTA_AGENT_OVERRIDE_SRCDIR = /path/to/ota
#   HOST_OTA_SIGN_OVERRIDE_SRCDIR = /path/to/ota
# An override skips the download, so OTA_AGENT_VENDOR_OVERRIDE below vendors the
# crates before the build (that step needs crates.io, or a filled CARGO_HOME).
OTA_AGENT_VERSION = 36c9389460ad68a30f4b69750bb90ff36da9a7d3
OTA_AGENT_SITE = https://git.example.invalid/ota.git
OTA_AGENT_SITE_METHOD = git
OTA_AGENT_LICENSE = MIT or Apache-2.0
OTA_AGENT_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE
OTA_AGENT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude buildroot

# One workspace, several packages: cargo runs in the agent's directory (it still
# finds the workspace root and its Cargo.lock) and builds/installs only the agent.
OTA_AGENT_SUBDIR = agent

# Only for an OVERRIDE_SRCDIR build (no download, so no VENDOR/ yet). Runs after
# host-rustc is built (a pre-build hook, not an rsync one). The repository's
# .cargo/config.toml points at Debian's cross gcc for developer builds; Buildroot's
# toolchain must win, so it is replaced by the vendor config, as the download
# post-process does.
define OTA_AGENT_VENDOR_OVERRIDE
	if [ ! -d $(@D)/VENDOR ]; then \
		mkdir -p $(@D)/.cargo && \
		cd $(@D) && $(PKG_COMMON_CARGO_ENV) $(HOST_DIR)/bin/cargo vendor \
			--locked VENDOR > $(@D)/.cargo/config.toml; \
	fi
endef
OTA_AGENT_PRE_BUILD_HOOKS += OTA_AGENT_VENDOR_OVERRIDE

# The service files are shared with the Yocto recipe (meta-ota).
OTA_AGENT_FILES = $(BR2_EXTERNAL_OTA_PATH)/../meta-ota/recipes-rust/ota-agent/files

define OTA_AGENT_INSTALL_INIT_SYSTEMD
	for unit in ota-agent.service ota-mark-good.service ota-resume.service ota-booted.service; do \
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
