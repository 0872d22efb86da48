#!/usr/bin/env python3
"""Parses every file of meta-ota with BitBake's own parser (the `bb` library that the
bitbake-setup PyPI package bundles), without oe-core: classes and confs that the layer
uses from oe-core are replaced by empty stubs in a temporary directory.

    python3 bbparse_layer.py LAYERDIR

Catches what a real `bitbake -p` would stop on in our own files: syntax errors
(unclosed functions, bad assignments, Python syntax in `def`s, anonymous and python
task functions), old override syntax (`VAR_append`), a `require`/`include`/`inherit`
of a file that does not exist, and `file://` entries of SRC_URI that no FILESPATH
directory holds. Each recipe and bbappend is parsed twice, with DISTRO_FEATURES
with and without "ota", so both sides of the feature-gated `require`s are checked.
Exit status 1 and one line per problem when anything is wrong.
"""
import glob
import logging
import os
import re
import sys
import tempfile

import types

# bitbake-setup bundles `bb` but not `hashserv`, which bb.siggen imports at module
# level; parsing never talks to a hash server, so empty modules stand in for it.
for _name in ("hashserv", "hashserv.client"):
    sys.modules.setdefault(_name, types.ModuleType(_name))
sys.modules["hashserv"].client = sys.modules["hashserv.client"]

import bb  # noqa: E402
import bb.data  # noqa: E402
import bb.parse  # noqa: E402
import bb.utils  # noqa: F401  (bb.utils.contains in ${@...} expressions)

# The few oe-core definitions our ${@...} expressions and the search logic need,
# copied in spirit from oe-core's bitbake.conf (not its code).
BASE_VARS = {
    "TOPDIR": "/nonexistent/build",
    "TMPDIR": "/nonexistent/build/tmp",
    "WORKDIR": "/nonexistent/work",
    "UNPACKDIR": "/nonexistent/work/sources",
    "B": "/nonexistent/work/build",
    "D": "/nonexistent/work/image",
    "DEPLOY_DIR_IMAGE": "/nonexistent/deploy",
    "IMGDEPLOYDIR": "/nonexistent/imgdeploy",
    "IMAGE_NAME": "rice-cooker-image-qemuarm64-ota",
    "IMAGE_LINK_NAME": "rice-cooker-image-qemuarm64-ota",
    "COMMON_LICENSE_DIR": "/nonexistent/licenses",
    "MACHINE": "qemuarm64-ota",
    "MACHINEOVERRIDES": "qemuarm64:qemuarm64-ota",
    "DISTROOVERRIDES": "nodistro",
    "TRANSLATED_TARGET_ARCH": "aarch64",
    "TCLIBC": "musl",
    "OVERRIDES": "linux:aarch64:libc-musl:pn-${PN}:${MACHINEOVERRIDES}:${DISTROOVERRIDES}:class-target:forcevariable",
    "FILESOVERRIDES": "${TRANSLATED_TARGET_ARCH}:${MACHINEOVERRIDES}:${DISTROOVERRIDES}",
    "PREFERRED_PROVIDER_virtual/bootloader": "u-boot",
    "DISTRO_VERSION": "1.0",
    "THISDIR": "${@os.path.dirname(d.getVar('FILE'))}",
    "FILE_DIRNAME": "${@os.path.dirname(d.getVar('FILE'))}",
    "bindir": "/usr/bin",
    "sysconfdir": "/etc",
    "systemd_system_unitdir": "/usr/lib/systemd/system",
    "INIT_D_DIR": "/etc/init.d",
}

# Confs of oe-core that our confs `require` (empty stubs are enough for parsing).
STUB_CONFS = ["conf/machine/qemuarm64.conf"]


def find_class(layer, name):
    for sub in ("classes", "classes-recipe", "classes-global"):
        if os.path.exists(os.path.join(layer, sub, name + ".bbclass")):
            return True
    return False


def make_stubs(layer, stubdir):
    """Empty classes for every inherited name the layer does not define."""
    names = {"base"}
    for path in layer_files(layer, (".bb", ".bbappend", ".bbclass", ".inc", ".conf")):
        with open(path) as f:
            for line in f:
                m = re.match(r"\s*inherit(?:_defer)?\s+(.*)", line)
                if m:
                    names.update(w for w in m.group(1).split() if "$" not in w)
                m = re.match(r"\s*INHERIT\s*\+?=\s*\"(.*)\"", line)
                if m:
                    names.update(m.group(1).split())
    os.makedirs(os.path.join(stubdir, "classes"))
    for name in sorted(names):
        if not find_class(layer, name):
            open(os.path.join(stubdir, "classes", name + ".bbclass"), "w").close()
    for conf in STUB_CONFS:
        path = os.path.join(stubdir, conf)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()


def layer_files(layer, exts):
    out = []
    for root, _dirs, files in os.walk(layer):
        out += [os.path.join(root, f) for f in files if f.endswith(exts)]
    return sorted(out)


def base_data(layer, stubdir, features):
    d = bb.data.init()
    for k, v in BASE_VARS.items():
        d.setVar(k, v)
    d.setVar("BBPATH", "%s:%s" % (layer, stubdir))
    d.setVar("DISTRO_FEATURES", features)
    d.setVar("OTA_LAYERDIR", layer)
    d.setVar("LAYERDIR", layer)
    return d


def check_python(d, where, problems):
    """Compile python task functions and anonymous functions (BitBake does so only
    when it runs them)."""
    for key in d.keys():
        if not d.getVarFlag(key, "python", False) or not d.getVarFlag(key, "func", False):
            continue
        body = d.getVar(key, False) or ""
        if body.startswith("def ") or not body.strip():
            continue  # `def` functions were compiled by the parser (methodpool)
        try:
            # What bb.build does before running one: "def NAME(d):\n" + body.
            compile("def %s(d, e=None):\n%s\n    pass\n" % (key.replace("-", "_"), body),
                    "%s:%s" % (where, key), "exec")
        except SyntaxError as e:
            problems.append("%s: python function %s: %s" % (where, key, e))


def filespath_dirs(d, recipe_dir):
    """FILESPATH as oe-core builds it: FILESEXTRAPATHS, then the recipe's BP/BPN/files
    directories, each tried first with every FILESOVERRIDES subdirectory."""
    bases = [p for p in (d.getVar("FILESEXTRAPATHS") or "").split(":") if p and p != "__default"]
    pn = d.getVar("PN") or ""
    bases += [os.path.join(recipe_dir, x) for x in (pn, "files")]
    overrides = [o for o in (d.getVar("FILESOVERRIDES") or "").split(":") if o]
    dirs = []
    for b in bases:
        dirs += [os.path.join(b, o) for o in reversed(overrides)] + [b]
    return dirs


def check_file_uris(d, where, recipe_dir, problems):
    for uri in (d.getVar("SRC_URI") or "").split():
        if not uri.startswith("file://"):
            continue
        name = uri[len("file://"):].split(";")[0]
        if any(os.path.exists(os.path.join(p, name)) for p in filespath_dirs(d, recipe_dir)):
            continue
        problems.append("%s: SRC_URI %s: no such file in FILESPATH" % (where, uri))


# The meta-rauc idiom: a bbappend is one `require` of an .inc that only happens when
# the "ota" distro feature is on, so the layer changes nothing without the feature.
GATED_REQUIRE = re.compile(
    r"require \$\{@bb\.utils\.contains\('DISTRO_FEATURES', 'ota', '[\w.-]+\.inc', '', d\)\}")


def check_gated(path, problems):
    lines = [l.strip() for l in open(path) if l.strip() and not l.lstrip().startswith("#")]
    if len(lines) != 1 or not GATED_REQUIRE.fullmatch(lines[0]):
        problems.append("%s: a bbappend must be exactly one feature-gated line: "
                        "require ${@bb.utils.contains('DISTRO_FEATURES', 'ota', 'X.inc', '', d)}"
                        % os.path.basename(path))


def parse_one(layer, stubdir, path, features, problems):
    rel = os.path.relpath(path, os.path.dirname(layer))
    where = "%s [DISTRO_FEATURES=%r]" % (rel, features)
    d = base_data(layer, stubdir, features)
    fn = path
    if path.endswith(".bbappend"):
        # PN of the recipe it appends to (the part before _ or .bbappend).
        d.setVar("PN", re.split(r"_|\.bbappend", os.path.basename(path))[0])
    elif path.endswith(".bb"):
        d.setVar("PN", os.path.basename(path).split("_")[0].rsplit(".", 1)[0])
    if path.endswith((".bbclass",)):
        d.setVar("__bbclasstype", "global" if "classes-global" in path else "recipe")
        d.setVar("PN", "rice-cooker-image")
        d.setVar("FILE", os.path.join(layer, "recipes-core/images/rice-cooker-image.bb"))
    else:
        d.setVar("__bbclasstype", "recipe")
    if path.endswith(".sample"):
        # Template confs: what oe-init-build-env copies into conf/, ##OEROOT## filled.
        fn = os.path.join(stubdir, "template-" + os.path.basename(path)[:-len(".sample")])
        with open(path) as src, open(fn, "w") as dst:
            dst.write(src.read().replace("##OEROOT##", "/nonexistent/oe-core"))
    try:
        if fn.endswith(".bbappend"):
            # bitbake applies appends with the recipe handler (handle() refuses the
            # extension on its own).
            bb.parse.parse_py.BBHandler.handle(fn, d, True)
        else:
            bb.parse.handle(fn, d, True)
        if path.endswith((".bb", ".bbappend")):
            check_file_uris(d, where, os.path.dirname(path), problems)
        check_python(d, where, problems)
        # Expand every variable: a broken ${@...} expression fails here.
        for key in d.keys():
            if d.getVarFlag(key, "func", False):
                continue
            d.getVar(key)
    except bb.BBHandledException:
        problems.append("%s: rejected by the BitBake parser (message above)" % where)
    except Exception as e:  # ParseError, ExpansionError, IOError, SyntaxError, ...
        problems.append("%s: %s: %s" % (where, type(e).__name__, e))
    return d


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip())
    layer = os.path.abspath(sys.argv[1])
    logging.basicConfig(format="%(levelname)s: %(message)s")
    problems = []
    files = layer_files(layer, (".bb", ".bbappend", ".bbclass", ".conf", ".inc", ".sample"))
    with tempfile.TemporaryDirectory(prefix="bbparse.") as stubdir:
        make_stubs(layer, stubdir)
        count = 0
        for path in files:
            if path.endswith(".inc"):
                continue  # parsed through the recipes that require them
            if path.endswith(".bbappend"):
                check_gated(path, problems)
            variants = ["ota", ""] if path.endswith((".bb", ".bbappend")) else ["ota"]
            for features in variants:
                d = parse_one(layer, stubdir, path, features, problems)
                count += 1
            if path.endswith("conf/layer.conf") and not problems:
                compat = (d.getVar("LAYERSERIES_COMPAT_ota") or "").split()
                if "wrynose" not in compat:
                    problems.append("layer.conf: LAYERSERIES_COMPAT_ota lacks wrynose: %r" % compat)
        # An .inc no recipe requires is dead weight or a typo in a require.
        for inc in (p for p in files if p.endswith(".inc")):
            text = "".join(open(p).read() for p in files if p != inc)
            if os.path.basename(inc) not in text:
                problems.append("%s: not required by any recipe" % os.path.relpath(inc, layer))
    for p in problems:
        print("bbparse: " + p)
    print("bbparse: %d parses of %d files, %d problem(s)" % (count, len(files), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
