//! `state_dir`: every file the agent keeps across runs and reboots, named
//! here and nowhere else (the installer's journal, pending security version
//! and delta patches are still named in `install/`).
//!
//! | file | what it holds | written by |
//! | --- | --- | --- |
//! | `rollbacks.json` | the last [`MAX_ROLLBACKS`] rollbacks (when, from, to, why) | boot control |
//! | `activation.json` | the slot last activated and when (android rollback detection) | boot control |
//! | `writing-a`, `writing-b` | present while (or after an interrupted) write of that slot: `set_active` of it is refused | installer |
//! | `update-status.json` | the one status document of an update (docs/update-status.md) | `update_status::StatusWriter` |
//! | `rejected-release` | the release this device rolled back from; not installed again | update flow |
//! | `min-security-version` | the lowest `security_version` accepted (anti-rollback floor) | `mark-good` |
//! | `payload-validators.json` | ETag / Last-Modified per payload URL (resume with `If-Range`) | `net::payloads` |
//! | `update.lock` | the lock every changing command holds; its holder's pid and start time | update flow |
//! | `download/` | a release staged by `update --download-only` | update flow |
//! | `install-source` | where the install in progress came from (bundle path or manifest URL): `resume` and the daemon continue it after a power cut | update flow |
//!
//! Every file is replaced through [`crate::durable::replace`] (temp file,
//! fsync, rename, fsync of the directory), so a power cut leaves the old or
//! the new file. A record that does not parse is reported, never silently
//! replaced. The clock is [`crate::bundle::time::now`], the one clock of
//! the agent; times are shown with [`crate::bundle::time::format_rfc3339_utc`].

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::slots::Slot;
use crate::{Error, Result};

/// How many rollback records are kept.
pub const MAX_ROLLBACKS: usize = 16;
/// Format version of the JSON records.
const VERSION: u32 = 1;

/// One rollback: the device left `from` for `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    /// Seconds since the Unix epoch when the agent recorded it (the
    /// bootloader has no clock).
    pub time: u64,
    /// The slot that was given up.
    pub from: Slot,
    /// The slot the device runs instead.
    pub to: Slot,
    /// `bootlimit` (tries ran out), `mark-bad`, or what `ota_rollback` said.
    pub reason: String,
    /// The bootloader's raw report (`ota_rollback` value) while the agent has
    /// not yet cleared it from the bootloader's storage; `None` once cleared.
    /// Lets a restart after a power cut finish the clear without recording
    /// the same rollback twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncleared: Option<String>,
    /// Why the given-up slot's trial failed, when the agent knew it
    /// (`health check NAME failed`, `marked bad`: what `mark-good` /
    /// `mark-bad` noted before the bootloader gave the slot up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RollbackFile {
    version: u32,
    rollbacks: Vec<Rollback>,
}

/// The slot last switched to by `set_active`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The slot activated.
    pub slot: Slot,
    /// The slot that was booted when it was activated.
    pub from: Slot,
    /// False between "about to write the bootloader block" and "written":
    /// an uncommitted record after a power cut is dropped, never reported.
    pub committed: bool,
}

/// The trial of the release last installed: which of its boots reached
/// userspace, and what became of it (`update::trial`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// Format of this record (1).
    pub format: u32,
    /// The slot on trial.
    pub slot: Slot,
    /// The release in it.
    pub release: String,
    /// Boot ids of this round's boots of `slot` that reached userspace.
    pub reached: Vec<String>,
    /// Boots of earlier rounds that never reached userspace.
    pub failed_boots: u32,
    /// A health check failed on `slot` (then nothing is retried).
    pub health_failed: bool,
    /// Rounds started again after a trial lost to power.
    pub retries: u32,
    /// The last round was lost to power: `resume` activates `slot` again.
    pub retry_pending: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ActivationFile {
    version: u32,
    activation: Activation,
}

/// Seconds since the Unix epoch from the agent's one clock, as stored in
/// the records (0 if the clock is before 1970).
pub fn now() -> u64 {
    u64::try_from(crate::bundle::time::now()).unwrap_or(0)
}

/// `rollbacks.json`.
pub const ROLLBACKS_FILE: &str = "rollbacks.json";
/// `trial.json`: the trial of the release last installed (`update::trial`).
pub const TRIAL_FILE: &str = "trial.json";
/// `policy-refused`: the release a policy hook refused (`policy::memory`).
pub const POLICY_REFUSED_FILE: &str = "policy-refused";
/// `policy-deferrals`: how long hooks deferred a `critical` release
/// (`policy::memory`).
pub const POLICY_DEFERRALS_FILE: &str = "policy-deferrals";
/// `activation.json`.
pub const ACTIVATION_FILE: &str = "activation.json";
/// `update-status.json` (docs/update-status.md).
pub const UPDATE_STATUS_FILE: &str = "update-status.json";
/// `rejected-release`.
pub const REJECTED_RELEASE_FILE: &str = "rejected-release";
/// `min-security-version`.
pub const MIN_SECURITY_VERSION_FILE: &str = "min-security-version";
/// `payload-validators.json`.
pub const VALIDATORS_FILE: &str = "payload-validators.json";
/// `update.lock`.
pub const LOCK_FILE: &str = "update.lock";
/// `download/`.
pub const DOWNLOAD_DIR: &str = "download";
/// The single-file install journal of older agents (temp file + rename);
/// read when the record pair is empty, removed at the next store.
pub const INSTALL_JOURNAL_FILE: &str = "install-journal";
/// The install journal's two checkpoint record files (`durable::RecordPair`).
/// Upper-case 8.3 names on purpose: on vfat (Linux's default
/// `shortname=mixed`) such a name is ONE 32-byte directory entry, which never
/// straddles a sector; a long name's entries can, and a power cut on the QEMU
/// device once left one sector of them written and not the other, so the
/// name no longer resolved and the checkpoint was lost (tests/qemu/README.md
/// "Power cuts").
pub const INSTALL_JOURNAL_RECORDS: [&str; 2] = ["JOURNAL.0", "JOURNAL.1"];
/// The security version to store once the new slot is confirmed (`mark-good`).
pub const PENDING_SECURITY_FILE: &str = "pending-security-version";
/// Prefix of kept delta patches (`delta-<tag>-<n>.bsdiff`).
pub const PATCH_PREFIX: &str = "delta-";
/// Suffix of kept delta patches.
pub const PATCH_SUFFIX: &str = ".bsdiff";
/// The device's report signing key (PKCS#8, mode 0600; docs/fleet.md).
pub const IDENTITY_KEY_FILE: &str = "identity.pk8";
/// The report queue's counters and pending release.
pub const REPORT_STATE_FILE: &str = "report-state";
/// The report queue directory.
pub const REPORT_QUEUE_DIR: &str = "reports";
/// The report target named by the last verified channel file.
pub const REPORT_TARGET_FILE: &str = "report-target";
/// The hawkBit client's directory (its files below are relative to it).
pub const HAWKBIT_DIR: &str = "hawkbit";
/// `hawkbit/action`: the action in progress and its pending feedback.
pub const HAWKBIT_ACTION_FILE: &str = "action";
/// `hawkbit/last-success`: the last action closed with success.
pub const HAWKBIT_DONE_FILE: &str = "last-success";
/// `install-source`.
pub const INSTALL_SOURCE_FILE: &str = "install-source";
/// Suffix of a record set aside because it was unreadable or corrupt.
pub const CORRUPT_SUFFIX: &str = ".corrupt";

/// Where an install came from, kept while it runs so that `resume` can
/// continue it without a person. File format (text): `ota-install-source 1`,
/// `reinstall 0|1`, `source <path or URL>`, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSource {
    /// A local bundle path or a manifest URL (as `install` takes it).
    pub source: String,
    /// `install --reinstall`.
    pub reinstall: bool,
}

impl InstallSource {
    fn encode(&self) -> String {
        format!(
            "ota-install-source 1\nreinstall {}\nsource {}\n",
            u8::from(self.reinstall),
            self.source
        )
    }

    fn parse(text: &str) -> Option<InstallSource> {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        (lines.next()? == "ota-install-source 1").then_some(())?;
        let reinstall = match lines.next()? {
            "reinstall 0" => false,
            "reinstall 1" => true,
            _ => return None,
        };
        let source = lines.next()?.strip_prefix("source ")?;
        (lines.next().is_none() && !source.is_empty()).then(|| InstallSource {
            source: source.to_owned(),
            reinstall,
        })
    }
}

/// The agent's state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Uses `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the directory if it does not exist yet.
    pub fn ensure(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>> {
        let path = self.file(name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::State {
                path: path.clone(),
                reason: format!("corrupt record: {e}"),
            })
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.ensure()?;
        let path = self.file(name);
        let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        crate::durable::replace(&path, text.as_bytes())
    }

    fn rollback_file(&self) -> Result<RollbackFile> {
        let file: RollbackFile = self.read_json(ROLLBACKS_FILE)?.unwrap_or(RollbackFile {
            version: VERSION,
            rollbacks: Vec::new(),
        });
        if file.version != VERSION {
            return Err(Error::State {
                path: self.file(ROLLBACKS_FILE),
                reason: format!("unknown version {}", file.version),
            });
        }
        Ok(file)
    }

    /// All kept rollback records, oldest first.
    pub fn rollbacks(&self) -> Result<Vec<Rollback>> {
        Ok(self.rollback_file()?.rollbacks)
    }

    /// The newest rollback record.
    pub fn last_rollback(&self) -> Result<Option<Rollback>> {
        Ok(self.rollbacks()?.pop())
    }

    /// Appends `record`, dropping the oldest beyond [`MAX_ROLLBACKS`].
    pub fn push_rollback(&self, record: Rollback) -> Result<()> {
        let mut file = self.rollback_file()?;
        file.rollbacks.push(record);
        let excess = file.rollbacks.len().saturating_sub(MAX_ROLLBACKS);
        file.rollbacks.drain(..excess);
        self.write_json(ROLLBACKS_FILE, &file)
    }

    /// Keeps `cause` with the newest record (see [`Rollback::cause`]).
    pub fn note_rollback_cause(&self, cause: &str) -> Result<()> {
        let mut file = self.rollback_file()?;
        match file.rollbacks.last_mut() {
            Some(last) if last.cause.as_deref() != Some(cause) => {
                last.cause = Some(cause.to_owned());
                self.write_json(ROLLBACKS_FILE, &file)
            }
            _ => Ok(()),
        }
    }

    /// Marks the newest record as cleared from the bootloader's storage.
    pub fn confirm_rollback_cleared(&self) -> Result<()> {
        let mut file = self.rollback_file()?;
        if let Some(last) = file.rollbacks.last_mut() {
            if last.uncleared.take().is_some() {
                return self.write_json(ROLLBACKS_FILE, &file);
            }
        }
        Ok(())
    }

    /// The trial of the release last installed, if one is tracked.
    pub fn trial(&self) -> Result<Option<Trial>> {
        self.read_json(TRIAL_FILE)
    }

    /// Records the trial.
    pub fn set_trial(&self, t: &Trial) -> Result<()> {
        self.write_json(TRIAL_FILE, t)
    }

    /// Forgets the trial.
    pub fn clear_trial(&self) -> Result<()> {
        remove_if_present(&self.file(TRIAL_FILE))
    }

    /// The last activation, if one is pending.
    pub fn activation(&self) -> Result<Option<Activation>> {
        Ok(self
            .read_json::<ActivationFile>(ACTIVATION_FILE)?
            .map(|f| f.activation))
    }

    /// Records an activation.
    pub fn set_activation(&self, activation: Activation) -> Result<()> {
        self.write_json(
            ACTIVATION_FILE,
            &ActivationFile {
                version: VERSION,
                activation,
            },
        )
    }

    /// Forgets the pending activation (it was confirmed or rolled back).
    pub fn clear_activation(&self) -> Result<()> {
        remove_if_present(&self.file(ACTIVATION_FILE))
    }

    fn marker(&self, slot: Slot) -> PathBuf {
        self.file(&format!("writing-{slot}"))
    }

    /// True while (or after an interrupted) write of `slot`.
    pub fn is_being_written(&self, slot: Slot) -> bool {
        self.marker(slot).exists()
    }

    /// Notes that the installer starts writing `slot`. Call it (and
    /// `BootControl::mark_unbootable(slot)`) before the first byte is written;
    /// call [`StateDir::end_write`] after the slot's hash was verified.
    pub fn begin_write(&self, slot: Slot) -> Result<()> {
        self.ensure()?;
        crate::durable::replace(&self.marker(slot), b"")
    }

    /// The slot's contents are complete and verified.
    pub fn end_write(&self, slot: Slot) -> Result<()> {
        remove_if_present(&self.marker(slot))
    }

    /// The source of the install in progress (or interrupted). An
    /// unreadable or corrupt record is reported (one warning) and set
    /// aside, and `None` is returned: it never blocks the next update.
    pub fn install_source(&self) -> Option<InstallSource> {
        let path = self.file(INSTALL_SOURCE_FILE);
        let why = match fs::read(&path) {
            Ok(b) => match std::str::from_utf8(&b).ok().and_then(InstallSource::parse) {
                Some(s) => return Some(s),
                None => "not a valid record".to_owned(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => e.to_string(),
        };
        self.set_aside(INSTALL_SOURCE_FILE, &why);
        None
    }

    /// Records where the install about to write a slot comes from
    /// (durably, before the first slot write).
    pub fn record_install_source(&self, source: &InstallSource) -> Result<()> {
        self.ensure()?;
        crate::durable::replace(&self.file(INSTALL_SOURCE_FILE), source.encode().as_bytes())
    }

    /// The install ended (completed, or refused for good).
    pub fn clear_install_source(&self) -> Result<()> {
        remove_if_present(&self.file(INSTALL_SOURCE_FILE))
    }

    /// Sets the unreadable or corrupt record `name` aside (renamed to
    /// `<name>.corrupt`, else removed) with one warning saying `why`.
    pub fn set_aside(&self, name: &str, why: &str) {
        let path = self.file(name);
        let aside = self.file(&format!("{name}{CORRUPT_SUFFIX}"));
        let done = match fs::rename(&path, &aside) {
            Ok(()) => format!("set aside as {}", aside.display()),
            Err(_) => match fs::remove_file(&path) {
                Ok(()) => "removed".to_owned(),
                Err(e) => format!("could not be removed either: {e}"),
            },
        };
        log::warn!("{}: {why}; {done}", path.display());
    }

    /// `update-status.json` (read and written by `update_status`).
    pub fn update_status_path(&self) -> PathBuf {
        self.file(UPDATE_STATUS_FILE)
    }

    /// `payload-validators.json` (kept by `net::payloads`).
    pub fn validators_path(&self) -> PathBuf {
        self.file(VALIDATORS_FILE)
    }

    /// `update.lock` (taken by `update::lock`).
    pub fn lock_path(&self) -> PathBuf {
        self.file(LOCK_FILE)
    }

    /// `download/`, where `update --download-only` stages a release.
    pub fn download_dir(&self) -> PathBuf {
        self.file(DOWNLOAD_DIR)
    }

    /// The release recorded in `rejected-release`; `None` if there is none
    /// (a damaged file is logged and ignored: at worst the release is tried
    /// once more, and the bootloader falls back again).
    pub fn rejected_release(&self) -> Option<semver::Version> {
        let path = self.file(REJECTED_RELEASE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!("{}: {e}; ignored", path.display());
                return None;
            }
        };
        semver::Version::parse(text.trim())
            .inspect_err(|e| log::warn!("{}: {e}; ignored", path.display()))
            .ok()
    }

    /// Records `version` as the release this device rolled back from.
    pub fn reject_release(&self, version: &semver::Version) -> Result<()> {
        self.ensure()?;
        crate::durable::replace(
            &self.file(REJECTED_RELEASE_FILE),
            format!("{version}\n").as_bytes(),
        )
    }

    /// The stored minimum security version: a file of one decimal `u32`
    /// and a newline. Absent = 0 (a fresh device). Anything else is an
    /// error, never 0: a damaged file must not re-open downgrades.
    pub fn min_security_version(&self) -> Result<u32> {
        let path = self.file(MIN_SECURITY_VERSION_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => text
                .trim_end_matches('\n')
                .parse::<u32>()
                .map_err(|_| Error::State {
                    path: path.clone(),
                    reason: format!("{:?} is not a decimal security version", text.trim()),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Raises the stored minimum security version to `value` (never lowers
    /// it).
    pub fn raise_min_security_version(&self, value: u32) -> Result<()> {
        if self.min_security_version()? >= value {
            return Ok(());
        }
        self.ensure()?;
        crate::durable::replace(
            &self.file(MIN_SECURITY_VERSION_FILE),
            format!("{value}\n").as_bytes(),
        )
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_source_is_recorded_read_back_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("ota"));
        assert_eq!(state.install_source(), None);
        let src = InstallSource {
            source: "http://10.0.2.2/v2/manifest.json".into(),
            reinstall: true,
        };
        state.record_install_source(&src).unwrap();
        assert_eq!(state.install_source(), Some(src));
        state.clear_install_source().unwrap();
        assert_eq!(state.install_source(), None);
        assert!(!state.path().join(INSTALL_SOURCE_FILE).exists());
        state.clear_install_source().unwrap(); // idempotent
    }

    #[test]
    fn a_corrupt_install_source_is_set_aside_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        for bad in [
            &b""[..],
            b"ota-install-source 1\nreinstall 2\nsource /x\n",
            b"ota-install-source 1\nreinstall 0\nsource \n",
            b"\xff\xfe",
            b"ota-install-source 1\nreinstall 0\nsource /x",
        ] {
            std::fs::write(dir.path().join(INSTALL_SOURCE_FILE), bad).unwrap();
            assert_eq!(state.install_source(), None);
            assert!(!dir.path().join(INSTALL_SOURCE_FILE).exists());
            let aside = dir.path().join("install-source.corrupt");
            assert_eq!(std::fs::read(&aside).unwrap(), bad);
            // Set aside: the next update records its own source.
            let src = InstallSource {
                source: "/data/update.ota".into(),
                reinstall: false,
            };
            state.record_install_source(&src).unwrap();
            assert_eq!(state.install_source(), Some(src));
            state.clear_install_source().unwrap();
        }
    }

    #[test]
    fn rollbacks_are_capped_and_kept_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("ota"));
        assert_eq!(state.last_rollback().unwrap(), None);
        for i in 0..20 {
            state
                .push_rollback(Rollback {
                    time: i,
                    from: Slot::B,
                    to: Slot::A,
                    reason: "bootlimit".into(),
                    uncleared: None,
                    cause: None,
                })
                .unwrap();
        }
        let all = state.rollbacks().unwrap();
        assert_eq!(all.len(), MAX_ROLLBACKS);
        assert_eq!(all[0].time, 4);
        assert_eq!(state.last_rollback().unwrap().unwrap().time, 19);
    }

    #[test]
    fn corrupt_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ROLLBACKS_FILE), "{\"version\":1,").unwrap();
        let e = StateDir::new(dir.path())
            .rollbacks()
            .unwrap_err()
            .to_string();
        assert!(e.contains("rollbacks.json") && e.contains("corrupt"), "{e}");
    }

    #[test]
    fn write_markers() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(!state.is_being_written(Slot::B));
        state.begin_write(Slot::B).unwrap();
        assert!(state.is_being_written(Slot::B) && !state.is_being_written(Slot::A));
        state.end_write(Slot::B).unwrap();
        assert!(!state.is_being_written(Slot::B));
        state.end_write(Slot::B).unwrap();
    }
}
