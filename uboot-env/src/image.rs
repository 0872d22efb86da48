//! One environment copy as stored on flash (no I/O).
//!
//! ```text
//! single copy (CONFIG_SYS_REDUNDAND_ENVIRONMENT off):
//!   +--------------+----------------------------------------+
//!   | crc32 (LE)   | data: name=value\0 ... \0 padding      |
//!   +--------------+----------------------------------------+
//!     4 bytes        size - 4
//! redundant (two such areas, same size):
//!   +--------------+-------+--------------------------------+
//!   | crc32 (LE)   | flags | data                           |
//!   +--------------+-------+--------------------------------+
//!     4 bytes        1       size - 5
//! ```
//! The CRC is the standard CRC-32 (zlib `crc32`, CRC-32/ISO-HDLC) over the whole
//! data area, padding included, stored little-endian (U-Boot
//! `include/env_internal.h` `env_t`; libubootenv `uboot_private.h`).
//!
//! The flags byte orders the two copies. Two schemes exist, chosen by the
//! storage kind exactly as libubootenv does: *incremental* (files, block
//! devices, NAND: each write stores the current copy's flags + 1, wrapping) and
//! *boolean* (NOR MTD: the new copy gets 1, the old one is then overwritten
//! with 0 in place). [`select`] decides which valid copy is current with the
//! same rules as libubootenv's `libuboot_load` and U-Boot's `env_import_redund`.

use crc::{Crc, CRC_32_ISO_HDLC};

use crate::{Env, Error, Result};

/// CRC-32 as zlib computes it, with the small (1 KiB) table.
const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// Header bytes of a single-copy environment (the CRC).
pub const SINGLE_HEADER_LEN: usize = 4;
/// Header bytes of one copy of a redundant environment (CRC + flags).
pub const REDUNDANT_HEADER_LEN: usize = 5;
/// Offset of the flags byte in a redundant copy.
pub const FLAGS_OFFSET: usize = 4;

// The header layout is fixed by U-Boot's env_t; keep the constants honest.
const _: () = assert!(SINGLE_HEADER_LEN == std::mem::size_of::<u32>());
const _: () = assert!(REDUNDANT_HEADER_LEN == SINGLE_HEADER_LEN + 1);
const _: () = assert!(FLAGS_OFFSET == SINGLE_HEADER_LEN);

/// Whether the environment is stored once or twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One copy, `crc | data`.
    Single,
    /// Two copies, each `crc | flags | data`.
    Redundant,
}

impl Layout {
    /// Header length of one copy.
    pub fn header_len(self) -> usize {
        match self {
            Layout::Single => SINGLE_HEADER_LEN,
            Layout::Redundant => REDUNDANT_HEADER_LEN,
        }
    }
}

/// How the flags byte of a redundant environment orders the copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagsKind {
    /// Files, block devices, NAND, UBI: the newer copy has flags + 1 (mod 256).
    Incremental,
    /// NOR flash: 1 = active, 0 = obsolete, 0xff = erased (counts as active).
    Boolean,
}

impl FlagsKind {
    /// The flags byte for a copy written after a current copy with `current`
    /// flags (`None`: no valid copy exists).
    pub fn next(self, current: Option<u8>) -> u8 {
        match self {
            FlagsKind::Incremental => current.map_or(1, |f| f.wrapping_add(1)),
            FlagsKind::Boolean => 1,
        }
    }
}

/// The flags value a boolean-flags writer stores into the old copy once the new
/// one is complete.
pub const BOOLEAN_OBSOLETE: u8 = 0;

/// The CRC-32 U-Boot stores for a data area.
pub fn crc32(data: &[u8]) -> u32 {
    CRC32.checksum(data)
}

/// Header of one copy, read without trusting the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// CRC stored in the copy.
    pub stored_crc: u32,
    /// CRC computed over the data area.
    pub computed_crc: u32,
    /// The flags byte (redundant layout only).
    pub flags: Option<u8>,
}

impl Header {
    /// True when the stored CRC matches the data.
    pub fn crc_ok(&self) -> bool {
        self.stored_crc == self.computed_crc
    }
}

/// Reads the header of one copy and checks its CRC. `image` is one whole copy
/// (the configured size); anything shorter than a header is refused.
pub fn header(image: &[u8], layout: Layout) -> Result<Header> {
    let hlen = layout.header_len();
    let (Some(crc_bytes), Some(data)) = (image.get(..SINGLE_HEADER_LEN), image.get(hlen..)) else {
        return Err(Error::ImageSize {
            expected: hlen + 1,
            actual: image.len(),
        });
    };
    let mut le = [0u8; 4];
    le.copy_from_slice(crc_bytes);
    Ok(Header {
        stored_crc: u32::from_le_bytes(le),
        computed_crc: crc32(data),
        flags: match layout {
            Layout::Single => None,
            Layout::Redundant => image.get(FLAGS_OFFSET).copied(),
        },
    })
}

/// Decodes one copy: checks the CRC, then parses the variables. Returns the
/// variables and the flags byte (redundant layout).
pub fn decode(image: &[u8], layout: Layout) -> Result<(Env, Option<u8>)> {
    let h = header(image, layout)?;
    if !h.crc_ok() {
        return Err(Error::BadCrc {
            stored: h.stored_crc,
            computed: h.computed_crc,
        });
    }
    let env = Env::decode_data(image.get(layout.header_len()..).unwrap_or_default())?;
    Ok((env, h.flags))
}

/// Encodes one copy of `size` bytes. `flags` is stored in the redundant layout
/// and ignored in the single one.
pub fn encode(env: &Env, size: usize, layout: Layout, flags: u8) -> Result<Vec<u8>> {
    let hlen = layout.header_len();
    let capacity = size.saturating_sub(hlen);
    let data = env.encode_data(capacity)?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&crc32(&data).to_le_bytes());
    if layout == Layout::Redundant {
        out.push(flags);
    }
    out.extend_from_slice(&data);
    Ok(out)
}

/// Which of two redundant copies is current, given the flags of each copy
/// whose CRC is valid (`None` = invalid copy). `None` when neither is valid.
///
/// Mirrors libubootenv 0.3.x `libuboot_load` (and U-Boot `env_import_redund`):
/// the higher flags wins; equal flags pick copy 0; incremental counters wrap
/// (0xff then 0 means the 0 is newer); with boolean flags an erased 0xff counts
/// as active.
pub fn select(flags0: Option<u8>, flags1: Option<u8>, kind: FlagsKind) -> Option<usize> {
    match (flags0, flags1) {
        (None, None) => None,
        (Some(_), None) => Some(0),
        (None, Some(_)) => Some(1),
        (Some(f0), Some(f1)) => Some(match kind {
            FlagsKind::Boolean if f1 == 0xff => 1,
            FlagsKind::Boolean if f0 == 0xff => 0,
            FlagsKind::Incremental if f0 == 0xff && f1 == 0 => 1,
            FlagsKind::Incremental if f1 == 0xff && f0 == 0 => 0,
            _ if f1 > f0 => 1,
            _ => 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut e = Env::new();
        for (n, v) in pairs {
            e.set(n, v).unwrap();
        }
        e
    }

    #[test]
    fn crc_is_zlib_crc32() {
        // The check value of CRC-32/ISO-HDLC (zlib crc32("123456789")).
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn single_layout_bytes() {
        let img = encode(&env(&[("a", "1")]), 12, Layout::Single, 7).unwrap();
        let data = b"a=1\0\0\0\0\0";
        let mut want = crc32(data).to_le_bytes().to_vec();
        want.extend_from_slice(data);
        assert_eq!(img, want);
        assert_eq!(
            decode(&img, Layout::Single).unwrap(),
            (env(&[("a", "1")]), None)
        );
    }

    #[test]
    fn redundant_layout_bytes() {
        let img = encode(&env(&[("a", "1")]), 12, Layout::Redundant, 7).unwrap();
        assert_eq!(img[4], 7);
        assert_eq!(&img[5..], b"a=1\0\0\0\0");
        assert_eq!(img[..4], crc32(&img[5..]).to_le_bytes());
        assert_eq!(
            decode(&img, Layout::Redundant).unwrap(),
            (env(&[("a", "1")]), Some(7))
        );
    }

    #[test]
    fn any_flipped_bit_is_a_bad_crc() {
        let img = encode(&env(&[("bootcmd", "run x")]), 64, Layout::Single, 0).unwrap();
        for i in 0..img.len() * 8 {
            let mut bad = img.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                matches!(decode(&bad, Layout::Single), Err(Error::BadCrc { .. })),
                "bit {i}"
            );
        }
    }

    #[test]
    fn short_images_are_refused() {
        for n in 0..5 {
            assert!(decode(&vec![0; n], Layout::Redundant).is_err());
        }
    }

    #[test]
    fn selection_rules() {
        use FlagsKind::*;
        assert_eq!(select(None, None, Incremental), None);
        assert_eq!(select(Some(9), None, Incremental), Some(0));
        assert_eq!(select(None, Some(0), Incremental), Some(1));
        assert_eq!(select(Some(3), Some(4), Incremental), Some(1));
        assert_eq!(select(Some(4), Some(3), Incremental), Some(0));
        assert_eq!(select(Some(4), Some(4), Incremental), Some(0));
        assert_eq!(select(Some(0xff), Some(0), Incremental), Some(1));
        assert_eq!(select(Some(0), Some(0xff), Incremental), Some(0));
        assert_eq!(select(Some(1), Some(0), Boolean), Some(0));
        assert_eq!(select(Some(0), Some(1), Boolean), Some(1));
        assert_eq!(select(Some(1), Some(1), Boolean), Some(0));
        assert_eq!(select(Some(0xff), Some(1), Boolean), Some(0));
        assert_eq!(select(Some(1), Some(0xff), Boolean), Some(1));
        assert_eq!(FlagsKind::Incremental.next(Some(0xff)), 0);
        assert_eq!(FlagsKind::Incremental.next(None), 1);
        assert_eq!(FlagsKind::Boolean.next(Some(0)), 1);
    }
}
