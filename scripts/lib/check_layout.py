#!/usr/bin/env python3
"""Checks the A/B disk layout three ways against docs/contract.md, with real tools:

1. the Yocto .wks.in, as scripts/mkdisk parses it, has the contract's partition
   names in order, the env area at 0x100000 (two 0x4000 copies) outside the table,
   the first partition at 2 MiB and 1 MiB alignment everywhere;
2. scripts/mkdisk builds the disk from it (dummy rootfs, boot.scr, factory env):
   `sgdisk -v` finds no problem, `sfdisk --json` shows exactly that layout, and
   `fw_printenv` (libubootenv) reads the factory env from the raw area;
3. genimage (Debian) builds buildroot/board/rice-cooker/genimage.cfg: `sfdisk --json`
   shows the same partitions at the same offsets and sizes.

    python3 check_layout.py REPO_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile

MIB = 1024 * 1024
WANT_NAMES = ["boot", "misc", "rootfs_a", "rootfs_b", "data"]
ENV_OFFSET, ENV_COPY = 0x100000, 0x4000

problems = []


def fail(msg):
    problems.append(msg)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def sfdisk_parts(image):
    table = json.loads(run(["sfdisk", "--json", image]))["partitiontable"]
    if table.get("label") != "gpt":
        fail("%s: not a GPT disk (sfdisk label %r)" % (image, table.get("label")))
    return [(p.get("name"), p["start"] * 512, p["size"] * 512) for p in table["partitions"]]


def main():
    root = os.path.abspath(sys.argv[1])
    wks = os.path.join(root, "meta-ota/recipes-core/images/rice-cooker-image.wks.in")
    mkdisk = os.path.join(root, "scripts/mkdisk")
    env_txt = os.path.join(root, "meta-ota/recipes-bsp/u-boot/files/env-stock.txt")
    genimage_cfg = os.path.join(root, "buildroot/board/rice-cooker/genimage.cfg")

    # 1. the layout as written
    layout = json.loads(run([mkdisk, "--layout", wks, "--out", "/dev/null", "--layout-only"]))
    table = [p for p in layout if p["table"]]
    raw = [p for p in layout if not p["table"]]
    want = [(p["name"], p["offset"], p["size"]) for p in table]
    if [p["name"] for p in table] != WANT_NAMES:
        fail("wks: partitions %s, want %s" % ([p["name"] for p in table], WANT_NAMES))
    if [(p["offset"], p["size"]) for p in raw] != [(ENV_OFFSET, 2 * ENV_COPY)]:
        fail("wks: raw env area %s, want one at 0x%x of 2 x 0x%x"
             % ([(hex(p["offset"]), hex(p["size"])) for p in raw], ENV_OFFSET, ENV_COPY))
    if table and table[0]["offset"] != 2 * MIB:
        fail("wks: first partition at %d, want 2 MiB" % table[0]["offset"])
    for p in table:
        if p["offset"] % MIB or p["size"] % MIB:
            fail("wks: %s is not 1 MiB aligned" % p["name"])
    fstypes = {p["name"]: p["fstype"] for p in table}
    if fstypes.get("boot") != "vfat" or fstypes.get("data") != "vfat":
        fail("wks: boot and data must be vfat, got %s" % fstypes)

    with tempfile.TemporaryDirectory(prefix="check-layout.") as tmp:
        # 2. the factory disk
        rootfs = os.path.join(tmp, "rootfs.ext4")
        run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", rootfs, "8M"])
        bootscr = os.path.join(tmp, "boot.scr")
        with open(bootscr, "w") as f:
            f.write("echo placeholder\n")
        disk = os.path.join(tmp, "disk.img")
        manifest = os.path.join(tmp, "disk.json")
        run([mkdisk, "--layout", wks, "--part", "rootfs_a=" + rootfs, "--boot-file", bootscr,
             "--env-text", env_txt, "--manifest", manifest, "--out", disk])
        verify = run(["sgdisk", "-v", disk])
        if "No problems found" not in verify:
            fail("sgdisk -v on the mkdisk image:\n" + verify)
        got = sfdisk_parts(disk)
        if got != want:
            fail("mkdisk image: sfdisk shows %s, wks says %s" % (got, want))
        fw_env = os.path.join(tmp, "fw_env.config")
        with open(fw_env, "w") as f:
            f.write("%s 0x%x 0x%x\n%s 0x%x 0x%x\n"
                    % (disk, ENV_OFFSET, ENV_COPY, disk, ENV_OFFSET + ENV_COPY, ENV_COPY))
        env = run(["fw_printenv", "-c", fw_env])
        for line in ("ota_slot=a", "upgrade_available=0", "bootlimit=3"):
            if line not in env.splitlines():
                fail("fw_printenv on the mkdisk image lacks %r:\n%s" % (line, env))
        if "altbootcmd=" not in env:
            fail("the factory env has no altbootcmd (the agent refuses set-active without it)")
        with open(manifest) as f:
            regions = json.load(f)["regions"]
        if [r["name"] for r in regions if r["name"] != "(env area)"] != WANT_NAMES:
            fail("mkdisk manifest regions: %s" % [r["name"] for r in regions])

        # mkdisk for the factory line: both slots filled; and refusals that change nothing.
        both = os.path.join(tmp, "both.img")
        run([mkdisk, "--layout", wks, "--part", "rootfs_a=" + rootfs, "--part", "rootfs_b=" + rootfs,
             "--env-text", env_txt, "--out", both])
        with open(rootfs, "rb") as f:
            want_bytes = f.read()
        slots = {p[0]: p[1] for p in sfdisk_parts(both)}
        with open(both, "rb") as f:
            for slot in ("rootfs_a", "rootfs_b"):
                f.seek(slots.get(slot, 0))
                if f.read(len(want_bytes)) != want_bytes:
                    fail("mkdisk --part %s=rootfs.ext4: the slot does not hold the image" % slot)
        big = os.path.join(tmp, "big.ext4")
        with open(big, "wb") as f:
            f.truncate(table[2]["size"] + 512 if len(table) > 2 else 1)
        for bad, why in ((["--part", "rootfs_a=" + big], "an image larger than the slot"),
                         (["--part", "rootfs_c=" + rootfs], "an unknown partition name")):
            out = os.path.join(tmp, "refused.img")
            if os.path.exists(out):
                os.unlink(out)
            r = subprocess.run([mkdisk, "--layout", wks, "--out", out] + bad,
                               capture_output=True, text=True)
            if r.returncode == 0 or os.path.exists(out) or not r.stderr.startswith("mkdisk: "):
                fail("mkdisk accepted %s (status %d, stderr %r)" % (why, r.returncode, r.stderr))

        # 3. the Buildroot genimage.cfg
        for name in ("rootfs.ext4", "boot.scr", "uboot-env.bin"):
            src = {"rootfs.ext4": rootfs, "boot.scr": bootscr}.get(name)
            dst = os.path.join(tmp, "images", name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if src:
                with open(src, "rb") as i, open(dst, "wb") as o:
                    o.write(i.read())
            else:
                # What BR2_PACKAGE_HOST_UBOOT_TOOLS_ENVIMAGE(_REDUNDANT) makes: one copy.
                run(["mkenvimage", "-r", "-s", str(ENV_COPY), "-o", dst, env_txt])
        # post-image.sh formats the empty data partition itself (see genimage.cfg).
        run(["mkfs.vfat", "-n", "DATA", "-C", os.path.join(tmp, "images", "data.vfat"),
             str(128 * 1024)])
        os.makedirs(os.path.join(tmp, "root"))
        run(["genimage", "--config", genimage_cfg, "--rootpath", os.path.join(tmp, "root"),
             "--tmppath", os.path.join(tmp, "gtmp"), "--inputpath", os.path.join(tmp, "images"),
             "--outputpath", os.path.join(tmp, "images")], cwd=tmp)
        got = sfdisk_parts(os.path.join(tmp, "images", "sdcard.img"))
        if got != want:
            fail("genimage.cfg: sfdisk shows %s, wks says %s" % (got, want))

    for p in problems:
        print("check-layout: " + p)
    print("check-layout: %d partitions checked in wks, mkdisk and genimage images; %d problem(s)"
          % (len(want), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        print("check-layout: %s failed (%d): %s" % (" ".join(e.cmd), e.returncode, e.stderr.strip()))
        sys.exit(1)
