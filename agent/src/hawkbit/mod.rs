//! hawkBit DDI client (issue 19, docs/hawkbit.md): with `[hawkbit]` in the
//! config, `ota-agent daemon` polls a hawkBit-compatible server (Eclipse
//! hawkBit, goosebit) instead of the channel file.
//!
//! ```text
//!  cycle ─► settle the recorded action (after the reboot: success only when
//!  │        the new slot is marked good; failure with the rollback's reason
//!  │        when the device came back on the old slot) ─► send its feedback
//!  ├─► GET root ─► configData? PUT attributes
//!  └─► deploymentBase? ─► download the artifact (resumable, Range/If-Range)
//!        ─► server hash (sha256 and/or sha1) ─► Host::install (signature,
//!        product, hardware, versions, expiry: exactly as `install`) ─►
//!        record "activated" ─► Host::reboot
//! ```
//!
//! The signed bundle stays the trust root: the server's hash only guards
//! the transfer. What must survive a power cut: the action being worked on
//! is in `<state_dir>/hawkbit/action` (written atomically); its final
//! feedback, once decided, waits in the device's one report queue
//! (`report::queue`, beside the fleet reports, same sequence) until the
//! server takes it, re-sent as the same document (idempotent). No new
//! action is taken while a final feedback is undelivered.

mod action;
mod artifact;
pub mod ddi;
mod feedback;
mod host;

pub use host::{BootView, Host};

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, HawkbitAuth, HawkbitConfig};
use crate::net::{self, Client};
use crate::report::deliver::Routes;
use crate::report::queue::{Kind, Queue};
use crate::slots::Slot;
use crate::update::Console;
use crate::{Error, Result};
use action::Action;
use ddi::{protocol, Feedback, Steps};
use feedback::{FeedbackProgress, STEPS};
use host::DaemonHost;

// The hawkBit files in `state_dir` are named, with every other state file,
// in `crate::state`.
pub use crate::state::HAWKBIT_DIR as DIR;
/// Largest DDI JSON document accepted.
const MAX_JSON: usize = 256 * 1024;

/// The configured client and where things are.
struct Ddi {
    client: Client,
    base: String,
    /// `<state_dir>/hawkbit`.
    state: PathBuf,
    /// `state_dir` (the report queue).
    root: PathBuf,
}

/// How long one cycle spends sending queued feedback.
const FEEDBACK_BUDGET: Duration = Duration::from_secs(30);

/// Builds the client: the device's TLS settings plus the DDI credential.
fn client(config: &Config, h: &HawkbitConfig) -> Result<Client> {
    let c = Client::from_config(config)?;
    let scheme = match h.auth {
        HawkbitAuth::TargetToken => "TargetToken",
        HawkbitAuth::GatewayToken => "GatewayToken",
        HawkbitAuth::None | HawkbitAuth::Mtls => return Ok(c),
    };
    let file = h.token_file.as_deref().unwrap_or(Path::new(""));
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(Error::Config {
            path: file.to_owned(),
            reason: "the hawkBit token file is empty".into(),
        });
    }
    Ok(c.with_authorization(&format!("{scheme} {token}")))
}

/// The DDI client queued feedback is POSTed with (`ota-agent report
/// --send`); `None` without `[hawkbit]`.
pub fn feedback_client(config: &Config) -> Result<Option<Client>> {
    config
        .hawkbit
        .as_ref()
        .map(|h| client(config, h))
        .transpose()
}

/// One poll: settles the recorded action, follows the root resource.
/// Returns how long to sleep before the next poll (server's
/// `polling.sleep`, never under `poll_floor_s`, with ±10 % jitter).
pub fn cycle(config: &Config, host: &mut dyn Host) -> Result<Duration> {
    let h = config.hawkbit.as_ref().ok_or_else(|| Error::Config {
        path: "ota-agent.toml".into(),
        reason: "no [hawkbit] section".into(),
    })?;
    let id = match &h.controller_id {
        Some(id) => id.clone(),
        None => crate::update::device_id(config)?,
    };
    let state = config.state_dir.join(DIR);
    std::fs::create_dir_all(&state).map_err(|e| Error::io(&state, e))?;
    let ddi = Ddi {
        client: client(config, h)?,
        base: format!(
            "{}/{}/controller/v1/{id}",
            h.url.trim_end_matches('/'),
            h.tenant
        ),
        state,
        root: config.state_dir.clone(),
    };
    let mut sleep = h.poll_floor_s.max(config.poll_interval_s.min(3600));
    // An action recorded before a reboot decides first what we tell;
    // while it awaits its reboot or mark-good no new action is taken (a
    // cancel is still answered: refused).
    let busy = !ddi.settle(host)?;
    let body = ddi.client.get_small(&ddi.base, MAX_JSON)?;
    let root = ddi::Root::parse(&body).map_err(|e| protocol(&ddi.base, &e))?;
    if let Some(s) = root.sleep.as_deref().and_then(ddi::parse_sleep) {
        sleep = s.max(h.poll_floor_s);
    }
    if let Some(link) = &root.config_data {
        feedback::put_config_data(&ddi.client, config, host, link)?;
    }
    if let Some(link) = &root.cancel_action {
        ddi.cancel(link)?;
    }
    if let Some(link) = root.deployment_base.as_ref().filter(|_| !busy) {
        ddi.deploy(host, link)?;
    }
    Ok(jitter(sleep))
}

/// `ota-agent daemon` with `[hawkbit]`: polls the DDI server. A cycle
/// takes no lock of its own: the install inside it takes the update lock
/// (as `install` does), so it never overlaps another update run.
pub fn daemon(
    config: &Config,
    booted: Option<Slot>,
    max_cycles: Option<u64>,
    console: &mut dyn Console,
    control: Option<&crate::control::Control>,
) -> Result<()> {
    let mut host = DaemonHost::new(config, booted, console);
    let floor = config.hawkbit.as_ref().map_or(60, |h| h.poll_floor_s);
    let mut cycle = 0u64;
    loop {
        cycle += 1;
        // The control socket sees the cycle as a run (its state and
        // progress; only failures are outcome events here).
        let mut sleep = Duration::from_secs(floor);
        let r = crate::control::observed(control, true, || {
            sleep = self::cycle(config, &mut host)?;
            Ok(false)
        });
        if let Err(e) = r {
            log::warn!("hawkbit cycle {cycle} failed: {e}");
            sleep = Duration::from_secs(floor);
        }
        if max_cycles.is_some_and(|m| cycle >= m) {
            return Ok(());
        }
        crate::control::pause(control, sleep);
    }
}

/// `s` seconds ±10 %.
fn jitter(s: u64) -> Duration {
    let ms = s.saturating_mul(1000);
    let spread = ms / 5;
    let j = if spread == 0 {
        0
    } else {
        net::backoff::random_u64() % (spread + 1)
    };
    Duration::from_millis(ms - ms / 10 + j)
}

impl Ddi {
    fn load(&self) -> Option<Action> {
        action::load(&self.state)
    }

    fn save(&self, a: &Action) -> Result<()> {
        action::save(&self.state, a)
    }

    fn forget(&self) -> Result<()> {
        action::forget(&self.state)
    }

    fn send(&self, url: &str, f: &Feedback) -> Result<()> {
        feedback::send(&self.client, url, f)
    }

    fn proceeding(&self, url: &str, cnt: u32, detail: String) {
        feedback::proceeding(&self.client, url, cnt, detail);
    }

    /// Ends action `a` with its final feedback `f`: queued in the report
    /// queue (power-safe, once per action: a cut before the action is
    /// forgotten decides it again, identically, and finds it queued), a
    /// success remembered, the action forgotten; then the queue is sent.
    fn finish(&self, a: Action, f: Feedback) -> Result<()> {
        if !crate::report::record::is_segment(&a.id) {
            return Err(protocol(&a.feedback, "action id is not [A-Za-z0-9._+-]+"));
        }
        let q = Queue::new(&self.root);
        if !q.has_feedback(&a.id) {
            let mut s = q.state()?;
            q.push_feedback(&mut s, &a.id, &a.feedback, f.json.as_bytes())?;
        }
        if f.finished == "success" {
            // An action offered again after its success is answered
            // with the same feedback, not installed twice.
            action::save_done(&self.state, &a)?;
        }
        log::info!(
            "hawkbit: action {}: {} {} queued",
            a.id,
            f.execution,
            f.finished
        );
        self.forget()?;
        self.flush()
    }

    /// Ends `a`, whose release runs confirmed on its slot, with `success`.
    fn finish_success(&self, a: Action) -> Result<()> {
        let detail = format!(
            "{} runs on slot {} and was confirmed by mark-good after the reboot",
            a.version,
            a.slot.map_or("-".into(), |s| s.to_string())
        );
        let steps = Some(Steps {
            cnt: STEPS,
            of: STEPS,
        });
        self.finish(a, Feedback::new("closed", "success", steps, detail))
    }

    /// Sends the queued feedback; an error while any is left (the server
    /// hears how the last action ended before the next one is taken).
    fn flush(&self) -> Result<()> {
        let q = Queue::new(&self.root);
        let routes = Routes {
            reports: None,
            feedback: Some(&self.client),
        };
        let d = crate::report::deliver::deliver(&q, routes, FEEDBACK_BUDGET);
        if d.sent > 0 {
            log::info!("hawkbit: {} queued feedback document(s) sent", d.sent);
        }
        let left = q
            .entries()
            .iter()
            .filter(|e| matches!(e.kind, Kind::Feedback { .. }))
            .count();
        if left > 0 {
            let why = d.error.unwrap_or_else(|| "not sent".into());
            return Err(protocol(
                &self.base,
                &format!("{left} final feedback document(s) still queued: {why}"),
            ));
        }
        Ok(())
    }

    /// Settles the recorded action. Returns whether the cycle may go on
    /// to the server's links (false while a reboot or a confirmation is
    /// awaited).
    fn settle(&self, host: &mut dyn Host) -> Result<bool> {
        self.flush()?;
        let Some(a) = self.load() else {
            return Ok(true);
        };
        let Some(slot) = a.slot else {
            // Interrupted before activation (power cut): the next
            // deploymentBase resumes the download and the install journal.
            return Ok(true);
        };
        let b = host.boot()?;
        if b.booted == slot {
            if !b.booted_good {
                log::info!(
                    "hawkbit: action {}: {} runs on slot {slot}, waiting for mark-good",
                    a.id,
                    a.version
                );
                return Ok(false);
            }
            self.finish_success(a)?;
            return Ok(true);
        }
        if b.active == slot {
            log::info!(
                "hawkbit: action {}: {} waits for the reboot",
                a.id,
                a.version
            );
            return Ok(false);
        }
        let why = b.last_rollback.unwrap_or_else(|| "unknown reason".into());
        let detail = format!(
            "{} was rolled back: the device runs slot {} again ({why})",
            a.version, b.booted
        );
        log::warn!("hawkbit: action {}: {detail}", a.id);
        let f = Feedback::new("closed", "failure", None, detail);
        self.finish(a, f)?;
        Ok(true)
    }

    /// cancelAction: accepted while nothing is activated, refused after.
    fn cancel(&self, url: &str) -> Result<()> {
        let body = self.client.get_small(url, MAX_JSON)?;
        let stop_id = ddi::cancel_stop_id(&body).map_err(|e| protocol(url, &e))?;
        let feedback = format!("{}/feedback", url.trim_end_matches('/'));
        let current = self.load().filter(|a| a.id == stop_id);
        let f = match current {
            Some(a) if a.slot.is_some() => Feedback::new(
                "rejected",
                "none",
                None,
                format!(
                    "action {} is activated already; the slot switch cannot be cancelled",
                    a.id
                ),
            ),
            current => {
                if current.is_some() {
                    self.forget()?;
                }
                let _ = std::fs::remove_dir_all(self.state.join(crate::state::DOWNLOAD_DIR));
                Feedback::new(
                    "closed",
                    "success",
                    None,
                    format!("action {stop_id} cancelled"),
                )
            }
        };
        self.send(&feedback, &f)
    }

    fn deploy(&self, host: &mut dyn Host, url: &str) -> Result<()> {
        let body = self.client.get_small(url, MAX_JSON)?;
        let d = ddi::DeploymentBase::parse(&body).map_err(|e| protocol(url, &e))?;
        let feedback = format!(
            "{}/feedback",
            url.split('?').next().unwrap_or(url).trim_end_matches('/')
        );
        let dep = &d;
        if dep.download == "skip" && dep.update == "skip" {
            return Ok(());
        }
        let version = d.version.clone();
        let done = action::load_done(&self.state);
        if let Some(done) = done.filter(|a| a.id == d.id && a.version == version) {
            if host.installed_version().as_deref() == Some(version.as_str()) {
                log::info!(
                    "hawkbit: action {} succeeded already; reporting it again",
                    d.id
                );
                return self.finish_success(done);
            }
        }
        let action = Action {
            id: d.id.clone(),
            feedback: feedback.clone(),
            version: version.clone(),
            slot: None,
        };
        let fail = |a: Action, e: &Error| -> Result<()> {
            log::warn!("hawkbit: action {}: {e}", a.id);
            self.finish(a, Feedback::new("closed", "failure", None, e.to_string()))
        };
        let dir = self.state.join(crate::state::DOWNLOAD_DIR);
        let plan = match artifact::plan(&d, &dir) {
            Ok(p) => p,
            Err(e) => return fail(action, &e),
        };
        self.save(&action)?;
        for (art, file) in &plan.files {
            let parent = file.parent().unwrap_or(&dir);
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            let Some(href) = art.href.clone() else {
                artifact::remove(&plan.bundle);
                return fail(action, &protocol(url, "an artifact has no download link"));
            };
            self.proceeding(
                &feedback,
                0,
                format!("Downloading {} ({version})", art.filename),
            );
            match artifact::download(&self.client, &href, file, art, &feedback) {
                Ok(()) => {}
                // Transient: keep the action and the partial file; the next poll resumes.
                Err(Error::Net(e)) if e.is_transient() => return Err(Error::Net(e)),
                Err(e) => {
                    artifact::remove(&plan.bundle);
                    return fail(action, &e);
                }
            }
        }
        let file = plan.bundle;
        if dep.update == "skip" {
            let f = Feedback::new(
                "downloaded",
                "none",
                Some(Steps { cnt: 1, of: STEPS }),
                format!("{version} downloaded and verified; not installed (download only)"),
            );
            return self.send(&feedback, &f);
        }
        if dep.maintenance_window.as_deref() == Some("unavailable") {
            let f = Feedback::new(
                "scheduled",
                "none",
                Some(Steps { cnt: 1, of: STEPS }),
                format!("{version} downloaded; waiting for the maintenance window"),
            );
            return self.send(&feedback, &f);
        }
        let mut progress = FeedbackProgress {
            client: &self.client,
            url: &feedback,
            last: String::new(),
        };
        let slot = match host.install(&file, &mut progress) {
            Ok(s) => s,
            // Another update run holds the lock: not this action's failure;
            // the next poll tries again with the file already here.
            Err(e @ Error::Busy { .. }) => return Err(e),
            Err(e) => {
                artifact::remove(&file);
                return fail(action, &e);
            }
        };
        artifact::remove(&file);
        let mut a = action;
        a.slot = Some(slot);
        self.save(&a)?;
        self.proceeding(
            &feedback,
            STEPS,
            format!("{version} installed into slot {slot} and activated; rebooting (success is reported after mark-good)"),
        );
        host.reboot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jitter(60).as_millis();
            assert!((54_000..=66_000).contains(&d), "{d}");
        }
    }
}
