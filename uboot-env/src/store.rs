//! Where the environment lives: the I/O edge of the crate.
//!
//! ```text
//!   FwEnvConfig ──► EnvStore::open ──► one Medium per copy
//!                                        ├─ regular file   pread / pwrite + fsync
//!                                        ├─ block device   same, opened O_SYNC, + fsync
//!                                        └─ MTD char dev   MEMGETINFO, MEMERASE, write
//!   read():  both copies ──► image::header (CRC) ──► image::select ──► image::decode
//!   write(): encode first (bad input touches nothing) ──► write the NON-current
//!            copy ──► fsync ──► (NOR: mark the old copy obsolete)
//! ```
//!
//! A redundant write never touches the current copy before the new one is
//! complete and synced, so a power cut at any byte leaves the previous
//! environment readable (the half-written copy fails its CRC). A single-copy
//! environment has no such protection; that is the format's limit.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::config::EnvDevice;
use crate::image::{self, FlagsKind, Layout, BOOLEAN_OBSOLETE, FLAGS_OFFSET};
use crate::{sys, Env, Error, FwEnvConfig, Result};

/// The lock file libubootenv (and U-Boot's `tools/env`) holds, with an
/// exclusive `flock`, around every environment access; we take the same one
/// around each read and write so concurrent `fw_setenv` runs never interleave
/// with ours.
pub const DEFAULT_LOCK_PATH: &str = "/var/lock/fw_printenv.lock";

/// What kind of storage holds one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediumKind {
    /// A regular file (an image, or an env file on a mounted filesystem).
    File,
    /// A block device (eMMC, SD, virtio disk) at an offset.
    Block,
    /// An MTD character device (raw NOR/NAND): erase before write.
    Mtd,
}

#[derive(Debug, Clone)]
enum Medium {
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

#[derive(Debug, Clone)]
struct Copy {
    path: PathBuf,
    /// Resolved (non-negative) byte offset.
    offset: u64,
    medium: Medium,
}

/// The copy a read found current, and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    index: usize,
    flags: Option<u8>,
}

/// An environment read from its store, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The variables.
    pub env: Env,
    /// True when no stored copy was valid and the caller's default was used.
    pub from_default: bool,
}

/// The environment storage described by an `fw_env.config`.
#[derive(Debug)]
pub struct EnvStore {
    copies: Vec<Copy>,
    size: usize,
    layout: Layout,
    flags_kind: FlagsKind,
    current: Option<Current>,
    lock_path: Option<PathBuf>,
}

impl EnvStore {
    /// Checks every configured device (kind, size, MTD geometry) without
    /// changing anything.
    pub fn open(config: &FwEnvConfig) -> Result<Self> {
        let size = config.env_size();
        let layout = if config.is_redundant() {
            Layout::Redundant
        } else {
            Layout::Single
        };
        // The header plus at least the terminating NUL of an empty list.
        if size <= layout.header_len() {
            return Err(Error::Config {
                origin: "fw_env.config".into(),
                reason: format!("environment size {size} is smaller than its header"),
            });
        }
        let mut copies = Vec::new();
        let mut kinds = Vec::new();
        for dev in config.devices() {
            let (copy, kind) = open_copy(dev)?;
            copies.push(copy);
            kinds.push(kind);
        }
        let flags_kind = match kinds.as_slice() {
            [k] => *k,
            [a, b] if a == b => *a,
            _ => {
                return Err(Error::Config {
                    origin: "fw_env.config".into(),
                    reason: "the two environment copies are on different kinds of storage".into(),
                })
            }
        };
        if let [a, b] = copies.as_slice() {
            if a.path == b.path && erase_ranges_overlap(a, b, size) {
                return Err(Error::device(
                    &a.path,
                    "the two environment copies overlap (or share an erase block)",
                ));
            }
        }
        Ok(EnvStore {
            copies,
            size,
            layout,
            flags_kind,
            current: None,
            lock_path: Some(DEFAULT_LOCK_PATH.into()),
        })
    }

    /// Uses `path` as the lock file instead of [`DEFAULT_LOCK_PATH`]; `None`
    /// takes no lock.
    pub fn set_lock_path(&mut self, path: Option<PathBuf>) {
        self.lock_path = path;
    }

    /// Takes the tools' exclusive lock, waiting for a running `fw_setenv`.
    /// Like libubootenv, goes on without it when the lock file cannot be
    /// created (no /var/lock on a minimal system): the lock only orders
    /// cooperating writers.
    fn lock(&self) -> Option<Flock<File>> {
        let path = self.lock_path.as_ref()?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o666)
            .open(path)
            .map_err(|e| log::debug!("{}: cannot open lock file: {e}", path.display()))
            .ok()?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| log::debug!("{}: flock: {e}", path.display()))
            .ok()
    }

    /// Single or redundant.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// How the flags byte orders the copies on this storage.
    pub fn flags_kind(&self) -> FlagsKind {
        self.flags_kind
    }

    /// The storage kind of copy `index`.
    pub fn medium(&self, index: usize) -> Option<MediumKind> {
        self.copies.get(index).map(|c| match c.medium {
            Medium::File => MediumKind::File,
            Medium::Block => MediumKind::Block,
            Medium::Mtd { .. } => MediumKind::Mtd,
        })
    }

    /// Which copy the last read or write found current (`None` before).
    pub fn current_copy(&self) -> Option<usize> {
        self.current.map(|c| c.index)
    }

    /// Reads the current environment. No valid copy is an error
    /// ([`Error::NoValidCopy`]), never an empty environment.
    pub fn read(&mut self) -> Result<Env> {
        let _lock = self.lock();
        self.read_locked()
    }

    fn read_locked(&mut self) -> Result<Env> {
        let images = self.read_images()?;
        let current = self.select(&images)?;
        let image = &images[current.index].1;
        let (env, _) =
            image::decode(image, self.layout).map_err(|e| self.copy_error(current.index, e))?;
        self.current = Some(current);
        Ok(env)
    }

    /// Like [`EnvStore::read`], but when no copy is valid returns `default`
    /// (logged as a warning, and flagged in the result). Any other failure is
    /// still an error. The next [`EnvStore::write`] then writes a valid copy.
    pub fn read_or_default(&mut self, default: &Env) -> Result<Loaded> {
        let _lock = self.lock();
        self.read_or_default_locked(Some(default))
    }

    fn read_or_default_locked(&mut self, default: Option<&Env>) -> Result<Loaded> {
        match self.read_locked() {
            Ok(env) => Ok(Loaded {
                env,
                from_default: false,
            }),
            Err(Error::NoValidCopy(why)) if default.is_some() => {
                log::warn!("no valid environment ({why}); starting from the default environment");
                self.current = None;
                Ok(Loaded {
                    env: default.cloned().unwrap_or_default(),
                    from_default: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Read, edit, write under ONE hold of the tools' lock, so a concurrent
    /// `fw_setenv` cannot slip in between and have its change lost. `default`
    /// as in [`EnvStore::read_or_default`] (`None`: no valid copy is an error).
    /// Writes (once) only when `edit` changed something or the default was
    /// used; returns whether it wrote. An error from `edit` writes nothing.
    pub fn update(
        &mut self,
        default: Option<&Env>,
        edit: impl FnOnce(&mut Env) -> Result<()>,
    ) -> Result<bool> {
        let _lock = self.lock();
        let loaded = self.read_or_default_locked(default)?;
        let mut env = loaded.env.clone();
        edit(&mut env)?;
        if env == loaded.env && !loaded.from_default {
            log::debug!("environment unchanged, nothing written");
            return Ok(false);
        }
        self.write_locked(&env)?;
        Ok(true)
    }

    /// Writes `env` in one go: the whole image is encoded first (too large or
    /// invalid: nothing is written), then written over the copy that is *not*
    /// current, synced, and made current. Re-reads the headers first so the
    /// decision uses what is on the storage now.
    pub fn write(&mut self, env: &Env) -> Result<()> {
        let _lock = self.lock();
        self.write_locked(env)
    }

    fn write_locked(&mut self, env: &Env) -> Result<()> {
        let images = self.read_images_lenient();
        let current = self.select_lenient(&images);
        let target = match (self.layout, current) {
            (Layout::Single, _) | (Layout::Redundant, None) => 0,
            (Layout::Redundant, Some(c)) => 1 - c.index,
        };
        let flags = self.flags_kind.next(current.and_then(|c| c.flags));
        let image = image::encode(env, self.size, self.layout, flags)?;
        self.write_copy(target, &image)?;
        if let (Layout::Redundant, FlagsKind::Boolean, Some(old)) =
            (self.layout, self.flags_kind, current)
        {
            // NOR: clear the old copy's flag in place (1 -> 0 needs no erase).
            // Crash before this point: both copies are valid with flag 1 and
            // readers take copy 0, old or new, both complete.
            self.write_obsolete_flag(old.index)?;
        }
        self.current = Some(Current {
            index: target,
            flags: (self.layout == Layout::Redundant).then_some(flags),
        });
        log::debug!("environment written to copy {target}");
        Ok(())
    }

    fn copy_error(&self, index: usize, e: Error) -> Error {
        match e {
            Error::Corrupt(why) => Error::Corrupt(format!("{} {why}", self.describe(index))),
            other => other,
        }
    }

    fn describe(&self, index: usize) -> String {
        let c = &self.copies[index];
        format!(
            "copy {} ({} at {:#x})",
            index + 1,
            c.path.display(),
            c.offset
        )
    }

    fn read_images(&self) -> Result<Vec<(usize, Vec<u8>)>> {
        (0..self.copies.len())
            .map(|i| self.read_copy(i).map(|img| (i, img)))
            .collect()
    }

    /// For a write: an unreadable copy counts as invalid (it will be
    /// overwritten or, if current, left alone).
    fn read_images_lenient(&self) -> Vec<(usize, Vec<u8>)> {
        (0..self.copies.len())
            .map(|i| {
                let img = self.read_copy(i).unwrap_or_else(|e| {
                    log::warn!("{}: {e}", self.describe(i));
                    Vec::new()
                });
                (i, img)
            })
            .collect()
    }

    fn valid_flags(&self, images: &[(usize, Vec<u8>)]) -> Vec<Result<Option<u8>>> {
        images
            .iter()
            .map(|(_, img)| {
                let h = image::header(img, self.layout)?;
                if h.crc_ok() {
                    Ok(h.flags)
                } else {
                    Err(Error::BadCrc {
                        stored: h.stored_crc,
                        computed: h.computed_crc,
                    })
                }
            })
            .collect()
    }

    fn select(&self, images: &[(usize, Vec<u8>)]) -> Result<Current> {
        let checks = self.valid_flags(images);
        let valid = |i: usize| {
            checks
                .get(i)
                .and_then(|r| r.as_ref().ok())
                .map(|f| f.unwrap_or(0))
        };
        let index = match self.layout {
            Layout::Single => valid(0).map(|_| 0),
            Layout::Redundant => image::select(valid(0), valid(1), self.flags_kind),
        };
        match index {
            Some(index) => Ok(Current {
                index,
                flags: checks[index].as_ref().ok().copied().flatten(),
            }),
            None => {
                let why: Vec<String> = checks
                    .iter()
                    .enumerate()
                    .map(|(i, r)| match r {
                        Err(e) => format!("{}: {e}", self.describe(i)),
                        Ok(_) => format!("{}: ok", self.describe(i)),
                    })
                    .collect();
                Err(Error::NoValidCopy(why.join("; ")))
            }
        }
    }

    fn select_lenient(&self, images: &[(usize, Vec<u8>)]) -> Option<Current> {
        self.select(images).ok()
    }

    fn read_copy(&self, index: usize) -> Result<Vec<u8>> {
        let copy = &self.copies[index];
        let file = File::open(&copy.path).map_err(|e| Error::io(&copy.path, "open", e))?;
        let mut buf = vec![0u8; self.size];
        match copy.medium {
            Medium::File | Medium::Block => read_exact_at(&file, copy, &mut buf, copy.offset)?,
            Medium::Mtd {
                sector_size,
                sectors,
                nand,
            } => {
                let plan = sector_plan(
                    &copy.path,
                    copy.offset,
                    self.size,
                    sector_size,
                    sectors,
                    |off| bad_block(&file, copy, nand, off),
                )?;
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

    fn write_copy(&self, index: usize, image: &[u8]) -> Result<()> {
        let copy = &self.copies[index];
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
                let plan = sector_plan(
                    &copy.path,
                    copy.offset,
                    self.size,
                    sector_size,
                    sectors,
                    |off| bad_block(&file, copy, nand, off),
                )?;
                for chunk in plan {
                    mtd_write_sector(&file, copy, sector_size, &chunk, image)?;
                }
            }
        }
        sync(&file, copy)
    }

    fn write_obsolete_flag(&self, index: usize) -> Result<()> {
        let copy = &self.copies[index];
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

fn erase_ranges_overlap(a: &Copy, b: &Copy, size: usize) -> bool {
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

fn open_copy(dev: &EnvDevice) -> Result<(Copy, FlagsKind)> {
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

/// Path helper for callers that want to show where a copy lives.
impl EnvStore {
    /// The device and resolved offset of copy `index`.
    pub fn location(&self, index: usize) -> Option<(&Path, u64)> {
        self.copies.get(index).map(|c| (c.path.as_path(), c.offset))
    }
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
