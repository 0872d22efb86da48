//! The last phase: the written slot becomes the next boot's, and the
//! security version it carries waits for `mark-good`.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files;
use crate::bootctl::BootControl;
use crate::bundle::Manifest;
use crate::durable::replace as write_atomic;
use crate::slots::Slot;
use crate::state::StateDir;
use crate::{Error, Result};

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
    let path = state_dir.join(files::PENDING_SECURITY);
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
    StateDir::new(state_dir).raise_min_security_version(p.security_version)?;
    remove_if_present(&path)?;
    Ok(Some(p.security_version))
}

/// Drops a pending security version (a new write of `target` begins: what
/// was pending for its old contents no longer applies).
pub(super) fn drop_pending_security(state_dir: &Path) -> Result<()> {
    remove_if_present(&state_dir.join(files::PENDING_SECURITY))
}

/// Every image of `target` is written and verified on flash: end the write
/// marker (`set_active` refuses a slot being written), record the pending
/// security version, then switch the boot target in one write.
pub(super) fn activate(
    state_dir: &Path,
    bootctl: &mut dyn BootControl,
    target: Slot,
    manifest: &Manifest,
) -> Result<()> {
    StateDir::new(state_dir).end_write(target)?;
    let pending = state_dir.join(files::PENDING_SECURITY);
    let p = PendingSecurity {
        version: 1,
        slot: target,
        security_version: manifest.security_version,
        release: manifest.version.to_string(),
    };
    let text = serde_json::to_string(&p).map_err(|e| Error::State {
        path: pending.clone(),
        reason: e.to_string(),
    })?;
    write_atomic(&pending, text.as_bytes())?;
    bootctl.set_active(target)
}

pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}
