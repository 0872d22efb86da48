#!/usr/bin/env python3
"""Checks that every crate the layer's recipes build can be compiled by the Rust of
each release in meta-ota's LAYERSERIES_COMPAT, and prints the crates that need the
newest Rust (the measurement behind "scarthgap is not supported" in README "Yocto").

    python3 check_rust_version.py REPO_ROOT

The crates are the normal and build dependencies of ota-agent and ota-sign in
Cargo.lock (`cargo tree`); a crate's minimum is its `rust-version` (`cargo
metadata`), or 1.85 for edition 2024 without one. Cargo.lock must be version <= 3
for Rust < 1.78 (not a concern for wrynose; reported for completeness).
"""
import json
import os
import re
import subprocess
import sys

# The Rust that oe-core ships in each release (meta/recipes-devtools/rust/rust_*.bb).
OE_RUST = {"scarthgap": (1, 75), "styhead": (1, 79), "walnascar": (1, 84),
           "whinlatter": (1, 90), "wrynose": (1, 94)}
PACKAGES = ("ota-agent", "ota-sign")


def ver(text):
    return tuple(int(x) for x in text.split(".")[:2])


def main():
    root = os.path.abspath(sys.argv[1])
    with open(os.path.join(root, "meta-ota/conf/layer.conf")) as f:
        m = re.search(r'^LAYERSERIES_COMPAT_ota\s*=\s*"([^"]*)"', f.read(), re.M)
    releases = m.group(1).split() if m else []
    unknown = [r for r in releases if r not in OE_RUST]
    if not releases or unknown:
        print("rust-version: LAYERSERIES_COMPAT_ota %r: unknown release(s) %s" % (releases, unknown))
        return 1
    wanted = set()
    for pkg in PACKAGES:
        out = subprocess.run(["cargo", "tree", "--locked", "-p", pkg, "-e", "normal,build",
                              "--prefix", "none", "--format", "{p}"], cwd=root, check=True,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            name, version = line.split()[:2]
            wanted.add((name, version.lstrip("v")))
    meta = json.loads(subprocess.run(["cargo", "metadata", "--locked", "--format-version", "1"],
                                     cwd=root, check=True, capture_output=True, text=True).stdout)
    needs = []
    for p in meta["packages"]:
        if (p["name"], p["version"]) not in wanted:
            continue
        rv = p.get("rust_version") or ("1.85" if p["edition"] == "2024" else "1.0")
        needs.append((ver(rv), p["name"], p["version"]))
    needs.sort()
    top = needs[-1][0]
    print("rust-version: %d crates; the newest Rust needed is %d.%d, by %s" % (
        len(needs), top[0], top[1],
        ", ".join("%s %s" % (n, v) for r, n, v in needs if r == top)))
    with open(os.path.join(root, "Cargo.lock")) as f:
        m = re.search(r"^version = (\d+)", f.read(), re.M)
    print("rust-version: Cargo.lock version %s; layer releases %s" % (
        m.group(1) if m else "1 (no version line)", " ".join(releases)))
    problems = 0
    for rel in releases:
        rust = OE_RUST[rel]
        over = [(r, n, v) for r, n, v in needs if r > rust]
        if over:
            problems += 1
            print("rust-version: %s ships Rust %d.%d, too old for %d crate(s): %s" % (
                rel, rust[0], rust[1], len(over),
                ", ".join("%s %s (%d.%d)" % (n, v, r[0], r[1]) for r, n, v in over[-6:])))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
