#!/usr/bin/env python3
"""The checks of scripts/check-layer that read files only (no BitBake, no tools):

    python3 check_items.py CHECK REPO_ROOT [GIT_REPO]

  license  LICENSE-MIT / LICENSE-APACHE exist and are the texts Cargo.toml's
           "MIT OR Apache-2.0" names; every LIC_FILES_CHKSUM entry of the layer that
           points into the source tree matches the file's md5 (the recipes' source
           is the repository root); ota.inc names both files; every Buildroot package
           sets <PKG>_LICENSE (both licences) and <PKG>_LICENSE_FILES (both files).
  wks      every image recipe that sets WKS_FILE has that file (next to the recipe
           or in the layer's wic/); a machine conf sets WKS_FILE only to a file in
           wic/ (every image of the machine would use it) and never IMAGE_INSTALL
           (that reaches every image).
  ycl      what yocto-check-layer's common tests read from files: a README with
           maintainer, patch and e-mail information, a non-empty SECURITY.md, and
           an Upstream-Status line in every patch (the rule of oe-core's
           oe.qa.check_upstream_status, restated).
  srcrev   the git recipes' PV is Cargo.toml's workspace version + "+git", OTA_SRCREV
           is a full commit id and Buildroot's OTA_AGENT_VERSION, and (when GIT_REPO is a git repository that has the
           commit) that commit has the same crate version and licence files.
"""
import hashlib
import os
import re
import subprocess
import sys
import tomllib

problems = []


def fail(msg):
    problems.append(msg)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def bb_vars(text):
    """NAME op "value" assignments of a BitBake file, continuation lines joined."""
    text = re.sub(r"\\\n", " ", text)
    out = []
    for m in re.finditer(r'^([A-Za-z0-9_:${}./-]+(?:\[[^\]]+\])?)\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=)\s*"(.*)"\s*$',
                         text, re.M):
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def layer_files(layer, exts):
    for root, _dirs, files in os.walk(layer):
        for f in sorted(files):
            if f.endswith(exts):
                yield os.path.join(root, f)


def md5(path, begin=None, end=None):
    with open(path, "rb") as f:
        data = f.read()
    if begin or end:
        lines = data.splitlines(True)
        data = b"".join(lines[(int(begin or 1) - 1):(int(end) if end else None)])
    return hashlib.md5(data).hexdigest()


def workspace(root):
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["workspace"]["package"]


def check_license(root):
    layer = os.path.join(root, "meta-ota")
    texts = {"LICENSE-MIT": ("MIT License", "the ota authors", "WITHOUT WARRANTY OF ANY KIND"),
             "LICENSE-APACHE": ("Apache License", "Version 2.0, January 2004",
                                "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION")}
    for name, needles in texts.items():
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            fail("%s missing at the repository root" % name)
            continue
        for n in needles:
            if n not in read(path):
                fail("%s does not contain %r" % (name, n))
    lic = workspace(root).get("license")
    if lic != "MIT OR Apache-2.0":
        fail("Cargo.toml [workspace.package] license is %r, the files say MIT OR Apache-2.0" % lic)

    seen = 0
    for path in layer_files(layer, (".bb", ".inc", ".bbappend", ".bbclass")):
        rel = os.path.relpath(path, root)
        for name, op, value in bb_vars(read(path)):
            if name != "LIC_FILES_CHKSUM":
                continue
            for entry in value.split():
                m = re.fullmatch(r"file://([^;]+)((?:;[^;]+)*)", entry)
                if not m:
                    fail("%s: LIC_FILES_CHKSUM entry %r is not file://...;md5=..." % (rel, entry))
                    continue
                params = dict(p.split("=", 1) for p in m.group(2).split(";") if "=" in p)
                if "md5" not in params:
                    fail("%s: LIC_FILES_CHKSUM %s has no md5" % (rel, entry))
                    continue
                if m.group(1).startswith("${COMMON_LICENSE_DIR}"):
                    continue  # oe-core's own texts
                target = os.path.join(root, m.group(1))
                seen += 1
                if not os.path.isfile(target):
                    fail("%s: LIC_FILES_CHKSUM names %s, which the source tree lacks" % (rel, m.group(1)))
                elif md5(target, params.get("beginline"), params.get("endline")) != params["md5"]:
                    fail("%s: LIC_FILES_CHKSUM md5 of %s is %s, the file's is %s"
                         % (rel, m.group(1), params["md5"], md5(target)))
    inc = read(os.path.join(layer, "recipes-rust/ota-agent/ota.inc"))
    for name in texts:
        if "file://%s;" % name not in inc:
            fail("ota.inc: LIC_FILES_CHKSUM does not name %s" % name)
    if not re.search(r'^LICENSE = "MIT \| Apache-2.0"$', inc, re.M):
        fail('ota.inc: LICENSE is not "MIT | Apache-2.0"')

    mks = sorted(layer_files(os.path.join(root, "buildroot/package"), (".mk",)))
    for mk in mks:
        rel = os.path.relpath(mk, root)
        text = read(mk)
        pkg = os.path.basename(mk)[:-3].upper().replace("-", "_")
        vals = {}
        for m in re.finditer(r"^(%s_[A-Z_]+)\s*[:+]?=\s*(.*)$" % pkg, text, re.M):
            vals[m.group(1)] = m.group(2).strip()
        lic_v = vals.get(pkg + "_LICENSE", "")
        files_v = vals.get(pkg + "_LICENSE_FILES", "")
        if not ("MIT" in lic_v and "Apache-2.0" in lic_v):
            fail("%s: %s_LICENSE = %r does not name MIT and Apache-2.0" % (rel, pkg, lic_v))
        if sorted(files_v.split()) != sorted(texts):
            fail("%s: %s_LICENSE_FILES = %r, want %s" % (rel, pkg, files_v, " ".join(sorted(texts))))
        for f in files_v.split():
            if not os.path.isfile(os.path.join(root, f)):
                fail("%s: %s_LICENSE_FILES names %s, which the source tree lacks" % (rel, pkg, f))
    if not mks:
        fail("no Buildroot packages found")
    if not problems:
        print("license: LICENSE-MIT/LICENSE-APACHE match Cargo.toml; %d LIC_FILES_CHKSUM entries "
              "and %d Buildroot packages point at them" % (seen, len(mks)))


def wks_search(layer, recipe_dir, name):
    for d in (recipe_dir, os.path.join(layer, "wic")):
        if os.path.isfile(os.path.join(d, name)):
            return True
    return False


def check_wks(root):
    layer = os.path.join(root, "meta-ota")
    images = 0
    for path in layer_files(layer, (".bb",)):
        rel = os.path.relpath(path, root)
        for name, op, value in bb_vars(read(path)):
            if name.split(":")[0] != "WKS_FILE":
                continue
            images += 1
            for wks in value.split():
                if not wks_search(layer, os.path.dirname(path), wks):
                    fail("%s: WKS_FILE %s exists neither next to the recipe nor in meta-ota/wic/"
                         % (rel, wks))
    for path in layer_files(os.path.join(layer, "conf/machine"), (".conf", ".inc")):
        rel = os.path.relpath(path, root)
        for name, op, value in bb_vars(read(path)):
            base = name.split(":")[0]
            if base == "WKS_FILE":
                for wks in value.split():
                    if not os.path.isfile(os.path.join(layer, "wic", wks)):
                        fail("%s: WKS_FILE %s for every image of the machine, but meta-ota/wic/%s "
                             "does not exist (set WKS_FILE in the image recipe)" % (rel, wks, wks))
            if base == "IMAGE_INSTALL":
                fail("%s: %s %s in a machine conf reaches every image (install it from the image "
                     "recipe)" % (rel, name, op))
    if not images:
        fail("no image recipe sets WKS_FILE")
    if not problems:
        print("wks: %d image recipe(s) set WKS_FILE to files that exist; machine confs set "
              "neither WKS_FILE nor IMAGE_INSTALL" % images)


STATUS = re.compile(r"^Upstream-Status: (Pending|Submitted|Denied|Inappropriate|Backport|"
                    r"Inactive-Upstream)( .+)?$", re.M)


def check_ycl(root):
    layer = os.path.join(root, "meta-ota")
    readme = os.path.join(layer, "README.md")
    if not os.path.isfile(readme):
        fail("meta-ota/README.md missing (yocto-check-layer test_readme)")
    else:
        text = read(readme).lower()
        for word in ("maintainer", "patch"):
            if word not in text:
                fail("meta-ota/README.md does not mention %r (yocto-check-layer test_readme)" % word)
        if not re.search(r"[^@\s]+@[^@\s]+", text):
            fail("meta-ota/README.md has no e-mail address (yocto-check-layer test_readme)")
    sec = os.path.join(layer, "SECURITY.md")
    if not os.path.isfile(sec) or os.path.getsize(sec) == 0:
        fail("meta-ota/SECURITY.md missing or empty (yocto-check-layer test_security)")
    n = 0
    for path in layer_files(layer, (".patch", ".diff")):
        n += 1
        with open(path, encoding="utf-8", errors="ignore") as f:
            if not STATUS.search(f.read()):
                fail("%s: no well-formed Upstream-Status line (Pending, Submitted [where], "
                     "Backport [where], Denied, Inactive-Upstream, Inappropriate [why])"
                     % os.path.relpath(path, root))
    if not problems:
        print("ycl: layer README and SECURITY.md present; %d patch(es) with Upstream-Status" % n)


def check_srcrev(root, git_repo):
    inc_path = os.path.join(root, "meta-ota/recipes-rust/ota-agent/ota.inc")
    vals = {name: value for name, op, value in bb_vars(read(inc_path))}
    version = workspace(root)["version"]
    pv = vals.get("PV", "")
    if pv != version + "+git":
        fail("ota.inc: PV = %r, but Cargo.toml's workspace version is %s (want %s+git)"
             % (pv, version, version))
    rev = vals.get("OTA_SRCREV", "")
    mk = read(os.path.join(root, "buildroot/package/ota-agent/ota-agent.mk"))
    br = re.search(r"^OTA_AGENT_VERSION = (\S+)$", mk, re.M)
    if not br or br.group(1) != rev:
        fail("buildroot ota-agent.mk: OTA_AGENT_VERSION %s is not ota.inc's OTA_SRCREV %s (both "
             "build the same release)" % (br and br.group(1), rev))
    if not re.fullmatch(r"[0-9a-f]{40}", rev):
        fail("ota.inc: OTA_SRCREV = %r is not a full commit id" % rev)
    elif vals.get("SRCREV") != "${OTA_SRCREV}":
        fail("ota.inc: SRCREV is not ${OTA_SRCREV}")
    else:
        git = ["git", "-C", git_repo]
        have = subprocess.run(git + ["cat-file", "-e", rev + "^{commit}"],
                              capture_output=True).returncode == 0
        if not have:
            fail("ota.inc: OTA_SRCREV %s is not a commit of %s (a shallow clone? "
                 "`git fetch --unshallow`)" % (rev, git_repo))
        else:
            toml = subprocess.run(git + ["show", rev + ":Cargo.toml"], capture_output=True,
                                  check=True).stdout
            then = tomllib.loads(toml.decode())["workspace"]["package"]["version"]
            if then + "+git" != pv:
                fail("ota.inc: PV = %r, but Cargo.toml at OTA_SRCREV has version %s" % (pv, then))
            for name in ("LICENSE-MIT", "LICENSE-APACHE"):
                r = subprocess.run(git + ["show", "%s:%s" % (rev, name)], capture_output=True)
                want = re.search(r"file://%s;md5=([0-9a-f]+)" % name, read(inc_path))
                if r.returncode != 0:
                    fail("ota.inc: OTA_SRCREV %s has no %s (LIC_FILES_CHKSUM would fail)"
                         % (rev[:12], name))
                elif want and hashlib.md5(r.stdout).hexdigest() != want.group(1):
                    fail("ota.inc: %s at OTA_SRCREV does not have the md5 of LIC_FILES_CHKSUM" % name)
    if not problems:
        print("srcrev: PV %s is Cargo.toml's version; OTA_SRCREV %s has it and the licence files"
              % (pv, rev[:12]))


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip())
    check, root = sys.argv[1], os.path.abspath(sys.argv[2])
    if check == "license":
        check_license(root)
    elif check == "wks":
        check_wks(root)
    elif check == "ycl":
        check_ycl(root)
    elif check == "srcrev":
        check_srcrev(root, sys.argv[3] if len(sys.argv) == 4 else root)
    else:
        sys.exit("check_items: unknown check %s" % check)
    for p in problems:
        print("%s: %s" % (check, p))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
