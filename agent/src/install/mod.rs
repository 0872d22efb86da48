//! The installer: writes a verified bundle into the *inactive* slot, checks
//! it on flash, and switches the boot target — resumable after a power cut.
//!
//! ```text
//!  Approved (signature + device policy checked)      Payloads (bundle file/dir,
//!        │                                            HTTP: open_at(index, offset))
//!        ▼                                                   │
//!  prechecks: partitions exist in the inactive slot and are large enough;
//!             delta base = booted slot (size + SHA-256); patch complete + hashed
//!        │            (nothing has changed on the device up to here)
//!        ▼
//!  mark_unbootable(inactive) ─► writing-<slot> marker ─► journal
//!        ▼
//!  per image: stream ─► bzip2 / bspatch ─► SlotWriter (inactive only)
//!             checkpoint every 8 MiB: fsync, journal {image, offset, prefix SHA-256}
//!             end: fsync, drop cache, read back from flash, SHA-256 == manifest
//!        ▼
//!  journal "written" ─► marker removed ─► pending security version
//!        ─► set_active(inactive) (one boot-control write) ─► journal removed
//! ```
//!
//! # API for download front ends (`update`, `daemon`)
//!
//! ```no_run
//! # use ota_agent::install::{Approved, Installer, Payloads, NoProgress, FileDisk};
//! # fn demo(config: &ota_agent::config::Config, manifest: &[u8], sig: &[u8],
//! #         facts: &ota_agent::bundle::DeviceFacts, http: &mut dyn Payloads,
//! #         bc: &mut dyn ota_agent::bootctl::BootControl) -> ota_agent::Result<()> {
//! let keys = ota_agent::bundle::TrustedKeys::load_dir(&config.keys_dir)?;
//! let approved = Approved::new(manifest, sig, &keys, facts)?; // signature + policy
//! let layout = ota_agent::slots::Layout::discover(&config.disk)?;
//! let disk = FileDisk::open(&config.disk)?;
//! let mut progress = NoProgress;
//! let outcome = Installer::new(&disk, &layout, bc, &config.state_dir, &mut progress)
//!     .install(&approved, http)?; // resumes by itself from state_dir's journal
//! # let _ = outcome; Ok(()) }
//! ```
//!
//! [`Payloads::open_at`] is asked for `(image index, payload byte offset)`;
//! the installer picks the offset from its journal (uncompressed full
//! images resume at the first unverified byte; bzip2 payloads at the start
//! of the bzip2 stream that follows the last checkpoint, so a resumed
//! download never fetches what is already on flash; delta patches are downloaded to
//! `state_dir` once, resumed by file length, then applied from the start).

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::bootctl::BootControl;
use crate::bundle::bsdiff::{self, ReadAt};
use crate::bundle::{
    self, Blob, Bundle, BundleError, Compression, DeviceFacts, Digest, Image, Kind, Manifest,
    PayloadSource, TrustedKeys,
};
use crate::slots::{Layout, Slot};
use crate::state::{write_atomic, StateDir};
use crate::{Error, Result};

pub mod journal;
pub mod storage;

use crate::update_status::Phase;
/// Progress goes to `update_status` (the one status document); re-exported
/// for callers of the installer.
pub use crate::update_status::{NoProgress, Progress};
use journal::{Journal, Record};
pub use storage::{Disk, FileDisk, SlotReader, SlotWriter};

/// The file in `state_dir` holding the security version to store once the
/// new slot is confirmed (`mark-good`).
pub const PENDING_SECURITY_FILE: &str = "pending-security-version";

/// Where the payload bytes come from.
pub trait Payloads {
    /// A reader of image `index`'s payload (manifest order) from byte
    /// `offset` to its end. The installer reads at most the signed size and
    /// checks the bytes; an error mid-stream keeps the journal so the next
    /// attempt resumes.
    fn open_at(&mut self, index: usize, offset: u64) -> io::Result<Box<dyn Read + '_>>;

    /// The whole payload for positioned reads when it is already stored
    /// locally (bundle file or directory). Deltas need positioned reads: a
    /// source without this has its patch copied to `state_dir` first.
    fn local(&self, _index: usize) -> Option<&dyn ReadAt> {
        None
    }
}

/// The payloads of a bundle file or directory.
pub struct BundlePayloads {
    sources: Vec<PayloadSource>,
}

impl BundlePayloads {
    /// Opens every payload of `bundle` (checking each length).
    pub fn new(bundle: &Bundle) -> Result<BundlePayloads> {
        let sources = (0..bundle.manifest.images.len())
            .map(|i| bundle.payload(i))
            .collect::<Result<_>>()?;
        Ok(BundlePayloads { sources })
    }
}

/// A sequential reader over a [`ReadAt`] from a position.
pub struct AtReader<'a, R: ReadAt + ?Sized> {
    src: &'a R,
    pos: u64,
}

impl<'a, R: ReadAt + ?Sized> AtReader<'a, R> {
    /// Reads `src` from `pos`.
    pub fn new(src: &'a R, pos: u64) -> Self {
        AtReader { src, pos }
    }
}

impl<R: ReadAt + ?Sized> Read for AtReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Payloads for BundlePayloads {
    fn open_at(&mut self, index: usize, offset: u64) -> io::Result<Box<dyn Read + '_>> {
        let src = self
            .sources
            .get(index)
            .ok_or_else(|| io::Error::other(format!("no payload number {index}")))?;
        Ok(Box::new(AtReader::new(src, offset)))
    }
    fn local(&self, index: usize) -> Option<&dyn ReadAt> {
        self.sources.get(index).map(|s| s as &dyn ReadAt)
    }
}

/// A manifest whose signature verified and which this device accepts
/// (product, hardware, version, security version, expiry). The only input
/// the installer takes.
#[derive(Debug, Clone)]
pub struct Approved {
    manifest: Manifest,
    digest: Digest,
    warnings: Vec<String>,
}

impl Approved {
    /// Verifies `manifest_bytes` against `sig` with `keys`, then the device
    /// policy.
    pub fn new(
        manifest_bytes: &[u8],
        sig: &[u8],
        keys: &TrustedKeys,
        facts: &DeviceFacts,
    ) -> Result<Approved> {
        let (manifest, key) = bundle::verify_manifest(manifest_bytes, sig, keys)?;
        log::info!("manifest signed by {key}");
        Approved::checked(manifest, manifest_bytes, facts)
    }

    /// Applies the device policy to an opened (signature-verified) bundle.
    pub fn from_bundle(bundle: &Bundle, facts: &DeviceFacts) -> Result<Approved> {
        Approved::checked(bundle.manifest.clone(), &bundle.manifest_bytes, facts)
    }

    fn checked(manifest: Manifest, bytes: &[u8], facts: &DeviceFacts) -> Result<Approved> {
        let warnings = bundle::check_policy(&manifest, facts)?;
        Ok(Approved {
            manifest,
            digest: Digest::of(bytes),
            warnings,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the signed manifest bytes (the journal's key).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Policy warnings (e.g. an unset clock) to show.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Tuning.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bytes between checkpoints (fsync + journal record).
    pub checkpoint: u64,
    /// Bytes per write to flash.
    pub chunk: usize,
}

impl Default for Options {
    fn default() -> Self {
        // Chosen by scripts/bench-install (docs/benchmarks.md).
        Options {
            checkpoint: 8 << 20,
            chunk: 256 << 10,
        }
    }
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The slot written and activated.
    pub slot: Slot,
    /// The version installed.
    pub version: semver::Version,
    /// `(image index, byte offset)` the install resumed from, if it did.
    pub resumed: Option<(usize, u64)>,
}

/// A pending raise of the stored minimum security version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSecurity {
    /// Format of this record.
    pub version: u32,
    /// The slot that must be confirmed.
    pub slot: Slot,
    /// The value to store then.
    pub security_version: u32,
    /// The release installed there.
    pub release: String,
}

/// Called after `mark-good` confirmed `booted`: when the pending record is
/// for that slot, raises the stored minimum security version and removes the
/// record. Returns the value stored.
pub fn confirm_security_version(state_dir: &Path, booted: Slot) -> Result<Option<u32>> {
    let path = state_dir.join(PENDING_SECURITY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let p: PendingSecurity = serde_json::from_str(&text).map_err(|e| Error::State {
        path: path.clone(),
        reason: format!("corrupt record: {e}"),
    })?;
    if p.slot != booted {
        return Ok(None);
    }
    bundle::store_min_security_version(state_dir, p.security_version)?;
    remove_if_present(&path)?;
    Ok(Some(p.security_version))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn refuse(img: &Image, reason: String) -> Error {
    BundleError::Payload {
        file: img.file.clone(),
        reason,
    }
    .into()
}

fn slot_err(reason: String) -> Error {
    Error::Slot(reason)
}

/// Where a verified delta patch is.
enum PatchAt {
    Local,
    File(PathBuf),
}

/// The installer over one disk, layout and boot control.
pub struct Installer<'a, D: Disk + ?Sized> {
    disk: &'a D,
    layout: &'a Layout,
    bootctl: &'a mut dyn BootControl,
    state_dir: PathBuf,
    progress: &'a mut dyn Progress,
    options: Options,
}

/// Progress and journal bookkeeping of one run.
struct Run<'p> {
    progress: &'p mut dyn Progress,
    journal: Journal,
}

impl Run<'_> {
    /// A phase begins on `image` (empty: none) with `total` bytes (if
    /// any); the whole update stands at `overall` bytes.
    fn phase(&mut self, phase: Phase, image: &str, total: Option<u64>, overall: u64) {
        let image = (!image.is_empty()).then_some(image);
        self.progress.begin(phase, image, total);
        self.progress.advance(0, overall);
    }
}

impl<'a, D: Disk + ?Sized> Installer<'a, D> {
    /// An installer writing the slot that is not `bootctl.booted_slot()`.
    pub fn new(
        disk: &'a D,
        layout: &'a Layout,
        bootctl: &'a mut dyn BootControl,
        state_dir: &Path,
        progress: &'a mut dyn Progress,
    ) -> Self {
        Installer {
            disk,
            layout,
            bootctl,
            state_dir: state_dir.to_owned(),
            progress,
            options: Options::default(),
        }
    }

    /// Replaces the tuning.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Installs `approved` into the inactive slot and activates it.
    ///
    /// On error: before the first write nothing changed; after it the
    /// inactive slot stays marked unbootable and is never activated; the
    /// booted slot is never written. An I/O error keeps the journal (the next
    /// call resumes); a content error (hash, size, patch) clears it.
    pub fn install(&mut self, approved: &Approved, payloads: &mut dyn Payloads) -> Result<Outcome> {
        let booted = self.bootctl.booted_slot();
        let m = approved.manifest();
        let total = m
            .images
            .iter()
            .try_fold(0u64, |t, i| t.checked_add(i.result.size))
            .ok_or_else(|| Error::Usage("image sizes overflow".into()))?;
        let journal = Journal::new(&self.state_dir);
        // Split borrows: the run bookkeeping holds the progress sink.
        let progress: &mut dyn Progress = &mut *self.progress;
        progress.target(&m.version.to_string(), Some(booted.other()), Some(total));
        let mut run = Run { progress, journal };
        let result = Self::run(
            self.disk,
            self.layout,
            &mut *self.bootctl,
            &self.state_dir,
            self.options,
            &mut run,
            approved,
            payloads,
        );
        if let Err(e) = &result {
            if matches!(e, Error::Bundle(_)) {
                // Content errors: a resume would only repeat them.
                if let Err(j) = run.journal.clear() {
                    log::warn!("{j}");
                }
            }
            run.progress.fail(&e.to_string());
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        disk: &D,
        layout: &Layout,
        bootctl: &mut dyn BootControl,
        state_dir: &Path,
        options: Options,
        run: &mut Run<'_>,
        approved: &Approved,
        payloads: &mut dyn Payloads,
    ) -> Result<Outcome> {
        let m = approved.manifest();
        let booted = bootctl.booted_slot();
        let target = booted.other();
        run.phase(Phase::Verifying, "", None, 0);

        // 1. The layout: every target partition exists and is large enough.
        for img in &m.images {
            let part = layout.partition(&img.name, target).ok_or_else(|| {
                slot_err(format!(
                    "image {}: the inactive slot {target} has no partition `{}{}`",
                    img.name,
                    img.name,
                    target.suffix()
                ))
            })?;
            if img.result.size > part.size {
                return Err(slot_err(format!(
                    "image {}: {} bytes do not fit partition `{}` of {} bytes",
                    img.name, img.result.size, part.name, part.size
                )));
            }
            // Fails early on a layout where the target overlaps the booted slot.
            SlotWriter::for_inactive(disk, layout, booted, &img.name)?;
            if let Kind::Bsdiff { base } = img.kind {
                let bp = layout.partition(&img.name, booted).ok_or_else(|| {
                    slot_err(format!(
                        "image {}: no base partition in slot {booted}",
                        img.name
                    ))
                })?;
                if base.size > bp.size {
                    return Err(BundleError::Base {
                        name: img.name.clone(),
                        reason: format!(
                            "base is {} bytes, partition `{}` holds {}",
                            base.size, bp.name, bp.size
                        ),
                    }
                    .into());
                }
            }
        }

        // 2. The journal: resume only the same manifest into the same slot.
        let tag = approved.digest().to_string();
        let resume = match run.journal.load() {
            Some(r) if r.manifest == approved.digest() && r.slot == target => {
                let n = m.images.len() as u16;
                if r.image > n
                    || (r.image == n && r.phase == journal::Phase::Writing && r.offset > 0)
                {
                    log::warn!("install journal points past the last image; starting over");
                    None
                } else {
                    Some(r)
                }
            }
            Some(r) => {
                log::warn!(
                    "install journal is for manifest {} into slot {}, not this one; discarded",
                    r.manifest,
                    r.slot
                );
                run.journal.clear()?;
                None
            }
            None => None,
        };
        remove_stale_patches(state_dir, &tag[..16]);
        let (first, mut start) = match &resume {
            Some(r) if r.phase == journal::Phase::Written => (m.images.len(), None),
            Some(r) => (
                usize::from(r.image),
                Some((r.offset, r.payload_offset, r.prefix)),
            ),
            None => (0, None),
        };

        // 3. Deltas: the base must be the booted slot's image, the patch
        //    complete and intact — all before anything changes.
        let mut patches: Vec<Option<PatchAt>> = Vec::new();
        for (i, img) in m.images.iter().enumerate() {
            let Kind::Bsdiff { base } = img.kind else {
                patches.push(None);
                continue;
            };
            if i < first {
                patches.push(None);
                continue;
            }
            let mut reader = SlotReader::open(disk, layout, booted, &img.name)?;
            bundle::check_base(&img.name, base, &mut reader)?;
            patches.push(Some(fetch_patch(
                state_dir,
                &tag[..16],
                i,
                img,
                payloads,
                run,
                m.images[..first].iter().map(|i| i.result.size).sum(),
            )?));
        }

        // 4. From here on the inactive slot changes: mark it unbootable
        //    first (refused, with nothing changed, while the booted slot is
        //    itself unconfirmed), then the write marker.
        bootctl.mark_unbootable(target)?;
        let pending = state_dir.join(PENDING_SECURITY_FILE);
        remove_if_present(&pending)?;
        let state = StateDir::new(state_dir);
        state.begin_write(target)?;

        let mut done: u64 = m.images[..first].iter().map(|i| i.result.size).sum();
        let resumed = resume.map(|r| (usize::from(r.image), r.offset));
        for (i, img) in m.images.iter().enumerate().skip(first) {
            let writer = SlotWriter::for_inactive(disk, layout, booted, &img.name)?;
            let from = start.take();
            let record = |offset: u64, prefix: Digest| Record {
                manifest: approved.digest(),
                slot: target,
                phase: journal::Phase::Writing,
                image: i as u16,
                offset,
                payload_offset: offset,
                prefix,
            };
            // A journal at this image's start, so a cut resumes here.
            if from.is_none() {
                run.journal.store(&record(0, Digest::of(b"")))?;
            }
            let ctx = ImageCtx {
                index: i,
                img,
                done_before: done,
                options,
                approved,
                target,
            };
            match img.kind {
                Kind::Full => write_full(&ctx, &writer, from, payloads, run)?,
                Kind::Bsdiff { .. } => {
                    let reader = SlotReader::open(disk, layout, booted, &img.name)?;
                    let patch: &dyn ReadAt;
                    let file;
                    match patches.get(i).and_then(|p| p.as_ref()) {
                        Some(PatchAt::File(path)) => {
                            file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                            patch = &file;
                        }
                        _ => {
                            patch = payloads.local(i).ok_or_else(|| {
                                refuse(img, "the patch is no longer available".into())
                            })?;
                        }
                    }
                    write_delta(&ctx, &writer, reader, patch, run)?;
                }
            }
            check_on_flash(&ctx, &writer, run)?;
            done += img.result.size;
            run.journal.store(&Record {
                image: (i + 1) as u16,
                ..record(0, Digest::of(b""))
            })?;
        }
        if first == m.images.len() {
            // Resumed after "written": check again what is on flash.
            for (i, img) in m.images.iter().enumerate() {
                let writer = SlotWriter::for_inactive(disk, layout, booted, &img.name)?;
                let ctx = ImageCtx {
                    index: i,
                    img,
                    done_before: 0,
                    options,
                    approved,
                    target,
                };
                check_on_flash(&ctx, &writer, run)?;
            }
        }
        run.journal.store(&Record {
            manifest: approved.digest(),
            slot: target,
            phase: journal::Phase::Written,
            image: m.images.len() as u16,
            offset: 0,
            payload_offset: 0,
            prefix: Digest::of(b""),
        })?;

        // 5. Activate: the marker goes first (set_active refuses a slot that
        //    is being written), the security version waits for mark-good.
        run.phase(Phase::Activating, "", None, done);
        state.end_write(target)?;
        let p = PendingSecurity {
            version: 1,
            slot: target,
            security_version: m.security_version,
            release: m.version.to_string(),
        };
        let text = serde_json::to_string(&p).map_err(|e| Error::State {
            path: pending.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&pending, text.as_bytes())?;
        bootctl.set_active(target)?;
        run.journal.clear()?;
        remove_stale_patches(state_dir, "");
        run.phase(Phase::Installed, "", None, done);
        Ok(Outcome {
            slot: target,
            version: m.version.clone(),
            resumed,
        })
    }
}

struct ImageCtx<'m> {
    index: usize,
    img: &'m Image,
    done_before: u64,
    options: Options,
    approved: &'m Approved,
    target: Slot,
}

fn patch_path(state_dir: &Path, tag: &str, index: usize) -> PathBuf {
    state_dir.join(format!("delta-{tag}-{index}.bsdiff"))
}

/// Removes kept delta patches not belonging to manifest `tag` (all when
/// `tag` is empty).
fn remove_stale_patches(state_dir: &Path, tag: &str) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = !tag.is_empty() && name.starts_with(&format!("delta-{tag}-"));
        if name.starts_with("delta-") && name.ends_with(".bsdiff") && !ours {
            if let Err(err) = std::fs::remove_file(e.path()) {
                log::warn!("{}: {err}", e.path().display());
            }
        }
    }
}

/// Makes the patch of image `index` available for positioned reads and
/// checks its size and SHA-256: the local payload, or a copy in `state_dir`
/// (resumed by its length; kept across restarts until the install ends).
fn fetch_patch(
    state_dir: &Path,
    tag: &str,
    index: usize,
    img: &Image,
    payloads: &mut dyn Payloads,
    run: &mut Run<'_>,
    overall: u64,
) -> Result<PatchAt> {
    let check = |src: &dyn ReadAt| -> Result<()> {
        let got = bundle::hash_reader(AtReader::new(src, 0))
            .map_err(|e| refuse(img, format!("reading the patch: {e}")))?;
        check_blob(img, "patch", got, img.payload)
    };
    if let Some(local) = payloads.local(index) {
        check(local)?;
        let h = bsdiff::read_header(local).map_err(BundleError::from)?;
        if h.new_size != img.result.size {
            return Err(refuse(
                img,
                format!(
                    "patch makes {} bytes, manifest result_size is {}",
                    h.new_size, img.result.size
                ),
            ));
        }
        return Ok(PatchAt::Local);
    }
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io(state_dir, e))?;
    let path = patch_path(state_dir, tag, index);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let mut have = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    if have > img.payload.size {
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        have = 0;
    }
    if have < img.payload.size {
        let want = img.payload.size - have;
        run.phase(
            Phase::Downloading,
            &img.name,
            Some(img.payload.size),
            overall,
        );
        run.progress.advance(have, overall);
        let src = payloads
            .open_at(index, have)
            .map_err(|e| refuse(img, format!("opening the patch at {have}: {e}")))?;
        let got = copy_counted(src.take(want), &mut file, &mut |n| {
            run.progress.advance(have + n, overall)
        })
        .map_err(|e| refuse_io(img, "downloading the patch", e))?;
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        if got < want {
            return Err(Error::io(
                &path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "patch source ended at {} of {} bytes",
                        have + got,
                        img.payload.size
                    ),
                ),
            ));
        }
    }
    if let Err(e) = check(&file) {
        // A wrong copy is useless: the next attempt downloads it again.
        remove_if_present(&path)?;
        return Err(e);
    }
    Ok(PatchAt::File(path))
}

/// `io::copy` that reports the bytes copied so far after every chunk.
fn copy_counted(
    mut src: impl Read,
    dst: &mut impl Write,
    report: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0u64;
    loop {
        let got = match src.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..got])?;
        n += got as u64;
        report(n);
    }
}

fn refuse_io(img: &Image, what: &str, e: io::Error) -> Error {
    // Keep I/O errors as I/O (resumable); decoder/data errors are content.
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            refuse(img, format!("{what}: {e}"))
        }
        _ => Error::io(format!("image {} payload {}", img.name, img.file), e),
    }
}

fn check_blob(img: &Image, what: &str, got: Blob, want: Blob) -> Result<()> {
    if got.size != want.size {
        return Err(refuse(
            img,
            format!(
                "{what} is {} bytes, the manifest says {}",
                got.size, want.size
            ),
        ));
    }
    if got.sha256 != want.sha256 {
        return Err(refuse(
            img,
            format!(
                "{what} SHA-256 {} does not match the manifest's {}",
                got.sha256, want.sha256
            ),
        ));
    }
    Ok(())
}

/// Hashes everything read through it (the payload under a decoder).
struct Tally<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
    /// The source itself failed (I/O, resumable), not the data.
    source_failed: bool,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.source_failed = true)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Where a [`Sink`] may put durable restart points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkpoints {
    /// None: progress reports only (deltas restart from byte 0).
    Progress,
    /// At any output offset (uncompressed payload: payload offset = image offset).
    Anywhere,
    /// Only where a bzip2 stream ends ([`Sink::stream_end`]).
    StreamEnds,
}

/// Sequential, buffered, bounded writes into the slot with an inline hash
/// and periodic checkpoints (fsync + journal).
struct Sink<'w, 'd, 'r, 'p, D: Disk + ?Sized> {
    writer: &'w SlotWriter<'d, D>,
    buf: Vec<u8>,
    /// Bytes of the image already handed to the disk.
    pos: u64,
    hasher: sha2::Sha256,
    limit: u64,
    next_checkpoint: u64,
    checkpoints: Checkpoints,
    /// Writing or syncing the flash failed (I/O, resumable).
    flash_failed: bool,
    ctx: &'w ImageCtx<'w>,
    run: &'r mut Run<'p>,
}

impl<D: Disk + ?Sized> Sink<'_, '_, '_, '_, D> {
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.writer
            .write_at(&self.buf, self.pos)
            .inspect_err(|_| self.flash_failed = true)?;
        self.hasher.update(&self.buf);
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        self.run
            .progress
            .advance(self.pos, self.ctx.done_before + self.pos);
        if self.pos >= self.next_checkpoint {
            match self.checkpoints {
                Checkpoints::Progress => self.checkpoint(None)?,
                Checkpoints::Anywhere => self.checkpoint(Some(self.pos))?,
                // Mid-stream, a bzip2 decoder cannot be restarted: wait for
                // `stream_end`.
                Checkpoints::StreamEnds => {}
            }
        }
        Ok(())
    }

    /// A bzip2 stream ended with the payload read up to `payload_pos`: a
    /// place where a later run can start decoding again.
    fn stream_end(&mut self, payload_pos: u64) -> io::Result<()> {
        self.flush_buf()?;
        if self.pos >= self.next_checkpoint {
            self.checkpoint(Some(payload_pos))?;
        }
        Ok(())
    }

    /// Progress, and with `payload_pos` a durable restart point: fsync +
    /// journal (image offset `pos`, payload offset `payload_pos`).
    fn checkpoint(&mut self, payload_pos: Option<u64>) -> io::Result<()> {
        self.next_checkpoint = self.pos + self.ctx.options.checkpoint;
        // A delta restarts from its first byte, so its checkpoints need no
        // fsync: the kernel writes back in the background while the patch
        // is applied, and `finish` syncs once (measured: docs/benchmarks.md).
        if let Some(payload_offset) = payload_pos {
            self.writer
                .sync()
                .inspect_err(|_| self.flash_failed = true)?;
            let prefix = Digest(self.hasher.clone().finalize().into());
            self.run
                .journal
                .store(&Record {
                    manifest: self.ctx.approved.digest(),
                    slot: self.ctx.target,
                    phase: journal::Phase::Writing,
                    image: self.ctx.index as u16,
                    offset: self.pos,
                    payload_offset,
                    prefix,
                })
                .map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<Blob> {
        self.flush_buf()?;
        self.writer.sync()?;
        Ok(Blob {
            size: self.pos,
            sha256: Digest(self.hasher.finalize().into()),
        })
    }
}

impl<D: Disk + ?Sized> Write for Sink<'_, '_, '_, '_, D> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let written = self.pos + self.buf.len() as u64;
        if written + data.len() as u64 > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the payload produces more than result_size {} bytes",
                    self.limit
                ),
            ));
        }
        let cap = self.ctx.options.chunk.max(4096);
        let n = data.len().min(cap - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == cap {
            self.flush_buf()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Re-hashes the first `len` bytes of the target partition.
fn hash_prefix<D: Disk + ?Sized>(
    writer: &SlotWriter<'_, D>,
    len: u64,
    report: &mut dyn FnMut(u64),
) -> io::Result<(sha2::Sha256, u64)> {
    let mut hasher = sha2::Sha256::new();
    let mut r = writer.read_back(len).take(len);
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        n += got as u64;
        report(n);
    }
    Ok((hasher, n))
}

fn write_full<D: Disk + ?Sized>(
    ctx: &ImageCtx<'_>,
    writer: &SlotWriter<'_, D>,
    from: Option<(u64, u64, Digest)>,
    payloads: &mut dyn Payloads,
    run: &mut Run<'_>,
) -> Result<()> {
    let img = ctx.img;
    let bzip2 = img.compression == Compression::Bzip2;
    // Resume: the prefix on flash must still hash to what was written, and
    // the payload must be re-entered where that prefix ends (for bzip2 a
    // stream start; a journal without one restarts the image).
    let mut hasher = sha2::Sha256::new();
    let (mut offset, mut payload_start) = (0u64, 0u64);
    let usable = |&(o, p, _): &(u64, u64, Digest)| {
        o > 0
            && o <= img.result.size
            && if bzip2 {
                p > 0 && p <= img.payload.size
            } else {
                p == o
            }
    };
    if let Some((off, poff, prefix)) = from.filter(usable) {
        let (h, n) = hash_prefix(writer, off, &mut |_| {})
            .map_err(|e| Error::io(writer.partition().name.clone(), e))?;
        if n == off && Digest(h.clone().finalize().into()) == prefix {
            log::info!(
                "resuming image {} at byte {off} of {} from payload byte {poff} (prefix verified on flash)",
                img.name,
                img.result.size
            );
            hasher = h;
            offset = off;
            payload_start = poff;
        } else {
            log::warn!(
                "image {}: the journal's first {off} bytes do not match flash; writing from the start",
                img.name
            );
        }
    }
    // Streamed from the server, the download is what the user waits for;
    // from a local bundle, the flash.
    let phase = if payloads.local(ctx.index).is_some() {
        Phase::Writing
    } else {
        Phase::Downloading
    };
    run.phase(
        phase,
        &img.name,
        Some(img.result.size),
        ctx.done_before + offset,
    );
    run.progress.advance(offset, ctx.done_before + offset);
    let mut sink = Sink {
        writer,
        buf: Vec::with_capacity(ctx.options.chunk.max(4096)),
        pos: offset,
        hasher,
        limit: img.result.size,
        next_checkpoint: offset + ctx.options.checkpoint,
        checkpoints: if bzip2 {
            Checkpoints::StreamEnds
        } else {
            Checkpoints::Anywhere
        },
        flash_failed: false,
        ctx,
        run,
    };
    let payload_left = img.payload.size;
    let got = match img.compression {
        Compression::None => {
            let src = payloads
                .open_at(ctx.index, offset)
                .map_err(|e| refuse_io(img, "opening the payload", e))?;
            io::copy(&mut src.take(payload_left - offset + 1), &mut sink)
                .map_err(|e| refuse_io(img, "writing", e))?;
            sink.finish().map_err(|e| refuse_io(img, "writing", e))?
        }
        Compression::Bzip2 => {
            let src = payloads
                .open_at(ctx.index, payload_start)
                .map_err(|e| refuse_io(img, "opening the payload", e))?;
            let tally = Tally {
                inner: src.take(payload_left - payload_start + 1),
                hasher: sha2::Sha256::new(),
                count: payload_start,
                source_failed: false,
            };
            // Data errors are content errors whatever kind the decoder uses.
            let bz_err = |failed: bool, e: io::Error| {
                if failed {
                    refuse_io(img, "reading the payload", e)
                } else {
                    refuse(img, format!("bzip2: {e}"))
                }
            };
            // One bzip2 stream at a time (a payload may hold many, as
            // `ota-sign` and pbzip2 write them): a stream end is a byte
            // offset in the payload where decoding can start again, so a
            // checkpoint there lets a later run continue without fetching
            // the payload's beginning again.
            let mut input = io::BufReader::with_capacity(64 << 10, tally);
            loop {
                let at_end = match input.fill_buf() {
                    Ok(more) => more.is_empty(),
                    Err(e) => return Err(refuse_io(img, "reading the payload", e)),
                };
                if at_end {
                    break;
                }
                let mut dec = crate::bundle::bunzip::Decoder::new(&mut input);
                if let Err(e) = io::copy(&mut dec, &mut sink) {
                    // Sink errors (too much data, flash I/O) keep their kind.
                    let from_sink = sink.flash_failed
                        || (e.kind() == io::ErrorKind::InvalidData
                            && e.to_string().contains("result_size"));
                    if from_sink {
                        return Err(refuse_io(img, "writing", e));
                    }
                    return Err(bz_err(input.get_ref().source_failed, e));
                }
                let at = input.get_ref().count - input.buffer().len() as u64;
                sink.stream_end(at)
                    .map_err(|e| refuse_io(img, "writing", e))?;
            }
            let blob = sink.finish().map_err(|e| refuse_io(img, "writing", e))?;
            let tally = input.into_inner();
            if payload_start == 0 {
                check_blob(
                    img,
                    "payload",
                    Blob {
                        size: tally.count,
                        sha256: Digest(tally.hasher.finalize().into()),
                    },
                    img.payload,
                )?;
            } else if tally.count != img.payload.size {
                return Err(refuse(
                    img,
                    format!(
                        "payload is {} bytes, the manifest says {}",
                        tally.count, img.payload.size
                    ),
                ));
            }
            // A resumed payload's SHA-256 cannot be completed without its
            // first bytes; what counts is checked anyway: the decoded image
            // against the signed `result` hash, here and read back from flash.
            blob
        }
    };
    check_blob(img, "written image", got, img.result)
}

fn write_delta<D: Disk + ?Sized>(
    ctx: &ImageCtx<'_>,
    writer: &SlotWriter<'_, D>,
    base: SlotReader<'_, D>,
    patch: &dyn ReadAt,
    run: &mut Run<'_>,
) -> Result<()> {
    let img = ctx.img;
    let Kind::Bsdiff { base: want } = img.kind else {
        return Err(refuse(img, "not a delta".into()));
    };
    run.phase(
        Phase::Writing,
        &img.name,
        Some(img.result.size),
        ctx.done_before,
    );
    let mut sink = Sink {
        writer,
        buf: Vec::with_capacity(ctx.options.chunk.max(4096)),
        pos: 0,
        hasher: sha2::Sha256::new(),
        limit: img.result.size,
        next_checkpoint: ctx.options.checkpoint,
        // A delta restarts from its first byte: no offsets in the journal.
        checkpoints: Checkpoints::Progress,
        flash_failed: false,
        ctx,
        run,
    };
    let mut old = bsdiff::Window::new(base, want.size);
    bsdiff::apply(patch, &mut old, &mut sink).map_err(BundleError::from)?;
    let got = sink.finish().map_err(|e| refuse_io(img, "writing", e))?;
    check_blob(img, "patched image", got, img.result)
}

/// fsync, drop the cache, read the image back from flash and compare.
fn check_on_flash<D: Disk + ?Sized>(
    ctx: &ImageCtx<'_>,
    writer: &SlotWriter<'_, D>,
    run: &mut Run<'_>,
) -> Result<()> {
    let img = ctx.img;
    writer
        .sync()
        .map_err(|e| Error::io(writer.partition().name.clone(), e))?;
    let overall = ctx.done_before + img.result.size;
    run.phase(
        Phase::ReadingBack,
        &img.name,
        Some(img.result.size),
        overall,
    );
    let (h, n) = hash_prefix(writer, img.result.size, &mut |n| {
        run.progress.advance(n, overall)
    })
    .map_err(|e| Error::io(writer.partition().name.clone(), e))?;
    check_blob(
        img,
        &format!("image read back from `{}`", writer.partition().name),
        Blob {
            size: n,
            sha256: Digest(h.finalize().into()),
        },
        img.result,
    )
}
