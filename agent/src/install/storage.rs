//! Flash access for the installer: the [`Disk`] the slots live on, and the
//! ONE type that may write a slot partition, [`SlotWriter`].
//!
//! ```text
//!   Disk (whole disk or image file: FileDisk; tests: power-cut fakes)
//!     ├── SlotWriter::for_inactive(disk, layout, booted, "rootfs")
//!     │      target = booted.other(), every write bounds-checked to that
//!     │      partition; refuses a range that overlaps any booted partition
//!     └── SlotReader::booted / SlotReader::inactive  (read-only views)
//! ```
//!
//! There is deliberately no constructor taking a slot: the writer derives
//! its slot from the booted one, so no caller can ask for the booted slot.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::slots::{Layout, PartitionRef, Slot};
use crate::{Error, Result};

/// Byte-addressed storage holding the slot partitions.
pub trait Disk {
    /// Reads up to `buf.len()` bytes at `offset` (0 = end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Drops cached copies of `[offset, offset + len)` so the next read comes
    /// from the medium (best effort; called after `sync` before reading back).
    fn evict(&self, _offset: u64, _len: u64) {}
    /// A name for messages.
    fn describe(&self) -> String;
}

impl<D: Disk + ?Sized> Disk for &D {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        (**self).sync()
    }
    fn evict(&self, offset: u64, len: u64) {
        (**self).evict(offset, len)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// The configured disk: a block device or a GPT image file.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    path: PathBuf,
}

impl FileDisk {
    /// Opens `path` for reading and writing.
    pub fn open(path: &Path) -> Result<FileDisk> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(FileDisk {
            file,
            path: path.to_owned(),
        })
    }
}

impl Disk for FileDisk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        // fdatasync: the data and the size; metadata like mtime is irrelevant.
        self.file.sync_data()
    }
    fn evict(&self, offset: u64, len: u64) {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        use std::os::fd::AsRawFd;
        // `off_t` is 32 bits on 32-bit glibc targets (armv7 gnueabihf; nix
        // calls posix_fadvise, not posix_fadvise64): a range that does not
        // fit is widened to the whole file (0, 0 = to the end), never cut.
        type Off = nix::libc::off_t;
        let (off, len) = match (Off::try_from(offset), Off::try_from(len)) {
            (Ok(off), Ok(len)) if off.checked_add(len).is_some() => (off, len),
            _ => (0, 0),
        };
        // Clean pages only (we synced first); failure just means the read
        // back may come from the page cache, which is logged, not fatal.
        if let Err(e) = posix_fadvise(
            self.file.as_raw_fd(),
            off,
            len,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        ) {
            log::debug!("{}: cannot drop cached pages: {e}", self.path.display());
        }
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

fn overlaps(a: &PartitionRef, b: &PartitionRef) -> bool {
    a.offset < b.offset.saturating_add(b.size) && b.offset < a.offset.saturating_add(a.size)
}

/// Write access to one partition of the *inactive* slot. The only code path
/// in the agent that writes slot bytes.
pub struct SlotWriter<'d, D: Disk + ?Sized> {
    disk: &'d D,
    part: PartitionRef,
    slot: Slot,
}

impl<'d, D: Disk + ?Sized> SlotWriter<'d, D> {
    /// Opens partition `name` of the slot that is NOT `booted`. Refuses a
    /// partition that overlaps any partition of the booted slot (a hostile or
    /// broken GPT must not turn a write of the inactive slot into one of the
    /// running system).
    pub fn for_inactive(disk: &'d D, layout: &Layout, booted: Slot, name: &str) -> Result<Self> {
        let slot = booted.other();
        let part = layout
            .partition(name, slot)
            .ok_or_else(|| Error::Slot(format!("no partition `{name}{}`", slot.suffix())))?
            .clone();
        for pair in layout.pairs.values() {
            let running = &pair[booted.index()];
            if overlaps(&part, running) {
                return Err(Error::Slot(format!(
                    "partition `{}` overlaps `{}` of the booted slot {booted}; refusing to write it",
                    part.name, running.name
                )));
            }
        }
        Ok(SlotWriter { disk, part, slot })
    }

    /// The slot written (always the inactive one).
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The partition written.
    pub fn partition(&self) -> &PartitionRef {
        &self.part
    }

    /// Writes `buf` at `offset` inside the partition; a range past its end
    /// is refused before anything is written.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.part.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write of {} bytes at {offset} runs past the end of `{}` ({} bytes)",
                    buf.len(),
                    self.part.name,
                    self.part.size
                ),
            ));
        }
        self.disk.write_at(buf, self.part.offset + offset)
    }

    /// Makes the writes durable.
    pub fn sync(&self) -> io::Result<()> {
        self.disk.sync()
    }

    /// A reader of the first `len` bytes as they are on the medium now
    /// (cached pages dropped first).
    pub fn read_back(&self, len: u64) -> SlotReader<'d, D> {
        self.disk.evict(self.part.offset, len);
        SlotReader {
            disk: self.disk,
            part: self.part.clone(),
            pos: 0,
        }
    }
}

/// Read-only view of one partition.
pub struct SlotReader<'d, D: Disk + ?Sized> {
    disk: &'d D,
    part: PartitionRef,
    pos: u64,
}

impl<'d, D: Disk + ?Sized> SlotReader<'d, D> {
    /// Partition `name` of `slot`, read-only.
    pub fn open(disk: &'d D, layout: &Layout, slot: Slot, name: &str) -> Result<Self> {
        let part = layout
            .partition(name, slot)
            .ok_or_else(|| Error::Slot(format!("no partition `{name}{}`", slot.suffix())))?
            .clone();
        Ok(SlotReader { disk, part, pos: 0 })
    }

    /// The partition.
    pub fn partition(&self) -> &PartitionRef {
        &self.part
    }
}

impl<D: Disk + ?Sized> Read for SlotReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.part.size.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self
            .disk
            .read_at(&mut buf[..n], self.part.offset + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<D: Disk + ?Sized> Seek for SlotReader<'_, D> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.part.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the partition"))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::{Guid, Partition};
    use std::cell::RefCell;

    struct Mem(RefCell<Vec<u8>>);
    impl Disk for Mem {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            buf.as_mut().read_at_slice(&self.0.borrow(), offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let o = offset as usize;
            self.0.borrow_mut()[o..o + buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "mem".into()
        }
    }
    trait Slice {
        fn read_at_slice(self, src: &[u8], offset: u64) -> io::Result<usize>;
    }
    impl Slice for &mut [u8] {
        fn read_at_slice(self, src: &[u8], offset: u64) -> io::Result<usize> {
            let o = (offset as usize).min(src.len());
            let n = self.len().min(src.len() - o);
            self[..n].copy_from_slice(&src[o..o + n]);
            Ok(n)
        }
    }

    fn part(number: u32, name: &str, offset: u64, size: u64) -> Partition {
        Partition {
            number,
            name: name.into(),
            type_guid: Guid([1; 16]),
            guid: Guid([number as u8; 16]),
            offset,
            size,
        }
    }

    #[test]
    fn writer_targets_only_the_inactive_slot_and_its_bounds() {
        let layout = Layout::from_partitions(
            Path::new("m"),
            vec![part(1, "rootfs_a", 0, 100), part(2, "rootfs_b", 100, 100)],
        )
        .unwrap();
        let disk = Mem(RefCell::new(vec![0; 200]));
        let w = SlotWriter::for_inactive(&disk, &layout, Slot::A, "rootfs").unwrap();
        assert_eq!(w.slot(), Slot::B);
        w.write_at(&[7; 10], 90).unwrap();
        assert!(w.write_at(&[7; 11], 90).is_err());
        assert!(w.write_at(&[7; 1], u64::MAX).is_err());
        let d = disk.0.borrow();
        assert!(d[..100].iter().all(|&b| b == 0), "booted slot changed");
        assert_eq!(&d[190..200], &[7; 10]);
        drop(d);
        let w = SlotWriter::for_inactive(&disk, &layout, Slot::B, "rootfs").unwrap();
        assert_eq!(w.partition().name, "rootfs_a");
        assert!(SlotWriter::for_inactive(&disk, &layout, Slot::B, "boot").is_err());
    }

    #[test]
    fn overlapping_partitions_are_refused() {
        let layout = Layout::from_partitions(
            Path::new("m"),
            vec![part(1, "rootfs_a", 0, 100), part(2, "rootfs_b", 50, 100)],
        )
        .unwrap();
        let disk = Mem(RefCell::new(vec![0; 200]));
        let e = SlotWriter::for_inactive(&disk, &layout, Slot::A, "rootfs")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("overlaps"), "{e}");
    }
}
