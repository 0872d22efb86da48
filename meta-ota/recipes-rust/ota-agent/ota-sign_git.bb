SUMMARY = "Offline OTA signing tool: keys, BSDIFF40 deltas, signed bundles"
DESCRIPTION = "ota-sign: the host tool the image class runs (as ota-sign-native) \
to turn a build's rootfs into a signed update bundle."

require ota.inc

OTA_CARGO_PACKAGE = "ota-sign"

# A build host tool; a target package is possible but not needed on the device.
BBCLASSEXTEND = "native"
