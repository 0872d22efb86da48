################################################################################
#
# ota-sign (host only)
#
################################################################################

# Same git, commit and crate vendoring as ota-agent (see ota-agent.mk): the download
# post-process vendors the crates into the source tarball (`make source`), the
# build runs offline.
OTA_SIGN_VERSION = $(OTA_AGENT_VERSION)
OTA_SIGN_SITE = $(OTA_AGENT_SITE)
OTA_SIGN_SITE_METHOD = git
OTA_SIGN_LICENSE = MIT or Apache-2.0
OTA_SIGN_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE
HOST_OTA_SIGN_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude buildroot

HOST_OTA_SIGN_SUBDIR = signer

# Only for an OVERRIDE_SRCDIR build (see OTA_AGENT_VENDOR_OVERRIDE).
define HOST_OTA_SIGN_VENDOR_OVERRIDE
	if [ ! -d $(@D)/VENDOR ]; then \
		mkdir -p $(@D)/.cargo && \
		cd $(@D) && $(PKG_COMMON_CARGO_ENV) $(HOST_DIR)/bin/cargo vendor \
			--locked VENDOR > $(@D)/.cargo/config.toml; \
	fi
endef
HOST_OTA_SIGN_PRE_BUILD_HOOKS += HOST_OTA_SIGN_VENDOR_OVERRIDE

$(eval $(host-cargo-package))
