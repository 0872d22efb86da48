#!/usr/bin/env bash
# The U-Boot environment on a real block device (a loop device over a disk
# image with the product layout of conf/fw_env.config), written and read by
# `ota-agent env` and by libubootenv's fw_printenv/fw_setenv, both ways,
# redundant copies at 0x100000 and 0x104000. Also checks that no byte outside
# the two env copies changes (the GPT before, the partitions after).
#
# Needs root (losetup). Fails, never skips, when something is missing.
#   tests/env-blockdev.sh [path/to/ota-agent]
set -euo pipefail
cd "$(dirname "$0")/.."

agent=${1:-${CARGO_TARGET_DIR:-target}/debug/ota-agent}
[ -x "$agent" ] || { echo "env-blockdev: $agent not built (cargo build -p ota-agent)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "env-blockdev: needs root for losetup" >&2; exit 1; }
for t in losetup fw_printenv fw_setenv cmp; do
  command -v "$t" >/dev/null || { echo "env-blockdev: $t missing (scripts/install-deps)" >&2; exit 1; }
done

work=$(mktemp -d)
loop=""
cleanup() { [ -z "$loop" ] || losetup -d "$loop"; rm -rf "$work"; }
trap cleanup EXIT

# 4 MiB disk filled with a pattern, so any stray write shows.
{ yes 'rice cooker disk pattern' || true; } | head -c $((4 << 20)) > "$work/disk.img"
cp "$work/disk.img" "$work/before.img"
loop=$(losetup --find --show "$work/disk.img")
printf '%s 0x100000 0x4000\n%s 0x104000 0x4000\n' "$loop" "$loop" > "$work/fw_env.config"
printf 'bootdelay=2\nota_slot=a\n' > "$work/defenv"
cfg=(-c "$work/fw_env.config")

fail() { echo "env-blockdev: FAIL: $*" >&2; exit 1; }
same() { # same output from ota-agent env print and fw_printenv
  local ours theirs
  ours=$("$agent" env print "${cfg[@]}" "$@")
  theirs=$(fw_printenv "${cfg[@]}" "$@")
  [ "$ours" = "$theirs" ] || fail "print $*: ours [$ours] fw_printenv [$theirs]"
  printf '%s\n' "$ours"
}

# Pattern bytes are not an environment: both tools refuse without -f.
if "$agent" env print "${cfg[@]}" >/dev/null 2>&1; then fail "read garbage as an env"; fi

"$agent" env set "${cfg[@]}" -f "$work/defenv" upgrade_available 0
[ "$(same)" = $'bootdelay=2\nota_slot=a\nupgrade_available=0' ] || fail "after our first write"
fw_setenv "${cfg[@]}" ota_slot b
"$agent" env set "${cfg[@]}" bootcount 1
printf 'upgrade_available=1\nbootdelay\n' | "$agent" env set "${cfg[@]}" -s -
fw_setenv "${cfg[@]}" bootlimit 3
[ "$(same)" = $'bootcount=1\nbootlimit=3\nota_slot=b\nupgrade_available=1' ] || fail "after interleaved writes"
[ "$(same -n ota_slot)" = b ] || fail "print -n"

# Nothing outside the two copies changed.
losetup -d "$loop"; loop=""
cmp -n $((0x100000)) "$work/disk.img" "$work/before.img" || fail "bytes before the env changed"
cmp -i $((0x108000)) "$work/disk.img" "$work/before.img" || fail "bytes after the env changed"
echo "env-blockdev: ok (loop device, redundant env, 5 writes by both tools)"
