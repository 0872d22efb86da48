//! `ota-sign rollout evaluate`: the staged-rollout policy (docs/fleet.md).
//!
//! From the current signed channel file and the accepted reports of its
//! release, first match wins:
//! 1. the channel is paused → held (a paused rollout is resumed by a person
//!    with `ota-sign publish`, never by cron);
//! 2. rolled back + failed ≥ `pause_failures`, or their share of finished
//!    devices > `max_failure_ratio` → **paused**;
//! 3. at the last stage → held (complete);
//! 4. the devices that joined at the current stage (bucket between the
//!    previous stage and this one) have ≥ min(`min_committed`, their
//!    number) committed → **advanced** to the next stage;
//! 5. otherwise → held.
//!
//! "Held" rewrites the channel only to renew `rollout.lease_until` when less
//! than half the lease is left; so running it again with the same reports
//! changes nothing (idempotent), and when it stops running the lease runs
//! out and no new device starts.

use std::path::{Path, PathBuf};

use ota_agent::bundle::channel::{bucket, Channel};
use serde::Deserialize;

use super::collect::Registry;
use super::stats::Release;
use crate::error::{Error, Result};

/// The policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The channel file to evaluate and rewrite (`.sig` next to it).
    pub channel: PathBuf,
    /// The release signing key.
    pub key: PathBuf,
    /// Report directory or URL.
    pub reports: String,
    /// The device registry.
    pub devices: PathBuf,
    /// Stages in percent, rising, ending at 100.
    pub stages: Vec<u8>,
    /// Committed devices of the current stage's cohort needed to advance.
    pub min_committed: usize,
    /// Largest (rolled back + failed) / finished share tolerated.
    pub max_failure_ratio: f64,
    /// Rolled back + failed that pause the rollout.
    pub pause_failures: usize,
    /// Hours each published channel file lets new devices start.
    #[serde(default = "default_lease")]
    pub lease_hours: u32,
    /// Days until the channel file expires.
    #[serde(default = "default_expires")]
    pub expires_days: u32,
}

fn default_lease() -> u32 {
    24
}
fn default_expires() -> u32 {
    30
}

impl Policy {
    /// Loads `path`; relative paths inside are relative to its directory.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut p: Policy = toml::from_str(&text)
            .map_err(|e| Error::Failed(format!("{}: {}", path.display(), e.message())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut p.channel, &mut p.key, &mut p.devices] {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        if !p.reports.contains("://") && Path::new(&p.reports).is_relative() {
            p.reports = base.join(&p.reports).display().to_string();
        }
        let bad = |m: &str| Error::Failed(format!("{}: {m}", path.display()));
        if p.stages.is_empty()
            || p.stages.windows(2).any(|w| w[0] >= w[1])
            || p.stages.last() != Some(&100)
            || p.stages[0] == 0
        {
            return Err(bad("`stages` must rise strictly from above 0 to 100"));
        }
        if !(0.0..=1.0).contains(&p.max_failure_ratio) {
            return Err(bad("`max_failure_ratio` must be within 0..1"));
        }
        if p.pause_failures == 0 || p.lease_hours == 0 || p.expires_days == 0 {
            return Err(bad(
                "`pause_failures`, `lease_hours`, `expires_days` must be above 0",
            ));
        }
        Ok(p)
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Widen to this percent.
    Advance(u8),
    /// Stop new devices.
    Pause,
    /// Keep as is.
    Hold,
}

/// Decides (pure). Returns the verdict and the reason line.
pub fn decide(p: &Policy, c: &Channel, rel: &Release, reg: &Registry) -> (Verdict, String) {
    let failures = rel.failures();
    let finished = rel.committed + failures;
    let ratio = if finished == 0 {
        0.0
    } else {
        failures as f64 / finished as f64
    };
    let pct = c.rollout.percent;
    if c.rollout.paused {
        return (
            Verdict::Hold,
            format!("paused at {pct}%: resume with `ota-sign publish` after a look at the reports"),
        );
    }
    if failures >= p.pause_failures || ratio > p.max_failure_ratio {
        return (
            Verdict::Pause,
            format!(
                "{failures} rolled back or failed of {finished} finished (ratio {ratio:.3}; pause at {} or above {:.3})",
                p.pause_failures, p.max_failure_ratio
            ),
        );
    }
    let idx = p
        .stages
        .iter()
        .position(|s| *s >= pct)
        .unwrap_or(p.stages.len() - 1);
    let Some(&next) = p.stages.iter().find(|s| **s > pct) else {
        return (
            Verdict::Hold,
            format!(
                "complete at {pct}%: {} committed, {failures} failures",
                rel.committed
            ),
        );
    };
    let lo = if p.stages[idx] == pct && idx > 0 {
        p.stages[idx - 1]
    } else if p.stages[idx] == pct {
        0
    } else {
        // Off the stage list (published by hand): the cohort is everyone.
        0
    };
    let cohort: Vec<&String> = reg
        .keys()
        .filter(|id| {
            let b = bucket(id, &c.rollout.seed);
            b >= u64::from(lo) * 100 && b < u64::from(pct) * 100
        })
        .collect();
    let committed: usize = cohort
        .iter()
        .filter(|id| rel.committed_devices.contains(id.as_str()))
        .count();
    let need = p.min_committed.min(cohort.len());
    if committed >= need {
        (
            Verdict::Advance(next),
            format!(
                "{committed} of the {} devices of the {lo}-{pct}% stage committed (need {need}), {failures} failures (ratio {ratio:.3})",
                cohort.len()
            ),
        )
    } else {
        (
            Verdict::Hold,
            format!(
                "{committed} of the {} devices of the {lo}-{pct}% stage committed, need {need}",
                cohort.len()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_agent::bundle::channel::Rollout;
    use ota_agent::bundle::PublicKey;
    use std::collections::{BTreeMap, BTreeSet};

    fn policy() -> Policy {
        Policy {
            channel: "c".into(),
            key: "k".into(),
            reports: "r".into(),
            devices: "d".into(),
            stages: vec![10, 50, 100],
            min_committed: 3,
            max_failure_ratio: 0.1,
            pause_failures: 4,
            lease_hours: 24,
            expires_days: 30,
        }
    }

    fn chan(percent: u8, paused: bool) -> Channel {
        Channel {
            product: "p".into(),
            channel: "stable".into(),
            version: semver::Version::new(1, 0, 0),
            manifest: "m.json".into(),
            rollout: Rollout {
                percent,
                seed: "1.0.0".into(),
                paused,
                lease_until: None,
            },
            created: 0,
            expires: 1,
            reports: None,
        }
    }

    fn registry(n: usize) -> Registry {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let k = PublicKey::from_uncompressed_point("k", point.as_bytes()).unwrap();
        (0..n).map(|i| (format!("d{i}"), k.clone())).collect()
    }

    fn release(committed: &[&String], rolled_back: usize, failed: usize) -> Release {
        let mut rb = BTreeMap::new();
        if rolled_back > 0 {
            rb.insert("boot attempts exhausted".to_owned(), rolled_back);
        }
        let mut f = BTreeMap::new();
        if failed > 0 {
            f.insert("writing".to_owned(), failed);
        }
        Release {
            product: "p".into(),
            version: "1.0.0".into(),
            offered: None,
            by_bucket: vec![],
            started: committed.len() + rolled_back + failed,
            committed: committed.len(),
            committed_devices: committed
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>(),
            rolled_back: rb,
            failed: f,
            in_progress: 0,
            silent: 0,
            timeline: vec![],
        }
    }

    #[test]
    fn advance_hold_pause_in_order() {
        let p = policy();
        let reg = registry(400);
        let c = chan(10, false);
        let cohort: Vec<&String> = reg.keys().filter(|id| bucket(id, "1.0.0") < 1000).collect();
        assert!(cohort.len() > 10, "{}", cohort.len());
        // Two of the first stage committed: hold (needs 3).
        let (v, why) = decide(&p, &c, &release(&cohort[..2], 0, 0), &reg);
        assert_eq!(v, Verdict::Hold, "{why}");
        // Three: advance to 50.
        let (v, _) = decide(&p, &c, &release(&cohort[..3], 0, 0), &reg);
        assert_eq!(v, Verdict::Advance(50));
        // Committed devices outside the cohort do not count.
        let outside: Vec<&String> = reg
            .keys()
            .filter(|id| bucket(id, "1.0.0") >= 1000)
            .collect();
        let (v, _) = decide(&p, &c, &release(&outside[..5], 0, 0), &reg);
        assert_eq!(v, Verdict::Hold);
        // One failure in 9 finished: ratio 0.111 > 0.1 → pause.
        let (v, why) = decide(&p, &c, &release(&cohort[..8], 1, 0), &reg);
        assert_eq!(v, Verdict::Pause, "{why}");
        // One in 10: 0.1 is not above 0.1 → advance.
        let (v, _) = decide(&p, &c, &release(&cohort[..9], 0, 1), &reg);
        assert_eq!(v, Verdict::Advance(50));
        // Four failures pause whatever the ratio.
        let many: Vec<&String> = reg.keys().collect();
        let (v, _) = decide(&p, &c, &release(&many[..200], 2, 2), &reg);
        assert_eq!(v, Verdict::Pause);
        // Paused stays held; 100 % is complete.
        assert_eq!(
            decide(&p, &chan(10, true), &release(&cohort, 0, 0), &reg).0,
            Verdict::Hold
        );
        let (v, why) = decide(&p, &chan(100, false), &release(&many, 0, 0), &reg);
        assert_eq!(v, Verdict::Hold);
        assert!(why.starts_with("complete"), "{why}");
    }
}
