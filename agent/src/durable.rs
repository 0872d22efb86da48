//! Records that survive a power cut at any instant on any filesystem the
//! agent's `state_dir` may live on — ext4 *and* vfat.
//!
//! Why not only "temp file, fsync, rename, fsync the directory": on ext4
//! that is atomic, but vfat has no journal: a rename rewrites directory
//! entries and FAT sectors one after the other, and a cut in between was
//! seen to leave the target **empty** with the `.tmp` beside it (issue 15).
//! Two mechanisms here avoid relying on an atomic rename:
//!
//! * [`RecordPair`] — two preallocated, fixed-size files overwritten in
//!   place in turn (like U-Boot's redundant environment). Each holds a
//!   sequence number, the payload and a CRC-32; the newest valid one wins, a
//!   torn one fails its CRC and is ignored, so the other (previous) record
//!   stands. An overwrite changes no size and allocates no cluster: no
//!   directory entry or FAT sector is touched (only the file's data sectors
//!   and, on vfat, the modification time, which nothing reads). The
//!   directory is synced only when a file is created (first use).
//! * [`replace`] / [`read_valid`] — a whole-file write for records of any
//!   size: the new copy is made durable under `<name>.tmp` (data and
//!   directory entry) before the rename, and the reader falls back to the
//!   `.tmp` copy when the file itself is missing, empty or does not parse.
//!   The reader's check must reject a truncated file.
//! * [`overwrite_fixed`] — one file of a fixed size, padded with spaces and
//!   overwritten in place, for records rewritten often whose reader already
//!   survives a torn copy (`update-status.json`: a torn document fails to
//!   parse and counts as none). Created once (data and directory synced),
//!   then never truncated, renamed or grown: like a [`RecordPair`] file, an
//!   overwrite allocates nothing on vfat. Space padding keeps a JSON record
//!   valid JSON (trailing whitespace).
//!
//! ```text
//!  record file (fixed size HEADER_LEN + capacity + 4, integers little-endian)
//!   offset  size      field
//!        0     8      magic "OTAREC1\n"
//!        8     8      sequence number (newest wins; 0 = never written)
//!       16     4      payload length (≤ capacity; 0 = cleared)
//!       20     cap    payload, zero padded
//!   20+cap     4      CRC-32 (ISO-HDLC) of bytes 0..20+cap
//! ```
//!
//! All file operations go through [`Medium`], so tests can run the same
//! code on a model filesystem that loses what was not yet synced.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Record magic.
pub const MAGIC: &[u8; 8] = b"OTAREC1\n";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 20;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The file operations the durable writers use. Nothing is durable until
/// synced: `sync_file` for a file's data, `sync_dir` for names in a
/// directory (creation, rename, removal).
pub trait Medium {
    /// The whole file, `None` when it does not exist.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// Creates or truncates `path` and writes `bytes`.
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Writes `bytes` at `offset` of the existing `path` without changing
    /// its size (the caller guarantees `offset + len ≤ size`).
    fn overwrite(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes the data of `path` durable (`fsync`).
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the names in `dir` durable (`fsync` of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` over `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

pub mod model;

impl<M: Medium + ?Sized> Medium for std::rc::Rc<M> {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        (**self).read(path)
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        (**self).write_new(path, bytes)
    }
    fn overwrite(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        (**self).overwrite(path, offset, bytes)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        (**self).sync_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        (**self).sync_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        (**self).rename(from, to)
    }
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fs;

impl Medium for Fs {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        fs::write(path, bytes)
    }
    fn overwrite(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        // No O_TRUNC, no O_CREAT: the file keeps its size and clusters.
        fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all_at(bytes, offset)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fdatasync: the data, and the size and allocation when they
        // changed (a new file), but not a mere mtime change — so a steady
        // state overwrite does not rewrite the directory entry on vfat.
        fs::OpenOptions::new().write(true).open(path)?.sync_data()
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A stored record: its sequence number and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Sequence number (1 for the first record ever stored).
    pub seq: u64,
    /// The payload (empty: cleared).
    pub payload: Vec<u8>,
}

/// Two alternating fixed-size record files; see the module docs.
#[derive(Debug, Clone)]
pub struct RecordPair<M: Medium = Fs> {
    paths: [PathBuf; 2],
    capacity: usize,
    medium: M,
}

impl RecordPair<Fs> {
    /// The pair `dir/names[0]`, `dir/names[1]` holding payloads of at most
    /// `capacity` bytes, on the real filesystem.
    pub fn new(dir: &Path, names: [&str; 2], capacity: usize) -> Self {
        RecordPair::with_medium(dir, names, capacity, Fs)
    }
}

impl<M: Medium> RecordPair<M> {
    /// The pair on `medium`.
    pub fn with_medium(dir: &Path, names: [&str; 2], capacity: usize, medium: M) -> Self {
        RecordPair {
            paths: [dir.join(names[0]), dir.join(names[1])],
            capacity,
            medium,
        }
    }

    /// The medium (tests inspect the model through it).
    pub fn medium(&self) -> &M {
        &self.medium
    }

    /// The two file paths.
    pub fn paths(&self) -> &[PathBuf; 2] {
        &self.paths
    }

    /// Size of each record file.
    pub fn file_len(&self) -> usize {
        HEADER_LEN + self.capacity + 4
    }

    fn encode(&self, seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; self.file_len()];
        b[..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        b[16..20].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
        let end = HEADER_LEN + self.capacity;
        let crc = CRC32.checksum(&b[..end]);
        b[end..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses one record file; `Err` says why it is not a valid record.
    fn decode(&self, b: &[u8]) -> Result<Stored, String> {
        if b.len() != self.file_len() {
            return Err(format!(
                "{} bytes, a record file is {}",
                b.len(),
                self.file_len()
            ));
        }
        if &b[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let end = HEADER_LEN + self.capacity;
        let stored = u32::from_le_bytes([b[end], b[end + 1], b[end + 2], b[end + 3]]);
        if stored != CRC32.checksum(&b[..end]) {
            return Err("bad CRC (torn write)".into());
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[8..16]);
        let len = u32::from_le_bytes([b[16], b[17], b[18], b[19]]) as usize;
        if len > self.capacity {
            return Err(format!("payload length {len} exceeds {}", self.capacity));
        }
        Ok(Stored {
            seq: u64::from_le_bytes(seq),
            payload: b[HEADER_LEN..HEADER_LEN + len].to_vec(),
        })
    }

    /// Each file's record, `None` where absent or invalid (logged at debug).
    fn both(&self) -> io::Result<[Option<Stored>; 2]> {
        let mut out = [None, None];
        for (i, path) in self.paths.iter().enumerate() {
            if let Some(bytes) = self.medium.read(path)? {
                match self.decode(&bytes) {
                    Ok(r) => out[i] = Some(r),
                    Err(why) => log::debug!("{}: {why}; ignored", path.display()),
                }
            }
        }
        Ok(out)
    }

    /// The newest valid record (`None`: never stored, both damaged, or
    /// cleared — an empty payload).
    pub fn load(&self) -> io::Result<Option<Stored>> {
        let [a, b] = self.both()?;
        let newest = match (a, b) {
            (Some(a), Some(b)) => Some(if b.seq > a.seq { b } else { a }),
            (a, b) => a.or(b),
        };
        Ok(newest.filter(|r| !r.payload.is_empty()))
    }

    /// Stores `payload` (at most `capacity` bytes; empty clears) with the
    /// next sequence number into the file that does NOT hold the newest
    /// valid record, then syncs it. Returns the sequence number. A cut at
    /// any point leaves the previous record or this one.
    pub fn store(&self, payload: &[u8]) -> io::Result<u64> {
        if payload.len() > self.capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record of {} bytes exceeds {}",
                    payload.len(),
                    self.capacity
                ),
            ));
        }
        let [a, b] = self.both()?;
        let seq_of = |r: &Option<Stored>| r.as_ref().map(|r| r.seq);
        // Write over the older (or invalid) file; ties go to file 0.
        let (slot, newest) = match (seq_of(&a), seq_of(&b)) {
            (Some(x), Some(y)) if y > x => (0, y),
            (Some(x), Some(_)) => (1, x),
            (Some(x), None) => (1, x),
            (None, Some(y)) => (0, y),
            (None, None) => (0, 0),
        };
        let seq = newest + 1;
        let bytes = self.encode(seq, payload);
        let path = &self.paths[slot];
        let same_size = self
            .medium
            .read(path)?
            .is_some_and(|old| old.len() == bytes.len());
        if same_size {
            // The steady state: in place, no size change, no metadata.
            self.medium.overwrite(path, 0, &bytes)?;
            self.medium.sync_file(path)?;
        } else {
            // First use (or a damaged file of the wrong size, which holds
            // nothing we need): create it, then make its name durable.
            // On first use the other file is created too (an empty record,
            // seq 0), so no directory entry is ever created mid-install:
            // on vfat a cut during that creation left the second file's
            // long name torn and its record lost (QEMU power-cut).
            let other = &self.paths[1 - slot];
            if self.medium.read(other)?.is_none() {
                self.medium.write_new(other, &self.encode(0, &[]))?;
                self.medium.sync_file(other)?;
            }
            self.medium.write_new(path, &bytes)?;
            self.medium.sync_file(path)?;
            self.medium.sync_dir(dir_of(path))?;
        }
        Ok(seq)
    }

    /// Marks the pair empty (an empty record; no file is removed, so the
    /// next install overwrites in place again).
    pub fn clear(&self) -> io::Result<()> {
        if self.load()?.is_some() {
            self.store(&[])?;
        }
        Ok(())
    }
}

/// The `.tmp` companion of `path` used by [`replace`].
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir_of(path).join(format!(".{name}.tmp"))
}

/// Replaces the whole file `path` with `bytes` on `medium`: the new copy
/// is written to [`tmp_path`], its data and name synced, then renamed over
/// `path` and the directory synced. Read it back with [`read_valid`].
pub fn replace_on<M: Medium>(medium: &M, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let dir = dir_of(path);
    medium.write_new(&tmp, bytes)?;
    medium.sync_file(&tmp)?;
    // The complete new copy is durable under its own name before the
    // rename touches `path`: whatever a cut does to the rename on a
    // filesystem without a journal, one valid copy remains.
    medium.sync_dir(dir)?;
    medium.rename(&tmp, path)?;
    medium.sync_dir(dir)?;
    // vfat (Linux `vfat_rename`) writes the new directory entry with size 0
    // and no first cluster and leaves the real ones to the renamed inode's
    // next writeback: without this fsync a cut within the writeback delay
    // (up to 30 s) left `path` empty on the QEMU `data` partition.
    medium.sync_file(path)
}

/// [`replace_on`] the real filesystem; an error names `path`.
pub fn replace(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    replace_on(&Fs, path, bytes).map_err(|e| crate::Error::io(path, e))
}

/// Reads a file written by [`replace_on`]: `path` when `parse` accepts it,
/// else its `.tmp` copy when `parse` accepts that, else `None` (also when
/// neither exists). `parse` must refuse a truncated or empty file.
pub fn read_valid_on<M: Medium, T>(
    medium: &M,
    path: &Path,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> io::Result<Option<T>> {
    for p in [path.to_path_buf(), tmp_path(path)] {
        if let Some(bytes) = medium.read(&p)? {
            if let Some(v) = parse(&bytes) {
                return Ok(Some(v));
            }
        }
    }
    Ok(None)
}

/// [`read_valid_on`] the real filesystem.
pub fn read_valid<T>(path: &Path, parse: impl Fn(&[u8]) -> Option<T>) -> io::Result<Option<T>> {
    read_valid_on(&Fs, path, parse)
}

/// The byte [`overwrite_fixed_on`] pads records with.
pub const PAD: u8 = b' ';

/// Writes `bytes` padded with [`PAD`] to exactly `capacity` bytes into
/// `path` on `medium`: in place (`overwrite` + `sync_file`) when the file
/// already has that size, else created (or resized, once) and its name
/// synced. `bytes` longer than `capacity` is refused, nothing written.
/// A cut during an in-place overwrite may leave a mix of the old and new
/// record: only for readers that reject a torn record (see module docs).
pub fn overwrite_fixed_on<M: Medium>(
    medium: &M,
    path: &Path,
    bytes: &[u8],
    capacity: usize,
) -> io::Result<()> {
    if bytes.len() > capacity {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("record of {} bytes exceeds {capacity}", bytes.len()),
        ));
    }
    let mut padded = Vec::with_capacity(capacity);
    padded.extend_from_slice(bytes);
    padded.resize(capacity, PAD);
    let same_size = medium.read(path)?.is_some_and(|old| old.len() == capacity);
    if same_size {
        medium.overwrite(path, 0, &padded)?;
        medium.sync_file(path)
    } else {
        medium.write_new(path, &padded)?;
        medium.sync_file(path)?;
        medium.sync_dir(dir_of(path))
    }
}

/// [`overwrite_fixed_on`] the real filesystem; an error names `path`.
pub fn overwrite_fixed(path: &Path, bytes: &[u8], capacity: usize) -> crate::Result<()> {
    overwrite_fixed_on(&Fs, path, bytes, capacity).map_err(|e| crate::Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_fixed_pads_keeps_the_size_and_refuses_too_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        overwrite_fixed(&path, b"{\"a\":1}", 64).unwrap();
        let b = fs::read(&path).unwrap();
        assert_eq!(b.len(), 64);
        assert!(b.starts_with(b"{\"a\":1}") && b[7..].iter().all(|&c| c == PAD));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["a"], 1);
        // A shorter record leaves no tail of the longer one.
        overwrite_fixed(&path, b"{\"abc\":22}", 64).unwrap();
        overwrite_fixed(&path, b"[]", 64).unwrap();
        let b = fs::read(&path).unwrap();
        assert_eq!((b.len(), &b[..2]), (64, &b"[]"[..]));
        assert!(b[2..].iter().all(|&c| c == PAD));
        let e = overwrite_fixed(&path, &[b'x'; 65], 64).unwrap_err();
        assert!(e.to_string().contains("exceeds 64"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b);
        // A file of another size (an older agent's record) is resized once.
        fs::write(&path, b"{}").unwrap();
        overwrite_fixed(&path, b"{}", 64).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 64);
    }

    #[test]
    fn overwrite_fixed_touches_no_name_after_creation_and_survives_cuts() {
        use model::ModelFs;
        let path = Path::new("/d/s.json");
        let rec = |i: u32| format!("{{\"n\":{i}}}").into_bytes();
        for seed in 1..40u64 {
            let fs = ModelFs::new(seed);
            overwrite_fixed_on(&fs, path, &rec(0), 32).unwrap();
            let names = fs.names();
            // Cut the n-th event of the next overwrite, for every n until
            // one completes.
            for n in 1.. {
                fs.cut_at(Some(n));
                let r = overwrite_fixed_on(&fs, path, &rec(n as u32), 32);
                fs.power_on();
                fs.cut_at(None);
                let b = fs.peek(path).expect("the file stays");
                assert_eq!(b.len(), 32, "seed {seed} cut {n}: size changed");
                assert_eq!(fs.names(), names, "seed {seed} cut {n}");
                if r.is_ok() {
                    assert_eq!(&b[..rec(n as u32).len()], &rec(n as u32)[..]);
                    break;
                }
                // Torn or old, never longer or shorter; when it parses it is
                // the old or the new record.
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                    let got = v["n"].as_u64().unwrap();
                    assert!(got == 0 || got == n || got + 1 == n, "seed {seed}: {got}");
                }
                assert!(n < 10, "an overwrite takes a few events");
            }
        }
    }

    #[test]
    fn newest_valid_record_wins_and_a_torn_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let pair = RecordPair::new(dir.path(), ["r.0", "r.1"], 16);
        assert_eq!(pair.load().unwrap(), None);
        assert_eq!(pair.store(b"one").unwrap(), 1);
        assert_eq!(pair.store(b"two").unwrap(), 2);
        assert_eq!(pair.store(b"three").unwrap(), 3);
        let got = pair.load().unwrap().unwrap();
        assert_eq!((got.seq, got.payload.as_slice()), (3, &b"three"[..]));
        // Seq 3 went into file 0 (1 → file 0, 2 → file 1, 3 → file 0).
        let p0 = dir.path().join("r.0");
        let mut torn = fs::read(&p0).unwrap();
        torn[HEADER_LEN] ^= 0x40;
        fs::write(&p0, &torn).unwrap();
        let got = pair.load().unwrap().unwrap();
        assert_eq!((got.seq, got.payload.as_slice()), (2, &b"two"[..]));
        // The next store replaces the torn file, not the valid one.
        assert_eq!(pair.store(b"four").unwrap(), 3);
        assert_eq!(pair.load().unwrap().unwrap().payload, b"four");
        pair.clear().unwrap();
        assert_eq!(pair.load().unwrap(), None);
        assert!(pair.store(&[0; 17]).is_err());
        for p in pair.paths() {
            assert_eq!(fs::metadata(p).unwrap().len(), pair.file_len() as u64);
        }
    }

    #[test]
    fn replace_falls_back_to_the_durable_tmp_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let parse = |b: &[u8]| (b.last() == Some(&b'}')).then(|| b.to_vec());
        replace(&path, b"{\"a\":1}").unwrap();
        assert_eq!(read_valid(&path, parse).unwrap().unwrap(), b"{\"a\":1}");
        assert!(!tmp_path(&path).exists());
        // What a cut in a vfat rename left: the file empty, the copy beside it.
        fs::write(tmp_path(&path), b"{\"a\":2}").unwrap();
        fs::write(&path, b"").unwrap();
        assert_eq!(read_valid(&path, parse).unwrap().unwrap(), b"{\"a\":2}");
        fs::remove_file(tmp_path(&path)).unwrap();
        assert_eq!(read_valid(&path, parse).unwrap(), None);
    }
}
