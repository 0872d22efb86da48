//! Agent records in `state_dir` that boot control needs:
//!
//! * `rollbacks.json` — the last [`MAX_ROLLBACKS`] rollbacks (when, from which
//!   slot, why), newest last. Written atomically (temp file, fsync, rename,
//!   fsync of the directory), so a power cut leaves the old or the new file.
//! * `activation.json` — the slot last activated by `set_active` and when
//!   (the android backend detects a bootloader rollback from it).
//! * `writing-a` / `writing-b` — present while the installer writes that slot
//!   (and after an interrupted write): `set_active` of that slot is refused.
//!
//! A record that does not parse is reported, never silently replaced.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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

#[derive(Debug, Serialize, Deserialize)]
struct ActivationFile {
    version: u32,
    activation: Activation,
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `bytes` to `path` atomically: temp file in the same directory,
/// fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e| Error::io(p, e)
    };
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    // Make the rename itself durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
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

    fn ensure(&self) -> Result<()> {
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
        write_atomic(&path, text.as_bytes())
    }

    fn rollback_file(&self) -> Result<RollbackFile> {
        let file: RollbackFile = self.read_json("rollbacks.json")?.unwrap_or(RollbackFile {
            version: VERSION,
            rollbacks: Vec::new(),
        });
        if file.version != VERSION {
            return Err(Error::State {
                path: self.file("rollbacks.json"),
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
        self.write_json("rollbacks.json", &file)
    }

    /// Marks the newest record as cleared from the bootloader's storage.
    pub fn confirm_rollback_cleared(&self) -> Result<()> {
        let mut file = self.rollback_file()?;
        if let Some(last) = file.rollbacks.last_mut() {
            if last.uncleared.take().is_some() {
                return self.write_json("rollbacks.json", &file);
            }
        }
        Ok(())
    }

    /// The last activation, if one is pending.
    pub fn activation(&self) -> Result<Option<Activation>> {
        Ok(self
            .read_json::<ActivationFile>("activation.json")?
            .map(|f| f.activation))
    }

    /// Records an activation.
    pub fn set_activation(&self, activation: Activation) -> Result<()> {
        self.write_json(
            "activation.json",
            &ActivationFile {
                version: VERSION,
                activation,
            },
        )
    }

    /// Forgets the pending activation (it was confirmed or rolled back).
    pub fn clear_activation(&self) -> Result<()> {
        remove_if_present(&self.file("activation.json"))
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
        write_atomic(&self.marker(slot), b"")
    }

    /// The slot's contents are complete and verified.
    pub fn end_write(&self, slot: Slot) -> Result<()> {
        remove_if_present(&self.marker(slot))
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `time` as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date library.
pub fn format_utc(time: u64) -> String {
    let days = (time / 86400) as i64;
    let secs = time % 86400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` = 2000-02-29 00:00:00 (leap day).
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        // `date -u -d @1795653296` = 2026-11-26 00:34:56.
        assert_eq!(format_utc(1_795_653_296), "2026-11-26T00:34:56Z");
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
        fs::write(dir.path().join("rollbacks.json"), "{\"version\":1,").unwrap();
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
