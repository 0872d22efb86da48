//! `update --download-only`: the release staged in `state_dir/download/`
//! — manifest verified and judged first, then each payload fetched
//! resumably and checked against its signed size and SHA-256, giving a
//! bundle directory for `ota-agent install DIR`. The default `update`
//! streams into the slot instead (`net::payloads`).

use std::path::{Path, PathBuf};

use crate::bundle::{self, manifest, signature, BundleError, DeviceFacts, TrustedKeys};
use crate::install::Approved;
use crate::net::{dir_url, fetch_to_file, join_url, Client};
use crate::update_status::{Phase, Progress};
use crate::{Error, Result};

/// The manifest at `manifest_url` and its signature (bytes, size-limited).
fn fetch_manifest(client: &Client, manifest_url: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let mbytes = client.get_small(manifest_url, manifest::MAX_LEN)?;
    let sig = client.get_small(&format!("{manifest_url}.sig"), signature::MAX_SIGNATURE_LEN)?;
    Ok((mbytes, sig))
}

/// The manifest at `manifest_url` and its signature, verified and judged
/// against the device before a single payload byte is fetched.
pub(super) fn fetch_approved(
    client: &Client,
    manifest_url: &str,
    keys: &TrustedKeys,
    facts: &DeviceFacts,
) -> Result<Approved> {
    let (mbytes, sig) = fetch_manifest(client, manifest_url)?;
    let approved = Approved::new(&mbytes, &sig, keys, facts)?;
    for w in approved.warnings() {
        log::warn!("{w}");
    }
    Ok(approved)
}

/// Downloads the release whose manifest is at `manifest_url` into `dir`
/// (created): manifest and signature first, verified and judged against the
/// device before a single payload byte is fetched; then each payload,
/// checked against the signed size and SHA-256. Returns `dir`. Each payload
/// is a `downloading` phase of `progress` (bytes over all payloads as the
/// whole); the caller records the end (`downloaded` or `failed`).
pub fn download_release(
    client: &Client,
    manifest_url: &str,
    keys: &TrustedKeys,
    facts: &DeviceFacts,
    expect_version: Option<&semver::Version>,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    let (mbytes, sig) = fetch_manifest(client, manifest_url)?;
    let (m, key) = bundle::verify_manifest(&mbytes, &sig, keys)?;
    for w in bundle::check_policy(&m, facts)? {
        log::warn!("{w}");
    }
    if let Some(v) = expect_version {
        if m.version != *v {
            return Err(BundleError::Refused(format!(
                "the channel offers {v} but its manifest is version {}",
                m.version
            ))
            .into());
        }
    }
    log::info!("manifest {} verified (key {key})", m.version);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // A staged manifest of another release makes its payloads stale; the
    // new one is staged before any payload so an interrupted run resumes.
    let staged = dir.join(bundle::MANIFEST_FILE);
    if std::fs::read(&staged).ok().as_deref() != Some(&mbytes[..]) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        crate::durable::replace(&dir.join(bundle::SIGNATURE_FILE), &sig)?;
        crate::durable::replace(&staged, &mbytes)?;
    }
    let base = dir_url(manifest_url);
    let total = m
        .images
        .iter()
        .try_fold(0u64, |t, i| t.checked_add(i.payload.size));
    progress.target(&m.version.to_string(), None, total);
    let mut before = 0u64;
    for img in &m.images {
        let dest = dir.join(&img.file);
        if std::fs::metadata(&dest).is_ok_and(|md| md.len() == img.payload.size) {
            before = before.saturating_add(img.payload.size);
            continue; // verified when it was renamed into place
        }
        progress.begin(Phase::Downloading, Some(&img.file), Some(img.payload.size));
        fetch_to_file(
            client,
            &join_url(base, &img.file),
            &dest,
            Some(&img.payload),
            &mut |done, _| {
                progress.advance(done, before.saturating_add(done));
                progress.go_on()
            },
        )?;
        before = before.saturating_add(img.payload.size);
    }
    Ok(dir.to_owned())
}
