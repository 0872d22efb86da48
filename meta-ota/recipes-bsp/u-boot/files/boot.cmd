# A/B boot script for a STOCK U-Boot (no CONFIG_BOOTCOUNT_LIMIT, no ab_select):
# the boot count is kept by this script. Compile: mkimage -A arm64 -T script -C none -d boot.cmd boot.scr
#
# Environment contract (variables, values, who writes them): CONTRACT.md
# "U-Boot environment contract" in the repo root. In short:
#   ota_slot=a|b           slot to boot
#   upgrade_available=1    a trial is running: bootcount += 1 on every boot
#   bootcount, bootlimit   when bootcount > bootlimit: run altbootcmd (falls back)
#   altbootcmd             swaps ota_slot, clears the trial, sets ota_rollback=<slot>:bootlimit
#
# The environment lives on the boot disk itself, not where stock U-Boot keeps its
# own (QEMU pflash): two redundant copies of 0x4000 bytes at byte 0x100000 and
# 0x104000 (fw_env.config next to this file; same layout as fw_printenv/fw_setenv
# with two devices): each copy is  crc32(le) | flags(1) | data(0x3ffb).
# The newer copy is the one with the higher flags byte (0xff -> 0x00 wraps), the
# rule libubootenv and U-Boot's env_import_redund share; a copy with a bad CRC is
# ignored (torn write), so the older copy is used. We write back to the OTHER
# copy with flags+1, so a power cut during our write never loses the good copy.
#
# `env import -c` of this (non-redundant) U-Boot expects crc|data, so each copy
# is re-aligned with cp.b (drop the flags byte) before importing, and exported
# data is re-framed the other way before `virtio write`.
#
# What is saved is exactly the disk environment plus this script's changes
# (like fw_setenv would), never U-Boot's built-in defaults or run-time values
# (fdtcontroladdr, filesize, ...): the run-time environment is parked in RAM,
# the disk copy is imported with -d (alone), counted, exported, and then the
# run-time environment and the disk one are merged again for booting.
#
# All numbers handled by setexpr/itest are hex; bootcount/bootlimit stay < 10,
# where hex and decimal agree (the contract guarantees it).

# Scratch RAM (literal addresses: U-Boot does no arithmetic in addresses):
#   0x50000000 copy 1 and 0x50004000 copy 2 (read together)
#   0x50010000 crc|data buffer for import/export
#   0x50100000 two bytes: which copy to write, its flags
#   0x50200000 the run-time environment, parked while the disk one is alone
# `env export` clears a whole CONFIG_ENV_SIZE (256 KiB here) after its target,
# hence the gaps. All above kernel (0x40400000)/initrd (0x44000000), below U-Boot.
# Disk sectors (512 B): copy 1 at byte 0x100000 = sector 0x800, copy 2 at 0x820,
# 0x20 sectors each.
env export -b -s 0x40000 0x50200000
virtio read 0x50000000 0x800 0x40
setexpr.b ota_f1 *0x50000004
setexpr.b ota_f2 *0x50004004

# Which copy is newer? (flags byte, 0xff -> 0x00 wraps, as libubootenv does)
setenv ota_new 1
if itest ${ota_f2} -gt ${ota_f1}; then setenv ota_new 2; fi
if itest ${ota_f1} -eq 0xff && itest ${ota_f2} -eq 0; then setenv ota_new 2; fi
if itest ${ota_f2} -eq 0xff && itest ${ota_f1} -eq 0; then setenv ota_new 1; fi

# Import the newer copy alone (-d), or the older one if the newer has a bad CRC
# (a torn write). Copy N is re-aligned to crc|data first (flags byte dropped).
# `env import -c` checks the CRC before touching anything.
setenv ota_cur none
if test ${ota_new} = 2; then
	cp.b 0x50004000 0x50010000 4
	cp.b 0x50004005 0x50010004 0x3ffb
	if env import -d -c 0x50010000 0x3fff; then
		setenv ota_cur 2
	else
		cp.b 0x50000000 0x50010000 4
		cp.b 0x50000005 0x50010004 0x3ffb
		if env import -d -c 0x50010000 0x3fff; then setenv ota_cur 1; fi
	fi
else
	cp.b 0x50000000 0x50010000 4
	cp.b 0x50000005 0x50010004 0x3ffb
	if env import -d -c 0x50010000 0x3fff; then
		setenv ota_cur 1
	else
		cp.b 0x50004000 0x50010000 4
		cp.b 0x50004005 0x50010004 0x3ffb
		if env import -d -c 0x50010000 0x3fff; then setenv ota_cur 2; fi
	fi
fi
# (-d dropped the temporaries set above; read the flags again.)
setexpr.b ota_f1 *0x50000004
setexpr.b ota_f2 *0x50004004
echo "OTA: env copy 1 flags ${ota_f1}, copy 2 flags ${ota_f2}, using copy ${ota_cur}"

if test ${ota_cur} = none; then
	echo "OTA: no valid environment copy on disk; booting slot a without boot counting"
	setenv ota_slot a
	setenv upgrade_available 0
fi

# Boot counting, the same rule as U-Boot's CONFIG_BOOTCOUNT_LIMIT with
# CONFIG_BOOTCOUNT_ENV: count only during a trial; past the limit, altbootcmd.
setenv ota_save 0
if test "${upgrade_available}" = 1; then
	if test -z "${bootcount}"; then setenv bootcount 0; fi
	if test -z "${bootlimit}"; then setenv bootlimit 3; fi
	setexpr bootcount ${bootcount} + 1
	setenv ota_save 1
	echo "OTA: trial boot of slot ${ota_slot}: bootcount ${bootcount} of bootlimit ${bootlimit}"
	if itest ${bootcount} -gt ${bootlimit}; then
		echo "OTA: bootlimit exceeded, running altbootcmd"
		run altbootcmd
	fi
fi

if test ${ota_save} = 1; then
	# Write over the copy we did not load (copy 1 if none was valid), flags+1.
	# The decision is parked in RAM so that no temporary is exported.
	if test ${ota_cur} = 1; then
		setexpr ota_fl ${ota_f1} + 1
		mw.b 0x50100000 2
	else
		setexpr ota_fl ${ota_f2} + 1
		mw.b 0x50100000 1
	fi
	if itest ${ota_fl} -gt 0xff; then setenv ota_fl 0; fi
	mw.b 0x50100001 ${ota_fl}
	env delete ota_f1 ota_f2 ota_new ota_cur ota_save ota_fl
	env export -c -s 0x3fff 0x50010000
	setexpr.b ota_dst *0x50100000
	setexpr.b ota_fl *0x50100001
	if test ${ota_dst} = 1; then
		cp.b 0x50010000 0x50000000 4
		mw.b 0x50000004 ${ota_fl}
		cp.b 0x50010004 0x50000005 0x3ffb
		setenv ota_w 'virtio write 0x50000000 0x800 0x20'
	else
		cp.b 0x50010000 0x50004000 4
		mw.b 0x50004004 ${ota_fl}
		cp.b 0x50010004 0x50004005 0x3ffb
		setenv ota_w 'virtio write 0x50004000 0x820 0x20'
	fi
	if run ota_w; then
		echo "OTA: environment saved to copy ${ota_dst} (flags ${ota_fl})"
	else
		echo "OTA: WARNING: saving the environment failed"
	fi
fi

# Back to a full environment for booting: run-time values, then the disk's
# (0x50010000 holds the copy imported above, or what was just saved).
env import -b 0x50200000
env import -c 0x50010000 0x3fff
env delete ota_f1 ota_f2 ota_new ota_cur ota_save ota_fl ota_dst ota_w

# Boot the chosen slot: kernel + initramfs from /boot of rootfs_<slot>, found by
# GPT name, never by number.
if test "${ota_slot}" != b; then setenv ota_slot a; fi
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
