# shellcheck shell=bash
# Shared helpers of the QEMU scripts (sourced, not run). Everything downloaded or
# built lives outside the repo, in $OTA_QEMU_CACHE (default ~/.cache/ota-qemu):
#   debs/        arm64 .debs fetched with `apt-get download` (kernel, busybox)
#   src/         the Debian U-Boot source package (variants b and c)
#   out/         built artefacts: initramfs, rootfs images, disks, U-Boot builds
# Nothing here needs root except the apt steps in scripts/qemu/fetch.
# shellcheck disable=SC2034  # the variables are used by the scripts sourcing this

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OTA_QEMU_CACHE=${OTA_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ota-qemu}
OUT=$OTA_QEMU_CACHE/out
# Disk and slot images: $IMAGES/<variant>/. tests/qemu/run points this at its
# own work directory, so two runs on one machine never rebuild each other's
# images mid-test (the U-Boot build and downloads stay shared caches).
IMAGES=${OTA_QEMU_IMAGES:-$OUT}
UBOOT_FILES=$REPO/meta-ota/recipes-bsp/u-boot/files
GUEST_FILES=$REPO/tests/qemu/guest
STOCK_UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin
AGENT_TARGET=aarch64-unknown-linux-musl

# Disk layout (docs/contract.md "Disk layout and kernel command line"): the raw env area
# (two 16 KiB copies at 1 MiB) sits before the first partition at 2 MiB.
ENV_OFFSET=$((0x100000))
ENV_SIZE=$((0x4000))
ENV_OFFSET_REDUND=$((0x104000))
# name  size(MiB)  GPT type code (sgdisk)  -- partition numbers follow this order
PARTS=(
	"boot 16 0700"
	"misc 1 8300"
	"rootfs_a 48 8300"
	"rootfs_b 48 8300"
	"data 80 0700" # room for a full, uncompressed 48 MiB update bundle
)

# Size in MiB of partition NAME in PARTS.
part_mib() {
	local p want=$1
	for p in "${PARTS[@]}"; do
		# shellcheck disable=SC2086  # "name size type": split on purpose
		set -- $p
		[ "$1" != "$want" ] || echo "$2"
	done
}
die() { echo "error: $*" >&2; exit 1; }
log() { echo "--- $*" >&2; }

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || die "$t not found (run scripts/qemu/fetch or scripts/install-deps)"
	done
}

# Byte offset / size of partition NAME in DISK (from the GPT, via sgdisk).
part_offset() { sgdisk -i "$(part_number "$1" "$2")" "$1" | sed -n 's/^First sector: \([0-9]*\).*/\1/p' | awk '{print $1*512}'; }
part_size() {
	local info
	info=$(sgdisk -i "$(part_number "$1" "$2")" "$1")
	local first last
	first=$(sed -n 's/^First sector: \([0-9]*\).*/\1/p' <<<"$info")
	last=$(sed -n 's/^Last sector: \([0-9]*\).*/\1/p' <<<"$info")
	echo $(((last - first + 1) * 512))
}
part_number() {
	sgdisk -p "$1" | awk -v n="$2" '$1 ~ /^[0-9]+$/ && $NF == n {print $1}'
}

# The kernel package's files, unpacked once (ARCH arm64, the default, or armhf).
kernel_dir() { if [ "${1:-arm64}" = arm64 ]; then echo "$OTA_QEMU_CACHE/x/kernel"; else echo "$OTA_QEMU_CACHE/x/kernel-$1"; fi; }
busybox_dir() { if [ "${1:-arm64}" = arm64 ]; then echo "$OTA_QEMU_CACHE/x/busybox"; else echo "$OTA_QEMU_CACHE/x/busybox-$1"; fi; }

# Runs QEMU (TCG: KVM is unusable here) on DISK with U-Boot BIOS, serial to LOG.
# reboot in the guest returns to U-Boot in the same process; poweroff ends it.
# NET=user gives the guest a virtio NIC on QEMU's user-mode network (no root,
# no host interface): the guest is 10.0.2.15/24 and 10.0.2.2 reaches the
# host's 127.0.0.1. No hostfwd: nothing on the host can connect in. (Not
# `restrict=on`: it would cut the guest off from 10.0.2.2 too.)
# Returns QEMU's status (124 = timeout).
run_qemu() {
	local bios=$1 disk=$2 log=$3 limit=${4:-300} net=${5:-none}
	local nic=(-nic none)
	# shellcheck disable=SC2054  # the commas belong to QEMU's option syntax
	[ "$net" = user ] && nic=(-netdev user,id=n0 -device virtio-net-device,netdev=n0)
	# -smp 1: TCG runs one vCPU about twice as fast as two here.
	# shellcheck disable=SC2054  # the commas belong to QEMU's option syntax
	local cmd=(timeout -k 5 "$limit" qemu-system-aarch64
		-M virt -cpu cortex-a53 -smp 1 -m 512 -nographic "${nic[@]}"
		-bios "$bios"
		-drive if=none,file="$disk",format=raw,id=hd0 -device virtio-blk-device,drive=hd0)
	if [ "${OTA_QEMU_MACHINE:-arm64}" = armv7 ]; then
		# The rice cooker (tests/qemu/run armv7): Cortex-A7, 1 GiB (RAM at
		# 0x40000000, so the layer's OTA_BOOT_SCRATCH 0x68000000 is RAM), the
		# disk as an SD card on sdhci-pci (U-Boot's and Linux's mmc 0), and
		# a 16550 on PCI for the layer's console=ttyS0,115200 next to the
		# PL011 U-Boot prints on: both on one multiplexed stdio chardev, so
		# the log keeps U-Boot and Linux lines in order.
		# shellcheck disable=SC2054  # the commas belong to QEMU's option syntax
		cmd=(timeout -k 5 "$limit" qemu-system-arm
			-M virt -cpu cortex-a7 -smp 1 -m 1024 -display none -monitor none "${nic[@]}"
			-chardev stdio,id=con,mux=on,signal=off -serial chardev:con -device pci-serial,chardev=con
			-bios "$bios"
			-device sdhci-pci -drive if=none,file="$disk",format=raw,id=hd0 -device sd-card,drive=hd0)
	fi
	if [ "${OTA_QEMU_SHOW:-0}" = 1 ]; then
		# The demo: show the serial console live, keep the log for the checks.
		"${cmd[@]}" </dev/null 2>&1 | tee "$log"
		return "${PIPESTATUS[0]}"
	fi
	"${cmd[@]}" </dev/null >"$log" 2>&1
}
