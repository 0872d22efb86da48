//! Interop with tools nobody here wrote: libubootenv's `fw_printenv` /
//! `fw_setenv` (Debian libubootenv-tool) and u-boot-tools' `mkenvimage`.
//! Both directions, single and redundant environments on image files, flag
//! wrap-around with both writers interleaved, and torn writes.
//!
//! These tests FAIL when a tool is missing (scripts/install-deps installs them).

use std::fs;
use std::path::{Path, PathBuf};

use uboot_env::image::{self, Layout};
use uboot_env::{Env, EnvStore, FwEnvConfig};

use crate::common::{env, ok};

/// `fw_printenv -c CONFIG` output.
fn fw_printenv(config: &Path) -> String {
    ok("fw_printenv", &["-c", config.to_str().unwrap()])
}

fn fw_setenv(config: &Path, args: &[&str]) {
    let mut all = vec!["-c", config.to_str().unwrap()];
    all.extend_from_slice(args);
    ok("fw_setenv", &all);
}

/// The text fw_printenv prints for `pairs`: `name=value` lines sorted by name
/// (built here from the literal pairs, not by the code under test).
fn listing(pairs: &[(&str, &str)]) -> String {
    let mut sorted = pairs.to_vec();
    sorted.sort();
    sorted.iter().map(|(n, v)| format!("{n}={v}\n")).collect()
}

/// Variables with the characters that matter: spaces, `=`, shell and U-Boot
/// metacharacters, UTF-8, an empty value, a newline.
const TRICKY: &[(&str, &str)] = &[
    ("bootcmd", "run distro_bootcmd; echo done"),
    (
        "bootargs",
        "console=ttyS0,115200 root=PARTLABEL=rootfs_a rw",
    ),
    ("ota_slot", "a"),
    ("upgrade_available", "0"),
    ("bootcount", "0"),
    ("bootlimit", "3"),
    ("quoted", "'single' \"double\" $var ${braced} \\back"),
    ("utf8", "reiskocher – 電気炊飯器"),
    ("empty", ""),
    ("multi", "line one\nline two"),
    ("_under.dot-dash", "x"),
];

struct Setup {
    _dir: tempfile::TempDir,
    image: PathBuf,
    config: PathBuf,
}

const SIZE: usize = 0x2000;

/// A zeroed disk image with the env area at 0x1000 (and 0x1000 + SIZE).
fn setup(redundant: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    fs::write(&image, vec![0u8; 0x1000 + 2 * SIZE + 0x1000]).unwrap();
    let mut text = format!("# test\n{} 0x1000 {SIZE:#x}\n", image.display());
    if redundant {
        text += &format!("{} {:#x} {SIZE:#x}\n", image.display(), 0x1000 + SIZE);
    }
    let config = dir.path().join("fw_env.config");
    fs::write(&config, text).unwrap();
    Setup {
        _dir: dir,
        image,
        config,
    }
}

impl Setup {
    fn store(&self) -> EnvStore {
        EnvStore::open(&FwEnvConfig::load(&self.config).unwrap()).unwrap()
    }
    fn read(&self) -> Env {
        self.store().read().unwrap()
    }
    fn write(&self, e: &Env) {
        self.store().write(e).unwrap();
    }
}

fn ours_then_theirs(redundant: bool) {
    let s = setup(redundant);
    s.write(&env(TRICKY));
    assert_eq!(fw_printenv(&s.config), listing(TRICKY));
    // fw_setenv can still update what we wrote, and we read its result.
    fw_setenv(&s.config, &["ota_slot", "b"]);
    fw_setenv(&s.config, &["bootcount"]);
    let mut want: Vec<_> = TRICKY
        .iter()
        .filter(|(n, _)| *n != "bootcount")
        .map(|&(n, v)| if n == "ota_slot" { (n, "b") } else { (n, v) })
        .collect();
    assert_eq!(s.read(), env(&want));
    // ...and it keeps alternating correctly with us.
    let mut ours = s.read();
    ours.set("upgrade_available", "1").unwrap();
    s.write(&ours);
    for w in want.iter_mut().filter(|(n, _)| *n == "upgrade_available") {
        w.1 = "1";
    }
    assert_eq!(fw_printenv(&s.config), listing(&want));
}

#[test]
fn fw_printenv_reads_what_we_write_single() {
    ours_then_theirs(false);
}

#[test]
fn fw_printenv_reads_what_we_write_redundant() {
    ours_then_theirs(true);
}

fn theirs_then_ours(redundant: bool) {
    let s = setup(redundant);
    // An empty (all-zero) area: libubootenv starts from its default env file.
    let defenv = s.image.with_file_name("defenv");
    fs::write(&defenv, "bootdelay=2\nstdin=serial\n").unwrap();
    fw_setenv(
        &s.config,
        &["-f", defenv.to_str().unwrap(), "ota_slot", "a"],
    );
    for (n, v) in TRICKY {
        fw_setenv(&s.config, &[n, v]);
    }
    let mut want = TRICKY.to_vec();
    want.extend([("bootdelay", "2"), ("stdin", "serial")]);
    assert_eq!(s.read(), env(&want));
    assert_eq!(fw_printenv(&s.config), listing(&want));
}

#[test]
fn we_read_what_fw_setenv_writes_single() {
    theirs_then_ours(false);
}

#[test]
fn we_read_what_fw_setenv_writes_redundant() {
    theirs_then_ours(true);
}

/// mkenvimage's input: `name=value` lines (no newlines inside values).
const PLAIN: &[(&str, &str)] = &[
    ("bootcmd", "run distro_bootcmd"),
    ("bootargs", "console=ttyS0 root=PARTLABEL=rootfs_a"),
    ("ota_slot", "b"),
    ("utf8", "電気炊飯器"),
];

fn mkenvimage(dir: &Path, pairs: &[(&str, &str)], extra: &[&str]) -> Vec<u8> {
    let input = dir.join("mkenv.txt");
    let text: String = pairs.iter().map(|(n, v)| format!("{n}={v}\n")).collect();
    fs::write(&input, text).unwrap();
    let output = dir.join("mkenv.bin");
    let size = format!("{SIZE:#x}");
    let mut args = vec!["-s", &size, "-o", output.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(input.to_str().unwrap());
    ok("mkenvimage", &args);
    fs::read(output).unwrap()
}

fn put(image: &Path, offset: usize, bytes: &[u8]) {
    let mut all = fs::read(image).unwrap();
    all[offset..offset + bytes.len()].copy_from_slice(bytes);
    fs::write(image, all).unwrap();
}

#[test]
fn we_read_mkenvimage_single_with_either_padding() {
    for pad in [&[][..], &["-p", "0"][..]] {
        let s = setup(false);
        let img = mkenvimage(s.image.parent().unwrap(), PLAIN, pad);
        assert_eq!(img.len(), SIZE);
        put(&s.image, 0x1000, &img);
        assert_eq!(s.read(), env(PLAIN));
        assert_eq!(fw_printenv(&s.config), listing(PLAIN));
    }
}

#[test]
fn we_read_mkenvimage_redundant_and_alternate_from_it() {
    let s = setup(true);
    let dir = s.image.parent().unwrap();
    let older = mkenvimage(dir, &[("ota_slot", "a")], &["-r"]);
    let newer = mkenvimage(dir, PLAIN, &["-r"]);
    assert_eq!((older[4], newer[4]), (1, 1), "mkenvimage -r writes flags 1");
    // Equal flags: every reader takes copy 1 (the first line of the config).
    put(&s.image, 0x1000, &newer);
    put(&s.image, 0x1000 + SIZE, &older);
    assert_eq!(s.read(), env(PLAIN));
    assert_eq!(fw_printenv(&s.config), listing(PLAIN));
    // Our write goes to the other copy with flags 2; both readers follow.
    let mut e = env(PLAIN);
    e.set("ota_slot", "a").unwrap();
    let mut store = s.store();
    store.write(&e).unwrap();
    assert_eq!(store.current_copy(), Some(1));
    let bytes = fs::read(&s.image).unwrap();
    assert_eq!(
        bytes[0x1000..0x1000 + SIZE],
        newer[..],
        "current copy untouched"
    );
    assert_eq!(bytes[0x1000 + SIZE + 4], 2);
    let mut want = PLAIN.to_vec();
    want[2].1 = "a";
    assert_eq!(fw_printenv(&s.config), listing(&want));
}

/// 300 writes alternating between us and fw_setenv carry the incremental flag
/// through 0xff -> 0 at least once; after every write both read the same.
#[test]
fn interleaved_writers_agree_across_flag_wraparound() {
    let s = setup(true);
    s.write(&env(&[("n", "0")]));
    let mut flags_seen = Vec::new();
    for i in 1..300 {
        let value = i.to_string();
        if i % 2 == 0 {
            let mut e = s.read();
            e.set("n", &value).unwrap();
            s.write(&e);
        } else {
            fw_setenv(&s.config, &["n", &value]);
        }
        assert_eq!(s.read().get("n"), Some(value.as_str()), "write {i}");
        assert_eq!(
            ok(
                "fw_printenv",
                &["-c", s.config.to_str().unwrap(), "-n", "n"]
            ),
            format!("{value}\n"),
            "write {i}"
        );
        let bytes = fs::read(&s.image).unwrap();
        flags_seen.push((bytes[0x1000 + 4], bytes[0x1000 + SIZE + 4]));
    }
    assert!(
        flags_seen
            .windows(2)
            .any(|w| w[0].0 == 0xff && w[1].1 == 0 || w[0].1 == 0xff && w[1].0 == 0),
        "the flags never wrapped: {flags_seen:?}"
    );
}

/// What a reader sees when a write stopped after `k` bytes: the bytes before
/// the write, with the first `k` bytes of the written range replaced.
fn torn(before: &[u8], after: &[u8], start: usize, k: usize) -> Vec<u8> {
    let mut t = before.to_vec();
    t[start..start + k].copy_from_slice(&after[start..start + k]);
    t
}

/// A redundant write cut at any byte leaves the old or the new environment,
/// for us and for fw_printenv; never garbage, never an error.
#[test]
fn torn_redundant_write_leaves_old_or_new() {
    let s = setup(true);
    let old: &[(&str, &str)] = &[
        ("ota_slot", "a"),
        ("bootcount", "2"),
        ("upgrade_available", "1"),
    ];
    let new: &[(&str, &str)] = &[
        ("ota_slot", "b"),
        ("bootcount", "0"),
        ("upgrade_available", "1"),
        ("bootlimit", "3"),
    ];
    // Two writes so both copies are valid and the torn one overwrites a valid copy.
    s.write(&env(&[("ota_slot", "x")]));
    s.write(&env(old));
    let before = fs::read(&s.image).unwrap();
    s.write(&env(new));
    let after = fs::read(&s.image).unwrap();
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    let (first, last) = (changed[0], *changed.last().unwrap());
    // The write touched only the non-current copy (copy 1 at 0x1000).
    assert!(
        first >= 0x1000 && last < 0x1000 + SIZE,
        "{first:#x}..{last:#x}"
    );
    let written = 0x1000..0x1000 + SIZE;
    let (old_text, new_text) = (listing(old), listing(new));
    let mut tool_checks = 0;
    for k in 0..=SIZE {
        let t = torn(&before, &after, written.start, k);
        fs::write(&s.image, &t).unwrap();
        let got = s.read();
        assert!(
            got == env(old) || got == env(new),
            "cut at byte {k}: {got:?}"
        );
        // The tool is slower: check it at every header byte, around the data
        // and at a stride across the padding.
        if k < 16 || k % 97 == 0 || k == SIZE || (k > SIZE - 4) {
            let text = fw_printenv(&s.config);
            assert!(
                text == old_text || text == new_text,
                "cut at byte {k}: {text}"
            );
            assert_eq!(
                text == new_text,
                got == env(new),
                "cut at byte {k}: readers disagree"
            );
            tool_checks += 1;
        }
    }
    assert!(tool_checks > 90);
    // Until the last changed byte is written, the old environment stays current.
    fs::write(
        &s.image,
        torn(&before, &after, written.start, last - written.start),
    )
    .unwrap();
    assert_eq!(s.read(), env(old));
    fs::write(
        &s.image,
        torn(&before, &after, written.start, last + 1 - written.start),
    )
    .unwrap();
    assert_eq!(s.read(), env(new));
}

/// A single copy cannot survive a torn write, but a torn copy is never read as
/// an environment: it is the old one, the new one, or a clear error.
#[test]
fn torn_single_write_is_detected() {
    let s = setup(false);
    s.write(&env(&[("a", "1")]));
    let before = fs::read(&s.image).unwrap();
    s.write(&env(&[("a", "2"), ("b", "3")]));
    let after = fs::read(&s.image).unwrap();
    let mut errors = 0;
    for k in 0..=SIZE {
        fs::write(&s.image, torn(&before, &after, 0x1000, k)).unwrap();
        match s.store().read() {
            Ok(e) => assert!(e == env(&[("a", "1")]) || e == env(&[("a", "2"), ("b", "3")])),
            Err(uboot_env::Error::NoValidCopy(_)) => errors += 1,
            Err(e) => panic!("cut at {k}: {e}"),
        }
    }
    assert!(errors > 0);
}

#[test]
fn image_bytes_match_mkenvimage() {
    // Same variables, same order (mkenvimage keeps input order; give it sorted
    // input), zero padding: byte-identical images, single and redundant.
    let dir = tempfile::tempdir().unwrap();
    let mut sorted = PLAIN.to_vec();
    sorted.sort();
    let theirs = mkenvimage(dir.path(), &sorted, &["-p", "0"]);
    assert_eq!(
        image::encode(&env(PLAIN), SIZE, Layout::Single, 0).unwrap(),
        theirs
    );
    let theirs = mkenvimage(dir.path(), &sorted, &["-p", "0", "-r"]);
    assert_eq!(
        image::encode(&env(PLAIN), SIZE, Layout::Redundant, 1).unwrap(),
        theirs
    );
}
