//! A small read-only GPT (GUID Partition Table) reader: just what slot
//! discovery needs — partition names, unique GUIDs, byte offsets and lengths.
//!
//! Layout (UEFI 2.10 §5.3): LBA 0 protective MBR, LBA 1 the header
//! (`"EFI PART"`, revision, header size, CRC-32 of the header with its CRC
//! field zeroed, own LBA, alternate LBA, usable range, disk GUID, entry array
//! LBA, entry count, entry size, CRC-32 of the entry array). Each entry:
//! type GUID, unique GUID, first LBA, last LBA (inclusive), attributes, 36
//! UTF-16LE code units of name.
//!
//! The primary header is tried first; when it (or its entry array) is bad the
//! backup header in the disk's last LBA is used and a warning is logged. Both
//! 512- and 4096-byte logical blocks are probed. Everything is parsed from
//! `&[u8]` ([`parse_header`], [`parse_entries`]); [`read`] is the I/O edge.
//!
//! Why not the `gpt` crate: it is a read-write library (MBR writer, partition
//! type table, `uuid` with `v4` → `getrandom`) for a job that needs ~200 lines
//! of reading; this module adds only the CRC-32 table the agent links anyway.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};

use crate::{Error, Result};

/// `"EFI PART"`.
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Size of the header fields this reader knows (revision 1.0).
const HEADER_MIN: usize = 92;
/// An entry array larger than this is refused (hostile or corrupt header).
const MAX_ENTRY_BYTES: usize = 4 << 20;
/// The logical block sizes probed, in order.
const BLOCK_SIZES: [u64; 2] = [512, 4096];

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A GUID as stored on disk (mixed endian); `Display` gives the canonical
/// lowercase form Linux uses for `PARTUUID=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (any case).
    pub fn parse(text: &str) -> Option<Guid> {
        let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
        if hex.len() != 32 || text.len() != 36 {
            return None;
        }
        let mut canonical = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            canonical[i] = u8::from_str_radix(s, 16).ok()?;
        }
        // The first three fields are little-endian on disk.
        let mut raw = canonical;
        raw[0..4].reverse();
        raw[4..6].reverse();
        raw[6..8].reverse();
        Some(Guid(raw))
    }

    fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        for x in &b[10..] {
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

/// The fields of a GPT header this reader uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// LBA of this header.
    pub my_lba: u64,
    /// LBA of the other copy.
    pub alternate_lba: u64,
    /// First LBA a partition may use (after the primary header and entries).
    pub first_usable_lba: u64,
    /// Last LBA a partition may use (before the backup entries and header).
    pub last_usable_lba: u64,
    /// LBA where the entry array starts.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub entry_count: u32,
    /// Bytes per entry (a multiple of 128).
    pub entry_size: u32,
    /// CRC-32 of `entry_count * entry_size` bytes of the array.
    pub entries_crc: u32,
}

impl Header {
    /// Bytes of the entry array.
    pub fn entries_len(&self) -> usize {
        self.entry_count as usize * self.entry_size as usize
    }
}

/// One used partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based index in the entry array (the `N` of `/dev/vdaN`).
    pub number: u32,
    /// The GPT name (`PARTLABEL`).
    pub name: String,
    /// Partition type GUID.
    pub type_guid: Guid,
    /// Unique partition GUID (`PARTUUID`).
    pub guid: Guid,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

fn bad(reason: impl Into<String>) -> String {
    reason.into()
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Parses and checks a header from the block that holds it. The error is a
/// reason without context (the caller names the disk and copy).
pub fn parse_header(block: &[u8]) -> Result<Header, String> {
    if block.len() < HEADER_MIN || &block[0..8] != SIGNATURE {
        return Err(bad("no \"EFI PART\" signature"));
    }
    let size = le32(block, 12) as usize;
    if !(HEADER_MIN..=block.len()).contains(&size) {
        return Err(bad(format!("header size {size} out of range")));
    }
    let stored = le32(block, 16);
    let mut copy = block[..size].to_vec();
    copy[16..20].fill(0);
    let computed = CRC32.checksum(&copy);
    if stored != computed {
        return Err(bad(format!(
            "header crc mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    let header = Header {
        my_lba: le64(block, 24),
        alternate_lba: le64(block, 32),
        first_usable_lba: le64(block, 40),
        last_usable_lba: le64(block, 48),
        entries_lba: le64(block, 72),
        entry_count: le32(block, 80),
        entry_size: le32(block, 84),
        entries_crc: le32(block, 88),
    };
    if header.entry_size < 128 || !header.entry_size.is_multiple_of(128) {
        return Err(bad(format!("entry size {} invalid", header.entry_size)));
    }
    if header.entries_len() > MAX_ENTRY_BYTES {
        return Err(bad(format!(
            "entry array of {} bytes is too large",
            header.entries_len()
        )));
    }
    Ok(header)
}

/// Parses the entry array (checked against the header's CRC) into the used
/// partitions. `block_size` converts LBAs to bytes.
pub fn parse_entries(
    header: &Header,
    array: &[u8],
    block_size: u64,
) -> Result<Vec<Partition>, String> {
    let len = header.entries_len();
    if array.len() < len {
        return Err(bad("entry array truncated"));
    }
    let array = &array[..len];
    let computed = CRC32.checksum(array);
    if computed != header.entries_crc {
        return Err(bad(format!(
            "entry array crc mismatch (stored {:08x}, computed {computed:08x})",
            header.entries_crc
        )));
    }
    let mut out = Vec::new();
    for (i, e) in array.chunks_exact(header.entry_size as usize).enumerate() {
        let mut type_guid = [0u8; 16];
        type_guid.copy_from_slice(&e[0..16]);
        let type_guid = Guid(type_guid);
        if type_guid.is_zero() {
            continue;
        }
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&e[16..32]);
        let first = le64(e, 32);
        let last = le64(e, 40);
        let number = i as u32 + 1;
        if last < first {
            return Err(bad(format!(
                "partition {number}: last lba {last} < first lba {first}"
            )));
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let name = String::from_utf16(&units)
            .map_err(|_| bad(format!("partition {number}: name is not valid utf-16")))?;
        let offset = first.checked_mul(block_size);
        let size = (last - first)
            .checked_add(1)
            .and_then(|blocks| blocks.checked_mul(block_size));
        let (Some(offset), Some(size)) = (offset, size) else {
            return Err(bad(format!("partition {number}: lba range overflows")));
        };
        out.push(Partition {
            number,
            name,
            type_guid,
            guid: Guid(guid),
            offset,
            size,
        });
    }
    Ok(out)
}

fn read_at<R: Read + Seek>(disk: &mut R, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    disk.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    disk.read_exact(&mut buf)?;
    Ok(buf)
}

/// One copy (primary at LBA 1, or backup at `lba`) with a given block size.
/// A partition table and the disk area it lets partitions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The used entries.
    pub partitions: Vec<Partition>,
    /// Where partitions may lie: bytes `[start, end)` of the disk (the
    /// header's usable LBAs); everything else is the protective MBR, the GPT
    /// headers and entry arrays, or beyond them.
    pub usable: std::ops::Range<u64>,
    /// Disk length in bytes.
    pub disk_len: u64,
}

fn read_copy<R: Read + Seek>(
    disk: &mut R,
    block_size: u64,
    lba: u64,
    disk_len: u64,
) -> Result<Table, String> {
    let block = read_at(disk, lba * block_size, block_size as usize)
        .map_err(|e| format!("reading lba {lba}: {e}"))?;
    let header = parse_header(&block)?;
    if header.my_lba != lba {
        return Err(format!(
            "header at lba {lba} says it is at lba {}",
            header.my_lba
        ));
    }
    let at = header
        .entries_lba
        .checked_mul(block_size)
        .filter(|&at| at.saturating_add(header.entries_len() as u64) <= disk_len)
        .ok_or_else(|| "entry array lies beyond the end of the disk".to_string())?;
    let array =
        read_at(disk, at, header.entries_len()).map_err(|e| format!("reading entry array: {e}"))?;
    let parts = parse_entries(&header, &array, block_size)?;
    for p in &parts {
        if p.offset.saturating_add(p.size) > disk_len {
            return Err(format!(
                "partition {} ({}) extends beyond the end of the disk",
                p.number, p.name
            ));
        }
    }
    let start = header.first_usable_lba.saturating_mul(block_size);
    let end = header
        .last_usable_lba
        .saturating_add(1)
        .saturating_mul(block_size)
        .min(disk_len);
    Ok(Table {
        partitions: parts,
        usable: start..end.max(start),
        disk_len,
    })
}

/// Reads the partition table of `disk` (a block device or an image file);
/// `what` names it in errors.
pub fn read<R: Read + Seek>(disk: &mut R, what: &std::path::Path) -> Result<Vec<Partition>> {
    read_table(disk, what).map(|t| t.partitions)
}

/// Like [`read`], with the usable area and the disk length.
pub fn read_table<R: Read + Seek>(disk: &mut R, what: &std::path::Path) -> Result<Table> {
    let fail = |reason: String| Error::Gpt {
        path: what.to_owned(),
        reason,
    };
    let disk_len = disk
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io(what, e))?;
    let mut primary_error = None;
    for block_size in BLOCK_SIZES {
        if disk_len < 3 * block_size {
            continue;
        }
        match read_copy(disk, block_size, 1, disk_len) {
            Ok(parts) => return Ok(parts),
            // Keep the first (512-byte) reason: it is the usual layout.
            Err(e) => {
                primary_error.get_or_insert(e);
            }
        }
    }
    // The primary copy is bad at every block size: try the backup in the last
    // LBA (a torn table write, or a wiped first MiB).
    for block_size in BLOCK_SIZES {
        if disk_len < 3 * block_size {
            continue;
        }
        let last = disk_len / block_size - 1;
        if let Ok(parts) = read_copy(disk, block_size, last, disk_len) {
            log::warn!(
                "gpt {}: primary table bad ({}); using the backup table",
                what.display(),
                primary_error.as_deref().unwrap_or("unknown")
            );
            return Ok(parts);
        }
    }
    Err(fail(format!(
        "no valid gpt: {}",
        primary_error.unwrap_or_else(|| "disk too small".into())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trip_uses_mixed_endian() {
        let g = Guid::parse("0FC63DAF-8483-4772-8E79-3D69D8477DE4").unwrap();
        assert_eq!(&g.0[0..4], &[0xaf, 0x3d, 0xc6, 0x0f]);
        assert_eq!(g.to_string(), "0fc63daf-8483-4772-8e79-3d69d8477de4");
        assert!(Guid::parse("0fc63daf84834772-8e79-3d69d8477de4").is_none());
        assert!(Guid::parse("zzc63daf-8483-4772-8e79-3d69d8477de4").is_none());
    }

    use proptest::prelude::*;

    /// A disk of `len` bytes whose primary header (at 512) has the given
    /// entry fields and valid CRCs, and random entries: hostile but
    /// well-formed enough to reach every check.
    fn hostile_disk(len: usize, count: u32, size: u32, lba: u64, seed: &[u8]) -> Vec<u8> {
        let mut disk = vec![0u8; len];
        for (i, b) in disk.iter_mut().enumerate().skip(1024) {
            *b = seed[i % seed.len()];
        }
        let h = &mut disk[512..1024];
        h[0..8].copy_from_slice(SIGNATURE);
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[72..80].copy_from_slice(&lba.to_le_bytes());
        h[80..84].copy_from_slice(&count.to_le_bytes());
        h[84..88].copy_from_slice(&size.to_le_bytes());
        let start = (lba as usize).saturating_mul(512).min(len);
        let end = start
            .saturating_add(count as usize * size as usize)
            .min(len);
        let crc = CRC32.checksum(&disk[start..end]);
        disk[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
        let crc = CRC32.checksum(&disk[512..512 + 92]);
        disk[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
        disk
    }

    proptest! {
        #[test]
        fn hostile_tables_never_panic(
            len in 1536usize..40_000,
            count in 0u32..200,
            size in prop_oneof![Just(128u32), Just(256), 0u32..1024],
            lba in prop_oneof![Just(2u64), 0u64..100, Just(u64::MAX / 256)],
            seed in proptest::collection::vec(any::<u8>(), 1..300),
        ) {
            let disk = hostile_disk(len, count, size, lba, &seed);
            let mut cur = std::io::Cursor::new(disk);
            if let Ok(parts) = read(&mut cur, std::path::Path::new("fuzz.img")) {
                for p in parts {
                    prop_assert!(p.offset.saturating_add(p.size) <= len as u64);
                }
            }
        }

        #[test]
        fn random_header_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_header(&block);
        }
    }

    #[test]
    fn entry_spanning_every_lba_is_an_error_not_an_overflow() {
        let header = Header {
            my_lba: 1,
            alternate_lba: 0,
            first_usable_lba: 34,
            last_usable_lba: 100,
            entries_lba: 2,
            entry_count: 1,
            entry_size: 128,
            entries_crc: 0,
        };
        let mut e = [0u8; 128];
        e[0] = 1; // used
        e[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        let header = Header {
            entries_crc: CRC32.checksum(&e),
            ..header
        };
        let err = parse_entries(&header, &e, 512).unwrap_err();
        assert!(err.contains("overflows"), "{err}");
    }

    #[test]
    fn header_rejects_garbage_and_bad_crc() {
        assert!(parse_header(&[0u8; 512]).is_err());
        let mut block = [0u8; 512];
        block[0..8].copy_from_slice(SIGNATURE);
        block[12..16].copy_from_slice(&92u32.to_le_bytes());
        block[84..88].copy_from_slice(&128u32.to_le_bytes());
        let crc = CRC32.checksum(&block[..92]);
        block[16..20].copy_from_slice(&crc.to_le_bytes());
        assert!(parse_header(&block).is_ok());
        block[40] ^= 1;
        let e = parse_header(&block).unwrap_err();
        assert!(e.contains("crc"), "{e}");
    }
}
