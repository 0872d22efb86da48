//! Opening a bundle (a directory, a single file or a stream): the manifest
//! signature is verified before anything else, then each payload is handed
//! out as a [`PayloadSource`] checked against the manifest's length.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use super::error::BundleError;
use super::manifest::{self, Manifest};
use super::signature::{self, TrustedKeys};
use super::{bsdiff, container};
use crate::{Error, Result};

/// File names inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The detached signature of [`MANIFEST_FILE`].
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

/// Verifies the signature over the exact `manifest` bytes with the trusted
/// keys, then parses them. Returns the manifest and the name of the key that
/// verified it.
pub fn verify_manifest(
    manifest: &[u8],
    sig: &[u8],
    keys: &TrustedKeys,
) -> Result<(Manifest, String), BundleError> {
    if manifest.len() > manifest::MAX_LEN {
        return Err(BundleError::Manifest(format!(
            "{} bytes is larger than the limit of {}",
            manifest.len(),
            manifest::MAX_LEN
        )));
    }
    let key = keys.verify(manifest, sig)?.name.clone();
    Ok((Manifest::parse(manifest)?, key))
}

/// Reads a single-file bundle from a stream (USB stick, pipe): the header,
/// the manifest and the signature, verifies the signature, and returns the
/// manifest, the verifying key's name and the reader positioned at the first
/// payload. Not one payload byte is read before the signature verified;
/// the payloads then follow in manifest order, each exactly its `size`.
pub fn open_stream<R: Read>(
    mut r: R,
    keys: &TrustedKeys,
) -> Result<(Manifest, String, R), BundleError> {
    let short =
        |what: &str| BundleError::Container(format!("stream ends inside the {what} (truncated)"));
    let mut head = [0u8; container::HEADER_LEN];
    r.read_exact(&mut head).map_err(|_| short("header"))?;
    let header = container::Header::parse(&head)?;
    let mut manifest = vec![0; header.manifest_len as usize];
    r.read_exact(&mut manifest).map_err(|_| short("manifest"))?;
    let mut sig = vec![0; header.signature_len as usize];
    r.read_exact(&mut sig).map_err(|_| short("signature"))?;
    let (m, key) = verify_manifest(&manifest, &sig, keys)?;
    Ok((m, key, r))
}

/// A payload's bytes: a whole file (bundle directory) or a range of the
/// single-file bundle.
#[derive(Debug)]
pub struct PayloadSource {
    file: File,
    start: u64,
    len: u64,
}

impl bsdiff::ReadAt for PayloadSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let left = self.len.saturating_sub(offset);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        std::os::unix::fs::FileExt::read_at(&self.file, &mut buf[..n], self.start + offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.len)
    }
}

impl PayloadSource {
    /// A sequential reader over the payload.
    pub fn reader(&self) -> impl Read + '_ {
        PayloadReader { src: self, pos: 0 }
    }
}

struct PayloadReader<'a> {
    src: &'a PayloadSource,
    pos: u64,
}

impl Read for PayloadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = bsdiff::ReadAt::read_at(self.src, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Where a bundle's parts are.
#[derive(Debug, Clone)]
enum Layout {
    Dir(PathBuf),
    File {
        path: PathBuf,
        ranges: Vec<(u64, u64)>,
    },
}

/// A bundle (directory or single file) whose manifest signature verified.
#[derive(Debug)]
pub struct Bundle {
    /// The verified manifest.
    pub manifest: Manifest,
    /// The exact signed manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// Name of the trusted key that verified it.
    pub key: String,
    layout: Layout,
}

/// Opens `path` for reading only if it is a regular file (a FIFO would
/// block `open` or `read` forever, a device or directory is no bundle
/// part), and, with `within`, only if it resolves to a file inside that
/// directory (a symlink may not lead out of the bundle). Never blocks.
pub fn open_regular(path: &Path, within: Option<&Path>) -> io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let real = std::fs::canonicalize(path)?;
    if let Some(dir) = within {
        if !real.starts_with(std::fs::canonicalize(dir)?) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a link leading out of the bundle, refused",
            ));
        }
    }
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a
    // writer; the type check below then refuses it.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&real)?;
    let t = f.metadata()?.file_type();
    let kind = if t.is_file() {
        return Ok(f);
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{kind}, not a regular file; refused"),
    ))
}

fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>> {
    let f = open_regular(path, path.parent()).map_err(|e| Error::io(path, e))?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

impl Bundle {
    /// Opens a bundle directory (`manifest.json`, `manifest.json.sig`,
    /// payloads) or a single-file bundle and verifies the manifest signature.
    /// No payload byte is read.
    pub fn open(path: &Path, keys: &TrustedKeys) -> Result<Bundle> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let manifest_bytes = read_limited(&path.join(MANIFEST_FILE), manifest::MAX_LEN)?;
            let sig = read_limited(&path.join(SIGNATURE_FILE), signature::MAX_SIGNATURE_LEN)?;
            let (manifest, key) = verify_manifest(&manifest_bytes, &sig, keys)?;
            return Ok(Bundle {
                manifest,
                manifest_bytes,
                key,
                layout: Layout::Dir(path.to_owned()),
            });
        }
        let mut f = open_regular(path, None).map_err(|e| Error::io(path, e))?;
        let io = |e| Error::io(path, e);
        let mut head = Vec::new();
        (&mut f)
            .take(container::HEADER_LEN as u64)
            .read_to_end(&mut head)
            .map_err(io)?;
        let header = container::Header::parse(&head)?;
        let mut manifest_bytes = vec![0; header.manifest_len as usize];
        let mut sig = vec![0; header.signature_len as usize];
        let short = |_| {
            BundleError::Container("file ends inside the manifest or signature (truncated)".into())
        };
        f.read_exact(&mut manifest_bytes).map_err(short)?;
        f.read_exact(&mut sig).map_err(short)?;
        let (manifest, key) = verify_manifest(&manifest_bytes, &sig, keys)?;
        let (ranges, end) = container::payload_ranges(&header, &manifest)?;
        let len = f.seek(io::SeekFrom::End(0)).map_err(io)?;
        if len < end {
            return Err(BundleError::Container(format!(
                "file is {len} bytes, its payloads end at {end} (truncated)"
            ))
            .into());
        }
        if len > end {
            return Err(BundleError::Container(format!(
                "{} bytes after the last payload",
                len - end
            ))
            .into());
        }
        Ok(Bundle {
            manifest,
            manifest_bytes,
            key,
            layout: Layout::File {
                path: path.to_owned(),
                ranges,
            },
        })
    }

    /// Opens the payload of image number `index` (manifest order), checking
    /// its length against the manifest.
    pub fn payload(&self, index: usize) -> Result<PayloadSource> {
        let img = self
            .manifest
            .images
            .get(index)
            .ok_or_else(|| Error::Internal(format!("bundle has no image number {index}")))?;
        match &self.layout {
            Layout::Dir(dir) => {
                let path = dir.join(&img.file);
                let file = open_regular(&path, Some(dir)).map_err(|e| {
                    Error::from(BundleError::Payload {
                        file: img.file.clone(),
                        reason: e.to_string(),
                    })
                })?;
                let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
                if len != img.payload.size {
                    let what = if len > img.payload.size {
                        "oversize"
                    } else {
                        "truncated"
                    };
                    return Err(BundleError::Payload {
                        file: img.file.clone(),
                        reason: format!("{what}: {len} bytes, manifest says {}", img.payload.size),
                    }
                    .into());
                }
                Ok(PayloadSource {
                    file,
                    start: 0,
                    len,
                })
            }
            Layout::File { path, ranges } => {
                let file = open_regular(path, None).map_err(|e| Error::io(path, e))?;
                let (start, len) = ranges[index.min(ranges.len() - 1)];
                Ok(PayloadSource { file, start, len })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::digest::Digest;
    use crate::bundle::manifest::{Blob, Compression, Image, Kind};
    use crate::bundle::policy::CLOCK_FLOOR;
    use crate::bundle::signature::PublicKey;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{DerSignature, SigningKey};

    fn stream(key: &SigningKey, payload: &[u8]) -> (Vec<u8>, Manifest) {
        let m = Manifest {
            product: "p".into(),
            hardware: vec![],
            version: semver::Version::new(1, 0, 0),
            security_version: 0,
            urgency: Default::default(),
            created: CLOCK_FLOOR,
            expires: CLOCK_FLOOR + 1,
            images: vec![Image {
                name: "rootfs".into(),
                file: "rootfs.img".into(),
                payload: Blob {
                    size: payload.len() as u64,
                    sha256: Digest::of(payload),
                },
                compression: Compression::None,
                kind: Kind::Full,
                result: Blob {
                    size: payload.len() as u64,
                    sha256: Digest::of(payload),
                },
            }],
        };
        let json = m.to_json();
        let sig: DerSignature = key.sign(json.as_bytes());
        let h = container::Header {
            manifest_len: json.len() as u32,
            signature_len: sig.as_bytes().len() as u32,
        };
        let mut out = h.encode().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(sig.as_bytes());
        out.extend_from_slice(payload);
        (out, m)
    }

    #[test]
    fn stream_is_verified_before_any_payload_byte_is_read() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let trusted = TrustedKeys::new(vec![PublicKey::from_uncompressed_point(
            "k",
            key.verifying_key().to_sec1_point(false).as_bytes(),
        )
        .unwrap()]);
        let payload = b"payload bytes";
        let (bytes, m) = stream(&key, payload);
        let (got, name, rest) = open_stream(&bytes[..], &trusted).unwrap();
        assert_eq!((got, name.as_str()), (m, "k"));
        assert_eq!(
            rest, payload,
            "reader must stop exactly at the first payload"
        );

        // One flipped manifest byte: refused, and the payload was not consumed.
        let mut bad = bytes.clone();
        bad[container::HEADER_LEN + 5] ^= 1;
        let e = open_stream(&bad[..], &trusted).unwrap_err().to_string();
        assert!(e.starts_with("manifest signature: does not verify"), "{e}");
        let e = open_stream(&bytes[..40], &trusted).unwrap_err().to_string();
        assert!(e.contains("stream ends inside the manifest"), "{e}");
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let untrusted = TrustedKeys::new(vec![PublicKey::from_uncompressed_point(
            "o",
            other.verifying_key().to_sec1_point(false).as_bytes(),
        )
        .unwrap()]);
        assert!(open_stream(&bytes[..], &untrusted).is_err());
    }
}
