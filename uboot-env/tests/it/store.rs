//! EnvStore on regular files: single and redundant copies, alternation,
//! corruption handling. (Interop with the real tools is in interop.rs.)

use std::fs;
use std::path::Path;

use uboot_env::image::{self, Layout};
use uboot_env::{EnvStore, Error, FwEnvConfig};

use crate::common::env;

fn store(text: &str) -> EnvStore {
    EnvStore::open(&FwEnvConfig::parse(text).unwrap()).unwrap()
}

fn zero_file(path: &Path, len: usize) {
    fs::write(path, vec![0u8; len]).unwrap();
}

#[test]
fn single_copy_round_trip_at_offset() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    zero_file(&img, 0x3000);
    let mut s = store(&format!("{} 0x1000 0x1000\n", img.display()));
    assert!(matches!(s.read(), Err(Error::NoValidCopy(_))));
    let e = env(&[("ota_slot", "a"), ("bootcount", "0")]);
    s.write(&e).unwrap();
    assert_eq!(s.read().unwrap(), e);
    // Bytes outside the area are untouched; the area holds exactly the image.
    let bytes = fs::read(&img).unwrap();
    assert!(bytes[..0x1000].iter().all(|&b| b == 0));
    assert!(bytes[0x2000..].iter().all(|&b| b == 0));
    assert_eq!(
        bytes[0x1000..0x2000],
        image::encode(&e, 0x1000, Layout::Single, 0).unwrap()[..]
    );
}

#[test]
fn redundant_writes_alternate_and_count_flags() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    zero_file(&img, 0x2000);
    let conf = format!("{0} 0x0 0x1000\n{0} 0x1000 0x1000\n", img.display());
    let mut s = store(&conf);
    let mut targets = Vec::new();
    for i in 0..5 {
        let e = env(&[("n", &i.to_string())]);
        s.write(&e).unwrap();
        targets.push(s.current_copy().unwrap());
        // A fresh store (no cached state) reads the newest write.
        assert_eq!(store(&conf).read().unwrap(), e);
    }
    assert_eq!(targets, [0, 1, 0, 1, 0]);
    let bytes = fs::read(&img).unwrap();
    let (e0, f0) = image::decode(&bytes[..0x1000], Layout::Redundant).unwrap();
    let (e1, f1) = image::decode(&bytes[0x1000..], Layout::Redundant).unwrap();
    assert_eq!((e0.get("n"), f0), (Some("4"), Some(5)));
    assert_eq!((e1.get("n"), f1), (Some("3"), Some(4)));
}

#[test]
fn redundant_survives_one_corrupt_copy_and_refuses_two() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    zero_file(&a, 0x400);
    zero_file(&b, 0x400);
    let conf = format!("{} 0 0x400\n{} 0 0x400\n", a.display(), b.display());
    let mut s = store(&conf);
    s.write(&env(&[("v", "old")])).unwrap();
    s.write(&env(&[("v", "new")])).unwrap();
    assert_eq!(s.current_copy(), Some(1));
    // Corrupt the newer copy: the older one is read.
    let mut bytes = fs::read(&b).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&b, &bytes).unwrap();
    assert_eq!(store(&conf).read().unwrap().get("v"), Some("old"));
    // Corrupt both: a clear error naming both copies, unless a default is asked for.
    let mut bytes = fs::read(&a).unwrap();
    bytes[7] ^= 0x01;
    fs::write(&a, &bytes).unwrap();
    let err = store(&conf).read().unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("no valid environment: copy 1 ("), "{msg}");
    assert!(msg.contains("copy 2 (") && msg.contains("bad crc"), "{msg}");
    let default = env(&[("ota_slot", "a")]);
    let mut s = store(&conf);
    let loaded = s.read_or_default(&default).unwrap();
    assert!(loaded.from_default);
    assert_eq!(loaded.env, default);
    s.write(&loaded.env).unwrap();
    assert_eq!(store(&conf).read().unwrap(), default);
}

#[test]
fn too_large_env_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("env");
    zero_file(&img, 0x40);
    let mut s = store(&format!("{} 0 0x40\n", img.display()));
    s.write(&env(&[("a", "1")])).unwrap();
    let before = fs::read(&img).unwrap();
    let err = s.write(&env(&[("a", &"x".repeat(100))])).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert_eq!(fs::read(&img).unwrap(), before);
}

#[test]
fn missing_or_short_device_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err =
        EnvStore::open(&FwEnvConfig::parse(&format!("{} 0 0x100\n", missing.display())).unwrap())
            .unwrap_err();
    assert!(err.to_string().contains("nope: stat:"), "{err}");
    let short = dir.path().join("short");
    zero_file(&short, 0x80);
    let err = store(&format!("{} 0 0x100\n", short.display()))
        .read()
        .unwrap_err();
    assert!(err.to_string().contains("too small"), "{err}");
}

/// The shipped reference config parses and describes the contract's layout.
#[test]
fn reference_config_matches_the_contract() {
    let text = include_str!("../../../conf/fw_env.config");
    let c = FwEnvConfig::parse(text).unwrap();
    assert_eq!(c.devices().len(), 1);
    let d = &c.devices()[0];
    assert_eq!(
        (d.path.to_str(), d.offset, d.size),
        (Some("/dev/vda"), 0x100000, 0x4000)
    );
    // Uncommenting the redundant line gives the contract's second copy.
    let redundant = text.replace("#/dev/vda    0x104000", "/dev/vda    0x104000");
    let c = FwEnvConfig::parse(&redundant).unwrap();
    assert!(c.is_redundant());
    assert_eq!(c.devices()[1].offset, 0x104000);
}

/// Writes wait for the lock fw_setenv holds. (The 300 ms pause only gives a
/// broken lock the chance to show; a working one passes regardless of timing.)
#[test]
fn write_waits_for_the_tools_lock() {
    use nix::fcntl::{Flock, FlockArg};
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("env");
    zero_file(&img, 0x100);
    let lock_path = dir.path().join("fw_printenv.lock");
    let held = Flock::lock(
        fs::File::create(&lock_path).unwrap(),
        FlockArg::LockExclusive,
    )
    .map_err(|(_, e)| e)
    .unwrap();
    let conf = format!("{} 0 0x100\n", img.display());
    let mut s = store(&conf);
    s.set_lock_path(Some(lock_path.clone()));
    let writer = std::thread::spawn(move || s.write(&env(&[("a", "1")])).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        fs::read(&img).unwrap().iter().all(|&b| b == 0),
        "wrote while the lock was held"
    );
    drop(held);
    writer.join().unwrap();
    assert_eq!(store(&conf).read().unwrap(), env(&[("a", "1")]));
}

#[test]
fn update_writes_once_and_only_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("env");
    zero_file(&img, 0x200);
    let conf = format!("{0} 0 0x100\n{0} 0x100 0x100\n", img.display());
    let mut s = store(&conf);
    // No valid copy and no default: an error, nothing written.
    assert!(matches!(
        s.update(None, |e| e.set("a", "1")),
        Err(Error::NoValidCopy(_))
    ));
    assert!(fs::read(&img).unwrap().iter().all(|&b| b == 0));
    // With a default: written even though the edit changes nothing else.
    let default = env(&[("ota_slot", "a")]);
    assert!(s.update(Some(&default), |_| Ok(())).unwrap());
    assert_eq!(store(&conf).read().unwrap(), default);
    // No change: no write (the copies would otherwise swap).
    let before = fs::read(&img).unwrap();
    assert!(!s.update(None, |e| e.set("ota_slot", "a")).unwrap());
    assert_eq!(fs::read(&img).unwrap(), before);
    // A failing edit writes nothing.
    assert!(s.update(None, |e| e.set("bad=name", "x")).is_err());
    assert_eq!(fs::read(&img).unwrap(), before);
    // A change: one write, to the other copy.
    assert!(s
        .update(None, |e| {
            e.set("ota_slot", "b")?;
            e.set("upgrade_available", "1")
        })
        .unwrap());
    assert_eq!(
        store(&conf).read().unwrap(),
        env(&[("ota_slot", "b"), ("upgrade_available", "1")])
    );
    assert_eq!(fs::read(&img).unwrap()[..0x100], before[..0x100]);
}
