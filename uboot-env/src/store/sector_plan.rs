//! Where an environment copy's bytes go on MTD: the pure layout over erase
//! blocks, skipping bad ones.

use std::path::Path;

use crate::{Error, Result};

/// One piece of an environment copy on MTD: `len` bytes of the image from
/// `data_start`, stored at `device_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub data_start: usize,
    pub device_offset: u64,
    pub len: usize,
}

/// Lays an image of `size` bytes out over the erase blocks starting at
/// `offset`, skipping bad blocks, within `sectors` reserved blocks (the
/// layout U-Boot and libubootenv use on NAND). Pure: the bad-block test is
/// passed in.
pub(crate) fn sector_plan(
    path: &Path,
    offset: u64,
    size: usize,
    sector_size: u64,
    sectors: u64,
    mut is_bad: impl FnMut(u64) -> Result<bool>,
) -> Result<Vec<Chunk>> {
    let mut plan = Vec::new();
    let mut data_start = 0usize;
    let mut block = offset;
    let mut used = 0u64;
    let step = usize::try_from(sector_size).unwrap_or(usize::MAX);
    while data_start < size {
        if used >= sectors {
            return Err(Error::device(
                path,
                format!("not enough good erase blocks in the {sectors} reserved at {offset:#x}"),
            ));
        }
        used += 1;
        if is_bad(block)? {
            log::debug!("skipping bad erase block at {block:#x}");
            block += sector_size;
            continue;
        }
        // The first block may start mid-block (NOR env at an unaligned offset).
        let room = step - usize::try_from(block % sector_size).unwrap_or(0);
        let len = room.min(size - data_start);
        plan.push(Chunk {
            data_start,
            device_offset: block,
            len,
        });
        data_start += len;
        block = block - block % sector_size + sector_size;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_bad(_: u64) -> Result<bool> {
        Ok(false)
    }

    #[test]
    fn plan_contiguous_and_unaligned() {
        let p = sector_plan(
            Path::new("/dev/mtd0"),
            0x20000,
            0x4000,
            0x10000,
            1,
            never_bad,
        )
        .unwrap();
        assert_eq!(
            p,
            [Chunk {
                data_start: 0,
                device_offset: 0x20000,
                len: 0x4000
            }]
        );
        let p = sector_plan(Path::new("/dev/mtd0"), 0x1000, 0x2000, 0x1000, 2, never_bad).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].device_offset, 0x2000);
        assert_eq!(p[1].data_start, 0x1000);
        let p = sector_plan(Path::new("/dev/mtd0"), 0x800, 0x1000, 0x1000, 2, never_bad).unwrap();
        assert_eq!(
            p,
            [
                Chunk {
                    data_start: 0,
                    device_offset: 0x800,
                    len: 0x800
                },
                Chunk {
                    data_start: 0x800,
                    device_offset: 0x1000,
                    len: 0x800
                },
            ]
        );
    }

    #[test]
    fn plan_skips_bad_blocks_within_reserve() {
        let bad = |off: u64| Ok(off == 0x20000);
        let p = sector_plan(Path::new("/dev/mtd0"), 0x20000, 0x20000, 0x20000, 2, bad).unwrap();
        assert_eq!(
            p,
            [Chunk {
                data_start: 0,
                device_offset: 0x40000,
                len: 0x20000
            }]
        );
        let all_bad = |_: u64| Ok(true);
        assert!(sector_plan(
            Path::new("/dev/mtd0"),
            0x20000,
            0x20000,
            0x20000,
            3,
            all_bad
        )
        .is_err());
    }
}
