//! Fleet reports (issue 16, docs/fleet.md): the device tells the release
//! manager the truth about each update — started, installed, committed
//! (only after `mark-good` on the new slot), rolled back and why (sent from
//! the old slot after the reboot), failed (phase and error line), deferred
//! — as small JSON records signed by a per-device key, queued power-safely in
//! `state_dir` and PUT to any HTTP server that accepts PUT.
//!
//! ```text
//!  cli call sites ── Reporter::record(Event) ──► record::Report ─ sign (identity) ─► queue
//!                    (never fails the caller)                                         │
//!  update / daemon ── Reporter::deliver_in_background ─► deliver (PUT .sig, .json) ◄──┘
//! ```
//!
//! Recording never blocks or fails an update or a rollback: every error is
//! logged as a warning and forgotten. Delivery runs on its own thread with
//! short timeouts; a process that ends (reboot) simply leaves the rest
//! queued for the next run.

pub mod deliver;
pub mod identity;
pub mod queue;
pub mod record;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::net::{Backoff, Client, NetSettings, TlsFiles};
use crate::slots::Slot;
use crate::update_status::Phase;
use crate::{Error, Result};
pub use deliver::Delivered;
pub use identity::Identity;
pub use queue::Queue;
pub use record::{Kind, Report};

/// Longest a delivery run may take.
pub const DELIVERY_BUDGET: Duration = Duration::from_secs(60);
/// How long `update` waits for a delivery still running when it is done.
pub const FINISH_GRACE: Duration = Duration::from_secs(3);

/// What happened, as the call sites know it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The device starts fetching release `to`.
    DownloadStarted {
        /// The release.
        to: &'a str,
    },
    /// `to` was written to `slot` and activated.
    Installed {
        /// The release.
        to: &'a str,
        /// The slot written.
        slot: Slot,
    },
    /// `mark-good` confirmed the booted slot.
    Committed {
        /// The slot confirmed.
        booted: Slot,
        /// Boots used (the bootloader's count), if known.
        boot_attempts: Option<u32>,
    },
    /// A health check failed on the booted slot (not a report by itself:
    /// it becomes the reason of the rollback that follows).
    HealthFailed {
        /// The slot that was checked.
        booted: Slot,
        /// The error `mark-good` stopped with.
        error: &'a Error,
    },
    /// `mark-bad` on the booted slot (becomes the rollback's reason unless
    /// a failed health check came first).
    MarkedBad {
        /// The slot marked bad.
        booted: Slot,
    },
    /// Power cuts ended the trial of `slot` (`update::trial`; becomes the
    /// reason of the rollback that follows).
    PowerLost {
        /// The slot whose trial was cut.
        slot: Slot,
        /// What the agent found (`power lost during trial: …`).
        cause: &'a str,
    },
    /// The device went back from a slot: `from_slot` if the bootloader
    /// said which, `reason` the raw reason (`bootlimit`, `mark-bad`, …).
    RolledBack {
        /// The slot given up, if known.
        from_slot: Option<Slot>,
        /// The raw reason.
        reason: &'a str,
        /// The bootloader's boot limit, if known (tries used up).
        boot_limit: Option<u32>,
    },
    /// The update of `to` stopped with `error`.
    Failed {
        /// The release.
        to: &'a str,
        /// The error line.
        error: &'a str,
    },
    /// The device waits: `why`. `to` defaults to the installed-unconfirmed release.
    Deferred {
        /// The release, if known.
        to: Option<&'a str>,
        /// Why.
        why: &'a str,
    },
}

/// Records events of one device and delivers them.
#[derive(Debug, Clone)]
pub struct Reporter {
    state_dir: PathBuf,
    product: String,
    hardware: Option<String>,
    version_file: PathBuf,
    device_id: Option<String>,
    report_url: Option<String>,
    tls: TlsFiles,
    allow_http: bool,
}

/// The human reason of a rollback: what the device noted on the trial slot
/// (a failed health check, `mark-bad`), else what the bootloader said.
fn rollback_reason(raw: &str, cause: Option<String>) -> String {
    if let Some(c) = cause {
        return c;
    }
    match raw {
        "bootlimit" => "boot attempts exhausted".into(),
        "mark-bad" => "marked bad".into(),
        "unbootable" => "slot unbootable".into(),
        other => format!("slot unbootable ({})", record::one_line(other)),
    }
}

impl Reporter {
    /// A reporter for the configured device.
    pub fn new(config: &Config) -> Reporter {
        Reporter {
            state_dir: config.state_dir.clone(),
            product: config.product.clone(),
            hardware: config.hardware.clone(),
            version_file: config.version_file.clone(),
            device_id: crate::update::device_id(config).ok(),
            report_url: config.report_url.clone(),
            tls: TlsFiles {
                ca_file: Some(config.ca_file.clone()),
                client_cert: config.client_cert.clone(),
                client_key: config.client_key.clone(),
            },
            allow_http: config.danger_allow_http,
        }
    }

    /// Records `event`: queues a signed report when it is one. Never fails:
    /// a problem (full disk, no device id) is logged as a warning.
    pub fn record(&mut self, event: Event<'_>) {
        if let Err(e) = self.try_record(event) {
            log::warn!("report not recorded: {e}");
        }
    }

    fn installed(&self) -> Option<String> {
        crate::bundle::installed_version(&self.version_file)
            .ok()
            .map(|v| v.to_string())
    }

    /// Notes why the trial of the pending release on `booted` is failing.
    fn note(&self, q: &Queue, s: &mut queue::State, booted: Slot, cause: String) -> Result<()> {
        match s.pending.as_mut() {
            Some(p) if p.slot == booted && p.cause.is_none() => {
                p.cause = Some(cause);
                q.save(s)
            }
            _ => Ok(()),
        }
    }

    fn try_record(&mut self, event: Event<'_>) -> Result<()> {
        let q = Queue::new(&self.state_dir);
        let mut s = q.state()?;
        // (kind, from, to, reason, boot attempts, de-duplicate)
        let (kind, from, to, reason, attempts, dedup) = match event {
            Event::DownloadStarted { to } => (
                Kind::DownloadStarted,
                self.installed(),
                to.to_owned(),
                None,
                None,
                true,
            ),
            Event::Installed { to, slot } => {
                let from = self.installed();
                s.pending = Some(queue::Pending {
                    from: from.clone(),
                    to: to.to_owned(),
                    slot,
                    cause: None,
                });
                q.save(&s)?;
                (Kind::Installed, from, to.to_owned(), None, None, false)
            }
            Event::Committed {
                booted,
                boot_attempts,
            } => match s.pending.take() {
                Some(p) if p.slot == booted => {
                    (Kind::Committed, p.from, p.to, None, boot_attempts, false)
                }
                p => {
                    s.pending = p;
                    return Ok(());
                }
            },
            Event::HealthFailed { booted, error } => {
                let cause = match error {
                    Error::Health { hook, .. } => format!(
                        "health check {} failed",
                        hook.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    e => record::one_line(&format!("health checks failed: {e}")),
                };
                return self.note(&q, &mut s, booted, cause);
            }
            Event::MarkedBad { booted } => {
                return self.note(&q, &mut s, booted, "marked bad".into());
            }
            Event::PowerLost { slot, cause } => {
                return self.note(&q, &mut s, slot, record::one_line(cause));
            }
            Event::RolledBack {
                from_slot,
                reason,
                boot_limit,
            } => match s.pending.take() {
                Some(p) if from_slot.is_none_or(|f| f == p.slot) => {
                    let why = rollback_reason(reason, p.cause);
                    let attempts = (reason == "bootlimit").then_some(boot_limit).flatten();
                    (Kind::RolledBack, p.from, p.to, Some(why), attempts, false)
                }
                p => {
                    s.pending = p;
                    return Ok(());
                }
            },
            Event::Failed { to, error } => {
                let phase =
                    crate::update_status::read(&crate::state::StateDir::new(&self.state_dir))
                        .ok()
                        .flatten()
                        .map(|d| d.phase)
                        .filter(|p| *p != Phase::Failed && *p != Phase::Idle)
                        .map_or("checking", |p| p.name());
                let why = record::one_line(&format!("{phase}: {error}"));
                (
                    Kind::Failed,
                    self.installed(),
                    to.to_owned(),
                    Some(why),
                    None,
                    true,
                )
            }
            Event::Deferred { to, why } => {
                let to = match to
                    .map(str::to_owned)
                    .or(s.pending.as_ref().map(|p| p.to.clone()))
                {
                    Some(t) => t,
                    None => return Ok(()),
                };
                let why = record::one_line(why);
                (Kind::Deferred, self.installed(), to, Some(why), None, true)
            }
        };
        let key = format!("{}|{to}|{}", kind.name(), reason.as_deref().unwrap_or(""));
        if dedup && s.recent.contains(&key) {
            return Ok(());
        }
        let device = self.device_id.clone().ok_or_else(|| Error::Config {
            path: "ota-agent.toml".into(),
            reason: "no device id (device_id / device_id_file)".into(),
        })?;
        let id = Identity::load_or_create(&self.state_dir, device.clone())?;
        let seq = q.take_seq(&mut s)?;
        let report = Report {
            format: record::FORMAT,
            product: self.product.clone(),
            device,
            hardware: self.hardware.clone(),
            from,
            to,
            event: kind,
            reason,
            boot_attempts: attempts,
            agent: env!("CARGO_PKG_VERSION").into(),
            time: record::time_string(crate::bundle::time::now()),
            seq,
        };
        if let Some(v) = [&report.product, &report.device, &report.to]
            .into_iter()
            .find(|v| !record::is_segment(v))
        {
            return Err(Error::Config {
                path: "ota-agent.toml".into(),
                reason: format!("{v:?} cannot name a report (only [A-Za-z0-9._+-])"),
            });
        }
        let json = report.to_json();
        let sig = id.sign(&json)?;
        s.recent.push(key);
        let excess = s.recent.len().saturating_sub(queue::RECENT);
        s.recent.drain(..excess);
        q.push(&mut s, seq, &report.path(), &json, &sig)?;
        q.save(&s)?;
        Ok(())
    }

    /// Why the trial of `slot` is failing, if `mark-good` / `mark-bad`
    /// noted it (the installed-but-unconfirmed release's cause).
    pub fn pending_cause(&self, slot: Slot) -> Option<String> {
        Queue::new(&self.state_dir)
            .state()
            .ok()?
            .pending
            .filter(|p| p.slot == slot)?
            .cause
    }

    /// The report target: config `report_url`, else the last channel's `reports`.
    pub fn target(&self) -> Option<String> {
        self.report_url.clone().or_else(|| {
            std::fs::read_to_string(self.state_dir.join(TARGET_FILE))
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        })
    }

    /// The client reports go through: the device's TLS trust, short
    /// timeouts, few retries (reports wait in the queue for the next run).
    pub fn client(&self) -> Result<Client> {
        let settings = NetSettings {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_redirects: 0,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(2), 2),
            danger_allow_http: self.allow_http,
            fetch_deadline: Duration::from_secs(20),
            ..NetSettings::default()
        };
        Ok(Client::new(&self.tls, settings)?)
    }

    /// Sends what is queued now (within `budget`): reports to the report
    /// target if there is one, hawkBit feedback with `feedback` (the DDI
    /// client) if given.
    pub fn deliver(&self, budget: Duration, feedback: Option<&Client>) -> Result<Delivered> {
        let target = self.target();
        let client = match target {
            Some(_) => Some(self.client()?),
            None => None,
        };
        let routes = deliver::Routes {
            reports: client.as_ref().zip(target.as_deref()),
            feedback,
        };
        Ok(deliver::deliver(
            &Queue::new(&self.state_dir),
            routes,
            budget,
        ))
    }

    /// Delivers from a child process (`ota-agent --config FILE -q report
    /// --send`), so nothing waits for the report target; a process rather
    /// than a thread because the binary has no other threads (std's thread
    /// support would cost size). `None` when there is nothing to send.
    pub fn deliver_in_background(&self, config_path: &std::path::Path) -> Option<Child> {
        if Queue::new(&self.state_dir).entries().is_empty() || self.target().is_none() {
            return None;
        }
        let exe = std::env::current_exe().ok()?;
        std::process::Command::new(exe)
            .arg("--config")
            .arg(config_path)
            .args(["-q", "report", "--send"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .inspect_err(|e| log::warn!("reports: cannot start the delivery: {e}"))
            .ok()
    }
}

/// Whether a background delivery has ended (reaped) or never started.
pub fn done(child: &mut Option<Child>) -> bool {
    match child {
        None => true,
        Some(c) => !matches!(c.try_wait(), Ok(None)),
    }
}

/// Waits a little ([`FINISH_GRACE`]) for a background delivery; one still
/// running goes on alone (it stops within [`DELIVERY_BUDGET`]).
pub fn finish(mut child: Option<Child>) {
    let start = Instant::now();
    while !done(&mut child) && start.elapsed() < FINISH_GRACE {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// File in `state_dir` naming the report target of the last channel file.
pub use crate::state::REPORT_TARGET_FILE as TARGET_FILE;

/// Remembers the report target a verified channel file names (called by the
/// channel check; an absent field keeps the last one). A file of its own,
/// written only when it changes, so the check never touches the queue state.
pub fn remember_target(state_dir: &std::path::Path, target: Option<&str>) {
    let Some(t) = target else { return };
    let path = state_dir.join(TARGET_FILE);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(t) {
        if let Err(e) = crate::durable::replace(&path, t.as_bytes()) {
            log::warn!("report target not remembered: {e}");
        }
    }
}

/// `ota-agent identity [--registry-line]`: the device id and public key.
pub fn cmd_identity(config: &Config, registry_line: bool) -> Result<i32> {
    let id = Identity::load_or_create(&config.state_dir, crate::update::device_id(config)?)?;
    if registry_line {
        println!("{}", id.registry_line());
    } else {
        print!("device-id: {}\n{}", id.device_id, id.public_pem());
    }
    Ok(0)
}

/// `ota-agent report [--send]`: the queue, and with `--send` a delivery now
/// (`feedback`: the DDI client when hawkBit is configured; exit 1 when
/// entries are left).
pub fn cmd_report(config: &Config, send: bool, feedback: Option<&Client>) -> Result<i32> {
    let r = Reporter::new(config);
    let mut code = 0;
    if send {
        let d = r.deliver(DELIVERY_BUDGET, feedback)?;
        if d.left > 0 {
            let why = match d.error {
                Some(e) => e,
                None if r.target().is_none() => {
                    "no report target (channel `reports` or config `report_url`)".into()
                }
                None => "no hawkBit server configured for the queued feedback".into(),
            };
            eprintln!("ota-agent: {} left queued: {why}", d.left);
            code = 1;
        }
    }
    let q = Queue::new(&config.state_dir);
    println!(
        "queued {}, dropped {}",
        q.entries().len(),
        q.state()?.dropped
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("os-release"), "VERSION_ID=1.3.2\n").unwrap();
        let config = Config {
            product: "rice-cooker".into(),
            device_id: Some("rc-1".into()),
            state_dir: dir.path().join("state"),
            version_file: dir.path().join("os-release"),
            ..Config::default()
        };
        (dir, config)
    }

    fn reports(c: &Config) -> Vec<Report> {
        Queue::new(&c.state_dir)
            .entries()
            .iter()
            .map(|e| Report::parse(&std::fs::read(&e.json).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn a_failed_health_check_is_the_reason_of_the_rollback() {
        let (_d, c) = setup();
        let mut r = Reporter::new(&c);
        r.record(Event::DownloadStarted { to: "1.4.0" });
        r.record(Event::Installed {
            to: "1.4.0",
            slot: Slot::B,
        });
        let e = Error::Health {
            hook: "/etc/ota/health.d/50-app".into(),
            reason: "exited with status 1".into(),
        };
        r.record(Event::HealthFailed {
            booted: Slot::B,
            error: &e,
        });
        // A later mark-bad does not hide the first cause.
        r.record(Event::MarkedBad { booted: Slot::B });
        // A rollback of the other slot is not this release's.
        r.record(Event::RolledBack {
            from_slot: Some(Slot::A),
            reason: "bootlimit",
            boot_limit: Some(3),
        });
        r.record(Event::RolledBack {
            from_slot: Some(Slot::B),
            reason: "bootlimit",
            boot_limit: Some(3),
        });
        // Nothing pending any more: a second sighting reports nothing.
        r.record(Event::RolledBack {
            from_slot: None,
            reason: "unbootable",
            boot_limit: None,
        });
        let got = reports(&c);
        let kinds: Vec<Kind> = got.iter().map(|r| r.event).collect();
        assert_eq!(
            kinds,
            [Kind::DownloadStarted, Kind::Installed, Kind::RolledBack]
        );
        let rb = &got[2];
        assert_eq!(rb.reason.as_deref(), Some("health check 50-app failed"));
        assert_eq!(rb.boot_attempts, Some(3));
        assert_eq!(
            (rb.from.as_deref(), rb.to.as_str()),
            (Some("1.3.2"), "1.4.0")
        );
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
        // Each report verifies with the device key.
        let id = Identity::load_or_create(&c.state_dir, "rc-1".into()).unwrap();
        let key = crate::bundle::PublicKey::from_pem("rc-1", &id.public_pem()).unwrap();
        for e in Queue::new(&c.state_dir).entries() {
            let sig = std::fs::read(&e.attachment).unwrap();
            let sig = crate::bundle::signature::parse_signature(&sig).unwrap();
            assert!(key.verify(&std::fs::read(&e.json).unwrap(), &sig));
        }
    }

    #[test]
    fn commit_only_on_the_new_slot_and_failures_once() {
        let (_d, c) = setup();
        let mut r = Reporter::new(&c);
        r.record(Event::Installed {
            to: "1.4.0",
            slot: Slot::B,
        });
        // mark-good on the old slot (before the reboot) is no commit.
        r.record(Event::Committed {
            booted: Slot::A,
            boot_attempts: Some(0),
        });
        r.record(Event::Deferred {
            to: None,
            why: "reboot deferred: cooking",
        });
        r.record(Event::Deferred {
            to: None,
            why: "reboot deferred: cooking",
        });
        r.record(Event::MarkedBad { booted: Slot::B });
        r.record(Event::RolledBack {
            from_slot: None,
            reason: "unbootable",
            boot_limit: None,
        });
        r.record(Event::Failed {
            to: "1.5.0",
            error: "server answered 404\nsecond line",
        });
        r.record(Event::Failed {
            to: "1.5.0",
            error: "server answered 404\nsecond line",
        });
        r.record(Event::Installed {
            to: "1.5.0",
            slot: Slot::B,
        });
        r.record(Event::Committed {
            booted: Slot::B,
            boot_attempts: Some(1),
        });
        let got: Vec<(Kind, String, Option<String>)> = reports(&c)
            .into_iter()
            .map(|r| (r.event, r.to, r.reason))
            .collect();
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            got,
            [
                (Kind::Installed, "1.4.0".into(), None),
                (
                    Kind::Deferred,
                    "1.4.0".into(),
                    s("reboot deferred: cooking")
                ),
                (Kind::RolledBack, "1.4.0".into(), s("marked bad")),
                (
                    Kind::Failed,
                    "1.5.0".into(),
                    s("checking: server answered 404")
                ),
                (Kind::Installed, "1.5.0".into(), None),
                (Kind::Committed, "1.5.0".into(), None),
            ]
        );
    }
}
