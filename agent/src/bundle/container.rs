//! The single-file bundle (USB sticks, factory flashing): one stream that can
//! be verified before any payload byte is used.
//!
//! ```text
//!  offset  size  field (integers little-endian)
//!       0     8  magic "OTABNDL\n"
//!       8     4  version = 1
//!      12     4  M = manifest length (1 ..= 1 MiB)
//!      16     4  S = signature length (1 ..= 72)
//!      20     4  CRC-32 (ISO-HDLC, as zlib/`crc32`) of bytes 0..20
//!      24     M  manifest.json, exactly the signed bytes
//!    24+M     S  manifest.json.sig (DER)
//!  24+M+S   ...  the payloads, concatenated in manifest `images` order, each
//!                exactly its manifest `size`; nothing after the last one
//! ```
//!
//! A reader takes the header, the manifest and the signature, verifies the
//! signature (and the device policy), and only then reads payloads, whose
//! offsets and sizes now come from signed data. The CRC only catches a
//! damaged or foreign file early; integrity comes from the signature.

use super::error::BundleError;
use super::manifest::{self, Manifest};
use super::signature::MAX_SIGNATURE_LEN;

/// First 8 bytes of a single-file bundle.
pub const MAGIC: &[u8; 8] = b"OTABNDL\n";
/// The header version this code reads and writes.
pub const VERSION: u32 = 1;
/// Header length.
pub const HEADER_LEN: usize = 24;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// The fixed header of a single-file bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Manifest length in bytes.
    pub manifest_len: u32,
    /// Signature length in bytes.
    pub signature_len: u32,
}

// The layout above, checked at compile time.
const _: () = assert!(HEADER_LEN == 8 + 4 + 4 + 4 + 4);

fn bad(msg: String) -> BundleError {
    BundleError::Container(msg)
}

impl Header {
    /// Parses and checks the first [`HEADER_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<Header, BundleError> {
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Err(bad(format!(
                "truncated header ({} of {HEADER_LEN} bytes)",
                bytes.len()
            )));
        };
        if &h[..8] != MAGIC {
            return Err(bad("bad magic (not a single-file bundle)".into()));
        }
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let crc = CRC32.checksum(&h[..20]);
        if word(20) != crc {
            return Err(bad(format!(
                "header CRC {:#010x} does not match {crc:#010x} (damaged file)",
                word(20)
            )));
        }
        if word(8) != VERSION {
            return Err(bad(format!(
                "header version {} is not supported (this agent reads {VERSION})",
                word(8)
            )));
        }
        let header = Header {
            manifest_len: word(12),
            signature_len: word(16),
        };
        if header.manifest_len == 0 || header.manifest_len as usize > manifest::MAX_LEN {
            return Err(bad(format!(
                "manifest length {} is out of range 1..={}",
                header.manifest_len,
                manifest::MAX_LEN
            )));
        }
        if header.signature_len == 0 || header.signature_len as usize > MAX_SIGNATURE_LEN {
            return Err(bad(format!(
                "signature length {} is out of range 1..={MAX_SIGNATURE_LEN}",
                header.signature_len
            )));
        }
        Ok(header)
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.manifest_len.to_le_bytes());
        h[16..20].copy_from_slice(&self.signature_len.to_le_bytes());
        let crc = CRC32.checksum(&h[..20]);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Offset of the first payload.
    pub fn payloads_start(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.manifest_len) + u64::from(self.signature_len)
    }
}

/// Byte ranges `(start, len)` of each image's payload in a single-file bundle,
/// in manifest order, and the total file length they imply.
pub fn payload_ranges(
    header: &Header,
    manifest: &Manifest,
) -> Result<(Vec<(u64, u64)>, u64), BundleError> {
    let mut at = header.payloads_start();
    let mut out = Vec::with_capacity(manifest.images.len());
    for img in &manifest.images {
        out.push((at, img.payload.size));
        at = at
            .checked_add(img.payload.size)
            .ok_or_else(|| bad("payload sizes overflow".into()))?;
    }
    Ok((out, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_checks() {
        let h = Header {
            manifest_len: 900,
            signature_len: 71,
        };
        let bytes = h.encode();
        assert_eq!(Header::parse(&bytes).unwrap(), h);
        assert_eq!(h.payloads_start(), 24 + 900 + 71);
        let mut b = bytes;
        b[13] ^= 1;
        assert!(Header::parse(&b).unwrap_err().to_string().contains("CRC"));
        assert!(Header::parse(&bytes[..10])
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        let mut b = bytes;
        b[0] = b'X';
        assert!(Header::parse(&b).unwrap_err().to_string().contains("magic"));
        for (m, s) in [(0, 70), (2 << 20, 70), (10, 0), (10, 73)] {
            let e = Header::parse(
                &Header {
                    manifest_len: m,
                    signature_len: s,
                }
                .encode(),
            )
            .unwrap_err();
            assert!(e.to_string().contains("out of range"), "{e}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(m in 1u32..=(1 << 20), s in 1u32..=72) {
            let h = Header { manifest_len: m, signature_len: s };
            prop_assert_eq!(Header::parse(&h.encode()).unwrap(), h);
        }
    }
}
