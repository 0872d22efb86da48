//! The channel check: fetch `<server>/<product>/<channel>.json` and its
//! `.sig`, verify the signature with the trusted keys, then decide from
//! signed facts only whether this device should update now.
//!
//! Order of the decision (the first that applies wins):
//! 1. the channel file is for another product or channel → error;
//! 2. it expired (clock sanity as for manifests: an unset clock is judged
//!    as [`CLOCK_FLOOR`]) → error;
//! 3. its version is not newer than the installed one → no update;
//! 4. the rollout is paused → no update;
//! 5. `rollout.lease_until` has passed → no update (lease expired);
//! 6. the device's bucket is not below `percent` → no update;
//! 7. otherwise → update to that version, manifest URL attached.

use std::fmt;

use super::{dir_url, join_url, Client};
use crate::bundle::channel::{self, Channel};
use crate::bundle::{signature, time, BundleError, TrustedKeys, CLOCK_FLOOR};
use crate::Result;

/// What `check` concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Install `version` from `manifest_url`.
    Update {
        /// The offered release.
        version: semver::Version,
        /// Absolute URL of its `manifest.json`.
        manifest_url: String,
        /// The device's bucket (0..10000) and the rollout's percent.
        bucket: u64,
    },
    /// The offered release is not newer than the installed one.
    UpToDate {
        /// The offered release.
        offered: semver::Version,
    },
    /// The rollout is paused.
    Paused {
        /// The offered release.
        version: semver::Version,
    },
    /// The channel's `rollout.lease_until` has passed: no new install
    /// starts until the channel is republished (docs/channel.md).
    LeaseExpired {
        /// The offered release.
        version: semver::Version,
    },
    /// The offered release was installed here before and the device went
    /// back from it (bootloader fallback or `mark-bad`): not installed again
    /// automatically; a newer release will be.
    RolledBack {
        /// The offered release.
        version: semver::Version,
    },
    /// A policy hook on this device refused the offered release
    /// (docs/policy.md): not installed; a newer release will be.
    Refused {
        /// The offered release.
        version: semver::Version,
        /// The hook and its reason, as recorded.
        why: String,
    },
    /// The device is outside the rollout's share.
    NotInRollout {
        /// The offered release.
        version: semver::Version,
        /// The device's bucket, 0..10000.
        bucket: u64,
        /// The rollout's percent.
        percent: u8,
    },
}

impl Decision {
    /// Whether an update should be installed.
    pub fn is_update(&self) -> bool {
        matches!(self, Decision::Update { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Update {
                version, bucket, ..
            } => write!(
                f,
                "update available: {version} (device bucket {:.2}% is inside the rollout)",
                *bucket as f64 / 100.0
            ),
            Decision::UpToDate { offered } => {
                write!(f, "no update: channel offers {offered}, not newer than the installed release")
            }
            Decision::Paused { version } => {
                write!(f, "no update: the rollout of {version} is paused")
            }
            Decision::LeaseExpired { version } => write!(
                f,
                "no update: the rollout lease of {version} has ended; waiting for the channel to be republished"
            ),
            Decision::RolledBack { version } => write!(
                f,
                "no update: {version} was rolled back on this device; waiting for a newer release"
            ),
            Decision::Refused { version, why } => write!(
                f,
                "no update: {version} was refused by this device's policy ({why}); waiting for a newer release"
            ),
            Decision::NotInRollout {
                version,
                bucket,
                percent,
            } => write!(
                f,
                "no update yet: {version} is rolled out to {percent}% and this device's bucket is {:.2}%",
                *bucket as f64 / 100.0
            ),
        }
    }
}

/// What the device knows when judging a channel file.
#[derive(Debug, Clone)]
pub struct ChannelFacts<'a> {
    /// Configured product.
    pub product: &'a str,
    /// Configured channel name.
    pub channel: &'a str,
    /// The running release.
    pub installed: &'a semver::Version,
    /// The device id (rollout bucket).
    pub device_id: &'a str,
    /// Seconds since the epoch.
    pub now: i64,
}

/// The URL of the channel file.
pub fn channel_url(server: &str, product: &str, channel: &str) -> String {
    join_url(server, &format!("{product}/{channel}.json"))
}

/// Decides from a verified, parsed channel file (pure; see the module docs).
pub fn decide(c: &Channel, channel_url: &str, d: &ChannelFacts) -> Result<Decision, BundleError> {
    let bad = |m: String| BundleError::Channel(m);
    if c.product != d.product {
        return Err(bad(format!(
            "is for product `{}`, this device is `{}`",
            c.product, d.product
        )));
    }
    if c.channel != d.channel {
        return Err(bad(format!(
            "is for channel `{}`, this device follows `{}`",
            c.channel, d.channel
        )));
    }
    let now = d.now.max(CLOCK_FLOOR);
    if now >= c.expires {
        return Err(bad(format!(
            "expired at {} (now {}); the server must republish it",
            time::format_rfc3339_utc(c.expires),
            time::format_rfc3339_utc(now)
        )));
    }
    if c.version.cmp_precedence(d.installed) != std::cmp::Ordering::Greater {
        return Ok(Decision::UpToDate {
            offered: c.version.clone(),
        });
    }
    if c.rollout.paused {
        return Ok(Decision::Paused {
            version: c.version.clone(),
        });
    }
    if c.rollout.lease_until.is_some_and(|l| now >= l) {
        return Ok(Decision::LeaseExpired {
            version: c.version.clone(),
        });
    }
    let bucket = channel::bucket(d.device_id, &c.rollout.seed);
    if !c.includes(d.device_id) {
        return Ok(Decision::NotInRollout {
            version: c.version.clone(),
            bucket,
            percent: c.rollout.percent,
        });
    }
    Ok(Decision::Update {
        version: c.version.clone(),
        manifest_url: join_url(dir_url(channel_url), &c.manifest),
        bucket,
    })
}

/// Fetches and verifies the channel file, then decides.
pub fn check(
    client: &Client,
    server: &str,
    keys: &TrustedKeys,
    facts: &ChannelFacts,
) -> Result<(Channel, Decision)> {
    let url = channel_url(server, facts.product, facts.channel);
    let bytes = client.get_small(&url, channel::MAX_LEN)?;
    let sig = client.get_small(&format!("{url}.sig"), signature::MAX_SIGNATURE_LEN)?;
    keys.verify(&bytes, &sig)
        .map_err(|e| BundleError::Channel(format!("signature: {e}")))?;
    let c = Channel::parse(&bytes)?;
    let d = decide(&c, &url, facts)?;
    Ok((c, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::channel::Rollout;

    fn chan(percent: u8, paused: bool) -> Channel {
        Channel {
            product: "rice-cooker".into(),
            channel: "stable".into(),
            version: semver::Version::new(1, 4, 0),
            manifest: "releases/1.4.0/manifest.json".into(),
            rollout: Rollout {
                percent,
                seed: "1.4.0".into(),
                paused,
                lease_until: None,
            },
            created: CLOCK_FLOOR,
            expires: CLOCK_FLOOR + 30 * 86400,
            reports: None,
        }
    }

    fn facts<'a>(installed: &'a semver::Version, id: &'a str) -> ChannelFacts<'a> {
        ChannelFacts {
            product: "rice-cooker",
            channel: "stable",
            installed,
            device_id: id,
            now: CLOCK_FLOOR + 86400,
        }
    }

    const URL: &str = "https://u.example/ota/rice-cooker/stable.json";

    #[test]
    fn decisions_in_order() {
        let old = semver::Version::new(1, 3, 9);
        let same = semver::Version::new(1, 4, 0);
        let f = facts(&old, "dev-1");
        match decide(&chan(100, false), URL, &f).unwrap() {
            Decision::Update { manifest_url, .. } => assert_eq!(
                manifest_url,
                "https://u.example/ota/rice-cooker/releases/1.4.0/manifest.json"
            ),
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            decide(&chan(100, false), URL, &facts(&same, "dev-1")).unwrap(),
            Decision::UpToDate { .. }
        ));
        assert!(matches!(
            decide(&chan(100, true), URL, &f).unwrap(),
            Decision::Paused { .. }
        ));
        assert!(matches!(
            decide(&chan(0, false), URL, &f).unwrap(),
            Decision::NotInRollout { percent: 0, .. }
        ));
        let mut other = chan(100, false);
        other.product = "toaster".into();
        assert!(decide(&other, URL, &f)
            .unwrap_err()
            .to_string()
            .contains("toaster"));
        let mut expired = chan(100, false);
        expired.expires = CLOCK_FLOOR + 10;
        assert!(decide(&expired, URL, &f)
            .unwrap_err()
            .to_string()
            .contains("expired"));
        // The lease: before it ends, an update; after it, no new install
        // (and a lease is no reason to skip an up-to-date answer).
        let mut leased = chan(100, false);
        leased.rollout.lease_until = Some(CLOCK_FLOOR + 86400 + 1);
        assert!(decide(&leased, URL, &f).unwrap().is_update());
        leased.rollout.lease_until = Some(CLOCK_FLOOR + 86400);
        assert!(matches!(
            decide(&leased, URL, &f).unwrap(),
            Decision::LeaseExpired { .. }
        ));
        assert!(matches!(
            decide(&leased, URL, &facts(&same, "dev-1")).unwrap(),
            Decision::UpToDate { .. }
        ));
        // An unset clock is judged as CLOCK_FLOOR: this channel is still valid.
        let mut f0 = facts(&old, "dev-1");
        f0.now = 0;
        assert!(decide(&chan(100, false), URL, &f0).unwrap().is_update());
    }

    /// Issue #7: 10,000 synthetic ids at 10 % → 10 % ± 1 % eligible; raising
    /// to 20 % keeps every previously eligible device eligible.
    #[test]
    fn rollout_share_and_monotonic_raise() {
        let old = semver::Version::new(1, 0, 0);
        let ids: Vec<String> = (0..10_000).map(|i| format!("rc-{i:08x}")).collect();
        let eligible = |p: u8| -> Vec<bool> {
            ids.iter()
                .map(|id| {
                    decide(&chan(p, false), URL, &facts(&old, id))
                        .unwrap()
                        .is_update()
                })
                .collect()
        };
        let at10 = eligible(10);
        let n10 = at10.iter().filter(|e| **e).count();
        assert!((900..=1100).contains(&n10), "{n10} of 10000 at 10%");
        let at20 = eligible(20);
        let n20 = at20.iter().filter(|e| **e).count();
        assert!((1900..=2100).contains(&n20), "{n20} of 10000 at 20%");
        let lost = at10.iter().zip(&at20).filter(|(a, b)| **a && !**b).count();
        assert_eq!(lost, 0, "devices dropped out when raising 10% → 20%");
    }
}
