//! The installer: writes a verified bundle into the *inactive* slot, checks
//! it on flash, and switches the boot target — resumable after a power cut.
//!
//! ```text
//!  Approved (signature + device policy checked)      Payloads (bundle file/dir,
//!        │                                            HTTP: open_at(index, offset))
//!        ▼                                                   │
//!  refusals: env contract; partitions exist in the inactive slot, are large
//!             enough, inside the GPT's usable area, overlap no partition, env
//!             copy or bootctrl block; payloads regular files; local payloads
//!             hashed; state_dir space; delta base = booted slot (size +
//!             SHA-256); patch complete + hashed
//!        │            (nothing has changed on the device up to here)
//!        ▼
//!  mark_unbootable(inactive) ─► writing-<slot> marker ─► journal
//!        ▼
//!  per image: stream ─► bzip2 / bspatch ─► SlotWriter (inactive only)
//!             checkpoint every 4 MiB or 2 s: fsync, journal {image, offset,
//!             prefix SHA-256} (two alternating records, durable.rs)
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
//! download never fetches what is already on flash; delta patches are
//! downloaded to `state_dir` once, resumed by file length, then decoded
//! from the start and written from the last checkpoint on).
//!
//! Phases, one file each: `source.rs` (payloads, kept patches),
//! `decode.rs` (none / bzip2 / BSDIFF40), `write.rs` (the checkpointing
//! writer), `readback.rs`, `activate.rs`; refusals in `check_layout` and
//! `precheck.rs`; `state_dir` names in `files.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bootctl::BootControl;
use crate::bundle::bsdiff::ReadAt;
use crate::bundle::{self, Digest, Kind};
use crate::slots::{Layout, Slot};
use crate::state::StateDir;
use crate::{Error, Result};

mod activate;
mod approved;
mod decode;
mod error;
pub mod files;
pub mod journal;
mod precheck;
mod progress;
mod readback;
mod resume;
mod source;
pub mod storage;
mod write;

/// Progress goes to `update_status` (the one status document); re-exported
/// for callers of the installer.
pub use crate::update_status::{NoProgress, Progress};
pub use activate::{confirm_security_version, PendingSecurity};
pub use approved::Approved;
pub use error::InstallError;
pub use source::{AtReader, BundlePayloads, Payloads};
pub use storage::{Disk, FileDisk, SlotReader, SlotWriter};

use error::refuse;
use journal::{Journal, Record};
use progress::Bookkeeping;
use resume::Start;
use source::PatchLocation;
use write::ImageJob;

use crate::update_status::Phase;

/// The file in `state_dir` holding the security version to store once the
/// new slot is confirmed (`mark-good`).
pub const PENDING_SECURITY_FILE: &str = files::PENDING_SECURITY;

/// Tuning.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most bytes between checkpoints (fsync + journal record): the most
    /// writing a power cut can cost (bzip2: plus one stream, as checkpoints
    /// wait for a stream end).
    pub checkpoint: u64,
    /// Most time between checkpoints while bytes are written (a slow
    /// download loses at most this much of it).
    pub checkpoint_time: Duration,
    /// Bytes per write to flash.
    pub chunk: usize,
}

impl Default for Options {
    fn default() -> Self {
        // docs/install.md "Checkpoints"; cost: docs/benchmarks.md.
        Options {
            checkpoint: 4 << 20,
            checkpoint_time: Duration::from_secs(2),
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

/// The installer over one disk, layout and boot control.
pub struct Installer<'a, D: Disk + ?Sized> {
    disk: &'a D,
    layout: &'a Layout,
    bootctl: &'a mut dyn BootControl,
    state_dir: PathBuf,
    progress: &'a mut dyn Progress,
    options: Options,
    journal: Option<Journal>,
    before_activate: Option<&'a mut dyn FnMut() -> Result<()>>,
}

impl<'a, D: Disk + ?Sized> Installer<'a, D> {
    /// Asks `gate` once every image is written and read back, before the
    /// activation; its error stops the install there (the journal says
    /// "written", so the next install of the same manifest only reads the
    /// slot back before it asks again). The update policy (docs/policy.md).
    pub fn before_activate(mut self, gate: &'a mut dyn FnMut() -> Result<()>) -> Self {
        self.before_activate = Some(gate);
        self
    }

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
            journal: None,
            before_activate: None,
        }
    }

    /// Keeps the journal on `medium` instead of the real filesystem (the
    /// power-cut harness cuts inside checkpoint writes this way).
    pub fn with_journal_medium(mut self, medium: std::rc::Rc<dyn crate::durable::Medium>) -> Self {
        self.journal = Some(Journal::with_medium(&self.state_dir, medium));
        self
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
        self.progress
            .target(&m.version.to_string(), Some(booted.other()), Some(total));
        let mut session = Session {
            disk: self.disk,
            layout: self.layout,
            bootctl: &mut *self.bootctl,
            state_dir: &self.state_dir,
            options: self.options,
            approved,
            booted,
            target: booted.other(),
            before_activate: match &mut self.before_activate {
                Some(g) => Some(&mut **g),
                None => None,
            },
            books: Bookkeeping {
                progress: &mut *self.progress,
                journal: self
                    .journal
                    .clone()
                    .unwrap_or_else(|| Journal::new(&self.state_dir)),
                stopped: None,
            },
        };
        let mut result = session.run(payloads);
        // Stopped by the progress (a local cancel): that is the reason,
        // not the I/O error it left on the way out.
        if let (Err(_), Some(e)) = (&result, session.books.stopped.take()) {
            result = Err(e);
        }
        if let Some(e) = result
            .as_ref()
            .err()
            .filter(|e| !matches!(e, Error::Deferred { .. } | Error::Refused(_)))
        {
            if matches!(e, Error::Bundle(_) | Error::Cancelled) {
                // Content errors: a resume would only repeat them. A
                // cancelled install is abandoned: the next one starts over.
                if let Err(j) = session.books.journal.clear() {
                    log::warn!("{j}");
                }
            }
            session.books.progress.fail(&e.to_string());
        }
        result
    }
}

/// One call of [`Installer::install`]: everything its phases share.
struct Session<'s, 'p, D: Disk + ?Sized> {
    disk: &'s D,
    layout: &'s Layout,
    bootctl: &'s mut dyn BootControl,
    state_dir: &'s Path,
    options: Options,
    approved: &'s Approved,
    booted: Slot,
    target: Slot,
    before_activate: Option<&'s mut dyn FnMut() -> Result<()>>,
    books: Bookkeeping<'p>,
}

impl<'s, D: Disk + ?Sized> Session<'s, '_, D> {
    fn run(&mut self, payloads: &mut dyn Payloads) -> Result<Outcome> {
        let m = self.approved.manifest();
        self.books.phase(Phase::Verifying, "", None, 0);
        // Refusals first: nothing on the device changes before all pass.
        self.bootctl.check_ready()?;
        precheck::layout(
            self.disk,
            self.layout,
            self.booted,
            &self.bootctl.storage(),
            m,
        )?;
        let start = resume::start_point(&self.books.journal, self.approved, self.target);
        precheck::free_space(self.state_dir, m, start.first, payloads)?;
        precheck::hash_local_payloads(m, start.first, payloads)?;
        let tag = self.approved.digest().to_string();
        source::remove_stale_patches(self.state_dir, &tag[..16]);
        let patches = self.prepare_patches(&tag[..16], start.first, payloads)?;

        // From here on the inactive slot changes: mark it unbootable first
        // (refused, with nothing changed, while the booted slot is itself
        // unconfirmed), then the write marker.
        self.bootctl.mark_unbootable(self.target)?;
        activate::drop_pending_security(self.state_dir)?;
        StateDir::new(self.state_dir).begin_write(self.target)?;

        let done = self.write_images(&start, &patches, payloads)?;
        if start.first == m.images.len() {
            // Resumed after "written": check again what is on flash.
            self.verify_all()?;
        }
        self.books.journal.store(&Record {
            phase: journal::Phase::Written,
            image: m.images.len() as u16,
            ..self.record(0, 0)
        })?;

        // The last point a local suspend or cancel takes effect (a cancel
        // that came during the read-back stops the install here).
        self.books.progress.go_on()?;
        if let Some(gate) = self.before_activate.as_mut() {
            gate()?;
        }
        self.books.phase(Phase::Activating, "", None, done);
        activate::activate(self.state_dir, &mut *self.bootctl, self.target, m)?;
        self.books.journal.clear()?;
        source::remove_stale_patches(self.state_dir, "");
        self.books.phase(Phase::Installed, "", None, done);
        Ok(Outcome {
            slot: self.target,
            version: m.version.clone(),
            resumed: start.record.map(|r| (usize::from(r.image), r.offset)),
        })
    }

    /// A "writing" journal record of the current manifest and target.
    fn record(&self, image: usize, offset: u64) -> Record {
        Record {
            manifest: self.approved.digest(),
            slot: self.target,
            phase: journal::Phase::Writing,
            image: image as u16,
            offset,
            payload_offset: offset,
            prefix: Digest::of(b""),
        }
    }

    /// Deltas: the base must be the booted slot's image, the patch complete
    /// and intact — all before anything changes.
    fn prepare_patches(
        &mut self,
        tag: &str,
        first: usize,
        payloads: &mut dyn Payloads,
    ) -> Result<Vec<Option<PatchLocation>>> {
        let m = self.approved.manifest();
        let before: u64 = m.images[..first].iter().map(|i| i.result.size).sum();
        let mut patches = Vec::new();
        for (i, img) in m.images.iter().enumerate() {
            let Kind::Bsdiff { base } = img.kind else {
                patches.push(None);
                continue;
            };
            if i < first {
                patches.push(None);
                continue;
            }
            let mut reader = SlotReader::open(self.disk, self.layout, self.booted, &img.name)?;
            bundle::check_base(&img.name, base, &mut reader)?;
            patches.push(Some(source::fetch_patch(
                self.state_dir,
                tag,
                i,
                img,
                payloads,
                &mut self.books,
                before,
            )?));
        }
        Ok(patches)
    }

    /// Writes and reads back every image from `start`; returns the bytes of
    /// all images done.
    fn write_images(
        &mut self,
        start: &Start,
        patches: &[Option<PatchLocation>],
        payloads: &mut dyn Payloads,
    ) -> Result<u64> {
        let m = self.approved.manifest();
        let mut done: u64 = m.images[..start.first].iter().map(|i| i.result.size).sum();
        let mut within = start.within;
        for (i, img) in m.images.iter().enumerate().skip(start.first) {
            let writer = SlotWriter::for_inactive(self.disk, self.layout, self.booted, &img.name)?;
            let from = within.take();
            // A journal at this image's start, so a cut resumes here.
            if from.is_none() {
                self.books.journal.store(&self.record(i, 0))?;
            }
            let job = self.job(i, done);
            match img.kind {
                Kind::Full => decode::write_full(&job, &writer, from, payloads, &mut self.books)?,
                Kind::Bsdiff { .. } => {
                    let base = SlotReader::open(self.disk, self.layout, self.booted, &img.name)?;
                    let file;
                    let patch: &dyn ReadAt = match patches.get(i).and_then(|p| p.as_ref()) {
                        Some(PatchLocation::Kept(path)) => {
                            file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                            &file
                        }
                        _ => payloads.local(i).ok_or_else(|| {
                            refuse(img, "the patch is no longer available".into())
                        })?,
                    };
                    decode::write_delta(&job, &writer, base, patch, from, &mut self.books)?;
                }
            }
            readback::check_on_flash(&job, &writer, &mut self.books)?;
            done += img.result.size;
            self.books.journal.store(&self.record(i + 1, 0))?;
        }
        Ok(done)
    }

    /// Reads every image back (a resume after the journal said "written").
    fn verify_all(&mut self) -> Result<()> {
        for (i, img) in self.approved.manifest().images.iter().enumerate() {
            let writer = SlotWriter::for_inactive(self.disk, self.layout, self.booted, &img.name)?;
            let job = self.job(i, 0);
            readback::check_on_flash(&job, &writer, &mut self.books)?;
        }
        Ok(())
    }

    fn job(&self, index: usize, done_before: u64) -> ImageJob<'s> {
        let approved: &'s Approved = self.approved;
        ImageJob {
            index,
            img: &approved.manifest().images[index],
            done_before,
            options: self.options,
            approved,
            target: self.target,
        }
    }
}
