#!/usr/bin/env bash
# The install journal's two checkpoint records on a REAL vfat filesystem
# (what the product's `data` partition is): after the files exist, storing
# a checkpoint overwrites in place — same size, same clusters, no free
# cluster used, no temp file — so a power cut has no directory entry or FAT
# sector to tear (docs/install.md "Checkpoints"). The cut itself is proven
# on the model filesystem (agent/tests/durable_power.rs, install_power.rs);
# this checks that vfat behaves as that model assumes for in-place writes.
#
# Needs root (losetup, mount), mkfs.vfat, filefrag, and a kernel with vfat
# (QEMU guests of tests/qemu have it). Fails, never skips.
#   tests/durable-vfat.sh
#   DURABLE_FS=ext4 tests/durable-vfat.sh   # the same check on ext4
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
[ "$(id -u)" -eq 0 ] || { echo "durable-vfat: needs root for losetup/mount" >&2; exit 1; }
fs=${DURABLE_FS:-vfat}
grep -qw "$fs" /proc/filesystems || { echo "durable-vfat: this kernel has no $fs filesystem" >&2; exit 1; }
for t in losetup "mkfs.$fs" filefrag stat; do
  command -v "$t" >/dev/null || { echo "durable-vfat: $t missing (scripts/install-deps: dosfstools, e2fsprogs)" >&2; exit 1; }
done
cargo build --quiet -p ota-agent --example journal_store
store=$target/debug/examples/journal_store

work=$(mktemp -d)
loop="" mnt="$work/mnt"
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  [ -z "$loop" ] || losetup -d "$loop"
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "durable-vfat: FAIL: $*" >&2; exit 1; }

truncate -s 32M "$work/data.img"
case $fs in
  vfat) mkfs.vfat -F 32 -n DATA "$work/data.img" >/dev/null 2>&1 ;;
  *) "mkfs.$fs" -q "$work/data.img" ;;
esac
loop=$(losetup --find --show "$work/data.img")
mkdir "$mnt"
mount -t "$fs" "$loop" "$mnt"
state="$mnt/ota"
mkdir "$state"

layout() { # name size extents, for both record files; plus free blocks
  for f in "$state"/JOURNAL.0 "$state"/JOURNAL.1; do
    printf '%s %s ' "$(basename "$f")" "$(stat -c %s "$f")"
    filefrag -v "$f" | awk '/^ *[0-9]+:/ { printf "%s ", $4 }'
    echo
  done
  stat -f -c 'free %f' "$state"
}

"$store" "$state" 2
sync
before=$(layout)
"$store" "$state" 1000
sync
umount "$mnt"
mount -t "$fs" "$loop" "$mnt"
after=$(layout)
echo "$after"
[ "$before" = "$after" ] || fail "record files moved, grew or allocated clusters:
before: $before
after:  $after"
others=$(ls -A "$state" | grep -v '^JOURNAL\.[01]$' || true)
[ -z "$others" ] || fail "unexpected files beside the records: $others"
out=$("$store" "$state" 1)
echo "$out" | grep -q "seq" || fail "records unreadable after remount: $out"
echo "durable-vfat: ok on $fs (1000 checkpoints overwrote 2 files in place)"
