# A/B boot script for U-Boot with NATIVE boot counting (bootcount-env.cfg +
# env-in-fat.cfg). Compile: mkimage -A arm64 -T script -C none -d boot-bootcount.cmd boot.scr
#
# U-Boot itself already did the counting before this script runs: with
# upgrade_available=1 it incremented and saved bootcount, and once bootcount >
# bootlimit it ran altbootcmd (the fallback) instead of bootcmd. So this script
# only boots ${ota_slot}. Variables: CONTRACT.md "U-Boot environment contract".
if test "${ota_slot}" != b; then setenv ota_slot a; fi
if test "${upgrade_available}" = 1; then
	echo "OTA: trial boot of slot ${ota_slot}: bootcount ${bootcount} of bootlimit ${bootlimit}"
fi
part number virtio 0 rootfs_${ota_slot} ota_part
echo "OTA: booting slot ${ota_slot} (partition rootfs_${ota_slot} = ${ota_part})"
setenv bootargs "console=ttyAMA0 root=PARTLABEL=rootfs_${ota_slot} ota.slot=${ota_slot} rdinit=/init panic=10 quiet"
# (Only boot what was really loaded: RAM may still hold the last boot's kernel.)
if load virtio 0:${ota_part} ${kernel_addr_r} /boot/Image && load virtio 0:${ota_part} ${ramdisk_addr_r} /boot/initrd.img; then
	booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
fi
echo "OTA: booting slot ${ota_slot} failed"
# Never sit at a prompt: reset, so a trial slot that cannot even be loaded
# spends its tries like one that crashes, and the fallback happens.
reset
