//! A/B slots: the [`Slot`] enum and slot discovery on a GPT disk.
//!
//! A slot is every partition whose GPT name carries that slot's suffix
//! (`rootfs_a`, `boot_a`, … form slot A). Both slots must hold the same set of
//! base names and each pair must have the same size; anything else is an
//! error naming the mismatch, because writing an update into a half-matching
//! layout is how devices get bricked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::gpt::{self, Partition};
use crate::{Error, Result};

/// One of the two slots. Its role (booted/active) and health
/// (bootable/successful) are kept elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Slot A, suffix `_a`, bootctrl index 0.
    A,
    /// Slot B, suffix `_b`, bootctrl index 1.
    B,
}

impl Slot {
    /// Both slots, in index order.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// `"a"` or `"b"`.
    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// `"_a"` or `"_b"`.
    pub fn suffix(self) -> &'static str {
        match self {
            Slot::A => "_a",
            Slot::B => "_b",
        }
    }

    /// Index in the Android `slot_info` array.
    pub fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    /// The slot and base name of a partition name like `rootfs_b`.
    pub fn split_name(name: &str) -> Option<(&str, Slot)> {
        for slot in Slot::ALL {
            if let Some(base) = name.strip_suffix(slot.suffix()) {
                if !base.is_empty() {
                    return Some((base, slot));
                }
            }
        }
        None
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

impl FromStr for Slot {
    type Err = Error;
    fn from_str(s: &str) -> Result<Slot> {
        match s {
            "a" | "A" => Ok(Slot::A),
            "b" | "B" => Ok(Slot::B),
            _ => Err(Error::Slot(format!(
                "`{s}` is not a slot (expected a or b)"
            ))),
        }
    }
}

/// Where one partition lives: enough for the installer to open it inside an
/// image file or on the whole-disk device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRef {
    /// GPT name, e.g. `rootfs_b`.
    pub name: String,
    /// 1-based partition number.
    pub number: u32,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

impl From<&Partition> for PartitionRef {
    fn from(p: &Partition) -> Self {
        PartitionRef {
            name: p.name.clone(),
            number: p.number,
            offset: p.offset,
            size: p.size,
        }
    }
}

/// The slot layout of a disk.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The disk (device or image file) the offsets refer to.
    pub disk: PathBuf,
    /// Base name (`rootfs`) → the partition of each slot (index by [`Slot::index`]).
    pub pairs: BTreeMap<String, [PartitionRef; 2]>,
    /// Every partition of the disk (for root-device cross-checks, `misc`, …).
    pub partitions: Vec<Partition>,
    /// The GPT's usable area and the disk length, when read from a disk
    /// (`None` for a layout built from a partition list).
    pub area: Option<DiskArea>,
}

/// Where partitions may lie on the disk, from the GPT header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskArea {
    /// Usable bytes `[start, end)`: not the protective MBR, a GPT header or
    /// an entry array.
    pub usable: std::ops::Range<u64>,
    /// Disk length in bytes.
    pub disk_len: u64,
}

impl Layout {
    /// Reads the GPT of `disk` and pairs the slot partitions.
    pub fn discover(disk: &Path) -> Result<Layout> {
        let mut file = std::fs::File::open(disk).map_err(|e| Error::io(disk, e))?;
        let table = gpt::read_table(&mut file, disk)?;
        let mut layout = Layout::from_partitions(disk, table.partitions)?;
        layout.area = Some(DiskArea {
            usable: table.usable,
            disk_len: table.disk_len,
        });
        Ok(layout)
    }

    /// Pairs the slot partitions of an already read table.
    pub fn from_partitions(disk: &Path, partitions: Vec<Partition>) -> Result<Layout> {
        let fail = |reason: String| Error::Gpt {
            path: disk.to_owned(),
            reason,
        };
        let mut seen = BTreeMap::new();
        for p in &partitions {
            if !p.name.is_empty() && seen.insert(p.name.as_str(), p.number).is_some() {
                return Err(fail(format!("partition name `{}` is used twice", p.name)));
            }
        }
        let mut halves: [BTreeMap<&str, &Partition>; 2] = [BTreeMap::new(), BTreeMap::new()];
        for p in &partitions {
            if let Some((base, slot)) = Slot::split_name(&p.name) {
                halves[slot.index()].insert(base, p);
            }
        }
        let [a, b] = &halves;
        if let Some(base) = a.keys().find(|k| !b.contains_key(*k)) {
            return Err(fail(format!(
                "slot a has `{base}_a` but slot b has no `{base}_b`"
            )));
        }
        if let Some(base) = b.keys().find(|k| !a.contains_key(*k)) {
            return Err(fail(format!(
                "slot b has `{base}_b` but slot a has no `{base}_a`"
            )));
        }
        if a.is_empty() {
            return Err(fail(
                "no slot partitions (`<name>_a` / `<name>_b`) found".into(),
            ));
        }
        let mut pairs = BTreeMap::new();
        for (base, pa) in a {
            let pb = b[base];
            if pa.size != pb.size {
                return Err(fail(format!(
                    "`{}` is {} bytes but `{}` is {} bytes; slot pairs must be the same size",
                    pa.name, pa.size, pb.name, pb.size
                )));
            }
            pairs.insert(
                base.to_string(),
                [PartitionRef::from(*pa), PartitionRef::from(pb)],
            );
        }
        Ok(Layout {
            disk: disk.to_owned(),
            pairs,
            partitions,
            area: None,
        })
    }

    /// The partition `base` (e.g. `"rootfs"`) of `slot`.
    pub fn partition(&self, base: &str, slot: Slot) -> Option<&PartitionRef> {
        self.pairs.get(base).map(|pair| &pair[slot.index()])
    }

    /// A partition by exact GPT name (e.g. `misc`).
    pub fn by_name(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }
}

/// Bytes of a device where the bootloader keeps state (a U-Boot env copy,
/// the Android `bootloader_control` block): never part of a slot write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// What it is, for messages ("U-Boot env copy 1").
    pub what: String,
    /// The device or file holding it.
    pub device: PathBuf,
    /// Byte offset; negative counts back from the end of the device.
    pub offset: i64,
    /// Length in bytes.
    pub len: u64,
}

/// Whether two paths name the same disk: the same block device (`st_rdev`)
/// or the same file (`st_dev` + `st_ino`).
fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return a == b;
    };
    if ma.file_type().is_block_device() && mb.file_type().is_block_device() {
        return ma.rdev() == mb.rdev();
    }
    ma.dev() == mb.dev() && ma.ino() == mb.ino()
}

fn overlap(a: &std::ops::Range<u64>, b: &std::ops::Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl Layout {
    /// Checks that partition `part` may be written as a whole: it lies on
    /// the disk inside the GPT's usable area (not over the protective MBR, a
    /// header or an entry array), overlaps none of the `reserved` ranges
    /// that are on this disk (named first: they are what a bad GPT destroys
    /// silently), and no other partition. The error names what is in the way.
    pub fn check_writable(&self, part: &PartitionRef, reserved: &[Reserved]) -> Result<(), String> {
        let range = part.offset..part.offset.saturating_add(part.size);
        let name = &part.name;
        if let Some(area) = &self.area {
            if range.end > area.disk_len {
                return Err(format!(
                    "partition `{name}` (bytes {}..{}) runs past the end of the disk ({} bytes)",
                    range.start, range.end, area.disk_len
                ));
            }
            if range.start < area.usable.start || range.end > area.usable.end {
                return Err(format!(
                    "partition `{name}` (bytes {}..{}) lies outside the GPT's usable area {}..{} (protective MBR, GPT headers and entry arrays)",
                    range.start, range.end, area.usable.start, area.usable.end
                ));
            }
        }
        for r in reserved {
            if !same_device(&r.device, &self.disk) {
                continue;
            }
            let start = if r.offset < 0 {
                let Some(len) = self.area.as_ref().map(|a| a.disk_len) else {
                    continue;
                };
                len.saturating_sub(r.offset.unsigned_abs())
            } else {
                r.offset as u64
            };
            let theirs = start..start.saturating_add(r.len);
            if overlap(&range, &theirs) {
                return Err(format!(
                    "partition `{name}` (bytes {}..{}) overlaps the {} (bytes {}..{})",
                    range.start, range.end, r.what, theirs.start, theirs.end
                ));
            }
        }
        for other in &self.partitions {
            let theirs = other.offset..other.offset.saturating_add(other.size);
            if other.number != part.number && overlap(&range, &theirs) {
                return Err(format!(
                    "partition `{name}` (bytes {}..{}) overlaps partition `{}` (bytes {}..{})",
                    range.start, range.end, other.name, theirs.start, theirs.end
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::Guid;

    fn part(number: u32, name: &str, size: u64) -> Partition {
        Partition {
            number,
            name: name.into(),
            type_guid: Guid([1; 16]),
            guid: Guid([number as u8; 16]),
            offset: u64::from(number) << 20,
            size,
        }
    }

    #[test]
    fn slot_names_and_parsing() {
        assert_eq!(Slot::split_name("rootfs_b"), Some(("rootfs", Slot::B)));
        assert_eq!(Slot::split_name("_a"), None);
        assert_eq!(Slot::split_name("misc"), None);
        assert_eq!("a".parse::<Slot>().unwrap(), Slot::A);
        assert!("c".parse::<Slot>().is_err());
        assert_eq!(Slot::A.other(), Slot::B);
    }

    #[test]
    fn pairs_every_suffixed_partition() {
        let parts = vec![
            part(1, "boot", 10),
            part(2, "misc", 10),
            part(3, "rootfs_a", 100),
            part(4, "rootfs_b", 100),
            part(5, "boot_b", 5),
            part(6, "boot_a", 5),
        ];
        let l = Layout::from_partitions(Path::new("d.img"), parts).unwrap();
        assert_eq!(l.pairs.keys().collect::<Vec<_>>(), ["boot", "rootfs"]);
        assert_eq!(l.partition("rootfs", Slot::B).unwrap().number, 4);
        assert_eq!(l.partition("boot", Slot::A).unwrap().number, 6);
        assert_eq!(l.by_name("misc").unwrap().number, 2);
    }

    #[test]
    fn mismatches_are_named() {
        let e = Layout::from_partitions(
            Path::new("d.img"),
            vec![
                part(1, "rootfs_a", 100),
                part(2, "rootfs_b", 100),
                part(3, "boot_a", 5),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("boot_a") && e.contains("no `boot_b`"), "{e}");
        let e = Layout::from_partitions(
            Path::new("d.img"),
            vec![part(1, "rootfs_a", 100), part(2, "rootfs_b", 99)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rootfs_a") && e.contains("99"), "{e}");
        let e = Layout::from_partitions(Path::new("d.img"), vec![part(1, "data", 1)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no slot partitions"), "{e}");
        let e = Layout::from_partitions(
            Path::new("d.img"),
            vec![part(1, "rootfs_a", 1), part(2, "rootfs_a", 1)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("twice"), "{e}");
    }
}
