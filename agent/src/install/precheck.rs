//! Refusals made before the inactive slot is touched: the target
//! partitions' layout, enough free space for what the install keeps in
//! `state_dir`, and a local bundle's payloads hashed completely.

use std::path::Path;

use super::error::InstallError;
use super::readback::check_blob;
use super::source::{AtReader, Payloads};
use super::storage::{Disk, SlotWriter};
use crate::bundle::{self, BundleError, Kind, Manifest};
use crate::slots::{Layout, Reserved, Slot};
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

/// Every target partition exists, is large enough, lies inside the
/// disk's usable area and overlaps nothing else (partitions, env copies,
/// bootctrl block); a delta's base fits the booted partition.
pub(super) fn layout<D: Disk + ?Sized>(
    disk: &D,
    layout: &Layout,
    booted: Slot,
    reserved: &[Reserved],
    m: &Manifest,
) -> Result<()> {
    let target = booted.other();
    for img in &m.images {
        let part = layout.partition(&img.name, target).ok_or_else(|| {
            Error::Slot(format!(
                "image {}: the inactive slot {target} has no partition `{}{}`",
                img.name,
                img.name,
                target.suffix()
            ))
        })?;
        if img.result.size > part.size {
            return Err(Error::Slot(format!(
                "image {}: {} bytes do not fit partition `{}` of {} bytes",
                img.name, img.result.size, part.name, part.size
            )));
        }
        layout
            .check_writable(part, reserved)
            .map_err(InstallError::Layout)?;
        // Fails early on a layout where the target overlaps the booted slot.
        SlotWriter::for_inactive(disk, layout, booted, &img.name)?;
        if let Kind::Bsdiff { base } = img.kind {
            let bp = layout.partition(&img.name, booted).ok_or_else(|| {
                Error::Slot(format!(
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
    Ok(())
}
