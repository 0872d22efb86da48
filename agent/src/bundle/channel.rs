//! The channel file `<server>/<product>/<channel>.json` (+ `.sig`, signed like
//! the manifest): which release a channel currently offers and to which share
//! of the fleet. Documented in `docs/channel.md`. Parsed as strictly as the
//! manifest.
//!
//! Rollout: a device is in the rollout when its bucket, the first 8 bytes
//! (big-endian) of SHA-256(device id ‖ seed) modulo 10000, is below
//! `percent` x 100 (so `percent` may have two decimals' worth of precision
//! through integers: it is a whole number 0..=100 here). With a fixed seed,
//! raising the percent only adds devices.

use serde::{Deserialize, Serialize};

use super::time::{format_rfc3339_utc, parse_rfc3339_utc};
use super::{BundleError, Digest};

/// The only channel format this code reads and writes.
pub const FORMAT: u32 = 1;
/// Largest channel file accepted.
pub const MAX_LEN: usize = 64 * 1024;

/// Staged rollout settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Share of devices offered the release, 0..=100.
    pub percent: u8,
    /// Mixed into the bucket hash; keep it while raising `percent`.
    pub seed: String,
    /// When true no device starts this update.
    pub paused: bool,
}

/// A parsed, checked channel file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Product id.
    pub product: String,
    /// Channel name (`stable`, `beta`, …).
    pub channel: String,
    /// The release the channel offers.
    pub version: semver::Version,
    /// Path of that release's `manifest.json`, relative to the channel file.
    pub manifest: String,
    /// Staged rollout.
    pub rollout: Rollout,
    /// Creation time (seconds since the epoch, UTC).
    pub created: i64,
    /// Expiry: a device refuses an expired channel file (freeze attacks).
    pub expires: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    format: u32,
    product: String,
    channel: String,
    version: String,
    manifest: String,
    rollout: Rollout,
    created: String,
    expires: String,
}

fn bad(m: String) -> BundleError {
    BundleError::Channel(m)
}

impl Channel {
    /// Parses and checks channel bytes (verify their signature first).
    pub fn parse(bytes: &[u8]) -> Result<Channel, BundleError> {
        if bytes.len() > MAX_LEN {
            return Err(bad(format!(
                "{} bytes is larger than the limit of {MAX_LEN}",
                bytes.len()
            )));
        }
        let raw: RawChannel =
            serde_json::from_slice(bytes).map_err(|e| bad(super::json_error(bytes, &e)))?;
        if raw.format != FORMAT {
            return Err(bad(format!(
                "`format` {} is not supported (this agent reads format {FORMAT})",
                raw.format
            )));
        }
        let version = semver::Version::parse(&raw.version)
            .map_err(|e| bad(format!("`version` {:?} is not SemVer: {e}", raw.version)))?;
        let time = |field: &str, v: &str| {
            parse_rfc3339_utc(v)
                .ok_or_else(|| bad(format!("`{field}` {v:?} is not an RFC 3339 UTC time")))
        };
        let created = time("created", &raw.created)?;
        let expires = time("expires", &raw.expires)?;
        if expires <= created {
            return Err(bad(format!(
                "`expires` {} is not after `created` {}",
                raw.expires, raw.created
            )));
        }
        if raw.rollout.percent > 100 {
            return Err(bad(format!(
                "`percent` {} is above 100",
                raw.rollout.percent
            )));
        }
        let m = &raw.manifest;
        if m.is_empty()
            || m.starts_with('/')
            || m.contains("..")
            || m.contains("://")
            || m.contains('\\')
        {
            return Err(bad(format!(
                "`manifest` {m:?} must be a relative path below the channel file"
            )));
        }
        for (field, v) in [("product", &raw.product), ("channel", &raw.channel)] {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
            {
                return Err(bad(format!(
                    "`{field}` {v:?} must be characters of [A-Za-z0-9._-]"
                )));
            }
        }
        Ok(Channel {
            product: raw.product,
            channel: raw.channel,
            version,
            manifest: raw.manifest,
            rollout: raw.rollout,
            created,
            expires,
        })
    }

    /// The canonical JSON encoding (pretty, fixed field order, trailing newline).
    pub fn to_json(&self) -> String {
        let raw = RawChannel {
            format: FORMAT,
            product: self.product.clone(),
            channel: self.channel.clone(),
            version: self.version.to_string(),
            manifest: self.manifest.clone(),
            rollout: self.rollout.clone(),
            created: format_rfc3339_utc(self.created),
            expires: format_rfc3339_utc(self.expires),
        };
        // Serialising plain strings and integers cannot fail.
        let mut s = serde_json::to_string_pretty(&raw).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Whether the device with `device_id` is offered this release now.
    pub fn includes(&self, device_id: &str) -> bool {
        !self.rollout.paused
            && bucket(device_id, &self.rollout.seed) < u64::from(self.rollout.percent) * 100
    }
}

/// The device's rollout bucket, 0..10000.
pub fn bucket(device_id: &str, seed: &str) -> u64 {
    let mut data = Vec::with_capacity(device_id.len() + seed.len());
    data.extend_from_slice(device_id.as_bytes());
    data.extend_from_slice(seed.as_bytes());
    let d = Digest::of(&data).0;
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) % 10000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Channel {
        Channel {
            product: "rice-cooker".into(),
            channel: "stable".into(),
            version: semver::Version::new(1, 4, 0),
            manifest: "releases/1.4.0/manifest.json".into(),
            rollout: Rollout {
                percent: 10,
                seed: "1.4.0".into(),
                paused: false,
            },
            created: 1_795_564_800,
            expires: 1_795_564_800 + 30 * 86400,
        }
    }

    #[test]
    fn round_trip_and_strictness() {
        let c = sample();
        let json = c.to_json();
        assert_eq!(Channel::parse(json.as_bytes()).unwrap(), c);
        let e = Channel::parse(
            json.replace("\"paused\": false", "\"paused\": false, \"x\": 1")
                .as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `x`"), "{e}");
        let e = Channel::parse(json.replace("releases/", "../").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`manifest`"), "{e}");
        let e = Channel::parse(
            json.replace("\"percent\": 10", "\"percent\": 101")
                .as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`percent`"), "{e}");
    }

    #[test]
    fn raising_percent_only_adds_devices() {
        let mut c = sample();
        let ids: Vec<String> = (0..2000).map(|i| format!("device-{i}")).collect();
        let mut prev: Vec<bool> = vec![false; ids.len()];
        for p in [0u8, 1, 10, 50, 100] {
            c.rollout.percent = p;
            let now: Vec<bool> = ids.iter().map(|id| c.includes(id)).collect();
            assert!(prev.iter().zip(&now).all(|(a, b)| !a || *b));
            let share = now.iter().filter(|x| **x).count();
            assert!(
                share.abs_diff(ids.len() * p as usize / 100) < 80,
                "{p}%: {share}"
            );
            prev = now;
        }
        c.rollout.paused = true;
        assert!(!ids.iter().any(|id| c.includes(id)));
    }
}
