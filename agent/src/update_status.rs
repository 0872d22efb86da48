//! `state_dir/update-status.json`: the one machine-readable status of an
//! update, from the channel check to the reboot (schema and phases:
//! `docs/update-status.md`). `status --json` embeds it, the appliance
//! display is driven from the same phases, the terminal line is rendered
//! from the same document.
//!
//! The downloader (`net`) and the installer (`install`) report through the
//! [`Progress`] trait; [`StatusWriter`] is its one implementation that
//! writes the file: in place at a fixed size ([`FILE_LEN`] bytes, padded
//! with spaces; `durable::overwrite_fixed`), so the frequent rewrites
//! allocate nothing on a vfat `state_dir` (a rename per write left the FAT
//! inconsistent after a power cut, issue 15), at every phase change and at
//! most once a second in between. A cut mid-write may leave a torn
//! document: it fails to parse and counts as none. The document is parsed from bytes
//! ([`parse`]); only [`read`] and the writer touch the file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// `done` of `total` as a percentage 0..=100 (the display's helper).
pub use crate::mcu::display::percent;
use crate::slots::Slot;
use crate::state::StateDir;
use crate::{Error, Result};

/// Version of the document; raised only on an incompatible change (readers
/// ignore fields they do not know, new fields may appear in format 1).
pub const FORMAT: u32 = 1;
/// Longest error text kept in the document (one line).
pub const MAX_ERROR_LEN: usize = 300;
/// Size of the file: the document, then spaces up to this size.
pub const FILE_LEN: usize = 4096;

/// What the update is doing. One set for download and install; each value
/// is something a UI can show as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Nothing to do: the last check found no update for this device.
    Idle,
    /// Reading the channel file (and the signed manifest).
    Checking,
    /// Bytes come from the server: a payload streamed straight into the
    /// inactive slot, a delta patch into `state_dir`, or (`update
    /// --download-only`) a payload into `state_dir/download`.
    Downloading,
    /// `update --download-only` finished: the release is staged and
    /// verified in `state_dir/download`, nothing is installed.
    Downloaded,
    /// Checking the manifest against the device: layout, delta bases,
    /// journal. Nothing on flash changes in this phase.
    Verifying,
    /// Writing the inactive slot from a local source (bundle file or
    /// directory, or a delta being applied).
    Writing,
    /// Reading the written image back from flash and hashing it.
    ReadingBack,
    /// Switching the boot target to the new slot.
    Activating,
    /// Installed and activated: the next boot tries it (reboot pending).
    Installed,
    /// The appliance agreed; the device reboots now.
    Rebooting,
    /// The update stopped with an error (`error` says why). The booted slot
    /// is unchanged; a written slot stays unbootable.
    Failed,
}

impl Phase {
    /// The name in the document (`reading-back`, …).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Checking => "checking",
            Phase::Downloading => "downloading",
            Phase::Downloaded => "downloaded",
            Phase::Verifying => "verifying",
            Phase::Writing => "writing",
            Phase::ReadingBack => "reading-back",
            Phase::Activating => "activating",
            Phase::Installed => "installed",
            Phase::Rebooting => "rebooting",
            Phase::Failed => "failed",
        }
    }

    /// The appliance display's phase (MCU command 0x02), or `None` for the
    /// phases before an update is known (nothing is shown then).
    pub fn mcu(self) -> Option<crate::mcu::Phase> {
        use crate::mcu::Phase as M;
        Some(match self {
            Phase::Idle | Phase::Checking => return None,
            Phase::Downloading | Phase::Downloaded => M::Downloading,
            Phase::Verifying | Phase::Writing | Phase::ReadingBack | Phase::Activating => {
                M::Installing
            }
            Phase::Installed => M::Done,
            Phase::Rebooting => M::Rebooting,
            Phase::Failed => M::Failed,
        })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The document. Field order is the order in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// [`FORMAT`].
    pub format: u32,
    /// What the update is doing.
    pub phase: Phase,
    /// The release being fetched or installed (`null` while checking/idle).
    pub version: Option<String>,
    /// The installed release when the run began (`VERSION_ID` of
    /// `version_file`), `null` if unreadable.
    pub from_version: Option<String>,
    /// The slot being written (`null` before the installer knows it, and
    /// for a download-only run).
    pub slot: Option<Slot>,
    /// The partition (without suffix) or payload file of the current phase.
    pub image: Option<String>,
    /// Bytes of the current phase done.
    pub phase_bytes_done: u64,
    /// Bytes of the current phase in total, when known.
    pub phase_bytes_total: Option<u64>,
    /// Bytes of the whole update done (installing: image bytes over all
    /// images; download-only: payload bytes over all payloads).
    pub bytes_done: u64,
    /// Bytes of the whole update, when known.
    pub bytes_total: Option<u64>,
    /// `phase_bytes_done` as a percentage of `phase_bytes_total`.
    pub percent: Option<u8>,
    /// Recent rate of the current phase, bytes per second, when measured.
    pub rate_bps: Option<u64>,
    /// Seconds left in the current phase at that rate, when known.
    pub eta_s: Option<u64>,
    /// Why the update failed (phase `failed`), one line.
    pub error: Option<String>,
    /// Seconds since the epoch when this document was written.
    pub time: u64,
}

impl UpdateStatus {
    /// An `idle` document.
    pub fn idle(from_version: Option<String>) -> UpdateStatus {
        UpdateStatus {
            format: FORMAT,
            phase: Phase::Idle,
            version: None,
            from_version,
            slot: None,
            image: None,
            phase_bytes_done: 0,
            phase_bytes_total: None,
            bytes_done: 0,
            bytes_total: None,
            percent: None,
            rate_bps: None,
            eta_s: None,
            error: None,
            time: 0,
        }
    }

    /// `bytes_done` as a percentage of `bytes_total`.
    pub fn overall_percent(&self) -> Option<u8> {
        self.bytes_total.map(|t| percent(self.bytes_done, t))
    }

    /// The percentage for the appliance display: the phase's own while
    /// downloading (a delta patch's download is not part of the image
    /// bytes), else the whole update's, so the bar does not restart at the
    /// read-back; 100 once installed or rebooting.
    pub fn display_percent(&self) -> u8 {
        match self.phase {
            Phase::Installed | Phase::Rebooting | Phase::Downloaded => 100,
            Phase::Downloading => self.percent.unwrap_or(0),
            _ => self.overall_percent().or(self.percent).unwrap_or(0),
        }
    }

    /// One line for people: `downloading 1.4.0 45% (12.3 MiB/27.0 MiB)`,
    /// `installed 1.4.0 in slot b`, `failed 1.4.0: <error>`.
    pub fn summary(&self) -> String {
        let mut out = self.phase.name().to_owned();
        if let Some(v) = &self.version {
            out.push(' ');
            out.push_str(v);
        }
        match self.phase {
            Phase::Installed | Phase::Rebooting => {
                if let Some(s) = self.slot {
                    out.push_str(&format!(" in slot {s}"));
                }
            }
            Phase::Failed => {
                if let Some(e) = &self.error {
                    out.push_str(": ");
                    out.push_str(e);
                }
            }
            _ => {
                if let (Some(p), Some(t)) = (self.percent, self.phase_bytes_total) {
                    out.push_str(&format!(
                        " {p}% ({}/{})",
                        human(self.phase_bytes_done),
                        human(t)
                    ));
                }
            }
        }
        out
    }
}

/// Parses a status document. Refused: not JSON, another `format`, an
/// unknown phase, a percentage over 100 or bytes past their total.
pub fn parse(bytes: &[u8]) -> std::result::Result<UpdateStatus, String> {
    // The format first, so a future format names itself instead of failing
    // on a field it changed.
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|e| format!("not a document: {e}"))?;
    if head.format != FORMAT {
        return Err(format!(
            "format {} is not supported (expected {FORMAT})",
            head.format
        ));
    }
    let doc: UpdateStatus = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if doc.percent.is_some_and(|p| p > 100) {
        return Err("percent is over 100".into());
    }
    let past = |done: u64, total: Option<u64>| total.is_some_and(|t| done > t);
    if past(doc.phase_bytes_done, doc.phase_bytes_total) || past(doc.bytes_done, doc.bytes_total) {
        return Err("bytes done exceed their total".into());
    }
    Ok(doc)
}

/// The document as written (before padding): pretty-printed with a final
/// newline, or compact when that exceeds [`FILE_LEN`] (a long version or
/// error text); `Err` when even that does not fit.
pub fn encode(doc: &UpdateStatus) -> std::result::Result<Vec<u8>, String> {
    let mut text = serde_json::to_vec_pretty(doc).map_err(|e| e.to_string())?;
    text.push(b'\n');
    if text.len() > FILE_LEN {
        text = serde_json::to_vec(doc).map_err(|e| e.to_string())?;
        text.push(b'\n');
    }
    if text.len() > FILE_LEN {
        return Err(format!(
            "document of {} bytes exceeds {FILE_LEN}",
            text.len()
        ));
    }
    Ok(text)
}

/// Reads `state_dir`'s status file: `None` when there is none, an error
/// naming the file when it is unreadable or not a valid document (callers
/// such as `status` warn and show no update; nothing trusts it).
pub fn read(state: &StateDir) -> Result<Option<UpdateStatus>> {
    let path = state.update_status_path();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    parse(&bytes).map(Some).map_err(|reason| Error::State {
        path,
        reason: format!("corrupt update status: {reason}"),
    })
}

/// Receives the progress of one update run (download and install).
pub trait Progress {
    /// What the run is about: the target `version`, the `slot` being
    /// written (if known), the bytes of the whole update (if known).
    fn target(&mut self, version: &str, slot: Option<Slot>, total: Option<u64>);
    /// A phase begins (recorded at once): the `image` it processes and its
    /// `total` bytes, when known. `checking` and `idle` start a new run
    /// (target and counters cleared).
    fn begin(&mut self, phase: Phase, image: Option<&str>, total: Option<u64>);
    /// `done` bytes of the current phase, `overall` of the whole update
    /// (recorded at most once a second, and when the phase is complete).
    fn advance(&mut self, done: u64, overall: u64);
    /// The run failed with `error` (phase `failed`, recorded at once).
    fn fail(&mut self, error: &str);
    /// Asked between chunks of a download or write and before the
    /// activation: `Ok` to go on. It may block (a local `suspend`); an
    /// error stops the run there (a local `cancel`, docs/local-api.md).
    fn go_on(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Discards progress (tests, library use without a state directory).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn target(&mut self, _: &str, _: Option<Slot>, _: Option<u64>) {}
    fn begin(&mut self, _: Phase, _: Option<&str>, _: Option<u64>) {}
    fn advance(&mut self, _: u64, _: u64) {}
    fn fail(&mut self, _: &str) {}
}

/// Minimum time between two writes within a phase.
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// Time over which a rate is measured before it is reported.
const RATE_AFTER: Duration = Duration::from_secs(1);

/// Keeps the document of a run and writes it to `state_dir`.
#[derive(Debug)]
pub struct StatusWriter {
    path: Option<PathBuf>,
    doc: UpdateStatus,
    last_write: Option<Instant>,
    /// First progress of the current phase: when, and how many bytes.
    phase_first: Option<(Instant, u64)>,
    warned: bool,
}

impl StatusWriter {
    /// A writer of `state_dir/update-status.json` (the directory is created
    /// at the first write), starting `idle` with nothing written yet.
    pub fn new(state: &StateDir, from_version: Option<String>) -> StatusWriter {
        StatusWriter {
            path: Some(state.update_status_path()),
            doc: UpdateStatus::idle(from_version),
            last_write: None,
            phase_first: None,
            warned: false,
        }
    }

    /// A writer that continues the document already in `state_dir` (e.g.
    /// to record `rebooting` after an install); a fresh one when there is
    /// no valid document.
    pub fn resume(state: &StateDir, from_version: Option<String>) -> StatusWriter {
        let mut w = StatusWriter::new(state, from_version);
        match read(state) {
            Ok(Some(doc)) => w.doc = doc,
            Ok(None) => {}
            Err(e) => log::warn!("{e}; starting a new one"),
        }
        w
    }

    /// The document as last recorded (or about to be).
    pub fn doc(&self) -> &UpdateStatus {
        &self.doc
    }

    fn write(&mut self, now: Instant) {
        self.last_write = Some(now);
        self.doc.time = crate::state::now();
        let Some(path) = &self.path else { return };
        let r = encode(&self.doc)
            .map_err(|reason| Error::State {
                path: path.clone(),
                reason,
            })
            .and_then(|text| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                crate::durable::overwrite_fixed(path, &text, FILE_LEN)
            });
        // Bookkeeping for observers: it must not fail an update.
        match r {
            Ok(()) => self.warned = false,
            Err(e) if !self.warned => {
                log::warn!("update status: {e}");
                self.warned = true;
            }
            Err(e) => log::debug!("update status: {e}"),
        }
    }

    fn begin_at(&mut self, now: Instant, phase: Phase, image: Option<&str>, total: Option<u64>) {
        let d = &mut self.doc;
        if matches!(phase, Phase::Checking | Phase::Idle) {
            *d = UpdateStatus::idle(d.from_version.take());
        }
        d.phase = phase;
        d.image = image.map(str::to_owned);
        d.phase_bytes_done = 0;
        d.phase_bytes_total = total;
        d.percent = total.map(|t| percent(0, t));
        d.rate_bps = None;
        d.eta_s = None;
        d.error = None;
        self.phase_first = None;
        self.write(now);
    }

    /// Records progress at `now`; returns whether the file was written.
    fn advance_at(&mut self, now: Instant, done: u64, overall: u64) -> bool {
        let d = &mut self.doc;
        d.phase_bytes_done = done;
        d.bytes_done = overall;
        if let Some(t) = d.bytes_total {
            d.bytes_done = overall.min(t);
        }
        if let Some(t) = d.phase_bytes_total {
            d.phase_bytes_done = done.min(t);
        }
        d.percent = d.phase_bytes_total.map(|t| percent(done, t));
        let (t0, b0) = *self.phase_first.get_or_insert((now, done));
        let elapsed = now.saturating_duration_since(t0);
        if elapsed >= RATE_AFTER {
            let rate = (done.saturating_sub(b0) as f64 / elapsed.as_secs_f64()) as u64;
            d.rate_bps = Some(rate);
            d.eta_s = match (d.phase_bytes_total, rate) {
                (Some(t), r) if r > 0 => Some(t.saturating_sub(done).div_ceil(r)),
                _ => None,
            };
        }
        let complete = d.phase_bytes_total == Some(done);
        let due = self
            .last_write
            .is_none_or(|l| now.saturating_duration_since(l) >= WRITE_EVERY);
        if complete || due {
            self.write(now);
            return true;
        }
        false
    }
}

impl Progress for StatusWriter {
    fn target(&mut self, version: &str, slot: Option<Slot>, total: Option<u64>) {
        self.doc.version = Some(version.to_owned());
        self.doc.slot = slot;
        self.doc.bytes_total = total;
    }

    fn begin(&mut self, phase: Phase, image: Option<&str>, total: Option<u64>) {
        self.begin_at(Instant::now(), phase, image, total);
    }

    fn advance(&mut self, done: u64, overall: u64) {
        self.advance_at(Instant::now(), done, overall);
    }

    fn fail(&mut self, error: &str) {
        let mut line = error.lines().next().unwrap_or("").to_owned();
        if line.len() > MAX_ERROR_LEN {
            let mut cut = MAX_ERROR_LEN;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        self.doc.phase = Phase::Failed;
        self.doc.error = Some(line);
        self.doc.rate_bps = None;
        self.doc.eta_s = None;
        self.write(Instant::now());
    }
}

/// `1.5 MiB`-style sizes.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests;
