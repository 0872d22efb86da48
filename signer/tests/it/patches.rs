//! BSDIFF40 patches both ways with Debian's bsdiff/bspatch, and hostile
//! patches refused in one line.

use std::fs;
use std::io::Write;
use std::process::Command;

use crate::common::{ok, refused, setup, sign_tool, tool};

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
    // `ota-sign bundle` of new.img as a delta from `base` with Debian's patch.
    let debian_delta = |base: &str, extra: &[&str]| {
        let base = format!("rootfs={base}");
        let mut args = vec![
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
            &base,
            "--patch",
            "rootfs=debian.bsdiff",
        ];
        args.extend_from_slice(extra);
        sign_tool(&d, &args)
    };
    ok(debian_delta(
        "old.img",
        &["--out", "rel", "--single-file", "rel.bundle"],
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
    refused(debian_delta("wrong.img", &["--out", "rel2"]), "patch");
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
            // Refused at the first seek: it leaves the old image.
            "lands outside the old image",
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
