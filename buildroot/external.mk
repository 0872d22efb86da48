# Every package of the OTA external tree.
include $(sort $(wildcard $(BR2_EXTERNAL_OTA_PATH)/package/*/*.mk))
