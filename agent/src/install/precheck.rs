//! Refusals that need the payloads or `state_dir`, made before the
//! inactive slot is touched: enough free space for what the install keeps
//! in `state_dir`, and a local bundle's payloads hashed completely.

use std::path::Path;

use super::error::InstallError;
use super::readback::check_blob;
use super::source::{AtReader, Payloads};
use crate::bundle::{self, Kind, Manifest};
use crate::{Error, Result};

/// Room for the records an install writes (journal pair, marker, pending
/// security version, status file) and filesystem overhead.
const RECORD_SLACK: u64 = 256 << 10;

/// Refuses when `state_dir` (or, before it exists, its nearest existing
/// parent) has less room than the delta patches still to download there
/// plus [`RECORD_SLACK`].
pub(super) fn free_space(
    state_dir: &Path,
    m: &Manifest,
    first: usize,
    payloads: &dyn Payloads,
) -> Result<()> {
    let need = m
        .images
        .iter()
        .enumerate()
        .skip(first)
        .filter(|(i, img)| matches!(img.kind, Kind::Bsdiff { .. }) && payloads.local(*i).is_none())
        .map(|(_, img)| img.payload.size)
        .fold(RECORD_SLACK, u64::saturating_add);
    let mut dir = state_dir;
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p,
            _ => return Ok(()),
        }
    }
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| Error::io(dir, e.into()))?;
    // fsblkcnt_t and c_ulong are not u64 on every target.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    // Kept patches already downloaded count as available again.
    let kept: u64 = std::fs::read_dir(state_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| super::files::is_patch_of(&e.file_name().to_string_lossy(), "").is_some())
        .filter_map(|e| e.metadata().ok())
        .map(|md| md.len())
        .sum();
    let free = free.saturating_add(kept);
    if free < need {
        return Err(InstallError::NoSpace {
            dir: dir.to_owned(),
            need,
            free,
        }
        .into());
    }
    Ok(())
}

/// Hashes every local full-image payload from image `first` on and
/// compares size and SHA-256 with the manifest, so a damaged bundle is
/// refused before the inactive slot is marked or written (delta patches
/// are hashed when they are prepared, also before).
pub(super) fn hash_local_payloads(
    m: &Manifest,
    first: usize,
    payloads: &dyn Payloads,
) -> Result<()> {
    for (i, img) in m.images.iter().enumerate().skip(first) {
        if !matches!(img.kind, Kind::Full) {
            continue;
        }
        let Some(local) = payloads.local(i) else {
            continue;
        };
        let got = bundle::hash_reader(AtReader::new(local, 0))
            .map_err(|e| super::error::refuse(img, format!("reading the payload: {e}")))?;
        check_blob(img, "payload", got, img.payload)?;
    }
    Ok(())
}
