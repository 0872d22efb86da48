//! The device decides *when* (docs/policy.md): before each phase of an
//! update — download, activation, reboot — the phase's maintenance window
//! ([`windows`]) and then the policy hooks ([`hooks`]) are asked, given
//! the offer ([`Offer`]). The answer is a [`Verdict`]; the update flow
//! (`update::gate`) turns a deferral or a refusal into a stopped run.
//!
//! Urgency (signed in the manifest): `critical` ignores the download and
//! activation windows (never the reboot window), and a hook may defer a
//! `critical` release only for `critical_defer_limit_h` hours in total
//! (counted from its first deferral, kept in `state_dir`), after which its
//! deferrals — and broken hooks — are overridden. A refusal is always
//! obeyed. `security` is told to the hooks and otherwise treated like
//! `normal`.

pub mod hooks;
mod memory;
pub mod windows;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::bundle::{Kind, Manifest, Urgency};
use crate::state::StateDir;
use crate::Result;

pub use memory::{forget_deferrals, refused};
use windows::Windows;

/// A phase the policy is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the first payload byte is fetched.
    Download,
    /// After the slot is written and read back, before it becomes the boot target.
    Activate,
    /// Before the reboot into the new slot.
    Reboot,
}

impl Phase {
    /// The name in the offer, in messages and in config keys.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Activate => "activate",
            Phase::Reboot => "reboot",
        }
    }
}

/// `policy_dir`, `policy_timeout_s`, `critical_defer_limit_h` and `[windows]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Directory of policy hooks; `None` = no hooks.
    pub dir: Option<PathBuf>,
    /// Seconds one hook may run before it is killed (and counts as broken).
    pub timeout_s: u64,
    /// Hours a `critical` release may be deferred by hooks in total.
    pub critical_defer_limit_h: u64,
    /// `[windows] download`, `activate`, `reboot`; empty = always open.
    pub download: Windows,
    /// See `download`.
    pub activate: Windows,
    /// See `download`.
    pub reboot: Windows,
    /// `[windows] utc_offset`, minutes east of UTC.
    pub utc_offset_min: i32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: None,
            timeout_s: 30,
            critical_defer_limit_h: 24,
            download: Windows::default(),
            activate: Windows::default(),
            reboot: Windows::default(),
            utc_offset_min: 0,
        }
    }
}

impl PolicyConfig {
    /// Whether anything is configured (else the flow skips the policy,
    /// fetching nothing extra).
    pub fn is_active(&self) -> bool {
        self.dir.is_some()
            || !self.download.0.is_empty()
            || !self.activate.0.is_empty()
            || !self.reboot.0.is_empty()
    }

    fn windows(&self, phase: Phase) -> &Windows {
        match phase {
            Phase::Download => &self.download,
            Phase::Activate => &self.activate,
            Phase::Reboot => &self.reboot,
        }
    }
}

/// What the hooks get on stdin (docs/policy.md "The offer").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The phase about to start.
    pub phase: Phase,
    /// `ota-agent check` asks: nothing happens whatever the answer.
    pub check_only: bool,
    /// Product id.
    pub product: String,
    /// The installed release, if readable.
    pub from_version: Option<String>,
    /// The offered release.
    pub to_version: String,
    /// Its urgency.
    pub urgency: Urgency,
    /// Bytes to fetch: all payloads.
    pub download_bytes: u64,
    /// Bytes written to the slot: all images.
    pub image_bytes: u64,
    /// Whether any image is a delta.
    pub delta: bool,
    /// The device's stored minimum security version, if readable.
    pub security_version_from: Option<u32>,
    /// The release's security version.
    pub security_version_to: u32,
    /// The appliance MCU's state (`idle`, `cooking`, …) when asked and it answered.
    pub mcu: Option<&'static str>,
}

impl Offer {
    /// The offer of `m` for `phase`.
    pub fn new(phase: Phase, m: &Manifest, from: Option<String>, sv_from: Option<u32>) -> Offer {
        Offer {
            phase,
            check_only: false,
            product: m.product.clone(),
            from_version: from,
            to_version: m.version.to_string(),
            urgency: m.urgency,
            download_bytes: m.images.iter().map(|i| i.payload.size).sum(),
            image_bytes: m.images.iter().map(|i| i.result.size).sum(),
            delta: m
                .images
                .iter()
                .any(|i| matches!(i.kind, Kind::Bsdiff { .. })),
            security_version_from: sv_from,
            security_version_to: m.security_version,
            mcu: None,
        }
    }

    /// One line of JSON (RFC 8259), newline-terminated.
    pub fn to_json(&self) -> String {
        let s = crate::json::string;
        let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
        format!(
            "{{\"phase\":\"{}\",\"check_only\":{},\"product\":{},\"from_version\":{},\"to_version\":{},\"urgency\":\"{}\",\"download_bytes\":{},\"image_bytes\":{},\"delta\":{},\"security_version\":{{\"from\":{},\"to\":{}}},\"mcu\":{}}}\n",
            self.phase.name(),
            self.check_only,
            s(&self.product),
            opt(self.from_version.as_deref().map(s)),
            s(&self.to_version),
            self.urgency.name(),
            self.download_bytes,
            self.image_bytes,
            self.delta,
            opt(self.security_version_from.map(|v| v.to_string())),
            self.security_version_to,
            opt(self.mcu.map(s)),
        )
    }
}

/// The policy's answer for one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Proceed,
    /// Not now: `why` (one line), and when to ask again if known.
    Defer {
        /// `download window closed until …`, `hook 10-mcu deferred reboot: …`.
        why: String,
        /// UTC seconds.
        until: Option<i64>,
    },
    /// Never this release: `why` names the hook.
    Refuse {
        /// `hook 20-x refused: …`.
        why: String,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Proceed => f.write_str("proceed"),
            Verdict::Defer { why, .. } | Verdict::Refuse { why } => f.write_str(why),
        }
    }
}

/// A voice asked after the window and before the hooks, answering like a
/// hook (the control socket's inhibits and consent, `control::Hub`).
pub trait Voice {
    /// Who answers, in messages (`local control`).
    fn name(&self) -> &str;
    /// The answer to `offer` at `now` (UTC seconds, the policy's clock).
    fn answer(&self, offer: &Offer, now: i64) -> hooks::Answer;
}

/// Asks the window, then `voice` (if any) and then each hook about
/// `offer` at `now`. With `record` (a real run, not `check`), a refusal is
/// remembered in `state` and a deferral of a `critical` release is
/// counted there.
pub fn decide(
    cfg: &PolicyConfig,
    state: &StateDir,
    now: i64,
    offer: &Offer,
    record: bool,
    voice: Option<&dyn Voice>,
) -> Result<Verdict> {
    let phase = offer.phase.name();
    let critical = offer.urgency == Urgency::Critical;
    if let Err(closed) = cfg.windows(offer.phase).check(now, cfg.utc_offset_min) {
        if critical && offer.phase != Phase::Reboot {
            log::info!(
                "policy: {phase} {closed}; ignored for the critical release {}",
                offer.to_version
            );
        } else {
            return Ok(Verdict::Defer {
                why: format!("{phase} {closed}"),
                until: Some(closed.until),
            });
        }
    }
    let hooks = match &cfg.dir {
        Some(dir) => hooks::list(dir)?,
        None => Vec::new(),
    };
    let json = offer.to_json();
    let limit = Duration::from_secs(cfg.timeout_s);
    // The voice first, then the hooks in order; the first that does not
    // say proceed decides.
    let voice = voice.map(|v| (v.name().to_owned(), v.answer(offer, now)));
    let hooks = hooks.iter().map(|hook| {
        let name = hook
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        log::info!("policy: {phase}: running {}", hook.display());
        (format!("hook {name}"), hooks::run(hook, &json, limit, now))
    });
    for (who, answer) in voice.into_iter().chain(hooks) {
        let (why, until) = match answer {
            hooks::Answer::Proceed => continue,
            hooks::Answer::Refuse { note } => {
                let why = format!("{who} refused {}{}", offer.to_version, colon(&note));
                if record {
                    memory::refuse(state, &offer.to_version, &why)?;
                }
                return Ok(Verdict::Refuse { why });
            }
            hooks::Answer::Defer { note, until } => {
                let when = until
                    .map(|t| format!(" (until {})", crate::bundle::time::format_rfc3339_utc(t)))
                    .unwrap_or_default();
                (
                    format!("{who} deferred {phase}{}{when}", colon(&note)),
                    until,
                )
            }
            hooks::Answer::Broken(e) => (format!("{who} is broken ({e}); {phase} deferred"), None),
        };
        if critical {
            let limit_s =
                i64::try_from(cfg.critical_defer_limit_h.saturating_mul(3600)).unwrap_or(i64::MAX);
            let (first, count) = memory::deferrals(state, &offer.to_version).unwrap_or((now, 0));
            if now.saturating_sub(first) >= limit_s {
                log::warn!(
                    "policy: {why}; overridden: the critical release {} has been deferred since {} ({count} times), critical_defer_limit_h is {}",
                    offer.to_version,
                    crate::bundle::time::format_rfc3339_utc(first),
                    cfg.critical_defer_limit_h
                );
                continue;
            }
            if record {
                memory::count_deferral(state, &offer.to_version, first, count + 1)?;
            }
        }
        return Ok(Verdict::Defer { why, until });
    }
    Ok(Verdict::Proceed)
}

fn colon(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::time::parse_rfc3339_utc;
    use std::os::unix::fs::PermissionsExt;

    fn manifest(urgency: Urgency) -> Manifest {
        let mut m =
            Manifest::parse(include_bytes!("../../testdata/manifest-example.json")).unwrap();
        m.urgency = urgency;
        m
    }

    fn offer(phase: Phase, urgency: Urgency) -> Offer {
        Offer::new(phase, &manifest(urgency), Some("1.3.0".into()), Some(2))
    }

    fn at(s: &str) -> i64 {
        parse_rfc3339_utc(s).unwrap()
    }

    struct Fx {
        _dir: tempfile::TempDir,
        hooks: PathBuf,
        state: StateDir,
    }

    fn fx() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("policy.d");
        std::fs::create_dir(&hooks).unwrap();
        let state = StateDir::new(dir.path().join("state"));
        Fx {
            hooks,
            state,
            _dir: dir,
        }
    }

    fn hook(f: &Fx, name: &str, body: &str) {
        let p = f.hooks.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn night_windows() -> PolicyConfig {
        let w = Windows::parse(&["01:00-05:00".to_string()]).unwrap();
        PolicyConfig {
            download: w.clone(),
            activate: w.clone(),
            reboot: w,
            ..PolicyConfig::default()
        }
    }

    #[test]
    fn critical_overrides_the_download_and_activate_windows_never_the_reboot_window() {
        let f = fx();
        let cfg = night_windows();
        let noon = at("2026-12-07T12:00:00Z");
        for phase in [Phase::Download, Phase::Activate, Phase::Reboot] {
            for u in [Urgency::Normal, Urgency::Security] {
                assert_eq!(
                    decide(&cfg, &f.state, noon, &offer(phase, u), true, None).unwrap(),
                    Verdict::Defer {
                        why: format!(
                            "{} window closed until 2026-12-08T01:00+00:00",
                            phase.name()
                        ),
                        until: Some(at("2026-12-08T01:00:00Z")),
                    }
                );
            }
            let v = decide(
                &cfg,
                &f.state,
                noon,
                &offer(phase, Urgency::Critical),
                true,
                None,
            )
            .unwrap();
            assert_eq!(
                v == Verdict::Proceed,
                phase != Phase::Reboot,
                "{phase:?}: {v}"
            );
        }
        // Inside the window everything proceeds.
        let night = at("2026-12-07T02:00:00Z");
        assert_eq!(
            decide(
                &cfg,
                &f.state,
                night,
                &offer(Phase::Reboot, Urgency::Normal),
                true,
                None
            )
            .unwrap(),
            Verdict::Proceed
        );
    }

    #[test]
    fn hooks_run_in_order_get_the_offer_and_the_first_no_wins() {
        let f = fx();
        let log = f.hooks.parent().unwrap().join("log");
        hook(&f, "10-first", &format!("cat > {}; exit 0", log.display()));
        hook(&f, "20-second", "echo '300 cooking'; exit 10");
        hook(&f, "30-never", "exit 20");
        let cfg = PolicyConfig {
            dir: Some(f.hooks.clone()),
            ..PolicyConfig::default()
        };
        let now = at("2026-12-07T12:00:00Z");
        let v = decide(
            &cfg,
            &f.state,
            now,
            &offer(Phase::Reboot, Urgency::Normal),
            true,
            None,
        )
        .unwrap();
        assert_eq!(
            v,
            Verdict::Defer {
                why: "hook 20-second deferred reboot: cooking (until 2026-12-07T12:05:00Z)".into(),
                until: Some(now + 300)
            }
        );
        // The first hook saw the offer: one JSON object, every field.
        let seen: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert_eq!(seen["phase"], "reboot");
        assert_eq!(seen["check_only"], false);
        assert_eq!(seen["product"], "rice-cooker");
        assert_eq!(seen["from_version"], "1.3.0");
        assert_eq!(seen["to_version"], "1.4.0");
        assert_eq!(seen["urgency"], "normal");
        assert_eq!(seen["delta"], true);
        assert_eq!(seen["security_version"]["from"], 2);
        assert_eq!(seen["security_version"]["to"], 3);
        let m = manifest(Urgency::Normal);
        let payloads: u64 = m.images.iter().map(|i| i.payload.size).sum();
        assert_eq!(seen["download_bytes"], payloads);
        assert!(seen["mcu"].is_null());
        // Normal releases are never counted.
        assert_eq!(memory::deferrals(&f.state, "1.4.0"), None);
    }

    #[test]
    fn a_refusal_is_remembered_by_runs_not_by_check() {
        let f = fx();
        hook(&f, "50-no", "echo 'not on this model'; exit 20");
        let cfg = PolicyConfig {
            dir: Some(f.hooks.clone()),
            ..PolicyConfig::default()
        };
        let mut o = offer(Phase::Download, Urgency::Critical);
        o.check_only = true;
        let want = Verdict::Refuse {
            why: "hook 50-no refused 1.4.0: not on this model".into(),
        };
        assert_eq!(decide(&cfg, &f.state, 0, &o, false, None).unwrap(), want);
        assert_eq!(refused(&f.state), None);
        o.check_only = false;
        assert_eq!(decide(&cfg, &f.state, 0, &o, true, None).unwrap(), want);
        assert_eq!(
            refused(&f.state),
            Some((
                semver::Version::new(1, 4, 0),
                "hook 50-no refused 1.4.0: not on this model".into()
            ))
        );
    }

    #[test]
    fn a_critical_release_is_deferred_by_hooks_for_a_bounded_time_only() {
        let f = fx();
        hook(&f, "10-broken", "exit 7");
        let cfg = PolicyConfig {
            dir: Some(f.hooks.clone()),
            critical_defer_limit_h: 24,
            ..PolicyConfig::default()
        };
        let t0 = at("2026-12-07T12:00:00Z");
        let broken = |phase: &str| Verdict::Defer {
            why: format!("hook 10-broken is broken (exited with status 7); {phase} deferred"),
            until: None,
        };
        let crit = offer(Phase::Download, Urgency::Critical);
        assert_eq!(
            decide(&cfg, &f.state, t0, &crit, true, None).unwrap(),
            broken("download")
        );
        assert_eq!(memory::deferrals(&f.state, "1.4.0"), Some((t0, 1)));
        // `check` neither counts nor starts the clock.
        assert_eq!(
            decide(&cfg, &f.state, t0 + 60, &crit, false, None).unwrap(),
            broken("download")
        );
        assert_eq!(memory::deferrals(&f.state, "1.4.0"), Some((t0, 1)));
        // The bound is per release over all phases, from the first deferral.
        let act = offer(Phase::Activate, Urgency::Critical);
        assert_eq!(
            decide(&cfg, &f.state, t0 + 24 * 3600 - 1, &act, true, None).unwrap(),
            broken("activate")
        );
        assert_eq!(memory::deferrals(&f.state, "1.4.0"), Some((t0, 2)));
        assert_eq!(
            decide(&cfg, &f.state, t0 + 24 * 3600, &act, true, None).unwrap(),
            Verdict::Proceed
        );
        // A normal release waits for its hooks however long it takes.
        let normal = offer(Phase::Download, Urgency::Normal);
        assert_eq!(
            decide(&cfg, &f.state, t0 + 30 * 86400, &normal, true, None).unwrap(),
            broken("download")
        );
        // A refusal holds even for a critical release past the bound.
        hook(&f, "20-no", "exit 20");
        assert!(matches!(
            decide(&cfg, &f.state, t0 + 48 * 3600, &act, true, None).unwrap(),
            Verdict::Refuse { .. }
        ));
    }

    /// A voice that always gives one answer.
    struct Says(hooks::Answer);

    impl Voice for Says {
        fn name(&self) -> &str {
            "local control"
        }
        fn answer(&self, _: &Offer, _: i64) -> hooks::Answer {
            self.0.clone()
        }
    }

    #[test]
    fn the_voice_speaks_before_the_hooks_under_the_same_bounds() {
        let f = fx();
        let ran = f.hooks.parent().unwrap().join("ran");
        hook(&f, "10-any", &format!("touch {}; exit 0", ran.display()));
        let cfg = PolicyConfig {
            dir: Some(f.hooks.clone()),
            critical_defer_limit_h: 1,
            ..PolicyConfig::default()
        };
        let t0 = at("2026-12-07T12:00:00Z");
        let inhibit = Says(hooks::Answer::Defer {
            note: "inhibit 1 (cooking)".into(),
            until: Some(t0 + 600),
        });
        let o = offer(Phase::Download, Urgency::Normal);
        assert_eq!(
            decide(&cfg, &f.state, t0, &o, true, Some(&inhibit)).unwrap(),
            Verdict::Defer {
                why: "local control deferred download: inhibit 1 (cooking) (until 2026-12-07T12:10:00Z)"
                    .into(),
                until: Some(t0 + 600)
            }
        );
        assert!(!ran.exists(), "a hook ran after the voice deferred");
        // A critical release: deferred for critical_defer_limit_h, then the
        // hooks are asked.
        let crit = offer(Phase::Download, Urgency::Critical);
        assert!(matches!(
            decide(&cfg, &f.state, t0, &crit, true, Some(&inhibit)).unwrap(),
            Verdict::Defer { .. }
        ));
        assert_eq!(
            decide(&cfg, &f.state, t0 + 3600, &crit, true, Some(&inhibit)).unwrap(),
            Verdict::Proceed
        );
        assert!(ran.exists());
        // A decline is a refusal, remembered.
        let decline = Says(hooks::Answer::Refuse {
            note: "declined on the control socket".into(),
        });
        assert_eq!(
            decide(&cfg, &f.state, t0, &o, true, Some(&decline)).unwrap(),
            Verdict::Refuse {
                why: "local control refused 1.4.0: declined on the control socket".into()
            }
        );
        assert_eq!(refused(&f.state).unwrap().0, semver::Version::new(1, 4, 0));
    }
}
