//! `state_dir/install-status.json`: what the installer is doing, for other
//! processes (a UI, `status`, the daemon's supervisor). Schema in
//! `docs/install-status.md`. Written atomically at phase changes and
//! checkpoints, never per chunk; a reader sees an old or a new document.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::slots::Slot;
use crate::state::{now, write_atomic};
use crate::{Error, Result};

/// File name in `state_dir`.
pub const FILE: &str = "install-status.json";
/// Version of the document; bumped only on incompatible change.
pub const FORMAT: u32 = 1;

/// What the installer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Checking the manifest, the layout, delta bases and patches.
    Verifying,
    /// Fetching a payload (a delta to `state_dir`; the network helper also
    /// reports here).
    Downloading,
    /// Writing the inactive slot.
    Writing,
    /// Reading the written slot back and hashing it.
    Checking,
    /// Switching the boot target.
    Activating,
    /// Installed and activated; the next boot tries it.
    Installed,
    /// The appliance agreed; rebooting now.
    Rebooting,
    /// Stopped with an error (`error` says why); the inactive slot stays
    /// unbootable, the booted slot is unchanged.
    Failed,
}

/// The document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// [`FORMAT`].
    pub format: u32,
    /// Phase.
    pub phase: Phase,
    /// Version being installed.
    pub version: String,
    /// Slot being written.
    pub slot: Slot,
    /// Partition (without suffix) being processed, if any.
    pub image: Option<String>,
    /// Bytes of all images done so far.
    pub bytes_done: u64,
    /// Bytes of all images (sum of `result_size`).
    pub bytes_total: u64,
    /// Seconds since the epoch of this update of the file.
    pub time: u64,
    /// Why the install failed (phase `failed`).
    pub error: Option<String>,
}

/// The status file of a state directory.
#[derive(Debug, Clone)]
pub struct StatusFile {
    path: PathBuf,
}

impl StatusFile {
    /// The file in `state_dir`.
    pub fn new(state_dir: &Path) -> StatusFile {
        StatusFile {
            path: state_dir.join(FILE),
        }
    }

    /// Writes `status` (its `time` set to now).
    pub fn write(&self, status: &Status) -> Result<()> {
        let mut s = status.clone();
        s.time = now();
        let mut text = serde_json::to_string_pretty(&s).map_err(|e| Error::State {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_atomic(&self.path, text.as_bytes())
    }

    /// Reads the file (`None` when absent).
    pub fn read(&self) -> Result<Option<Status>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::State {
                path: self.path.clone(),
                reason: format!("corrupt record: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_kebab_phases() {
        let dir = tempfile::tempdir().unwrap();
        let f = StatusFile::new(dir.path());
        assert_eq!(f.read().unwrap(), None);
        let s = Status {
            format: FORMAT,
            phase: Phase::Writing,
            version: "1.2.0".into(),
            slot: Slot::B,
            image: Some("rootfs".into()),
            bytes_done: 5,
            bytes_total: 10,
            time: 0,
            error: None,
        };
        f.write(&s).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.contains("\"phase\": \"writing\""), "{text}");
        assert!(text.contains("\"slot\": \"b\""), "{text}");
        let back = f.read().unwrap().unwrap();
        assert_eq!(back.bytes_done, 5);
        assert!(back.time > 0);
    }
}
