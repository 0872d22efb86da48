//! One environment copy on its medium (regular file, block device, MTD):
//! checking it when the store opens, and reading and writing its bytes.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;

use super::sector_plan::{sector_plan, Chunk};
use crate::config::EnvDevice;
use crate::image::{FlagsKind, BOOLEAN_OBSOLETE, FLAGS_OFFSET};
use crate::{sys, Error, Result};

/// How one copy is stored, as found when the store opened.
#[derive(Debug, Clone)]
pub(super) enum Medium {
    File,
    Block,
    Mtd {
        /// Erase-block size used for erase and bad-block skipping.
        sector_size: u64,
        /// Erase blocks reserved for this copy (at least enough for `size`).
        sectors: u64,
        /// NAND: check bad blocks and skip them.
        nand: bool,
    },
}

/// One configured copy of the environment.
#[derive(Debug, Clone)]
pub(super) struct Copy {
    pub(super) path: PathBuf,
    /// Resolved (non-negative) byte offset.
    pub(super) offset: u64,
    pub(super) medium: Medium,
}

impl Copy {
    /// Reads the `size` bytes of this copy (on MTD: around bad blocks).
    pub(super) fn read(&self, size: usize) -> Result<Vec<u8>> {
        let copy = self;
        let file = File::open(&copy.path).map_err(|e| Error::io(&copy.path, "open", e))?;
        let mut buf = vec![0u8; size];
        match copy.medium {
            Medium::File | Medium::Block => read_exact_at(&file, copy, &mut buf, copy.offset)?,
            Medium::Mtd {
                sector_size,
                sectors,
                nand,
            } => {
                let plan =
                    sector_plan(&copy.path, copy.offset, size, sector_size, sectors, |off| {
                        bad_block(&file, copy, nand, off)
                    })?;
                for chunk in plan {
                    read_exact_at(
                        &file,
                        copy,
                        &mut buf[chunk.data_start..chunk.data_start + chunk.len],
                        chunk.device_offset,
                    )?;
                }
            }
        }
        Ok(buf)
    }

    /// Writes `image` (`size` bytes) over this copy and makes it durable.
    pub(super) fn write(&self, size: usize, image: &[u8]) -> Result<()> {
        let copy = self;
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if matches!(copy.medium, Medium::Block) {
            options.custom_flags(nix::libc::O_SYNC);
        }
        let file = options
            .open(&copy.path)
            .map_err(|e| Error::io(&copy.path, "open for writing", e))?;
        match copy.medium {
            Medium::File | Medium::Block => {
                // One write of the whole copy, then fsync: the only moment the
                // copy is inconsistent is inside this call.
                file.write_all_at(image, copy.offset).map_err(|e| {
                    Error::io(&copy.path, format!("write at {:#x}", copy.offset), e)
                })?;
            }
            Medium::Mtd {
                sector_size,
                sectors,
                nand,
            } => {
                let plan =
                    sector_plan(&copy.path, copy.offset, size, sector_size, sectors, |off| {
                        bad_block(&file, copy, nand, off)
                    })?;
                for chunk in plan {
                    mtd_write_sector(&file, copy, sector_size, &chunk, image)?;
                }
            }
        }
        sync(&file, copy)
    }

    /// Clears this copy's flag to obsolete in place (NOR: 1 -> 0 needs no erase).
    pub(super) fn write_obsolete_flag(&self) -> Result<()> {
        let copy = self;
        let file = OpenOptions::new()
            .write(true)
            .open(&copy.path)
            .map_err(|e| Error::io(&copy.path, "open for writing", e))?;
        let at = copy.offset + FLAGS_OFFSET as u64;
        file.write_all_at(&[BOOLEAN_OBSOLETE], at)
            .map_err(|e| Error::io(&copy.path, format!("write flags at {at:#x}"), e))?;
        sync(&file, copy)
    }
}

/// Makes a completed write durable. MTD character devices write through to the
/// flash driver synchronously and refuse fsync (EINVAL, seen on nandsim and
/// mtdram), so only files and block devices are synced.
fn sync(file: &File, copy: &Copy) -> Result<()> {
    match copy.medium {
        Medium::Mtd { .. } => Ok(()),
        Medium::File | Medium::Block => file
            .sync_all()
            .map_err(|e| Error::io(&copy.path, "fsync", e)),
    }
}

fn read_exact_at(file: &File, copy: &Copy, buf: &mut [u8], at: u64) -> Result<()> {
    file.read_exact_at(buf, at).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::device(
                &copy.path,
                format!(
                    "too small: the environment at {at:#x} needs {} bytes",
                    buf.len()
                ),
            )
        } else {
            Error::io(&copy.path, format!("read at {at:#x}"), e)
        }
    })
}

fn bad_block(file: &File, copy: &Copy, nand: bool, offset: u64) -> Result<bool> {
    if !nand {
        return Ok(false);
    }
    let at = i64::try_from(offset)
        .map_err(|_| Error::device(&copy.path, format!("offset {offset:#x} out of range")))?;
    sys::mem_is_bad_block(file, at)
        .map_err(|e| Error::io(&copy.path, format!("MEMGETBADBLOCK at {offset:#x}"), e))
}

/// Erases one erase block and writes its part of the image, keeping the bytes
/// of the block that lie outside the environment (read first).
fn mtd_write_sector(
    file: &File,
    copy: &Copy,
    sector_size: u64,
    chunk: &Chunk,
    image: &[u8],
) -> Result<()> {
    let block_start = chunk.device_offset - chunk.device_offset % sector_size;
    let block_len = usize::try_from(sector_size)
        .map_err(|_| Error::device(&copy.path, "erase block size too large"))?;
    let mut block = vec![0u8; block_len];
    read_exact_at(file, copy, &mut block, block_start)?;
    let within = usize::try_from(chunk.device_offset - block_start)
        .map_err(|_| Error::device(&copy.path, "offset out of range"))?;
    block[within..within + chunk.len]
        .copy_from_slice(&image[chunk.data_start..chunk.data_start + chunk.len]);
    let (start, length) = match (u32::try_from(block_start), u32::try_from(sector_size)) {
        (Ok(s), Ok(l)) => (s, l),
        _ => return Err(Error::device(&copy.path, "erase block beyond 4 GiB")),
    };
    sys::mem_erase(file, start, length)
        .map_err(|e| Error::io(&copy.path, format!("MEMERASE at {block_start:#x}"), e))?;
    file.write_all_at(&block, block_start)
        .map_err(|e| Error::io(&copy.path, format!("write at {block_start:#x}"), e))
}

pub(super) fn erase_ranges_overlap(a: &Copy, b: &Copy, size: usize) -> bool {
    let span = |c: &Copy| match c.medium {
        Medium::Mtd {
            sector_size,
            sectors,
            ..
        } => {
            let start = c.offset - c.offset % sector_size;
            (start, start + sectors * sector_size)
        }
        _ => (c.offset, c.offset + size as u64),
    };
    let (a0, a1) = span(a);
    let (b0, b1) = span(b);
    a0 < b1 && b0 < a1
}

pub(super) fn open_copy(dev: &EnvDevice) -> Result<(Copy, FlagsKind)> {
    let path = &dev.path;
    if path.starts_with("/dev/ubi") || path.to_string_lossy().starts_with("/dev/ubi") {
        return Err(Error::device(path, "UBI volumes are not supported"));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "stat", e))?;
    let ft = meta.file_type();
    let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let size = dev.size as u64;
    if ft.is_char_device() {
        let info = sys::mem_get_info(&file).map_err(|e| {
            Error::device(
                path,
                format!("character device but not MTD (MEMGETINFO: {e})"),
            )
        })?;
        let (nand, kind) = match info.kind {
            sys::MTD_NORFLASH => (false, FlagsKind::Boolean),
            sys::MTD_NANDFLASH | sys::MTD_MLCNANDFLASH => (true, FlagsKind::Incremental),
            // mtdram: byte-addressable, erase works; no bad blocks.
            sys::MTD_RAM => (false, FlagsKind::Incremental),
            other => {
                return Err(Error::device(path, format!("unsupported MTD type {other}")));
            }
        };
        let offset = u64::try_from(dev.offset)
            .map_err(|_| Error::device(path, "negative offsets are not supported on MTD"))?;
        let sector_size = dev.sector_size.unwrap_or(u64::from(info.erasesize));
        if sector_size == 0
            || (u64::from(info.erasesize) != 0
                && !sector_size.is_multiple_of(u64::from(info.erasesize)))
        {
            return Err(Error::device(
                path,
                format!(
                    "sector size {sector_size:#x} is not a multiple of the erase size {:#x}",
                    info.erasesize
                ),
            ));
        }
        let needed = (offset % sector_size + size).div_ceil(sector_size);
        let sectors = dev.sector_count.unwrap_or(needed).max(needed);
        if offset + sectors * sector_size > u64::from(info.size) + offset % sector_size {
            return Err(Error::device(
                path,
                format!(
                    "environment at {offset:#x} runs past the end of the {:#x}-byte MTD device",
                    info.size
                ),
            ));
        }
        let copy = Copy {
            path: path.clone(),
            offset,
            medium: Medium::Mtd {
                sector_size,
                sectors,
                nand,
            },
        };
        return Ok((copy, kind));
    }
    let (medium, len) = if ft.is_block_device() {
        let mut f = &file;
        let len = f
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io(path, "seek to end", e))?;
        (Medium::Block, len)
    } else if ft.is_file() {
        (Medium::File, meta.len())
    } else {
        return Err(Error::device(
            path,
            "not a regular file, block device or MTD device",
        ));
    };
    let offset = if dev.offset < 0 {
        len.checked_sub(dev.offset.unsigned_abs()).ok_or_else(|| {
            Error::device(
                path,
                format!("offset {} is before the start of the device", dev.offset),
            )
        })?
    } else {
        dev.offset.unsigned_abs()
    };
    if matches!(medium, Medium::Block) && offset + size > len {
        return Err(Error::device(
            path,
            format!("environment at {offset:#x} (+{size:#x}) runs past the end of the {len:#x}-byte device"),
        ));
    }
    Ok((
        Copy {
            path: path.clone(),
            offset,
            medium,
        },
        FlagsKind::Incremental,
    ))
}
