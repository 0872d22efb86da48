//! File offsets are 64-bit on every target (issue 20): on 32-bit ARM glibc
//! `off_t` is 32 bits, so anything that goes through it truncates at 2 GiB.
//! These tests put the slots, the GPT's backup and the U-Boot environment
//! beyond 4 GiB of a sparse disk image and check every byte there, with the
//! real sgdisk and libubootenv tools on the other side. They run on the host
//! and on the 32-bit build (scripts/test runs them under qemu-arm).

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ota_agent::install::storage::{Disk, FileDisk, SlotWriter};
use ota_agent::slots::{Layout, Slot};

use crate::common::tools::{tool as run, AGENT};

const GIB: u64 = 1 << 30;

/// Bytes that differ at every offset (a shifted or truncated offset shows).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

#[test]
fn file_disk_writes_and_reads_back_beyond_4_gib() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    File::create(&path).unwrap().set_len(6 * GIB).unwrap(); // sparse
    let disk = FileDisk::open(&path).unwrap();
    // Just below 2 GiB and 4 GiB (straddling them), and far beyond.
    for (at, seed) in [
        (2 * GIB - 1000, 1),
        (4 * GIB - 3000, 2),
        (5 * GIB + 12345, 3),
    ] {
        let data = pattern(8192, seed);
        disk.write_at(&data, at).unwrap();
        disk.sync().unwrap();
        disk.evict(at, data.len() as u64);
        let mut back = vec![0u8; data.len()];
        assert_eq!(disk.read_at(&mut back, at).unwrap(), data.len());
        assert_eq!(back, data, "at {at}");
        // What the file really holds there, read independently.
        let mut raw = vec![0u8; data.len()];
        File::open(&path)
            .unwrap()
            .read_exact_at(&mut raw, at)
            .unwrap();
        assert_eq!(raw, data, "at {at} (file)");
    }
    // The truncated offsets (mod 2^32, mod 2^31) were not written.
    let mut low = vec![0u8; 8192];
    File::open(&path)
        .unwrap()
        .read_exact_at(&mut low, 12345)
        .unwrap();
    assert!(low.iter().all(|&b| b == 0));
}

#[test]
fn slot_beyond_4_gib_is_found_written_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    File::create(&path).unwrap().set_len(10 * GIB).unwrap();
    let p = path.to_str().unwrap();
    // rootfs_a across 4 GiB, rootfs_b from 5 GiB (sector 10485760), real sgdisk.
    run(
        "sgdisk",
        &[
            "-o",
            "-n",
            "1:2048:+4G",
            "-c",
            "1:rootfs_a",
            "-n",
            "2:10485760:+4G",
            "-c",
            "2:rootfs_b",
            p,
        ],
    );
    let layout = Layout::discover(&path).unwrap();
    let b = layout.partition("rootfs", Slot::B).unwrap();
    assert_eq!(b.offset, 5 * GIB);
    assert_eq!(b.size, 4 * GIB);

    let disk = FileDisk::open(&path).unwrap();
    let writer = SlotWriter::for_inactive(&disk, &layout, Slot::A, "rootfs").unwrap();
    let data = pattern(1 << 20, 7);
    // At the start of the slot and near its end (offset 9 GiB - 1 MiB on disk).
    writer.write_at(&data, 0).unwrap();
    writer.write_at(&data, 4 * GIB - (1 << 20)).unwrap();
    writer.sync().unwrap();
    let mut raw = vec![0u8; data.len()];
    let file = File::open(&path).unwrap();
    file.read_exact_at(&mut raw, 5 * GIB).unwrap();
    assert_eq!(raw, data);
    file.read_exact_at(&mut raw, 9 * GIB - (1 << 20)).unwrap();
    assert_eq!(raw, data);
    // Past the slot's end: refused, nothing written.
    assert!(writer.write_at(&data, 4 * GIB - 10).is_err());
    // sgdisk still sees a valid table (our writes never touched the backup GPT
    // at the end of the 10 GiB image).
    assert!(run("sgdisk", &["-v", p]).contains("No problems found"));
}

#[test]
fn uboot_env_beyond_4_gib_interoperates_with_libubootenv() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    File::create(&img).unwrap().set_len(5 * GIB).unwrap();
    // Two redundant copies at 4 GiB + 1 MiB and + 1 MiB + 16 KiB.
    let (o1, o2) = (4 * GIB + 0x10_0000, 4 * GIB + 0x10_4000);
    let config = dir.path().join("fw_env.config");
    fs::write(
        &config,
        format!("{0} {o1:#x} 0x4000\n{0} {o2:#x} 0x4000\n", img.display()),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let defenv = dir.path().join("defenv");
    fs::write(&defenv, "bootdelay=2\n").unwrap();
    let d = defenv.to_str().unwrap();
    // libubootenv writes, we read; we write, libubootenv reads.
    run("fw_setenv", &["-c", c, "-f", d, "ota_slot", "a"]);
    let ours = run(AGENT, &["env", "print", "-c", c, "ota_slot"]);
    assert_eq!(ours, "ota_slot=a\n");
    run(AGENT, &["env", "set", "-c", c, "ota_slot", "b"]);
    assert_eq!(run("fw_printenv", &["-c", c, "-n", "ota_slot"]), "b\n");
    // Both copies really are up there; nothing landed at the offsets mod 2^32.
    let file = File::open(&img).unwrap();
    let mut low = vec![0u8; 0x8000];
    file.read_exact_at(&mut low, 0x10_0000).unwrap();
    assert!(low.iter().all(|&b| b == 0));
    assert!(Path::new(&img).metadata().unwrap().len() == 5 * GIB);
}
