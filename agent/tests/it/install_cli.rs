//! `ota-agent install` end to end: a GPT disk image made by `sgdisk`, the
//! U-Boot environment written by `mkenvimage` and read back by libubootenv's
//! `fw_printenv`, bundles (full bzip2, BSDIFF40 delta, single file) made by
//! the real `ota-sign` binary. Slot contents are compared byte for byte with
//! the source images (not with anything the agent computed).
//!
//! Hostile bundles (wrong delta base, corrupt payload mid-stream, an image
//! larger than its partition, another product) are refused with one line;
//! the test asserts what the promise is in each case: nothing changed at all
//! (refused before the first write), or the inactive slot marked unbootable
//! and not activated (found bad while streaming), the booted slot untouched.
//!
//! Needs sgdisk, mkenvimage, fw_printenv, fw_setenv (scripts/install-deps);
//! fails without them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::disk::{UbootDisk, MIB, UBOOT_AB};
use crate::common::rng::Rng;
use crate::common::tools::{ok, ota_sign_in, AGENT};

const PART: u64 = 4 * MIB;

/// Deterministic test images: a noisy part (stands for binaries) and zero
/// runs (free space), like a filesystem image.
fn image(seed: u64, len: usize) -> Vec<u8> {
    Rng(seed.wrapping_mul(2_654_435_761) | 1).image(len, 7, 3000)
}

/// `old` with a few edits: what a small release changes.
fn edited(old: &[u8], seed: u64) -> Vec<u8> {
    let mut new = old.to_vec();
    let mut rng = Rng(seed | 1);
    for _ in 0..40 {
        let at = rng.below(new.len() as u64 - 64) as usize;
        new[at..at + 64].fill(rng.next() as u8);
    }
    new
}

struct Device {
    _dir: tempfile::TempDir,
    root: PathBuf,
    disk: UbootDisk,
    config: PathBuf,
    /// Byte offsets of rootfs_a / rootfs_b, from sfdisk (not the agent).
    slot_offset: [u64; 2],
}

impl Device {
    fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let disk = UbootDisk::new(&root, 16 * MIB, UBOOT_AB);
        let slot_offset = [disk.offset("rootfs_a"), disk.offset("rootfs_b")];
        for sub in ["keys", "state", "health.d"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        fs::write(root.join("os-release"), "VERSION_ID=1.0.0\n").unwrap();
        let config = root.join("ota-agent.toml");
        fs::write(
            &config,
            format!(
                "product = \"rice-cooker\"\ndisk = \"{}\"\nfw_env_config = \"{}\"\n\
                 state_dir = \"{r}/state\"\nkeys_dir = \"{r}/keys\"\n\
                 version_file = \"{r}/os-release\"\nhealth_dir = \"{r}/health.d\"\n\
                 reboot_command = [\"sh\", \"-c\", \"echo rebooted >> {r}/reboots\"]\n",
                disk.disk.display(),
                disk.fw_env.display(),
                r = root.display()
            ),
        )
        .unwrap();
        let dev = Device {
            _dir: dir,
            root,
            disk,
            config,
            slot_offset,
        };
        // Factory environment: slot a, no trial, a fallback script.
        dev.disk.mkenv(
            "ota_slot=a\nupgrade_available=0\nbootcount=0\nbootlimit=3\n\
             altbootcmd=setenv ota_rollback ${ota_slot}:bootlimit; run swap\n",
        );
        // Release key made by ota-sign; the device trusts its public half.
        ota_sign_in(&dev.root, &["keygen", "--out", "release"]);
        fs::rename(
            dev.root.join("release.pub"),
            dev.root.join("keys/release.pem"),
        )
        .unwrap();
        dev
    }

    fn slot(&self, index: usize) -> Vec<u8> {
        self.disk.read_at(self.slot_offset[index], PART as usize)
    }

    fn put_slot(&self, index: usize, bytes: &[u8]) {
        self.disk.write_at(self.slot_offset[index], bytes);
    }

    fn vars(&self) -> BTreeMap<String, String> {
        self.disk.vars()
    }

    fn setenv(&self, script: &str) {
        self.disk.setenv(script);
    }

    fn agent(&self, booted: &str, args: &[&str]) -> Output {
        Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .args(["--booted-slot", booted])
            .args(args)
            .output()
            .unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn state(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.root.join("state").join(name)).ok()
    }
}

/// `ota-sign bundle` of rice-cooker `version` (security version 2) signed
/// with the device's release key, plus `extra` arguments.
fn release(dev: &Device, version: &str, extra: &[&str]) {
    let mut args = vec![
        "bundle",
        "--key",
        "release.key",
        "--product",
        "rice-cooker",
        "--version",
        version,
        "--security-version",
        "2",
    ];
    args.extend_from_slice(extra);
    ota_sign_in(&dev.root, &args);
}

fn refused(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected refusal: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {err}");
    assert!(errors[0].contains(needle), "{err:?} lacks {needle:?}");
}

/// `ota-agent status --json` as parsed JSON (exit 0 required), and stderr.
fn status_json(dev: &Device, booted: &str) -> (serde_json::Value, String) {
    let out = dev.agent(booted, &["status", "--json"]);
    let text = ok(&out, "ota-agent");
    (
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Corrupts `file` in the middle (its size stays the same).
fn flip_middle_byte(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(file, &bytes).unwrap();
}

fn prefix_eq(slot: &[u8], image: &[u8]) -> bool {
    slot.len() >= image.len() && &slot[..image.len()] == image
}

#[test]
fn full_then_delta_install_switch_confirm_and_reboot() {
    let dev = Device::new();
    let v1 = image(1, 3 * MIB as usize);
    let v2 = edited(&v1, 2);
    let v3 = edited(&v2, 3);
    dev.put_slot(0, &v1);
    fs::write(dev.file("v2.img"), &v2).unwrap();
    fs::write(dev.file("v3.img"), &v3).unwrap();
    let b_before = dev.slot(1);

    // Full image, bzip2, as a bundle directory.
    release(
        &dev,
        "2.0.0",
        &[
            "--image",
            "rootfs=v2.img",
            "--compress",
            "bzip2",
            "--out",
            "full",
        ],
    );
    let out = dev.agent("a", &["install", dev.file("full").to_str().unwrap()]);
    let text = ok(&out, "ota-agent");
    assert!(
        text.contains("installed rice-cooker 2.0.0 into slot b"),
        "{text}"
    );
    assert!(prefix_eq(&dev.slot(1), &v2), "slot b is not v2");
    assert!(
        dev.slot(1)[v2.len()..] == b_before[v2.len()..],
        "bytes after the image changed"
    );
    assert!(prefix_eq(&dev.slot(0), &v1), "the booted slot changed");
    let env = dev.vars();
    assert_eq!(env["ota_slot"], "b");
    assert_eq!(env["upgrade_available"], "1");
    assert_eq!(dev.state("install-journal"), None, "journal left behind");
    assert_eq!(dev.state("writing-b"), None);
    // Issue 7: `status --json` shows the update (the one status document)
    // and the installed version; the byte counts are the image's length as
    // the test made it, not a number the agent reports elsewhere.
    let (st, _) = status_json(&dev, "a");
    assert_eq!(st["installed_version"], "1.0.0", "{st:#}");
    let u = &st["update"];
    assert_eq!(u["phase"], "installed", "{st:#}");
    assert_eq!(u["version"], "2.0.0", "{st:#}");
    assert_eq!(u["from_version"], "1.0.0", "{st:#}");
    assert_eq!(u["slot"], "b", "{st:#}");
    assert_eq!(u["bytes_done"], v2.len() as u64, "{st:#}");
    assert_eq!(u["bytes_total"], v2.len() as u64, "{st:#}");
    assert_eq!(u["error"], serde_json::Value::Null, "{st:#}");
    let text = ok(&dev.agent("a", &["status"]), "ota-agent");
    assert!(
        text.contains("update:         installed 2.0.0 in slot b\n"),
        "{text}"
    );
    // The file is the same document (what the MCU link or a UI reads).
    let file: serde_json::Value =
        serde_json::from_str(&dev.state("update-status.json").unwrap()).unwrap();
    assert_eq!(&file, u);
    // Security floor only after the new slot is confirmed.
    assert_eq!(dev.state("min-security-version"), None);

    // U-Boot boots b (trial), the system confirms it.
    dev.setenv("bootcount=1\n");
    fs::write(dev.file("os-release"), "VERSION_ID=2.0.0\n").unwrap();
    ok(&dev.agent("b", &["mark-good"]), "ota-agent");
    assert_eq!(dev.state("min-security-version").as_deref(), Some("2\n"));
    assert_eq!(dev.state("pending-security-version"), None);

    // Delta v2 -> v3 as a single file, applied against the booted slot b.
    release(
        &dev,
        "3.0.0",
        &[
            "--image",
            "rootfs=v3.img",
            "--delta-from",
            "rootfs=v2.img",
            "--out",
            "delta",
            "--single-file",
            "delta.otab",
        ],
    );
    let patch = fs::metadata(dev.file("delta/rootfs.bsdiff")).unwrap().len();
    assert!(
        patch < v3.len() as u64 / 4,
        "patch {patch} bytes: not a delta?"
    );
    let out = dev.agent(
        "b",
        &[
            "install",
            "--reboot",
            dev.file("delta.otab").to_str().unwrap(),
        ],
    );
    let text = ok(&out, "ota-agent");
    assert!(text.contains("into slot a"), "{text}");
    assert!(text.contains("rebooting"), "{text}");
    assert!(prefix_eq(&dev.slot(0), &v3), "slot a is not v3");
    assert!(prefix_eq(&dev.slot(1), &v2), "the booted slot b changed");
    assert_eq!(dev.vars()["ota_slot"], "a");
    assert_eq!(
        fs::read_to_string(dev.file("reboots")).unwrap(),
        "rebooted\n"
    );
    let (st, _) = status_json(&dev, "b");
    let u = &st["update"];
    assert_eq!(u["phase"], "rebooting", "{st:#}");
    assert_eq!(u["version"], "3.0.0", "{st:#}");
    assert_eq!(u["from_version"], "2.0.0", "{st:#}");
    assert_eq!(u["slot"], "a", "{st:#}");
    assert_eq!(u["bytes_done"], v3.len() as u64, "{st:#}");
}

/// A torn or foreign status file (a power cut cannot make one, but a
/// hand edit or an old agent can) is ignored with a warning: `status`
/// still reports the boot state, with no update.
#[test]
fn corrupt_update_status_shows_no_update_and_a_warning() {
    let dev = Device::new();
    let (st, err) = status_json(&dev, "a");
    assert_eq!(st["update"], serde_json::Value::Null, "{st:#}");
    assert!(!err.contains("update-status"), "{err}");
    for bad in [
        &b"{\"format\": 1, \"phase\": \"downl"[..],
        b"\x00\x00\x00\x00",
        b"{\"format\": 1, \"phase\": \"installing\"}",
    ] {
        fs::write(dev.root.join("state/update-status.json"), bad).unwrap();
        let (st, err) = status_json(&dev, "a");
        assert_eq!(st["update"], serde_json::Value::Null, "{st:#}");
        assert_eq!(st["booted"], "a", "{st:#}");
        assert!(
            err.contains("update-status.json") && err.contains("corrupt"),
            "no warning: {err}"
        );
        let text = ok(&dev.agent("a", &["status"]), "ota-agent");
        assert!(text.contains("update:         none\n"), "{text}");
    }
    // The files of earlier agents are not read.
    fs::remove_file(dev.root.join("state/update-status.json")).unwrap();
    fs::write(
        dev.root.join("state/install-status.json"),
        "{\"format\": 1, \"phase\": \"installed\"}",
    )
    .unwrap();
    let (st, _) = status_json(&dev, "a");
    assert_eq!(st["update"], serde_json::Value::Null, "{st:#}");
}

/// Refused before the first write: env and both slots byte-identical.
fn assert_nothing_changed(dev: &Device, env: &BTreeMap<String, String>, a: &[u8], b: &[u8]) {
    assert_eq!(&dev.vars(), env, "boot control changed");
    assert!(dev.slot(0) == a, "slot a changed");
    assert!(dev.slot(1) == b, "slot b changed");
    assert_eq!(dev.state("writing-b"), None);
}

/// Found bad while streaming: b unbootable, not active; a untouched.
fn assert_not_activated(dev: &Device, a: &[u8]) {
    let env = dev.vars();
    assert_eq!(env["ota_slot"], "a", "{env:?}");
    assert_eq!(env["upgrade_available"], "0", "{env:?}");
    assert!(
        env.get("ota_bad").is_some_and(|v| v.contains('b')),
        "{env:?}"
    );
    assert!(dev.slot(0) == a, "the booted slot changed");
    let (st, _) = status_json(dev, "a");
    assert_eq!(st["update"]["phase"], "failed", "{st:#}");
    assert!(
        st["update"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{st:#}"
    );
    // And it cannot be activated by hand while its write is unfinished.
    let out = dev.agent("a", &["set-active", "b"]);
    refused(&out, "being written");
}

#[test]
fn hostile_bundles_change_nothing_or_leave_the_slot_unbootable() {
    let dev = Device::new();
    let v1 = image(1, 2 * MIB as usize);
    dev.put_slot(0, &v1);
    let other_base = edited(&v1, 9);
    let v2 = edited(&v1, 2);
    fs::write(dev.file("v2.img"), &v2).unwrap();
    fs::write(dev.file("other.img"), &other_base).unwrap();
    fs::write(dev.file("huge.img"), image(5, (PART + 4096) as usize)).unwrap();
    let (a0, b0, env0) = (dev.slot(0), dev.slot(1), dev.vars());
    let common = ["--key", "release.key", "--version", "2.0.0"];
    let build = |out: &str, product: &str, extra: &[&str]| {
        let mut args = vec!["bundle", "--product", product, "--out", out];
        args.extend_from_slice(&common);
        args.extend_from_slice(extra);
        ota_sign_in(&dev.root, &args);
        dev.file(out)
    };

    // Another product: refused by the policy check.
    let p = build("toaster", "toaster", &["--image", "rootfs=v2.img"]);
    refused(
        &dev.agent("a", &["install", p.to_str().unwrap()]),
        "product `toaster`",
    );
    assert_nothing_changed(&dev, &env0, &a0, &b0);

    // A delta made against another base: refused before the first write.
    let p = build(
        "wrongbase",
        "rice-cooker",
        &[
            "--image",
            "rootfs=v2.img",
            "--delta-from",
            "rootfs=other.img",
        ],
    );
    refused(
        &dev.agent("a", &["install", p.to_str().unwrap()]),
        "delta base mismatch",
    );
    assert_nothing_changed(&dev, &env0, &a0, &b0);

    // An image larger than the partition.
    let p = build("huge", "rice-cooker", &["--image", "rootfs=huge.img"]);
    refused(
        &dev.agent("a", &["install", p.to_str().unwrap()]),
        "do not fit",
    );
    assert_nothing_changed(&dev, &env0, &a0, &b0);

    // A payload corrupted in the middle (sizes intact, signature intact):
    // a local bundle's payloads are hashed completely before the inactive
    // slot is touched, so nothing changes. (Found while streaming from a
    // server instead, the slot is left unbootable: tests/net.rs.)
    let p = build("corrupt", "rice-cooker", &["--image", "rootfs=v2.img"]);
    flip_middle_byte(&p.join("rootfs.img"));
    refused(
        &dev.agent("a", &["install", p.to_str().unwrap()]),
        "does not match the manifest",
    );
    assert_nothing_changed(&dev, &env0, &a0, &b0);

    // The same with bzip2.
    let p = build(
        "corruptbz",
        "rice-cooker",
        &["--image", "rootfs=v2.img", "--compress", "bzip2"],
    );
    flip_middle_byte(&p.join("rootfs.img.bz2"));
    refused(
        &dev.agent("a", &["install", p.to_str().unwrap()]),
        "rootfs.img.bz2",
    );
    assert_nothing_changed(&dev, &env0, &a0, &b0);

    // A signer that lies: the bzip2 payload matches its signed hash, but
    // what it decodes to does not match the signed result hash. Only the
    // write can find that, so the slot is left unbootable, not activated.
    let p = build(
        "lie",
        "rice-cooker",
        &["--image", "rootfs=v2.img", "--compress", "bzip2"],
    );
    let manifest = fs::read_to_string(p.join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let truth = m["images"][0]["result_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let lie = manifest.replace(&truth, &"0".repeat(64));
    assert_ne!(lie, manifest);
    fs::write(p.join("manifest.json"), lie).unwrap();
    crate::common::openssl::sign(
        &dev.root.join("release.key"),
        &p.join("manifest.json"),
        &p.join("manifest.json.sig"),
    );
    refused(
        &dev.agent("a", &["install", p.to_str().unwrap()]),
        "does not match the manifest",
    );
    assert_not_activated(&dev, &a0);

    // A good bundle afterwards still installs (nothing was wedged).
    let p = build("good", "rice-cooker", &["--image", "rootfs=v2.img"]);
    ok(
        &dev.agent("a", &["install", p.to_str().unwrap()]),
        "ota-agent",
    );
    assert!(prefix_eq(&dev.slot(1), &v2));
    assert_eq!(dev.vars()["ota_slot"], "b");
}
