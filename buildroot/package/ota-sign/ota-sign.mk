################################################################################
#
# ota-sign (host only)
#
################################################################################

# Same source and vendoring as ota-agent (see ota-agent.mk).
OTA_SIGN_VERSION = 0.1.0
OTA_SIGN_SITE = $(BR2_EXTERNAL_OTA_PATH)/..
OTA_SIGN_SITE_METHOD = local
OTA_SIGN_LICENSE = MIT or Apache-2.0
HOST_OTA_SIGN_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude target --exclude .git --exclude buildroot

HOST_OTA_SIGN_SUBDIR = signer

define HOST_OTA_SIGN_CARGO_VENDOR
	mkdir -p $(@D)/.cargo
	cd $(@D) && $(PKG_COMMON_CARGO_ENV) $(HOST_DIR)/bin/cargo vendor \
		--locked --versioned-dirs VENDOR > $(@D)/.cargo/config.toml
endef
HOST_OTA_SIGN_POST_RSYNC_HOOKS += HOST_OTA_SIGN_CARGO_VENDOR

$(eval $(host-cargo-package))
