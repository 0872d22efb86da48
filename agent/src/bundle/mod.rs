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

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

pub mod bsdiff;
pub mod channel;
pub mod container;
pub mod manifest;
pub mod signature;
pub mod time;

pub use manifest::{Blob, Compression, Image, Kind, Manifest};
pub use signature::{PublicKey, TrustedKeys};

use crate::{Error, Result};

/// File names inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The detached signature of [`MANIFEST_FILE`].
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

/// A device clock before this instant (2026-11-01T00:00:00Z, before this
/// code was written) is taken as unset: see [`check_policy`].
pub const CLOCK_FLOOR: i64 = 1_793_491_200;

/// Why a bundle (or a part of one) was refused. Each message is one line.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The manifest is malformed; the message names the field.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The signature is malformed or no trusted key verifies it.
    #[error("manifest signature: {0}")]
    Signature(String),
    /// A key file is unusable.
    #[error("key {name}: {reason}")]
    Key {
        /// The key file.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The single-file bundle's framing is wrong.
    #[error("bundle file: {0}")]
    Container(String),
    /// The verified manifest is not for this device or not acceptable now.
    #[error("bundle refused: {0}")]
    Refused(String),
    /// A payload does not match its signed size or hash.
    #[error("payload {file}: {reason}")]
    Payload {
        /// The payload's file name.
        file: String,
        /// What does not match.
        reason: String,
    },
    /// The delta base (the booted slot's image) is not the one the patch needs.
    #[error("image {name}: delta base mismatch: {reason}")]
    Base {
        /// Partition name.
        name: String,
        /// What does not match.
        reason: String,
    },
    /// A BSDIFF40 patch could not be applied.
    #[error(transparent)]
    Patch(#[from] bsdiff::PatchError),
    /// The channel file is malformed.
    #[error("channel file: {0}")]
    Channel(String),
}

/// A SHA-256 value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<Digest> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let nib = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
        }
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }
    /// Reads to the end, then returns the size and hash of everything read.
    pub fn finish(mut self) -> io::Result<Blob> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(Blob {
            size: self.count,
            sha256: Digest(self.hasher.finalize().into()),
        })
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }
    /// Size and hash of everything written, and the inner writer.
    pub fn finish(self) -> (Blob, W) {
        (
            Blob {
                size: self.count,
                sha256: Digest(self.hasher.finalize().into()),
            },
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Size and SHA-256 of everything `r` yields.
pub fn hash_reader<R: Read>(r: R) -> io::Result<Blob> {
    HashingReader::new(r).finish()
}

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

/// What the device knows about itself when judging a manifest.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    /// The configured product id.
    pub product: String,
    /// The configured hardware revision, if any.
    pub hardware: Option<String>,
    /// The running release's version.
    pub installed: semver::Version,
    /// The stored minimum `security_version` (0 when none is stored).
    pub min_security_version: u32,
    /// The device clock, seconds since the epoch.
    pub now: i64,
    /// Accept a manifest whose version equals the installed one.
    pub reinstall: bool,
}

/// Checks a verified manifest against the device. Returns warnings to show
/// (e.g. an unset clock); refusals are errors.
///
/// Clock sanity: a clock before [`CLOCK_FLOOR`] is taken as unset (no RTC, no
/// NTP yet). Expiry is then judged against `CLOCK_FLOOR` instead and a warning
/// says so: a manifest that expired before this software existed is still
/// refused, and a device without a clock can still update. (Refusing would
/// strand devices whose clock is set only by the update; passing silently
/// would hide the problem.)
pub fn check_policy(m: &Manifest, d: &DeviceFacts) -> Result<Vec<String>, BundleError> {
    let refuse = |msg: String| Err(BundleError::Refused(msg));
    let mut warnings = Vec::new();
    if m.product != d.product {
        return refuse(format!(
            "manifest product `{}` is not this device's product `{}`",
            m.product, d.product
        ));
    }
    if !m.hardware.is_empty() {
        match &d.hardware {
            Some(hw) if m.hardware.contains(hw) => {}
            Some(hw) => {
                return refuse(format!(
                    "hardware revision `{hw}` is not in the manifest's list [{}]",
                    m.hardware.join(", ")
                ))
            }
            None => {
                return refuse(format!(
                "the manifest is for hardware [{}] and this device has no `hardware` configured",
                m.hardware.join(", ")
            ))
            }
        }
    }
    if m.security_version < d.min_security_version {
        return refuse(format!(
            "security version {} is below the device's minimum {}",
            m.security_version, d.min_security_version
        ));
    }
    match m.version.cmp_precedence(&d.installed) {
        std::cmp::Ordering::Greater => {}
        std::cmp::Ordering::Equal if d.reinstall => {}
        std::cmp::Ordering::Equal => {
            return refuse(format!(
                "version {} is already installed (reinstall needs --reinstall)",
                m.version
            ))
        }
        std::cmp::Ordering::Less => {
            return refuse(format!(
                "version {} is older than the installed {} (downgrade)",
                m.version, d.installed
            ))
        }
    }
    let mut now = d.now;
    if now < CLOCK_FLOOR {
        warnings.push(format!(
            "device clock {} is unset (before {}); expiry checked against {} instead",
            time::format_rfc3339_utc(now),
            time::format_rfc3339_utc(CLOCK_FLOOR),
            time::format_rfc3339_utc(CLOCK_FLOOR)
        ));
        now = CLOCK_FLOOR;
    }
    if now >= m.expires {
        return refuse(format!(
            "manifest expired at {} (now {})",
            time::format_rfc3339_utc(m.expires),
            time::format_rfc3339_utc(now)
        ));
    }
    Ok(warnings)
}

/// The installed release's version: `VERSION_ID` of an os-release file
/// (config `version_file`, default `/etc/os-release`; the image build sets
/// it to the release version), parsed as SemVer.
pub fn installed_version(os_release: &Path) -> Result<semver::Version> {
    let text = std::fs::read_to_string(os_release).map_err(|e| Error::io(os_release, e))?;
    let bad = |reason: String| Error::DeviceFile {
        path: os_release.to_owned(),
        reason,
    };
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .ok_or_else(|| bad("no VERSION_ID line (the installed version)".into()))?;
    let v = line.trim().trim_matches(|c| c == '"' || c == '\'');
    semver::Version::parse(v).map_err(|e| bad(format!("VERSION_ID {v:?} is not SemVer: {e}")))
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
                Compression::Bzip2 => hash_reader(bzip2::read::MultiBzDecoder::new(src.reader()))
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
                Compression::Bzip2 => io::copy(
                    &mut bzip2::read::MultiBzDecoder::new(payload.reader()),
                    &mut out,
                )
                .map_err(|e| payload_err(img, format!("bzip2: {e}")))?,
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

/// serde_json's type errors say "invalid value ... at line 9 column 24"
/// without the field; add the key found before that position so every
/// error names its field.
pub(crate) fn json_error(bytes: &[u8], e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if e.line() == 0 || msg.contains("field `") {
        return msg;
    }
    let text = String::from_utf8_lossy(bytes);
    let Some(line) = text.lines().nth(e.line() - 1) else {
        return msg;
    };
    let upto: String = line.chars().take(e.column()).collect();
    // The last `"key":` before the error column on that line.
    let key = upto.rfind("\":").and_then(|end| {
        let start = upto[..end].rfind('"')?;
        Some(&upto[start + 1..end])
    });
    match key {
        Some(k) => format!("field `{k}`: {msg}"),
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{DerSignature, SigningKey};

    fn stream(key: &SigningKey, payload: &[u8]) -> (Vec<u8>, Manifest) {
        let m = Manifest {
            product: "p".into(),
            hardware: vec![],
            version: semver::Version::new(1, 0, 0),
            security_version: 0,
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
