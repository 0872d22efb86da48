#!/usr/bin/env python3
"""Runs the image class's own task code (classes-recipe/ota-bundle.bbclass) the way
BitBake would, against the real ota-sign and scripts/mkdisk, without oe-core:

* parses rice-cooker-image.bb with BitBake's parser (oe-core classes stubbed, as in
  bbparse_layer.py), sets the deploy paths to a temporary directory;
* the prefunc ota_check_signing_key: a fatal error naming OTA_SIGNING_KEY when it is
  unset, a loud warning for the layer's development key;
* do_ota_bundle, emitted as a shell script by bb.data.emit_func (what BitBake writes
  to temp/run.do_ota_bundle), run with ota-sign on PATH, with a delta base: the
  bundle's signature verifies with `openssl dgst -verify` and the development public
  key, and its manifest names the product, version and both payload kinds;
* do_ota_factory_disk, emitted the same way: the factory disk's GPT and manifest,
  and its block map: `bmaptool copy` of the disk through the .bmap gives the same
  bytes (cmp), and the manifest records the .bmap's SHA-256.

    python3 run_image_tasks.py REPO_ROOT OTA_SIGN_BINARY
"""
import json
import logging
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bbparse_layer  # noqa: E402  (sets up the bb import)
import bb  # noqa: E402
import bb.data  # noqa: E402
import bb.parse  # noqa: E402

problems = []


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def parse_image(layer, stubdir, tmp):
    d = bbparse_layer.base_data(layer, stubdir, "ota")
    d.setVar("__bbclasstype", "recipe")
    d.setVar("PN", "rice-cooker-image")
    bb.parse.handle(os.path.join(layer, "recipes-core/images/rice-cooker-image.bb"), d, True)
    for var, sub in (("IMGDEPLOYDIR", "imgdeploy"), ("DEPLOY_DIR_IMAGE", "deploy"),
                     ("WORKDIR", "work")):
        d.setVar(var, os.path.join(tmp, sub))
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    d.setVar("IMAGE_NAME", "rice-cooker-image-qemuarm64-ota.rootfs-20261125")
    d.setVar("IMAGE_LINK_NAME", "rice-cooker-image-qemuarm64-ota.rootfs")
    d.setVar("OTA_VERSION", "1.2.3")
    return d


def run_python_func(d, name):
    """A python task function: its body is what BitBake compiles as def NAME(d)."""
    env = {"bb": bb, "d": d, "os": os}
    exec(compile("def %s(d):\n%s\n" % (name, d.getVar(name, False)), name, "exec"), env)
    env[name](d)


def run_shell_task(d, task, path_dirs, cwd):
    """Emit the task like BitBake's run.<task> script and run it with bash."""
    script = os.path.join(cwd, "run." + task)
    with open(script, "w") as f:
        f.write("#!/bin/sh\nset -e\n")
        bb.data.emit_func(task, f, d)
        f.write("\n%s\n" % task)
    env = dict(os.environ, PATH=":".join(path_dirs + [os.environ["PATH"]]))
    return subprocess.run(["bash", script], cwd=cwd, env=env, capture_output=True, text=True)


def check_bmap(img, bmap, manifest, tmp, what):
    """The bmap round trip: bmaptool copy through the bmap gives the image's bytes,
    and the manifest names the bmap with its SHA-256."""
    import hashlib
    if not os.path.isfile(bmap):
        problems.append("%s: no block map %s" % (what, os.path.basename(bmap)))
        return
    out = os.path.join(tmp, "bmap-copy.img")
    r = subprocess.run(["bmaptool", "copy", "--bmap", bmap, img, out], capture_output=True, text=True)
    if r.returncode != 0:
        problems.append("%s: bmaptool copy failed: %s" % (what, r.stderr.strip()[-300:]))
    elif subprocess.run(["cmp", "-s", img, out]).returncode != 0:
        problems.append("%s: bmaptool copy through %s does not reproduce the image"
                        % (what, os.path.basename(bmap)))
    if os.path.exists(out):
        os.unlink(out)
    with open(manifest) as f:
        rec = json.load(f)
    with open(bmap, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if rec.get("bmap_sha256") != digest or rec.get("bmap") != os.path.basename(os.path.realpath(bmap)):
        problems.append("%s: manifest bmap/bmap_sha256 (%s %s) are not the .bmap's (%s %s)"
                        % (what, rec.get("bmap"), rec.get("bmap_sha256"),
                           os.path.basename(os.path.realpath(bmap)), digest))


def main():
    root = os.path.abspath(sys.argv[1])
    ota_sign = os.path.abspath(sys.argv[2])
    layer = os.path.join(root, "meta-ota")
    dev_key = os.path.join(layer, "files/dev-keys/ota-dev-DO-NOT-SHIP.key.pem")
    dev_pub = os.path.join(layer, "files/dev-keys/ota-dev-DO-NOT-SHIP.pub.pem")
    env_txt = os.path.join(layer, "recipes-bsp/u-boot/files/env-stock.txt")
    capture = Capture()
    logging.getLogger("BitBake").addHandler(capture)
    logging.getLogger("BitBake").setLevel(logging.INFO)

    with tempfile.TemporaryDirectory(prefix="image-tasks.") as tmp, \
            tempfile.TemporaryDirectory(prefix="bbstubs.") as stubdir:
        os.rmdir(stubdir)
        bbparse_layer.make_stubs(layer, stubdir)
        d = parse_image(layer, stubdir, tmp)
        imgdeploy = d.getVar("IMGDEPLOYDIR")
        old = os.path.join(tmp, "old.ext4")
        new = os.path.join(imgdeploy, d.getVar("IMAGE_NAME") + ".ext4")
        srcdir = os.path.join(tmp, "src")
        os.makedirs(os.path.join(srcdir, "etc"))
        with open(os.path.join(srcdir, "etc/version"), "w") as f:
            f.write("1.2.2\n")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "hash_seed=3f7c0e6a-1b1c-4d5e-9f00-000000000001",
                        "-U", "3f7c0e6a-1b1c-4d5e-9f00-000000000002", "-d", srcdir, old, "8M"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        with open(os.path.join(srcdir, "etc/version"), "w") as f:
            f.write("1.2.3\n")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "hash_seed=3f7c0e6a-1b1c-4d5e-9f00-000000000001",
                        "-U", "3f7c0e6a-1b1c-4d5e-9f00-000000000002", "-d", srcdir, new, "8M"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)

        # 1. no key: a fatal error that names the variable
        d.setVar("OTA_SIGNING_KEY", "")
        try:
            run_python_func(d, "ota_check_signing_key")
            problems.append("ota_check_signing_key accepted an unset OTA_SIGNING_KEY")
        except bb.BBHandledException:
            if not any("OTA_SIGNING_KEY is not set" in m for m in capture.records):
                problems.append("the unset-key error does not name OTA_SIGNING_KEY: %s"
                                % capture.records)
        # 2. the development key: accepted, with a warning saying so
        capture.records.clear()
        d.setVar("OTA_SIGNING_KEY", dev_key)
        try:
            run_python_func(d, "ota_check_signing_key")
        except bb.BBHandledException:
            problems.append("ota_check_signing_key refused the development key: %s" % capture.records)
        if not any("DEVELOPMENT key" in m for m in capture.records):
            problems.append("no warning for the development key: %s" % capture.records)

        # 3. do_ota_bundle with a delta base, against the real ota-sign
        d.setVar("OTA_DELTA_FROM", old)
        bundle_dir = d.getVar("OTA_BUNDLE_DIR")
        os.makedirs(bundle_dir, exist_ok=True)
        r = run_shell_task(d, "do_ota_bundle", [os.path.dirname(ota_sign)], bundle_dir)
        if r.returncode != 0:
            problems.append("do_ota_bundle failed (%d): %s" % (r.returncode, r.stderr.strip()[-500:]))
        else:
            for name, link, kind in (("OTA_BUNDLE_NAME", "OTA_BUNDLE_LINK_NAME", '"full"'),
                                     ("OTA_DELTA_BUNDLE_NAME", "OTA_DELTA_BUNDLE_LINK_NAME",
                                      '"bsdiff"')):
                out = os.path.join(bundle_dir, d.getVar(name))
                link = os.path.join(bundle_dir, d.getVar(link))
                if not os.path.isdir(out) or os.path.realpath(link) != os.path.realpath(out):
                    problems.append("%s: missing, or %s does not point at it" % (out, link))
                    continue
                v = subprocess.run(["openssl", "dgst", "-sha256", "-verify", dev_pub, "-signature",
                                    os.path.join(out, "manifest.json.sig"),
                                    os.path.join(out, "manifest.json")],
                                   capture_output=True, text=True)
                if v.returncode != 0:
                    problems.append("openssl does not verify %s: %s" % (out, v.stdout + v.stderr))
                with open(os.path.join(out, "manifest.json")) as f:
                    text = json.dumps(json.load(f))
                for want in ('"rice-cooker"', '"1.2.3"', kind):
                    if want not in text:
                        problems.append("%s/manifest.json lacks %s: %s" % (out, want, text[:300]))

        # 4. do_ota_factory_disk: the factory image from the same build
        deploy = d.getVar("DEPLOY_DIR_IMAGE")
        subprocess.run(["mkenvimage", "-r", "-s", "0x4000", "-o", os.path.join(tmp, "e1"), env_txt],
                       check=True)
        with open(os.path.join(tmp, "e1"), "rb") as f:
            copy = f.read()
        with open(os.path.join(deploy, d.getVar("OTA_ENV_IMAGE")), "wb") as f:
            f.write(copy * 2)
        with open(os.path.join(deploy, "boot.scr"), "w") as f:
            f.write("placeholder\n")
        d.setVar("OTA_MKDISK", os.path.join(root, "scripts/mkdisk"))
        factory_dir = d.getVar("OTA_FACTORY_DIR")
        os.makedirs(factory_dir, exist_ok=True)
        r = run_shell_task(d, "do_ota_factory_disk", [], factory_dir)
        if r.returncode != 0:
            problems.append("do_ota_factory_disk failed (%d): %s" % (r.returncode, r.stderr.strip()[-500:]))
        else:
            img = os.path.join(factory_dir, d.getVar("IMAGE_LINK_NAME") + ".factory.img")
            parts = json.loads(subprocess.run(["sfdisk", "--json", img], check=True,
                                              capture_output=True, text=True).stdout)
            names = [p.get("name") for p in parts["partitiontable"]["partitions"]]
            if names != ["boot", "misc", "rootfs_a", "rootfs_b", "data"]:
                problems.append("factory disk partitions: %s" % names)
            with open(os.path.join(factory_dir, d.getVar("IMAGE_LINK_NAME") + ".factory.json")) as f:
                regions = {r["name"]: r for r in json.load(f)["regions"]}
            with open(new, "rb") as f:
                import hashlib
                want = hashlib.sha256(f.read()).hexdigest()
            if regions.get("rootfs_a", {}).get("sha256") != want:
                problems.append("factory manifest: rootfs_a is not this build's ext4")
            check_bmap(img, img + ".bmap", os.path.join(
                factory_dir, d.getVar("IMAGE_LINK_NAME") + ".factory.json"), tmp, "factory disk")

    for p in problems:
        print("image-tasks: " + p)
    print("image-tasks: key checks, do_ota_bundle (ota-sign, openssl verify) and "
          "do_ota_factory_disk run; %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
