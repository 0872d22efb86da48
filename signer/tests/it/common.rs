//! Helpers shared by the test modules, each written once: running
//! `ota-sign` and the real tools, the test images and their directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn tool(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (scripts/install-deps installs it): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn sign_tool(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ota-sign"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "ota-sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn refused(out: Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected failure: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

pub fn openssl_verify(dir: &Path, public: &str, file: &str) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["dgst", "-sha256", "-verify", public, "-signature"])
        .arg(format!("{file}.sig"))
        .arg(file)
        .output()
        .expect("openssl (scripts/install-deps)");
    assert!(
        out.status.success(),
        "openssl rejects {file}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");
}

/// `ota-sign bundle --compress bzip2` of one image (release 1.0.0, key
/// `release.key` in `dir`) into `out`, plus `extra` arguments.
pub fn bzip2_bundle(dir: &Path, image: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bundle",
        "--key",
        "release.key",
        "--product",
        "rice-cooker",
        "--version",
        "1.0.0",
        "--image",
        image,
        "--compress",
        "bzip2",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    sign_tool(dir, &args)
}

/// Text-like images with shared structure; small, because Debian's bsdiff is
/// very slow on long zero runs.
pub fn images() -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..4000)
        .flat_map(|i| format!("entry {i}: /usr/lib/x{}\n", i * 7).into_bytes())
        .collect();
    let mut new = old.clone();
    new.splice(1000..1200, b"inserted in v2 ".repeat(30));
    new.extend((0..300).flat_map(|i| format!("new file {i}\n").into_bytes()));
    (old, new)
}

pub fn setup() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().to_owned();
    let (old, new) = images();
    fs::write(d.join("old.img"), old).unwrap();
    fs::write(d.join("new.img"), new).unwrap();
    (t, d)
}
