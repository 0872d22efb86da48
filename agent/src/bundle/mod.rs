//! Update bundles: the signed manifest, its signature, payloads (full images
//! and BSDIFF40 deltas), the single-file form and the channel file. Shared by
//! the device (verification, apply) and the host tool `ota-sign` (which adds
//! signing and delta creation on top).
//!
//! ```text
//!  bundle dir / single file ──► manifest bytes + DER signature
//!        │                          │ signature::TrustedKeys::verify (any key)
//!        │                          ▼
//!        │                      Manifest::parse (strict)  ──► check_policy
//!        │                          │  (product, hardware, version, security
//!        ▼                          ▼   version, expiry + clock sanity)
//!   payload bytes ──► check_payload (size, SHA-256, result size/SHA-256)
//!                 ──► write_image (bzip2 / BSDIFF40 against the base) ──► slot
//! ```
//!
//! Nothing reads a payload before the manifest's signature verified: the only
//! way to a [`Manifest`] from untrusted bytes here is [`verify_manifest`]
//! (`Manifest::parse` is public for the host tool and tests).

use std::fs::File;
use std::io::{self, Read, Seek, Write};

pub mod bsdiff;
pub mod bunzip;
pub mod channel;
pub mod container;
pub mod manifest;
pub mod signature;
pub mod time;

mod digest;
mod error;
mod hashing;
mod open;
mod policy;

pub use digest::Digest;
pub use error::BundleError;
pub use hashing::{hash_reader, HashingReader, HashingWriter};
pub use manifest::{Blob, Compression, Image, Kind, Manifest, Urgency};
pub use open::{
    open_regular, open_stream, verify_manifest, Bundle, PayloadSource, MANIFEST_FILE,
    SIGNATURE_FILE,
};
pub use policy::{check_policy, installed_version, DeviceFacts, CLOCK_FLOOR};
pub use signature::{PublicKey, TrustedKeys};

use crate::{Error, Result};

impl Bundle {
    /// Checks every payload: size, SHA-256 and what it produces (see
    /// [`check_payload`]).
    pub fn check_payloads(&self) -> Result<()> {
        for (i, img) in self.manifest.images.iter().enumerate() {
            check_payload(img, &self.payload(i)?)?;
        }
        Ok(())
    }
}

fn payload_err(img: &Image, reason: String) -> Error {
    BundleError::Payload {
        file: img.file.clone(),
        reason,
    }
    .into()
}

/// Checks one payload against its signed entry: exact size and SHA-256, then
/// for a full image the size and SHA-256 of the decompressed result, for a
/// delta that the patch header's new size equals the result size (the result
/// hash of a delta needs the base and is checked when it is applied).
pub fn check_payload(img: &Image, src: &PayloadSource) -> Result<()> {
    use bsdiff::ReadAt;
    let len = src.len().map_err(|e| payload_err(img, e.to_string()))?;
    if len != img.payload.size {
        return Err(payload_err(
            img,
            format!("{len} bytes, manifest says {}", img.payload.size),
        ));
    }
    let got = hash_reader(src.reader()).map_err(|e| payload_err(img, e.to_string()))?;
    if got.sha256 != img.payload.sha256 {
        return Err(payload_err(
            img,
            format!(
                "SHA-256 {} does not match the manifest's {}",
                got.sha256, img.payload.sha256
            ),
        ));
    }
    match img.kind {
        Kind::Full => {
            let result = match img.compression {
                Compression::None => got,
                Compression::Bzip2 => hash_reader(bunzip::MultiDecoder::new(src.reader()))
                    .map_err(|e| payload_err(img, format!("bzip2: {e}")))?,
            };
            check_result(img, result)
        }
        Kind::Bsdiff { .. } => {
            let h = bsdiff::read_header(src).map_err(|e| payload_err(img, e.to_string()))?;
            if h.new_size != img.result.size {
                return Err(payload_err(
                    img,
                    format!(
                        "patch makes {} bytes, manifest result_size is {}",
                        h.new_size, img.result.size
                    ),
                ));
            }
            Ok(())
        }
    }
}

fn check_result(img: &Image, got: Blob) -> Result<()> {
    if got.size != img.result.size {
        return Err(payload_err(
            img,
            format!(
                "result is {} bytes, manifest result_size is {}",
                got.size, img.result.size
            ),
        ));
    }
    if got.sha256 != img.result.sha256 {
        return Err(payload_err(
            img,
            format!(
                "result SHA-256 {} does not match the manifest's {}",
                got.sha256, img.result.sha256
            ),
        ));
    }
    Ok(())
}

/// Produces the image's partition contents into `out` from a payload whose
/// size and hash were checked: decompresses a full image or applies a delta
/// to `base` (whose size and SHA-256 are checked first), and checks the
/// result's size and SHA-256. On error `out` holds garbage and must not be
/// used (the installer writes the inactive slot and never switches to it).
pub fn write_image<W: Write>(
    img: &Image,
    payload: &PayloadSource,
    base: Option<&mut File>,
    out: W,
) -> Result<W> {
    let mut out = HashingWriter::new(out);
    let write_err = |e: io::Error| payload_err(img, format!("writing the result: {e}"));
    match img.kind {
        Kind::Full => {
            match img.compression {
                Compression::None => {
                    io::copy(&mut payload.reader(), &mut out).map_err(write_err)?
                }
                Compression::Bzip2 => {
                    io::copy(&mut bunzip::MultiDecoder::new(payload.reader()), &mut out)
                        .map_err(|e| payload_err(img, format!("bzip2: {e}")))?
                }
            };
        }
        Kind::Bsdiff { base: want } => {
            let base = base.ok_or_else(|| BundleError::Base {
                name: img.name.clone(),
                reason: "no base image given for a delta".into(),
            })?;
            check_base(&img.name, want, base)?;
            let mut old = bsdiff::Window::new(base, want.size);
            bsdiff::apply(payload, &mut old, &mut out).map_err(BundleError::from)?;
        }
    }
    let (got, inner) = out.finish();
    check_result(img, got)?;
    Ok(inner)
}

/// Checks that `base` (read from its start) has the size and SHA-256 a delta
/// was made against, and rewinds it.
pub fn check_base<R: Read + Seek>(name: &str, want: Blob, base: &mut R) -> Result<()> {
    let fail = |reason: String| -> Error {
        BundleError::Base {
            name: name.to_owned(),
            reason,
        }
        .into()
    };
    base.rewind().map_err(|e| fail(e.to_string()))?;
    // Read exactly the base size: a slot partition is usually larger than the
    // image that was written to it.
    let got = hash_reader(base.by_ref().take(want.size)).map_err(|e| fail(e.to_string()))?;
    base.rewind().map_err(|e| fail(e.to_string()))?;
    if got.size != want.size {
        return Err(fail(format!(
            "base is {} bytes, the patch needs {}",
            got.size, want.size
        )));
    }
    if got.sha256 != want.sha256 {
        return Err(fail(format!(
            "base SHA-256 {} is not the {} the patch was made against",
            got.sha256, want.sha256
        )));
    }
    Ok(())
}
