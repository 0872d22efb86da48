//! bzip2 payloads of bundles: block size and stream layout, read back by
//! Debian's `bzip2`.

use std::fs;
use std::process::Command;

use crate::common::{bzip2_bundle, ok, setup, sign_tool, tool};

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

/// `--urgency` is signed into the manifest: format 2 with the field for
/// `security`/`critical`, format 1 without it for `normal` (older agents
/// keep reading normal releases); `verify` shows it; a bad value is one
/// usage line and writes nothing.
#[test]
fn urgency_is_signed_and_chooses_the_manifest_format() {
    let (_t, d) = setup();
    ok(sign_tool(&d, &["keygen", "--out", "release"]));
    for (out, urgency, format) in [
        ("plain", None, 1),
        ("normal", Some("normal"), 1),
        ("security", Some("security"), 2),
        ("critical", Some("critical"), 2),
    ] {
        let mut extra = vec![];
        if let Some(u) = urgency {
            extra = vec!["--urgency", u];
        }
        let printed = ok(bzip2_bundle(&d, "rootfs=new.img", out, &extra));
        let want = urgency.unwrap_or("normal");
        assert!(printed.contains(&format!("urgency {want})")), "{printed}");
        let text = fs::read_to_string(d.join(out).join("manifest.json")).unwrap();
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["format"], format, "{text}");
        if format == 2 {
            assert_eq!(m["urgency"], want, "{text}");
        } else {
            assert!(m.get("urgency").is_none(), "{text}");
        }
        let verified = ok(sign_tool(&d, &["verify", "--key", "release.pub", out]));
        assert!(verified.contains(&format!("urgency {want})")), "{verified}");
    }
    let out = bzip2_bundle(&d, "rootfs=new.img", "bad", &["--urgency", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--urgency \"soon\": expected normal, security or critical")
            && err.lines().count() == 1,
        "{err}"
    );
    assert!(!d.join("bad").exists());
}
