# A/B boot script for U-Boot with CONFIG_ANDROID_AB + ab_select (android-ab.cfg).
# Compile: mkimage -A arm64 -T script -C none -d boot-ab.cmd boot.scr
#
# `ab_select` reads the bootloader_control block at byte 2048 of the `misc`
# partition (AOSP boot_control layout: magic "BCAB", slot_info priority /
# tries_remaining / successful_boot, CRC-32), chooses the bootable slot with the
# highest priority, spends one try of a slot not yet marked successful and
# writes the block back. A slot whose tries run out is unbootable, so the other
# one is chosen: that is the rollback. A blank/corrupt block is re-initialised
# by U-Boot (both slots priority 15, 7 tries). ota-agent's `android` backend
# writes the same block (set-active, mark-good, mark-bad).
if ab_select ota_slot virtio 0#misc; then
	echo "OTA: ab_select chose slot ${ota_slot}"
else
	echo "OTA: ab_select failed (no bootable slot?), trying slot a"
	setenv ota_slot a
fi
part number virtio 0 rootfs_${ota_slot} ota_part
echo "OTA: booting slot ${ota_slot} (partition rootfs_${ota_slot} = ${ota_part})"
setenv bootargs "console=ttyAMA0 root=PARTLABEL=rootfs_${ota_slot} ota.slot=${ota_slot} androidboot.slot_suffix=_${ota_slot} rdinit=/init panic=10 quiet"
# (Only boot what was really loaded: RAM may still hold the last boot's kernel.)
if load virtio 0:${ota_part} ${kernel_addr_r} /boot/Image && load virtio 0:${ota_part} ${ramdisk_addr_r} /boot/initrd.img; then
	booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
fi
echo "OTA: booting slot ${ota_slot} failed"
# Never sit at a prompt: reset, so a trial slot that cannot even be loaded
# spends its tries like one that crashes, and the fallback happens.
reset
