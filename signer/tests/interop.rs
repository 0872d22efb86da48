//! `ota-sign` against the real tools: its signatures verify with
//! `openssl dgst -sha256 -verify`, keys openssl writes sign with it, its
//! patches apply with Debian's `bspatch`, Debian's `bsdiff` patches apply with
//! it (the agent's code), and hostile patches/bundles are refused with one
//! line. Needs `openssl`, `bsdiff`/`bspatch`, `bzip2` (scripts/install-deps);
//! fails, never skips, without them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tool(cmd: &mut Command) -> Output {
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

fn sign_tool(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ota-sign"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "ota-sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected failure: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

fn openssl_verify(dir: &Path, public: &str, file: &str) {
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
fn bzip2_bundle(dir: &Path, image: &str, out: &str, extra: &[&str]) -> Output {
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
fn images() -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..4000)
        .flat_map(|i| format!("entry {i}: /usr/lib/x{}\n", i * 7).into_bytes())
        .collect();
    let mut new = old.clone();
    new.splice(1000..1200, b"inserted in v2 ".repeat(30));
    new.extend((0..300).flat_map(|i| format!("new file {i}\n").into_bytes()));
    (old, new)
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().to_owned();
    let (old, new) = images();
    fs::write(d.join("old.img"), old).unwrap();
    fs::write(d.join("new.img"), new).unwrap();
    (t, d)
}

#[test]
fn keygen_keys_and_signatures_are_openssl_compatible() {
    let (_t, d) = setup();
    ok(sign_tool(&d, &["keygen", "--out", "release"]));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(d.join("release.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    tool(
        Command::new("openssl")
            .current_dir(&d)
            .args(["pkey", "-noout", "-in", "release.key"]),
    );
    tool(Command::new("openssl").current_dir(&d).args([
        "pkey",
        "-pubin",
        "-noout",
        "-in",
        "release.pub",
    ]));
    refused(
        sign_tool(&d, &["keygen", "--out", "release"]),
        "already exists",
    );

    ok(bzip2_bundle(&d, "rootfs=new.img", "rel", &[]));
    openssl_verify(&d, "release.pub", "rel/manifest.json");
    // The device side accepts it too (same key as a trusted *.pem).
    ok(sign_tool(&d, &["verify", "--key", "release.pub", "rel"]));

    ok(sign_tool(
        &d,
        &[
            "publish",
            "--key",
            "release.key",
            "--channel",
            "stable",
            "--manifest",
            "rel/manifest.json",
            "--rollout",
            "25",
            "--out",
            ".",
        ],
    ));
    openssl_verify(&d, "release.pub", "stable.json");
    let c = ota_agent::bundle::channel::Channel::parse(&fs::read(d.join("stable.json")).unwrap())
        .unwrap();
    assert_eq!(
        (
            c.manifest.as_str(),
            c.rollout.percent,
            c.rollout.seed.as_str()
        ),
        ("rel/manifest.json", 25, "1.0.0")
    );
}

#[test]
fn openssl_keys_sign_bundles() {
    let (_t, d) = setup();
    // SEC1 with an EC PARAMETERS block (openssl's default), and PKCS#8.
    tool(Command::new("openssl").current_dir(&d).args([
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "sec1.key",
    ]));
    tool(
        Command::new("openssl")
            .current_dir(&d)
            .args(["ec", "-pubout", "-in", "sec1.key", "-out", "sec1.pub"]),
    );
    tool(Command::new("openssl").current_dir(&d).args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "p8.key",
    ]));
    tool(
        Command::new("openssl")
            .current_dir(&d)
            .args(["pkey", "-pubout", "-in", "p8.key", "-out", "p8.pub"]),
    );
    for k in ["sec1", "p8"] {
        let key = format!("{k}.key");
        let out = format!("rel-{k}");
        ok(sign_tool(
            &d,
            &[
                "bundle",
                "--key",
                &key,
                "--product",
                "p",
                "--version",
                "2.0.0",
                "--image",
                "rootfs=new.img",
                "--out",
                &out,
            ],
        ));
        openssl_verify(&d, &format!("{k}.pub"), &format!("{out}/manifest.json"));
    }
    // And the other way round: wrong key is refused by our verify.
    refused(
        sign_tool(&d, &["verify", "--key", "p8.pub", "rel-sec1"]),
        "does not verify",
    );
}

#[test]
fn patches_interoperate_with_debian_bsdiff_both_ways() {
    let (_t, d) = setup();
    let new = fs::read(d.join("new.img")).unwrap();
    // Debian's bsdiff -> our patch.
    tool(
        Command::new("bsdiff")
            .current_dir(&d)
            .args(["old.img", "new.img", "debian.bsdiff"]),
    );
    ok(sign_tool(
        &d,
        &["patch", "old.img", "debian.bsdiff", "out1.img"],
    ));
    assert!(
        fs::read(d.join("out1.img")).unwrap() == new,
        "our bspatch differs"
    );
    // Our delta -> Debian's bspatch.
    ok(sign_tool(
        &d,
        &["delta", "old.img", "new.img", "ours.bsdiff"],
    ));
    tool(
        Command::new("bspatch")
            .current_dir(&d)
            .args(["old.img", "out2.img", "ours.bsdiff"]),
    );
    assert!(
        fs::read(d.join("out2.img")).unwrap() == new,
        "Debian bspatch output differs"
    );
    assert_eq!(&fs::read(d.join("ours.bsdiff")).unwrap()[..8], b"BSDIFF40");

    // A patch made elsewhere goes into a bundle after it reproduced the image...
    ok(sign_tool(&d, &["keygen", "--out", "k"]));
    ok(sign_tool(
        &d,
        &[
            "bundle",
            "--key",
            "k.key",
            "--product",
            "p",
            "--version",
            "1.1.0",
            "--image",
            "rootfs=new.img",
            "--delta-from",
            "rootfs=old.img",
            "--patch",
            "rootfs=debian.bsdiff",
            "--out",
            "rel",
            "--single-file",
            "rel.bundle",
        ],
    ));
    assert_eq!(
        fs::read(d.join("rel/rootfs.bsdiff")).unwrap(),
        fs::read(d.join("debian.bsdiff")).unwrap()
    );
    ok(sign_tool(
        &d,
        &[
            "verify",
            "--key",
            "k.pub",
            "--base",
            "rootfs=old.img",
            "rel.bundle",
        ],
    ));
    // ...and is refused when it does not (delta against the wrong base).
    fs::write(d.join("wrong.img"), b"not the base".repeat(100)).unwrap();
    refused(
        sign_tool(
            &d,
            &[
                "bundle",
                "--key",
                "k.key",
                "--product",
                "p",
                "--version",
                "1.1.0",
                "--image",
                "rootfs=new.img",
                "--delta-from",
                "rootfs=wrong.img",
                "--patch",
                "rootfs=debian.bsdiff",
                "--out",
                "rel2",
            ],
        ),
        "patch",
    );
    refused(
        sign_tool(
            &d,
            &[
                "verify",
                "--key",
                "k.pub",
                "--base",
                "rootfs=wrong.img",
                "rel",
            ],
        ),
        "delta base mismatch",
    );
}

fn bz(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn offtout(v: i64) -> [u8; 8] {
    let mut raw = v.unsigned_abs();
    if v < 0 {
        raw |= 1 << 63;
    }
    raw.to_le_bytes()
}

/// A BSDIFF40 file from explicit control triples (hostile values allowed).
fn hand_patch(triples: &[(i64, i64, i64)], diff: &[u8], extra: &[u8], new_size: i64) -> Vec<u8> {
    let ctrl: Vec<u8> = triples
        .iter()
        .flat_map(|&(a, b, c)| [offtout(a), offtout(b), offtout(c)].concat())
        .collect();
    let (c, df, e) = (bz(&ctrl), bz(diff), bz(extra));
    [
        b"BSDIFF40".to_vec(),
        offtout(c.len() as i64).to_vec(),
        offtout(df.len() as i64).to_vec(),
        offtout(new_size).to_vec(),
        c,
        df,
        e,
    ]
    .concat()
}

#[test]
fn hostile_patches_are_refused() {
    let (_t, d) = setup();
    tool(
        Command::new("bsdiff")
            .current_dir(&d)
            .args(["old.img", "new.img", "debian.bsdiff"]),
    );
    let good = fs::read(d.join("debian.bsdiff")).unwrap();
    let old_len = fs::metadata(d.join("old.img")).unwrap().len() as i64;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated patch",
            good[..good.len() - 20].to_vec(),
            "extra block",
        ),
        ("truncated header", good[..20].to_vec(), "truncated header"),
        (
            "not a patch",
            b"BSDIFF41 and more bytes to fill the header.".to_vec(),
            "bad magic",
        ),
        (
            "add beyond old",
            hand_patch(
                &[(old_len + 1, 0, 0)],
                &vec![0; old_len as usize + 1],
                &[],
                old_len + 1,
            ),
            "outside the old image",
        ),
        (
            "seek before old",
            hand_patch(&[(0, 0, -5), (4, 0, 0)], &[0; 4], &[], 4),
            "outside the old image",
        ),
        (
            "write beyond new size",
            hand_patch(&[(0, 10, 0)], &[], &[1; 10], 4),
            "runs past the new size",
        ),
        (
            "negative length",
            hand_patch(&[(-3, 0, 0)], &[], &[], 4),
            "negative add length",
        ),
        (
            "seek overflow",
            hand_patch(&[(0, 0, i64::MAX), (0, 0, i64::MAX)], &[], &[], 4),
            "overflows",
        ),
    ];
    for (case, bytes, needle) in cases {
        fs::write(d.join("bad.bsdiff"), bytes).unwrap();
        let out = sign_tool(&d, &["patch", "old.img", "bad.bsdiff", "out.img"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains(needle), "{case}: {err}");
        refused(out, needle);
    }
}

#[test]
fn every_command_has_help() {
    let d = std::env::temp_dir();
    for cmd in ["keygen", "delta", "patch", "bundle", "verify", "publish"] {
        let text = ok(sign_tool(&d, &[cmd, "--help"]));
        assert!(
            text.starts_with(&format!("usage: ota-sign {cmd}")),
            "{cmd}: {text}"
        );
    }
    let out = sign_tool(&d, &["bundle", "--product", "p"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `--compress bzip2` writes small blocks by default (the device decoder's
/// memory is ~4 bytes per block byte), `--bzip2-level` sets them, and Debian's
/// `bzip2` reads the payload back to the image.
#[test]
fn bzip2_payload_block_size_is_chosen_and_debian_bzip2_reads_it() {
    let (_t, d) = setup();
    ok(sign_tool(&d, &["keygen", "--out", "release"]));
    let bundle = |out: &str, extra: &[&str]| bzip2_bundle(&d, "rootfs=new.img", out, extra);
    // The stream header is "BZh" + the block size digit (bzip2 format).
    for (out, extra, digit) in [
        ("default", &[][..], b'2'),
        ("nine", &["--bzip2-level", "9"][..], b'9'),
    ] {
        ok(bundle(out, extra));
        let payload = d.join(out).join("rootfs.img.bz2");
        assert_eq!(
            &fs::read(&payload).unwrap()[..4],
            &[b'B', b'Z', b'h', digit]
        );
        let plain = tool(Command::new("bzip2").arg("-dc").arg(&payload)).stdout;
        assert!(plain == fs::read(d.join("new.img")).unwrap(), "{out}");
    }
    for bad in ["0", "10", "x"] {
        let out = bundle("bad", &["--bzip2-level", bad]);
        assert_eq!(out.status.code(), Some(2), "level {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--bzip2-level"));
        assert!(!d.join("bad").exists(), "level {bad} wrote a bundle");
    }
}

/// A bzip2 payload larger than one stream's worth of image is cut into
/// streams of 4 MiB of image each (where the device can resume decoding),
/// and is still one valid bzip2 file for Debian's `bzip2`.
#[test]
fn bzip2_payload_has_one_stream_per_4_mib() {
    let (_t, d) = setup();
    ok(sign_tool(&d, &["keygen", "--out", "release"]));
    // 9 MiB + 1 byte of compressible but non-trivial text: three streams.
    let mut img: Vec<u8> = (0u32..)
        .flat_map(|i| format!("{:08x} {}\n", i.wrapping_mul(2_654_435_761), i % 97).into_bytes())
        .take((9 << 20) + 1)
        .collect();
    img[5 << 20] ^= 0xff;
    fs::write(d.join("big.img"), &img).unwrap();
    ok(bzip2_bundle(&d, "rootfs=big.img", "rel", &[]));
    let payload = fs::read(d.join("rel/rootfs.img.bz2")).unwrap();
    // Decode stream by stream: each single-stream decoder stops at its end.
    let mut input = std::io::BufReader::new(&payload[..]);
    let mut sizes = Vec::new();
    loop {
        use std::io::{BufRead, Read};
        if input.fill_buf().unwrap().is_empty() {
            break;
        }
        let mut out = Vec::new();
        bzip2::bufread::BzDecoder::new(&mut input)
            .read_to_end(&mut out)
            .unwrap();
        sizes.push(out.len());
    }
    assert_eq!(sizes, [4 << 20, 4 << 20, (1 << 20) + 1]);
    let plain = tool(
        Command::new("bzip2")
            .arg("-dc")
            .arg(d.join("rel/rootfs.img.bz2")),
    )
    .stdout;
    assert!(plain == img);
}
