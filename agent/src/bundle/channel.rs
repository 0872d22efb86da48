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

use super::digest::Digest;
use super::error::{json_error, BundleError};
use super::time::{format_rfc3339_utc, parse_rfc3339_utc};

/// The newest channel format this code reads and writes. Format 2 adds the
/// optional `reports` and `rollout.lease_until`; a file without them is
/// written as format 1 (so agents that only read format 1 still accept it),
/// and a format 1 file may not carry them (docs/channel.md).
pub const FORMAT: u32 = 2;
/// Largest channel file accepted.
pub const MAX_LEN: usize = 64 * 1024;

/// Staged rollout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Share of devices offered the release, 0..=100.
    pub percent: u8,
    /// Mixed into the bucket hash; keep it while raising `percent`.
    pub seed: String,
    /// When true no device starts this update.
    pub paused: bool,
    /// Format 2: no device starts a *new* install after this time (seconds
    /// since the epoch) until the channel is republished; the rollout stops
    /// widening when the evaluator stops running. Distinct from `expires`.
    pub lease_until: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    percent: u8,
    seed: String,
    paused: bool,
    // Plain strings, empty when absent: an `Option<String>` deserializer
    // costs the device binary ~1.6 KB more.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    lease_until: String,
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
    /// Format 2: base URL devices PUT their signed reports to (docs/fleet.md).
    pub reports: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    format: u32,
    product: String,
    channel: String,
    version: String,
    manifest: String,
    rollout: RawRollout,
    created: String,
    expires: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    reports: String,
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
            serde_json::from_slice(bytes).map_err(|e| bad(json_error(bytes, &e)))?;
        if raw.format == 0 || raw.format > FORMAT {
            return Err(bad(format!(
                "`format` {} is not supported (this agent reads formats 1 to {FORMAT})",
                raw.format
            )));
        }
        if raw.format == 1 {
            for (field, set) in [
                ("reports", !raw.reports.is_empty()),
                ("rollout.lease_until", !raw.rollout.lease_until.is_empty()),
            ] {
                if set {
                    return Err(bad(format!("`{field}` needs `format` 2")));
                }
            }
        }
        let reports = (!raw.reports.is_empty()).then_some(raw.reports);
        if let Some(r) = &reports {
            let ok = (r.starts_with("https://") || r.starts_with("http://"))
                && r.len() <= 512
                && !r
                    .bytes()
                    .any(|c| c.is_ascii_whitespace() || c.is_ascii_control());
            if !ok {
                return Err(bad(format!(
                    "`reports` {r:?} must be an http(s) URL without spaces"
                )));
            }
        }
        let version = semver::Version::parse(&raw.version)
            .map_err(|e| bad(format!("`version` {:?} is not SemVer: {e}", raw.version)))?;
        let time = |field: &str, v: &str| {
            parse_rfc3339_utc(v)
                .ok_or_else(|| bad(format!("`{field}` {v:?} is not an RFC 3339 UTC time")))
        };
        let created = time("created", &raw.created)?;
        let expires = time("expires", &raw.expires)?;
        let lease_until = match raw.rollout.lease_until.as_str() {
            "" => None,
            l => Some(time("rollout.lease_until", l)?),
        };
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
            rollout: Rollout {
                percent: raw.rollout.percent,
                seed: raw.rollout.seed,
                paused: raw.rollout.paused,
                lease_until,
            },
            created,
            expires,
            reports,
        })
    }

    /// The canonical JSON encoding (pretty, fixed field order, trailing newline).
    pub fn to_json(&self) -> String {
        let v2 = self.reports.is_some() || self.rollout.lease_until.is_some();
        let raw = RawChannel {
            format: if v2 { 2 } else { 1 },
            product: self.product.clone(),
            channel: self.channel.clone(),
            version: self.version.to_string(),
            manifest: self.manifest.clone(),
            rollout: RawRollout {
                percent: self.rollout.percent,
                seed: self.rollout.seed.clone(),
                paused: self.rollout.paused,
                lease_until: self
                    .rollout
                    .lease_until
                    .map(format_rfc3339_utc)
                    .unwrap_or_default(),
            },
            created: format_rfc3339_utc(self.created),
            expires: format_rfc3339_utc(self.expires),
            reports: self.reports.clone().unwrap_or_default(),
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
                lease_until: None,
            },
            created: 1_795_564_800,
            expires: 1_795_564_800 + 30 * 86400,
            reports: None,
        }
    }

    #[test]
    fn format_2_fields_and_the_version_rule() {
        let mut c = sample();
        assert!(
            c.to_json().contains("\"format\": 1"),
            "no new fields: format 1"
        );
        c.reports = Some("https://reports.example/r".into());
        c.rollout.lease_until = Some(c.created + 86400);
        let json = c.to_json();
        assert!(json.contains("\"format\": 2"), "{json}");
        assert!(
            json.contains("\"lease_until\": \"2026-11-26T00:00:00Z\""),
            "{json}"
        );
        assert_eq!(Channel::parse(json.as_bytes()).unwrap(), c);
        let e = Channel::parse(json.replace("\"format\": 2", "\"format\": 1").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs `format` 2"), "{e}");
        let e = Channel::parse(json.replace("\"format\": 2", "\"format\": 3").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`format` 3 is not supported"), "{e}");
        let e = Channel::parse(
            json.replace("https://reports.example/r", "file:///etc")
                .as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`reports`"), "{e}");
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
