//! Whether a verified manifest is for this device and acceptable now, and
//! the installed version it is judged against.

use std::path::Path;

use super::error::BundleError;
use super::manifest::Manifest;
use super::time;
use crate::{Error, Result};

/// A device clock before this instant (2026-11-01T00:00:00Z, before this
/// code was written) is taken as unset: see [`check_policy`].
pub const CLOCK_FLOOR: i64 = 1_793_491_200;

/// What the device knows about itself when judging a manifest.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    /// The configured product id.
    pub product: String,
    /// The configured hardware revision, if any.
    pub hardware: Option<String>,
    /// The running release's version.
    pub installed: semver::Version,
    /// The stored minimum `security_version` (0 when none is stored).
    pub min_security_version: u32,
    /// The device clock, seconds since the epoch.
    pub now: i64,
    /// Accept a manifest whose version equals the installed one.
    pub reinstall: bool,
}

/// Checks a verified manifest against the device. Returns warnings to show
/// (e.g. an unset clock); refusals are errors.
///
/// Clock sanity: a clock before [`CLOCK_FLOOR`] is taken as unset (no RTC, no
/// NTP yet). Expiry is then judged against `CLOCK_FLOOR` instead and a warning
/// says so: a manifest that expired before this software existed is still
/// refused, and a device without a clock can still update. (Refusing would
/// strand devices whose clock is set only by the update; passing silently
/// would hide the problem.)
pub fn check_policy(m: &Manifest, d: &DeviceFacts) -> Result<Vec<String>, BundleError> {
    let refuse = |msg: String| Err(BundleError::Refused(msg));
    let mut warnings = Vec::new();
    if m.product != d.product {
        return refuse(format!(
            "manifest product `{}` is not this device's product `{}`",
            m.product, d.product
        ));
    }
    if !m.hardware.is_empty() {
        match &d.hardware {
            Some(hw) if m.hardware.contains(hw) => {}
            Some(hw) => {
                return refuse(format!(
                    "hardware revision `{hw}` is not in the manifest's list [{}]",
                    m.hardware.join(", ")
                ))
            }
            None => {
                return refuse(format!(
                "the manifest is for hardware [{}] and this device has no `hardware` configured",
                m.hardware.join(", ")
            ))
            }
        }
    }
    if m.security_version < d.min_security_version {
        return refuse(format!(
            "security version {} is below the device's minimum {}",
            m.security_version, d.min_security_version
        ));
    }
    match m.version.cmp_precedence(&d.installed) {
        std::cmp::Ordering::Greater => {}
        std::cmp::Ordering::Equal if d.reinstall => {}
        std::cmp::Ordering::Equal => {
            return refuse(format!(
                "version {} is already installed (reinstall needs --reinstall)",
                m.version
            ))
        }
        std::cmp::Ordering::Less => {
            return refuse(format!(
                "version {} is older than the installed {} (downgrade)",
                m.version, d.installed
            ))
        }
    }
    let mut now = d.now;
    if now < CLOCK_FLOOR {
        warnings.push(format!(
            "device clock {} is unset (before {}); expiry checked against {} instead",
            time::format_rfc3339_utc(now),
            time::format_rfc3339_utc(CLOCK_FLOOR),
            time::format_rfc3339_utc(CLOCK_FLOOR)
        ));
        now = CLOCK_FLOOR;
    }
    if now >= m.expires {
        return refuse(format!(
            "manifest expired at {} (now {})",
            time::format_rfc3339_utc(m.expires),
            time::format_rfc3339_utc(now)
        ));
    }
    Ok(warnings)
}

/// The installed release's version: `VERSION_ID` of an os-release file
/// (config `version_file`, default `/etc/os-release`; the image build sets
/// it to the release version), parsed as SemVer.
pub fn installed_version(os_release: &Path) -> Result<semver::Version> {
    let text = std::fs::read_to_string(os_release).map_err(|e| Error::io(os_release, e))?;
    let bad = |reason: String| Error::DeviceFile {
        path: os_release.to_owned(),
        reason,
    };
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .ok_or_else(|| bad("no VERSION_ID line (the installed version)".into()))?;
    let v = line.trim().trim_matches(|c| c == '"' || c == '\'');
    semver::Version::parse(v).map_err(|e| bad(format!("VERSION_ID {v:?} is not SemVer: {e}")))
}
