//! Pieces of an update run: the device id, the channel check, and the
//! staging download (`update --download-only`): manifest verified and
//! judged first, then each payload fetched resumably into
//! `<state_dir>/download/` and checked against its signed size and SHA-256,
//! giving a bundle directory for `ota-agent install DIR`. The default
//! `update` streams into the slot instead (`net::payloads`, `cli/net.rs`).

use std::path::{Path, PathBuf};

use super::check::{self, Decision, Facts};
use super::{dir_url, fetch_to_file, join_url, Client};
use crate::bundle::{self, manifest, signature, BundleError, DeviceFacts, TrustedKeys};
use crate::config::Config;
use crate::update_status::{Phase, Progress};
use crate::{Error, Result};

/// Subdirectory of `state_dir` where releases are staged.
pub const DOWNLOAD_DIR: &str = "download";

/// The device id: `device_id`, else the first line of `device_id_file`.
pub fn device_id(c: &Config) -> Result<String> {
    if let Some(id) = &c.device_id {
        return Ok(id.clone());
    }
    let text =
        std::fs::read_to_string(&c.device_id_file).map_err(|e| Error::io(&c.device_id_file, e))?;
    let id = text.lines().next().unwrap_or("").trim();
    if id.is_empty() {
        return Err(Error::Config {
            path: c.device_id_file.clone(),
            reason: "device id file is empty".into(),
        });
    }
    Ok(id.to_owned())
}

/// Runs the channel check for this device.
pub fn check(c: &Config, client: &Client, keys: &TrustedKeys) -> Result<Decision> {
    let server = c.server.as_deref().ok_or_else(|| Error::Config {
        path: "ota-agent.toml".into(),
        reason: "key `server` is not set (no release server to check)".into(),
    })?;
    let installed = bundle::installed_version(&c.version_file)?;
    let id = device_id(c)?;
    let facts = Facts {
        product: &c.product,
        channel: &c.channel,
        installed: &installed,
        device_id: &id,
        now: bundle::time::now(),
    };
    let (chan, d) = check::check(client, server, keys, &facts)?;
    crate::report::remember_target(&c.state_dir, chan.reports.as_deref()); // report:
    Ok(match d {
        Decision::Update { version, .. } if rejected(&c.state_dir).as_ref() == Some(&version) => {
            Decision::RolledBack { version }
        }
        d => d,
    })
}

/// `state_dir` file naming the release this device rolled back from
/// (written by `update`/`daemon` when they find the switch undone).
pub const REJECTED_FILE: &str = "rejected-release";

/// The release recorded in [`REJECTED_FILE`]; `None` if there is none (a
/// damaged file is logged and ignored: at worst the release is tried once
/// more, and the bootloader falls back again).
pub fn rejected(state_dir: &Path) -> Option<semver::Version> {
    let path = state_dir.join(REJECTED_FILE);
    let text = match std::fs::read_to_string(&path) {
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
pub fn reject(state_dir: &Path, version: &semver::Version) -> Result<()> {
    crate::state::write_atomic(
        &state_dir.join(REJECTED_FILE),
        format!("{version}\n").as_bytes(),
    )
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
    let mbytes = client.get_small(manifest_url, manifest::MAX_LEN)?;
    let sig = client.get_small(&format!("{manifest_url}.sig"), signature::MAX_SIGNATURE_LEN)?;
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
        crate::state::write_atomic(&dir.join(bundle::SIGNATURE_FILE), &sig)?;
        crate::state::write_atomic(&staged, &mbytes)?;
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
            &mut |done, _| progress.advance(done, before.saturating_add(done)),
        )?;
        before = before.saturating_add(img.payload.size);
    }
    Ok(dir.to_owned())
}
