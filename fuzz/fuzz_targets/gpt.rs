//! A GPT disk image from the fuzzer (the first bytes of a disk are hostile on
//! a device that boots whatever was flashed): reading must never panic, and
//! every partition returned must lie inside the disk. Seed: a 64 KiB disk
//! partitioned by `sgdisk -o -a 1` (misc, rootfs_a, rootfs_b), named `.gpt`
//! because `*.img` is ignored by git.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ota_agent::gpt;

fuzz_target!(|data: &[u8]| {
    let _ = gpt::parse_header(data);
    if let Ok(parts) = gpt::read(&mut Cursor::new(data), Path::new("fuzz.img")) {
        for p in parts {
            assert!(p.offset.saturating_add(p.size) <= data.len() as u64);
        }
    }
    let _ = ota_agent::slots::Layout::from_partitions(Path::new("fuzz.img"), Vec::new());
});
