//! The install journal: one fixed-size binary
//! record saying how far the write of the inactive slot got, so a restart
//! after a power cut continues instead of starting over.
//!
//! ```text
//!  offset  size  field (integers little-endian)
//!       0     8  magic "OTAJRNL\n"
//!       8     4  version = 2
//!      12    32  SHA-256 of the exact signed manifest bytes
//!      44     1  target slot: 0 = a, 1 = b
//!      45     1  phase: 1 = writing, 2 = written (every image verified on flash)
//!      46     2  image index (manifest order) being written
//!      48     8  bytes of that image synced to flash and covered by the prefix hash
//!      56     8  payload offset the write continues from: equal to the image
//!                offset for an uncompressed payload; for bzip2 the byte where
//!                the next bzip2 stream starts (checkpoints fall on stream ends)
//!      64    32  SHA-256 of those bytes as they were written
//!      96     4  CRC-32 (ISO-HDLC) of bytes 0..96
//! ```
//!
//! Version 1 (no payload offset) records are ignored like damaged ones: the
//! image is then written from its first byte, which costs time, never safety.
//!
//! Stored in `JOURNAL.0` / `JOURNAL.1`, a
//! [`RecordPair`]: the two files are overwritten in turn, in place, each
//! with a sequence number and CRC, so a power cut at any instant leaves the
//! previous record or the new one — on vfat as on ext4 (no rename). The
//! single file `install-journal` of older agents is read when the pair is
//! empty and removed at the next store. A record with a bad magic, version,
//! CRC or slot is reported in the log and ignored: the install then starts
//! from the first byte, which is always safe (the target slot is marked
//! unbootable before any write).

use std::path::{Path, PathBuf};

use super::files;
use crate::bundle::Digest;
use crate::durable::{Fs, Medium, RecordPair};
use crate::slots::Slot;
use crate::{Error, Result};
use std::rc::Rc;

/// The single-file journal of older agents (read once, then removed).
pub const FILE: &str = super::files::JOURNAL;
/// Record magic.
pub const MAGIC: &[u8; 8] = b"OTAJRNL\n";
/// Record version.
pub const VERSION: u32 = 2;
/// Record length.
pub const LEN: usize = 100;
const _: () = assert!(LEN == 8 + 4 + 32 + 1 + 1 + 2 + 8 + 8 + 32 + 4);

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// How far the install got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Image `image` is being written; `offset` bytes are durable.
    Writing,
    /// Every image is written and its read-back hash verified; activation
    /// may not have happened yet.
    Written,
}

/// One journal record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// SHA-256 of the manifest bytes being installed.
    pub manifest: Digest,
    /// The slot written.
    pub slot: Slot,
    /// Phase.
    pub phase: Phase,
    /// Image index in manifest order.
    pub image: u16,
    /// Durable bytes of that image.
    pub offset: u64,
    /// Where in the image's payload writing continues (see the format).
    pub payload_offset: u64,
    /// SHA-256 of those bytes.
    pub prefix: Digest,
}

impl Record {
    /// Encodes the record.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..44].copy_from_slice(&self.manifest.0);
        b[44] = self.slot.index() as u8;
        b[45] = match self.phase {
            Phase::Writing => 1,
            Phase::Written => 2,
        };
        b[46..48].copy_from_slice(&self.image.to_le_bytes());
        b[48..56].copy_from_slice(&self.offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.payload_offset.to_le_bytes());
        b[64..96].copy_from_slice(&self.prefix.0);
        let crc = CRC32.checksum(&b[..96]);
        b[96..100].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a record; the error says what is wrong.
    pub fn parse(b: &[u8]) -> Result<Record, String> {
        if b.len() != LEN {
            return Err(format!("{} bytes, a record is {LEN}", b.len()));
        }
        if &b[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let crc = CRC32.checksum(&b[..96]);
        if u32_at(96) != crc {
            return Err(format!("CRC {:#010x} should be {crc:#010x}", u32_at(96)));
        }
        if u32_at(8) != VERSION {
            return Err(format!(
                "version {} (this agent reads {VERSION})",
                u32_at(8)
            ));
        }
        let slot = match b[44] {
            0 => Slot::A,
            1 => Slot::B,
            n => return Err(format!("slot index {n}")),
        };
        let phase = match b[45] {
            1 => Phase::Writing,
            2 => Phase::Written,
            n => return Err(format!("phase {n}")),
        };
        let digest = |at: usize| {
            let mut d = [0u8; 32];
            d.copy_from_slice(&b[at..at + 32]);
            Digest(d)
        };
        let u64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(v)
        };
        Ok(Record {
            manifest: digest(12),
            slot,
            phase,
            image: u16::from_le_bytes([b[46], b[47]]),
            offset: u64_at(48),
            payload_offset: u64_at(56),
            prefix: digest(64),
        })
    }
}

/// The journal of a state directory: a [`RecordPair`] (two alternating
/// fixed-size files, see `durable.rs`) holding one [`Record`]; the
/// single-file journal of older agents is still read once.
#[derive(Clone)]
pub struct Journal {
    dir: PathBuf,
    pair: RecordPair<Rc<dyn Medium>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).finish()
    }
}

impl Journal {
    /// The journal in `state_dir`.
    pub fn new(state_dir: &Path) -> Journal {
        Journal::with_medium(state_dir, Rc::new(Fs))
    }

    /// The journal in `state_dir` on `medium` (power-cut tests use a model
    /// filesystem, [`crate::durable::model::ModelFs`]).
    pub fn with_medium(state_dir: &Path, medium: Rc<dyn Medium>) -> Journal {
        Journal {
            dir: state_dir.to_owned(),
            pair: RecordPair::with_medium(state_dir, files::JOURNAL_RECORDS, LEN, medium),
        }
    }

    fn legacy(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The stored record; `None` when absent or unreadable (logged: a
    /// damaged journal only costs a restart from the first byte).
    pub fn load(&self) -> Option<Record> {
        self.load_with_seq().map(|(r, _)| r)
    }

    /// The stored record and its checkpoint sequence number (0 for a
    /// record of the single-file format).
    pub fn load_with_seq(&self) -> Option<(Record, u64)> {
        let stored = match self.pair.load() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("install journal in {}: {e}; ignored", self.dir.display());
                None
            }
        };
        let (bytes, seq, path) = match stored {
            Some(s) => (s.payload, s.seq, self.pair.paths()[0].clone()),
            None => {
                let path = self.legacy();
                match std::fs::read(&path) {
                    Ok(b) => (b, 0, path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                    Err(e) => {
                        log::warn!("install journal {}: {e}; ignored", path.display());
                        return None;
                    }
                }
            }
        };
        match Record::parse(&bytes) {
            Ok(r) => Some((r, seq)),
            Err(why) => {
                log::warn!(
                    "install journal {}: {why}; ignored, the install starts over",
                    path.display()
                );
                None
            }
        }
    }

    /// Stores `record` durably (the next of the two record files,
    /// overwritten in place and synced). Returns its sequence number.
    pub fn store(&self, record: &Record) -> Result<u64> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let seq = self
            .pair
            .store(&record.encode())
            .map_err(|e| Error::io(&self.dir, e))?;
        remove_if_present(&self.legacy())?;
        Ok(seq)
    }

    /// Empties the journal (install finished or abandoned): an empty record,
    /// so the files keep their place for the next install.
    pub fn clear(&self) -> Result<()> {
        self.pair.clear().map_err(|e| Error::io(&self.dir, e))?;
        remove_if_present(&self.legacy())
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(m in any::<[u8; 32]>(), p in any::<[u8; 32]>(), b in any::<bool>(),
                      w in any::<bool>(), image in any::<u16>(), offset in any::<u64>(),
                      payload_offset in any::<u64>()) {
            let r = Record {
                manifest: Digest(m),
                slot: if b { Slot::B } else { Slot::A },
                phase: if w { Phase::Written } else { Phase::Writing },
                image,
                offset,
                payload_offset,
                prefix: Digest(p),
            };
            prop_assert_eq!(Record::parse(&r.encode()).unwrap(), r);
        }

        #[test]
        fn any_flipped_bit_is_detected(bit in 0usize..LEN * 8) {
            let r = Record {
                manifest: Digest([3; 32]),
                slot: Slot::B,
                phase: Phase::Writing,
                image: 1,
                offset: 4096,
                payload_offset: 1234,
                prefix: Digest([9; 32]),
            };
            let mut b = r.encode();
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Record::parse(&b).is_err());
        }
    }

    #[test]
    fn damaged_file_is_ignored_and_truncation_detected() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        assert_eq!(j.load(), None);
        let r = Record {
            manifest: Digest([1; 32]),
            slot: Slot::A,
            phase: Phase::Written,
            image: 0,
            offset: 0,
            payload_offset: 0,
            prefix: Digest([0; 32]),
        };
        assert_eq!(j.store(&r).unwrap(), 1);
        assert_eq!(j.load_with_seq(), Some((r, 1)));
        j.clear().unwrap();
        assert_eq!(j.load(), None);
        // The older single-file journal is still read, truncation detected.
        std::fs::write(dir.path().join(FILE), r.encode()).unwrap();
        assert_eq!(j.load_with_seq(), Some((r, 0)));
        std::fs::write(dir.path().join(FILE), &r.encode()[..50]).unwrap();
        assert_eq!(j.load(), None);
        assert!(Record::parse(&r.encode()[..50])
            .unwrap_err()
            .contains("50 bytes"));
        j.clear().unwrap();
        j.clear().unwrap();
    }

    /// A version-1 record (92 bytes, no payload offset; what agents before
    /// this format wrote) is not misread as a version-2 one.
    #[test]
    fn version_1_record_is_ignored() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&[7; 32]);
        v1.extend_from_slice(&[1, 1, 0, 0]);
        v1.extend_from_slice(&(8u64 << 20).to_le_bytes());
        v1.extend_from_slice(&[5; 32]);
        let crc = CRC32.checksum(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(v1.len(), 92);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), &v1).unwrap();
        assert_eq!(Journal::new(dir.path()).load(), None);
    }
}
