#!/usr/bin/env bash
# The U-Boot environment on real MTD character devices, which this host's
# kernel does not have (CONFIG_MTD is off here): boots Debian's amd64 kernel in
# QEMU with a tiny initramfs, loads the kernel's own simulators and runs
# `ota-agent env` and libubootenv's fw_printenv/fw_setenv against them:
#
#   nandsim (MTD_NANDFLASH, 16 KiB erase blocks, block 2 marked bad):
#     redundant env, one copy starting on the bad block: both tools must skip
#     it; NAND refuses to overwrite unerased pages, so erase-before-write is
#     proven by every successful rewrite; writes interleaved between the tools.
#   mtdram (MTD_RAM): single env, ours only (libubootenv accepts only NOR/NAND).
#
# NOR flash (boolean flags) is not covered: no NOR simulator is available to
# an x86 guest here.
#
#   tests/env-mtd-qemu.sh [path/to/static/ota-agent]
#
# Needs: qemu-system-x86 and busybox-static (scripts/install-deps), apt access
# to Debian's linux-image package (downloaded once into ~/.cache/ota-env-mtd).
# Fails, never skips, when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's current amd64 kernel (its ABI name changes with security updates,
# so it is looked up, not pinned); modules and image come from one package.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
kpkg=$(kernel_pkg)
[ -n "$kpkg" ] || { apt-get update -qq && kpkg=$(kernel_pkg); }
[ -n "$kpkg" ] || { echo "env-mtd: cannot find Debian's linux-image-amd64" >&2; exit 1; }
kver=${kpkg#linux-image-}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ota-env-mtd
agent=${1:-}
if [ -z "$agent" ]; then
  cargo build --quiet -p ota-agent --target x86_64-unknown-linux-musl
  agent=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/debug/ota-agent
fi
for t in qemu-system-x86_64 busybox cpio gzip fw_printenv fw_setenv dpkg-deb; do
  command -v "$t" >/dev/null || { echo "env-mtd: $t missing (scripts/install-deps)" >&2; exit 1; }
done
ldd_out=$(ldd "$agent" 2>&1 || true) # ldd exits 1 on a static binary
grep -qE 'not a dynamic executable|statically linked' <<<"$ldd_out" ||
  { echo "env-mtd: $agent is not a static binary" >&2; exit 1; }

# The kernel and its MTD modules, from Debian's package (cached).
mkdir -p "$cache"
if [ ! -f "$cache/x/boot/vmlinuz-$kver" ]; then
  rm -f "$cache"/linux-image-*.deb
  (cd "$cache" && { apt-get download -q "$kpkg" >/dev/null 2>&1 ||
     { apt-get update -qq && apt-get download -q "$kpkg"; }; })
  rm -rf "$cache/x" && dpkg-deb -x "$cache"/"$kpkg"_*.deb "$cache/x"
fi
mods=$cache/x/lib/modules/$kver/kernel

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,var/lock,mod,lib64,lib/x86_64-linux-gnu}
cp "$(command -v busybox)" "$root/bin/busybox"
cp "$agent" "$root/bin/ota-agent"
for t in fw_printenv fw_setenv; do cp "$(command -v $t)" "$root/bin/$t"; done
# libubootenv's tools are dynamic: bring their libraries along.
ldd "$(command -v fw_printenv)" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' |
  while read -r lib; do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
# Load order follows each module's depends= field.
for m in drivers/mtd/mtd.ko lib/bch.ko drivers/mtd/nand/nandcore.ko \
         drivers/mtd/nand/raw/nand.ko drivers/mtd/nand/raw/nandsim.ko \
         drivers/mtd/devices/mtdram.ko; do
  cp "$mods/$m" "$root/mod/"
done

cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in mtd bch nandcore nand; do insmod /mod/$m.ko || echo "FAIL insmod $m"; done
# 64 MiB small-page NAND (16 KiB blocks), erase block 2 marked bad.
insmod /mod/nandsim.ko id_bytes=0x20,0x76 badblocks=2 || echo "FAIL insmod nandsim"
insmod /mod/mtdram.ko total_size=256 erase_size=16 || echo "FAIL insmod mtdram"
cat /proc/mtd
sh /test.sh
echo "ENV-MTD-RESULT: $?"
poweroff -f
EOF
chmod +x "$root/init"

cat > "$root/test.sh" <<'EOF'
set -u
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
nand=$(grep -l NAND /sys/class/mtd/mtd*/name 2>/dev/null | head -1 | sed 's,.*/\(mtd[0-9]*\)/name,\1,')
ram=$(grep -l mtdram /sys/class/mtd/mtd*/name 2>/dev/null | head -1 | sed 's,.*/\(mtd[0-9]*\)/name,\1,')
[ -n "$nand" ] && [ -n "$ram" ] || { echo "FAIL: no nandsim/mtdram device"; exit 1; }
echo "nand=/dev/$nand ram=/dev/$ram"
printf 'bootdelay=2\nota_slot=a\n' > /tmp/defenv

same() { # ours and fw_printenv print the same, and it is $1
  cfg=$1; want=$2
  o=$(ota-agent env print -c "$cfg" 2>&1); t=$(fw_printenv -c "$cfg" 2>&1)
  [ "$o" = "$t" ] || { fail "$cfg: ours [$o] fw_printenv [$t]"; return; }
  [ "$o" = "$want" ] && ok "$cfg: [$(echo $o)]" || fail "$cfg: got [$o] want [$want]"
}

# Redundant on NAND: copy 1 at 0x0, copy 2 at 0x8000 = the bad block 2, two
# erase blocks reserved per copy (sector count 2) so the good block 3 is used.
c=/tmp/nand.cfg
printf '/dev/%s 0x0 0x4000 0x4000 2\n/dev/%s 0x8000 0x4000 0x4000 2\n' "$nand" "$nand" > $c
ota-agent env print -c $c >/dev/null 2>&1 && fail "erased NAND read as an env"
ota-agent env set -c $c -f /tmp/defenv upgrade_available 0 || fail "first write"
same $c "$(printf 'bootdelay=2\nota_slot=a\nupgrade_available=0')"
fw_setenv -c $c ota_slot b || fail "fw_setenv 1"
ota-agent env set -c $c bootcount 1 || fail "ours 2"
fw_setenv -c $c bootdelay || fail "fw_setenv 2"
ota-agent env set -c $c upgrade_available 1 || fail "ours 3"
i=0; while [ $i -lt 6 ]; do # several more rounds: every write erases first
  fw_setenv -c $c n $i || fail "fw_setenv n $i"; ota-agent env set -c $c m $i || fail "ours m $i"
  i=$((i + 1))
done
same $c "$(printf 'bootcount=1\nm=5\nn=5\nota_slot=b\nupgrade_available=1')"
# The bad block was never used: copy 2 lives in block 3 (0xc000).
dd if=/dev/$nand bs=16384 skip=3 count=1 2>/dev/null | grep -q 'ota_slot=' &&
  ok "copy 2 in block 3 (bad block skipped)" || fail "copy 2 not found in block 3"

# Single env on NAND, further in.
c=/tmp/nand1.cfg
printf '/dev/%s 0x40000 0x4000\n' "$nand" > $c
fw_setenv -c $c -f /tmp/defenv x 1 || fail "fw_setenv single"
ota-agent env set -c $c y 2 || fail "ours single"
same $c "$(printf 'bootdelay=2\nota_slot=a\nx=1\ny=2')"

# mtdram (MTD_RAM): libubootenv refuses this type, so ours alone; the 0x400
# bytes after the env inside its erase block must survive the erase.
c=/tmp/ram.cfg
printf '/dev/%s 0x4000 0x400\n' "$ram" > $c
printf 'keepme' | dd of=/dev/$ram bs=1 seek=$((0x4400)) conv=notrunc 2>/dev/null
ota-agent env set -c $c -f /tmp/defenv a 1 && ota-agent env set -c $c b 2 || fail "mtdram write"
[ "$(ota-agent env print -c $c)" = "$(printf 'a=1\nb=2\nbootdelay=2\nota_slot=a')" ] &&
  ok "mtdram read back" || fail "mtdram read back: $(ota-agent env print -c $c 2>&1)"
[ "$(dd if=/dev/$ram bs=1 skip=$((0x4400)) count=6 2>/dev/null)" = keepme ] &&
  ok "mtdram bytes outside the env kept" || fail "mtdram erase lost neighbouring bytes"
exit $fails
EOF

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"
# TCG: KVM is not dependable in nested CI machines (seen here: a hang, and
# "failed to set MSR" with -cpu host); TCG boots this initramfs in ~20 s.
accel=tcg
timeout 300 qemu-system-x86_64 -accel "$accel" -m 512 -nographic -no-reboot \
  -kernel "$cache/x/boot/vmlinuz-$kver" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init" > "$work/console.log" 2>&1 || true
grep -E '^(ok|FAIL|nand=)|^dev:|^mtd[0-9]' "$work/console.log" | tr -d '\r' || true
if grep -q 'ENV-MTD-RESULT: 0' "$work/console.log"; then
  echo "env-mtd: ok"
else
  echo "env-mtd: FAILED (console log follows)" >&2
  tail -n 40 "$work/console.log" >&2
  exit 1
fi
