#!/usr/bin/env python3
"""Checks of scripts/check-layer that run the layer's own code in BitBake's parser
(the `bb` library of the bitbake-setup PyPI package; oe-core classes stubbed as in
bbparse_layer.py):

    python3 check_bbhooks.py uboot  REPO_ROOT
    python3 check_bbhooks.py semver REPO_ROOT
    python3 check_bbhooks.py crate-licenses REPO_ROOT

uboot   The U-Boot hook reaches every U-Boot provider: conf/layer.conf is parsed
        and its INHERIT classes inherited as BitBake's cooker does, then a stand-in
        U-Boot recipe (inherits uboot-config) is parsed under the names BSPs use
        (u-boot, u-boot-imx, u-boot-fslc, u-boot-ti-staging, u-boot-rockchip, a
        renamed one) with PREFERRED_PROVIDER_virtual/bootloader set to it. With
        DISTRO_FEATURES "ota" each must get the boot script files (all found in
        FILESPATH), UBOOT_ENV, the render/deploy functions and u-boot-tools-native;
        without the feature, as a non-provider, or as another recipe, nothing may
        change. OTA_UBOOT_RECIPES must reach a recipe that is not the provider; a
        provider that is not U-Boot must stop the parse. No bbappend of the layer
        may target a U-Boot recipe by name (that misses the other providers).
semver  OTA_VERSION: ota-bundle.bbclass's ota_check_version is a prefunc of
        do_ota_bundle; with OTA_VERSION unset it takes DISTRO_VERSION when that is
        SemVer ("6.0.2") and stops with an error naming OTA_VERSION when not
        (oe-core's "nodistro.0"); SemVer 2.0.0 versions pass, others fail.
crate-licenses  ota.inc's ota_crate_licenses, a postfunc of do_populate_lic for both
        git recipes, run on a vendor directory of stand-in crates: one line per
        crate with its licence (or license-file), and a stop for a crate with
        neither.
"""
import logging
import os
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


CAPTURE = Capture()


def config(layer, stubdir, features, provider, extra=None):
    """The configuration data BitBake's cooker builds: bitbake.conf-ish values,
    the layer's layer.conf, then every INHERIT class."""
    d = bbparse_layer.base_data(layer, stubdir, features)
    d.setVar("PREFERRED_PROVIDER_virtual/bootloader", provider)
    d.setVar("FILESEXTRAPATHS", "__default")
    d.setVar("UBOOT_ENV", "")
    for k, v in (extra or {}).items():
        d.setVar(k, v)
    d.setVar("LAYERDIR", layer)
    bb.parse.handle(os.path.join(layer, "conf/layer.conf"), d, True)
    d.delVar("LAYERDIR")
    d.setVar("__bbclasstype", "global")
    for cls in (d.getVar("INHERIT") or "").split():
        bb.parse.BBHandler.inherit(cls, "configuration INHERITs", 0, d)
    return d


def recipe(conf, stubdir, pn, is_uboot=True):
    """A stand-in recipe called PN, parsed on top of the configuration."""
    path = os.path.join(stubdir, "recipes", "%s_2026.04.bb" % pn)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write('SUMMARY = "stand-in"\nLICENSE = "GPL-2.0-or-later"\n')
        if is_uboot:
            f.write("inherit uboot-config\n")
        f.write('SRC_URI = "git://example.invalid/u-boot.git;branch=master;protocol=https"\n'
                "do_compile() {\n    :\n}\ndo_deploy() {\n    :\n}\n")
    d = bb.data.createCopy(conf)
    d.setVar("PN", pn)
    d.setVar("FILE", path)
    d.setVar("__bbclasstype", "recipe")
    bb.parse.handle(path, d, True)
    # What BitBake's finalize does next (without its signature generator): expand
    # the keys, then call every anonymous function, the config's ones included.
    bb.data.expandKeys(d)
    calls = "\n".join("%s(d)" % fn for fn in (d.getVar("__BBANONFUNCS", False) or []))
    bb.utils.better_exec(calls, {"d": d}, calls, "anonymous functions")
    return d


def run_python_func(d, name):
    """A python function as BitBake runs it: its body compiled as def NAME(d)."""
    env = {"bb": bb, "d": d, "os": os}
    exec(compile("def %s(d):\n%s\n" % (name, d.getVar(name, False)), name, "exec"), env)
    env[name](d)


def hooked(d):
    src = (d.getVar("SRC_URI") or "").split()
    return {
        "boot.cmd.in": "file://boot.cmd.in" in src,
        "UBOOT_ENV": d.getVar("UBOOT_ENV") == "boot",
        "render": "ota_uboot_render_bootscript" in (d.getVarFlag("do_compile", "prefuncs") or ""),
        "deploy": "ota_uboot_deploy_env" in (d.getVarFlag("do_deploy", "postfuncs") or ""),
        "tools": "u-boot-tools-native" in (d.getVar("DEPENDS") or "").split(),
    }


def check_uboot(root):
    layer = os.path.join(root, "meta-ota")
    for dirpath, _dirs, files in os.walk(layer):
        for f in files:
            if f.endswith(".bbappend") and f.startswith("u-boot"):
                problems.append("%s: a bbappend reaches only the recipe of that name; the hook "
                                "keys on PREFERRED_PROVIDER_virtual/bootloader instead"
                                % os.path.relpath(os.path.join(dirpath, f), root))
    with tempfile.TemporaryDirectory(prefix="bbstubs.") as stubdir:
        os.rmdir(stubdir)
        bbparse_layer.make_stubs(layer, stubdir)
        open(os.path.join(stubdir, "classes", "uboot-config.bbclass"), "w").close()
        providers = ["u-boot", "u-boot-imx", "u-boot-fslc", "u-boot-ti-staging",
                     "u-boot-rockchip", "u-boot-myboard"]
        for pn in providers:
            try:
                d = recipe(config(layer, stubdir, "ota", pn), stubdir, pn)
            except Exception as e:
                problems.append("provider %s: parse failed: %s" % (pn, e))
                continue
            missing = [k for k, v in hooked(d).items() if not v]
            if missing:
                problems.append("provider %s with DISTRO_FEATURES=ota: not hooked (%s)"
                                % (pn, ", ".join(missing)))
                continue
            for uri in d.getVar("SRC_URI").split():
                if uri.startswith("file://"):
                    name = uri[7:].split(";")[0]
                    if not any(os.path.exists(os.path.join(p, name))
                               for p in bbparse_layer.filespath_dirs(d, os.path.dirname(d.getVar("FILE")))):
                        problems.append("provider %s: %s not in FILESPATH" % (pn, uri))
        untouched = [("u-boot-imx without the ota feature", "", "u-boot-imx", "u-boot-imx", True, None),
                     ("u-boot when u-boot-imx is the provider", "ota", "u-boot-imx", "u-boot", True, None),
                     ("busybox", "ota", "u-boot", "busybox", False, None)]
        for what, feat, prov, pn, is_uboot, extra in untouched:
            d = recipe(config(layer, stubdir, feat, prov, extra), stubdir, pn, is_uboot)
            changed = [k for k, v in hooked(d).items() if v]
            if changed:
                problems.append("%s: changed by the hook (%s)" % (what, ", ".join(changed)))
        d = recipe(config(layer, stubdir, "ota", "u-boot", {"OTA_UBOOT_RECIPES": "u-boot-myboard"}),
                   stubdir, "u-boot-myboard")
        if not all(hooked(d).values()):
            problems.append("OTA_UBOOT_RECIPES = u-boot-myboard does not hook that recipe")
        try:
            recipe(config(layer, stubdir, "ota", "barebox"), stubdir, "barebox", False)
            problems.append("barebox as virtual/bootloader with the ota feature: no error")
        except bb.BBHandledException:
            if not any("OTA_UBOOT_RECIPES" in m for m in CAPTURE.records):
                problems.append("the not-U-Boot error does not name OTA_UBOOT_RECIPES: %s"
                                % CAPTURE.records[-1:])
        if not problems:
            print("uboot: the hook reaches %s as virtual/bootloader (and via OTA_UBOOT_RECIPES), "
                  "leaves other recipes and feature-less builds alone, refuses a non-U-Boot "
                  "provider" % ", ".join(providers))


def check_semver(root):
    layer = os.path.join(root, "meta-ota")
    with tempfile.TemporaryDirectory(prefix="bbstubs.") as stubdir:
        os.rmdir(stubdir)
        bbparse_layer.make_stubs(layer, stubdir)

        def image(distro_version, version=None):
            d = bbparse_layer.base_data(layer, stubdir, "ota")
            d.setVar("__bbclasstype", "recipe")
            d.setVar("FILE", os.path.join(layer, "recipes-core/images/rice-cooker-image.bb"))
            d.setVar("PN", "rice-cooker-image")
            d.setVar("DISTRO_VERSION", distro_version)
            if version is not None:
                d.setVar("OTA_VERSION", version)
            bb.parse.handle(os.path.join(layer, "recipes-core/images/rice-cooker-image.bb"), d, True)
            return d

        def check(d):
            CAPTURE.records.clear()
            try:
                run_python_func(d, "ota_check_version")
                return True
            except bb.BBHandledException:
                return False

        d = image("nodistro.0")
        if "ota_check_version" not in (d.getVarFlag("do_ota_bundle", "prefuncs") or "").split():
            problems.append("ota_check_version is not a prefunc of do_ota_bundle")
        if check(d):
            problems.append("OTA_VERSION unset, DISTRO_VERSION nodistro.0: accepted")
        elif not any("OTA_VERSION" in m for m in CAPTURE.records):
            problems.append("the nodistro.0 error does not name OTA_VERSION: %s" % CAPTURE.records)
        d = image("6.0.2")
        if not check(d) or d.getVar("OTA_VERSION") != "6.0.2":
            problems.append("OTA_VERSION unset, DISTRO_VERSION 6.0.2: not taken as the version (%r)"
                            % d.getVar("OTA_VERSION"))
        good = ["1.0.0", "0.1.0", "10.20.30", "1.0.0-rc.1", "1.0.0-alpha.beta.1", "1.0.0-0a",
                "1.0.0+build.5", "1.0.0-rc.1+20261206", "1.0.0-x-y-z.--"]
        bad = ["", "1.0", "1", "v1.0.0", "01.0.0", "1.00.0", "1.0.00", "1.0.0-", "1.0.0-01",
               "1.0.0+", "1.0.0-rc..1", "1.0.0 ", "1.0.0_1", "nodistro.0", "1.0.0-rc.1+b!"]
        for v in good:
            if not check(image("nodistro.0", v)):
                problems.append("OTA_VERSION %r (SemVer) refused" % v)
        for v in bad:
            if check(image("nodistro.0", v)):
                problems.append("OTA_VERSION %r (not SemVer) accepted" % v)
        if not problems:
            print("semver: DISTRO_VERSION 6.0.2 becomes OTA_VERSION, nodistro.0 stops naming "
                  "OTA_VERSION; %d SemVer versions pass, %d others fail" % (len(good), len(bad)))


CRATES = {
    "alpha-1.0.0": '[package]\nname = "alpha"\nversion = "1.0.0"\nlicense = "MIT OR Apache-2.0"\n',
    "beta-0.2.1": ('[package]\nedition = "2021"\nname = "beta"\nversion = "0.2.1"\n'
                   'license-file = "LICENSE"\n\n[dependencies.alpha]\nversion = "1"\n'
                   'license = "not-the-package-field"\n'),
}


def check_crate_licenses(root):
    layer = os.path.join(root, "meta-ota")
    with tempfile.TemporaryDirectory(prefix="bbstubs.") as stubdir, \
            tempfile.TemporaryDirectory(prefix="crates.") as tmp:
        os.rmdir(stubdir)
        bbparse_layer.make_stubs(layer, stubdir)
        for recipe_name, pn in (("ota-agent_git.bb", "ota-agent"), ("ota-sign_git.bb", "ota-sign")):
            d = bbparse_layer.base_data(layer, stubdir, "ota")
            d.setVar("__bbclasstype", "recipe")
            d.setVar("PN", pn)
            path = os.path.join(layer, "recipes-rust/ota-agent", recipe_name)
            d.setVar("FILE", path)
            bb.parse.handle(path, d, True)
            if "ota_crate_licenses" not in (d.getVarFlag("do_populate_lic", "postfuncs") or "").split():
                problems.append("%s: ota_crate_licenses is not a postfunc of do_populate_lic" % recipe_name)
                continue
            vendor = os.path.join(tmp, pn, "vendor")
            for name, toml in CRATES.items():
                os.makedirs(os.path.join(vendor, name))
                with open(os.path.join(vendor, name, "Cargo.toml"), "w") as f:
                    f.write(toml)
            d.setVar("CARGO_VENDORING_DIRECTORY", vendor)
            d.setVar("LICSSTATEDIR", os.path.join(tmp, pn, "lic"))
            os.makedirs(os.path.join(tmp, pn, "lic", pn))
            try:
                run_python_func(d, "ota_crate_licenses")
            except bb.BBHandledException:
                problems.append("%s: ota_crate_licenses failed on good crates: %s"
                                % (recipe_name, CAPTURE.records[-1:]))
                continue
            with open(os.path.join(tmp, pn, "lic", pn, "crates.licenses")) as f:
                rows = [l.strip() for l in f if l.strip() and not l.startswith("#")]
            want = ["alpha 1.0.0 MIT OR Apache-2.0", "beta 0.2.1 license-file:LICENSE"]
            if rows != want:
                problems.append("%s: crates.licenses is %r, want %r" % (recipe_name, rows, want))
            os.makedirs(os.path.join(vendor, "gamma-3.0.0"))
            with open(os.path.join(vendor, "gamma-3.0.0", "Cargo.toml"), "w") as f:
                f.write('[package]\nname = "gamma"\nversion = "3.0.0"\n')
            CAPTURE.records.clear()
            try:
                run_python_func(d, "ota_crate_licenses")
                problems.append("%s: a crate without any licence was accepted" % recipe_name)
            except bb.BBHandledException:
                if not any("gamma 3.0.0" in m for m in CAPTURE.records):
                    problems.append("%s: the error does not name the crate: %s"
                                    % (recipe_name, CAPTURE.records))
        if not problems:
            print("crate-licenses: both git recipes list each vendored crate's licence in "
                  "crates.licenses and stop on a crate without one")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("uboot", "semver", "crate-licenses"):
        sys.exit(__doc__.strip())
    logging.getLogger("BitBake").addHandler(CAPTURE)
    logging.getLogger("BitBake").setLevel(logging.INFO)
    logging.getLogger("BitBake").propagate = False
    root = os.path.abspath(sys.argv[2])
    try:
        {"uboot": check_uboot, "semver": check_semver,
         "crate-licenses": check_crate_licenses}[sys.argv[1]](root)
    except Exception as e:
        problems.append("%s: %s" % (type(e).__name__, e))
    for p in problems:
        print("%s: %s" % (sys.argv[1], p))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
