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
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::image::{self, FlagsKind, Layout};
use crate::{Env, Error, FwEnvConfig, Result};

mod medium;
mod sector_plan;

use medium::{erase_ranges_overlap, open_copy, Copy, Medium};

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
        self.copies[target].write(self.size, &image)?;
        if let (Layout::Redundant, FlagsKind::Boolean, Some(old)) =
            (self.layout, self.flags_kind, current)
        {
            // NOR: clear the old copy's flag in place (1 -> 0 needs no erase).
            // Crash before this point: both copies are valid with flag 1 and
            // readers take copy 0, old or new, both complete.
            self.copies[old.index].write_obsolete_flag()?;
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
            .map(|i| self.copies[i].read(self.size).map(|img| (i, img)))
            .collect()
    }

    /// For a write: an unreadable copy counts as invalid (it will be
    /// overwritten or, if current, left alone).
    fn read_images_lenient(&self) -> Vec<(usize, Vec<u8>)> {
        (0..self.copies.len())
            .map(|i| {
                let img = self.copies[i].read(self.size).unwrap_or_else(|e| {
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
}

/// Path helper for callers that want to show where a copy lives.
impl EnvStore {
    /// The device and resolved offset of copy `index`.
    pub fn location(&self, index: usize) -> Option<(&Path, u64)> {
        self.copies.get(index).map(|c| (c.path.as_path(), c.offset))
    }
}
