#!/usr/bin/env bash
# Boot control on a real block device with 4096-byte logical sectors (eMMC/UFS
# parts and many SD cards report 512, some 4096; the GPT reader must handle
# both): a loop device with --sector-size 4096, partitioned by sgdisk, slot
# discovery and the Android bootctrl written through `ota-agent`, checked with
# sfdisk and raw bytes read by dd. The booted slot comes from a command line
# naming the root by device (/dev/loopNp3), resolved against the disk.
#
# Needs root (losetup). Fails, never skips, when something is missing.
#   tests/bootctl-blockdev.sh [path/to/ota-agent]
set -euo pipefail
cd "$(dirname "$0")/.."

agent=${1:-${CARGO_TARGET_DIR:-target}/debug/ota-agent}
[ -x "$agent" ] || { echo "bootctl-blockdev: $agent not built (cargo build -p ota-agent)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bootctl-blockdev: needs root for losetup" >&2; exit 1; }
for t in losetup sgdisk sfdisk dd od; do
  command -v "$t" >/dev/null || { echo "bootctl-blockdev: $t missing (scripts/install-deps)" >&2; exit 1; }
done

work=$(mktemp -d)
loop=""
cleanup() { [ -z "$loop" ] || losetup -d "$loop"; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "bootctl-blockdev: FAIL: $*" >&2; exit 1; }

truncate -s 64M "$work/disk.img"
loop=$(losetup --find --show --sector-size 4096 "$work/disk.img")
[ "$(blockdev --getss "$loop")" = 4096 ] || fail "loop device does not have 4096-byte sectors"
sgdisk -o \
  -n 1:512:+2M -c 1:boot -n 2:0:+1M -c 2:misc \
  -n 3:0:+16M -c 3:rootfs_a -n 4:0:+16M -c 4:rootfs_b -n 5:0:0 -c 5:data \
  "$loop" >/dev/null
sfdisk --json "$loop" > "$work/table.json"
grep -q '"sectorsize": 4096' "$work/table.json" || fail "sfdisk does not see 4096-byte sectors"
misc_start=$(sfdisk --dump "$loop" | sed -n 's/.*start= *\([0-9]*\),.*name="misc".*/\1/p')
[ -n "$misc_start" ] || fail "no misc partition in sfdisk --dump"

mkdir "$work/health.d"
printf 'root=%sp3 androidboot.slot_suffix=_a rootwait\n' "$loop" > "$work/cmdline"
cat > "$work/ota-agent.toml" <<EOF
product = "rice-cooker"
disk = "$loop"
bootloader = "android"
boot_tries = 3
state_dir = "$work/state"
health_dir = "$work/health.d"
cmdline = "$work/cmdline"
EOF
a() { "$agent" --config "$work/ota-agent.toml" "$@"; }

# Blank misc: reported, not initialised.
if a status >/dev/null 2>"$work/err"; then fail "status accepted a blank bootctrl"; fi
grep -q 'bad magic' "$work/err" || fail "blank bootctrl not reported: $(cat "$work/err")"

a set-active a --reinit >/dev/null 2>&1 || fail "set-active a --reinit"
a set-active other >/dev/null || fail "set-active other"
json=$(a status --json)
grep -q '"booted": "a"' <<<"$json" || fail "booted slot from root=${loop}p3: $json"
grep -q '"active": "b"' <<<"$json" || fail "active slot after set-active other: $json"

# The block, read raw at misc + 2048 (misc start is in 4096-byte sectors).
bytes=$(dd if="$loop" bs=1 skip=$((misc_start * 4096 + 2048)) count=32 status=none | od -An -tx1 | tr -d ' \n')
[ "${bytes:8:8}" = 42434142 ] || fail "no bootctrl magic at misc+2048: $bytes"
# slot a: priority 14, tries 3, successful -> 0xbe; slot b: 15, 3 tries -> 0x3f.
[ "${bytes:24:2}" = be ] && [ "${bytes:28:2}" = 3f ] || fail "slot bytes: $bytes"

# The root device and the command line must agree.
printf 'root=%sp4 androidboot.slot_suffix=_a\n' "$loop" > "$work/cmdline"
if a status >/dev/null 2>"$work/err"; then fail "disagreeing root= accepted"; fi
grep -q 'disagrees' "$work/err" || fail "disagreement not named: $(cat "$work/err")"

echo "bootctl-blockdev: ok (4096-byte sectors, misc at sector $misc_start, root by device name)"
