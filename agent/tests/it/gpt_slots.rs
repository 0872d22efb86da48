//! GPT slot discovery on disk images partitioned by the real `sgdisk`, with
//! `sfdisk --json` as the independent oracle for numbers, offsets, sizes and
//! partition UUIDs. A missing tool FAILS (scripts/install-deps).

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ota_agent::bootctl::booted;
use ota_agent::gpt;
use ota_agent::slots::{Layout, Slot};

use crate::common::disk::{gpt_image, sfdisk};

/// A 32 MiB image with `parts` = (name, size in KiB; 0 = rest).
fn image(dir: &Path, parts: &[(&str, u32)]) -> PathBuf {
    let disk = dir.join("disk.img");
    gpt_image(&disk, 32 << 20, parts);
    disk
}

const PRODUCT: &[(&str, u32)] = &[
    ("boot", 2048),
    ("misc", 1024),
    ("boot_a", 512),
    ("rootfs_a", 8192),
    ("rootfs_b", 8192),
    ("boot_b", 512),
    ("data", 0),
];

#[test]
fn table_matches_sfdisk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), PRODUCT);
    let mut f = fs::File::open(&disk).unwrap();
    let parts = gpt::read(&mut f, &disk).unwrap();
    let oracle = sfdisk(&disk);
    assert_eq!(parts.len(), oracle.len());
    for (p, o) in parts.iter().zip(&oracle) {
        assert_eq!(
            (
                p.number,
                p.name.as_str(),
                p.offset,
                p.size,
                p.guid.to_string()
            ),
            (o.number, o.name.as_str(), o.start, o.size, o.uuid.clone())
        );
    }
}

#[test]
fn slots_pair_every_suffixed_partition() {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), PRODUCT);
    let layout = Layout::discover(&disk).unwrap();
    assert_eq!(layout.pairs.keys().collect::<Vec<_>>(), ["boot", "rootfs"]);
    let oracle = sfdisk(&disk);
    let find = |name: &str| oracle.iter().find(|o| o.name == name).unwrap();
    for (base, slot) in [("rootfs", Slot::A), ("rootfs", Slot::B), ("boot", Slot::B)] {
        let p = layout.partition(base, slot).unwrap();
        let o = find(&format!("{base}{}", slot.suffix()));
        assert_eq!((p.number, p.offset, p.size), (o.number, o.start, o.size));
    }
    assert_eq!(layout.by_name("misc").unwrap().offset, find("misc").start);
}

#[test]
fn mismatched_layouts_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(
        dir.path(),
        &[("rootfs_a", 8192), ("rootfs_b", 4096), ("data", 0)],
    );
    let e = Layout::discover(&disk).unwrap_err().to_string();
    assert!(
        e.contains("rootfs_a") && e.contains("rootfs_b") && e.contains("same size"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let disk = image(
        dir.path(),
        &[("rootfs_a", 4096), ("rootfs_b", 4096), ("boot_a", 512)],
    );
    let e = Layout::discover(&disk).unwrap_err().to_string();
    assert!(e.contains("boot_a") && e.contains("boot_b"), "{e}");
}

#[test]
fn damaged_primary_table_falls_back_to_backup() {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), PRODUCT);
    let good = Layout::discover(&disk).unwrap().partitions;
    // Damage the primary header's CRC, then (separately) the primary entries.
    for at in [512 + 16, 1024 + 200] {
        let copy = dir.path().join(format!("damaged-{at}.img"));
        fs::copy(&disk, &copy).unwrap();
        let mut f = fs::OpenOptions::new().write(true).open(&copy).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[0x5a]).unwrap();
        drop(f);
        assert_eq!(
            Layout::discover(&copy).unwrap().partitions,
            good,
            "damage at {at}"
        );
    }
    // Both copies gone: a clear error.
    let copy = dir.path().join("blank.img");
    fs::File::create(&copy).unwrap().set_len(4 << 20).unwrap();
    let e = Layout::discover(&copy).unwrap_err().to_string();
    assert!(e.contains("no valid gpt"), "{e}");
}

#[test]
fn root_device_forms_resolve_against_the_real_table() {
    let dir = tempfile::tempdir().unwrap();
    let disk = image(dir.path(), PRODUCT);
    let layout = Layout::discover(&disk).unwrap();
    let oracle = sfdisk(&disk);
    let rootfs_b = oracle.iter().find(|o| o.name == "rootfs_b").unwrap();
    let slot = |cmdline: &str| booted::from_cmdline(cmdline, &disk, &layout.partitions);
    assert_eq!(
        slot(&format!(
            "root=PARTUUID={} ota.slot=b",
            rootfs_b.uuid.to_uppercase()
        ))
        .unwrap(),
        Slot::B
    );
    // The configured disk's own partition device names.
    let dev = format!("{}{}", disk.display(), rootfs_b.number);
    assert_eq!(slot(&format!("root={dev}")).unwrap(), Slot::B);
    let e = slot(&format!("root={dev} ota.slot=a"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("disagrees"), "{e}");
}
