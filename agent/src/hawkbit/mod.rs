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
//! the transfer. What must survive a power cut (the action being worked
//! on and its unsent final feedback) is in `<state_dir>/hawkbit/action`,
//! written atomically; a final feedback is re-sent until the server takes
//! it (same document each time: idempotent).

pub mod ddi;
mod host;

pub use host::daemon;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, HawkbitAuth, HawkbitConfig};
use crate::net::{self, Client};
use crate::slots::Slot;
use crate::update_status::{Phase, Progress};
use crate::{Error, Result};
use ddi::{Feedback, Steps};

// The hawkBit files in `state_dir` are named, with every other state file,
// in `crate::state`.
pub use crate::state::HAWKBIT_DIR as DIR;
use crate::state::{HAWKBIT_ACTION_FILE as ACTION_FILE, HAWKBIT_DONE_FILE as DONE_FILE};
/// Largest DDI JSON document accepted.
const MAX_JSON: usize = 256 * 1024;
/// Steps of the `progress` counter: download, write, read-back, activation.
const STEPS: u32 = 4;

/// What the cycle needs from the device; implemented by the daemon.
pub trait Host {
    /// The installed release (`VERSION_ID`), if readable.
    fn installed_version(&self) -> Option<String>;
    /// Boot-control view (records a rollback the bootloader reported).
    fn boot(&mut self) -> Result<BootView>;
    /// Verifies the bundle file exactly as `ota-agent install` does, writes
    /// it into the inactive slot and activates it; returns the slot.
    fn install(&mut self, bundle: &Path, progress: &mut dyn Progress) -> Result<Slot>;
    /// Reboots into the activated slot (through the appliance gate).
    fn reboot(&mut self) -> Result<()>;
}

/// What boot control says.
#[derive(Debug, Clone)]
pub struct BootView {
    /// Running slot.
    pub booted: Slot,
    /// Slot the next boot uses.
    pub active: Slot,
    /// Whether the booted slot is confirmed (`mark-good`).
    pub booted_good: bool,
    /// Backend name (`uboot`, `android`).
    pub backend: &'static str,
    /// The reason of the last rollback, if any was recorded.
    pub last_rollback: Option<String>,
}

/// The action the device works on, as recorded in `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Action {
    /// The action id.
    id: String,
    /// Feedback URL of the action.
    feedback: String,
    /// Release version offered.
    version: String,
    /// The slot written and activated; `None` until activation.
    slot: Option<Slot>,
    /// The final feedback not yet accepted by the server.
    final_feedback: Option<Feedback>,
}

/// First line of the action file.
const ACTION_HEADER: &str = "ota-hawkbit-action 1";

impl Action {
    /// Lines `name value` (written by hand: a serde derive costs the
    /// binary more than this):
    ///
    /// ```text
    /// ota-hawkbit-action 1
    /// id 7
    /// version 2.0.0
    /// slot b                  (- before activation)
    /// feedback <url>
    /// final closed failure {"status":…}      (only once decided)
    /// ```
    fn to_text(&self) -> String {
        let mut t = format!(
            "{ACTION_HEADER}\nid {}\nversion {}\nslot {}\nfeedback {}\n",
            self.id,
            self.version,
            self.slot.map_or("-".into(), |s| s.to_string()),
            self.feedback
        );
        if let Some(f) = &self.final_feedback {
            t += &format!("final {} {} {}\n", f.execution, f.finished, f.json);
        }
        t
    }

    fn parse(text: &str) -> Option<Action> {
        let mut lines = text.lines();
        if lines.next()? != ACTION_HEADER {
            return None;
        }
        let mut a = Action {
            id: String::new(),
            feedback: String::new(),
            version: String::new(),
            slot: None,
            final_feedback: None,
        };
        for l in lines {
            let (k, v) = l.split_once(' ')?;
            match k {
                "id" => a.id = v.into(),
                "version" => a.version = v.into(),
                "feedback" => a.feedback = v.into(),
                "slot" if v == "-" => a.slot = None,
                "slot" => a.slot = Some(v.parse().ok()?),
                "final" => {
                    let mut p = v.splitn(3, ' ');
                    let (execution, finished, json) = (p.next()?, p.next()?, p.next()?);
                    a.final_feedback = Some(Feedback {
                        execution: execution.into(),
                        finished: finished.into(),
                        json: json.into(),
                    });
                }
                _ => return None,
            }
        }
        (!a.id.is_empty() && !a.feedback.is_empty()).then_some(a)
    }
}

/// The configured client and where things are.
struct Ddi {
    client: Client,
    base: String,
    state: PathBuf,
}

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
        ddi.put_config_data(config, host, link)?;
    }
    if let Some(link) = &root.cancel_action {
        ddi.cancel(link)?;
    }
    if let Some(link) = root.deployment_base.as_ref().filter(|_| !busy) {
        ddi.deploy(host, link)?;
    }
    Ok(jitter(sleep))
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

fn protocol(url: &str, why: &str) -> Error {
    net::NetError::new(url, net::NetErrorKind::Protocol(why.to_owned())).into()
}

impl Ddi {
    fn action_path(&self) -> PathBuf {
        self.state.join(ACTION_FILE)
    }

    fn load(&self) -> Option<Action> {
        read_action(&self.action_path())
    }

    fn save(&self, a: &Action) -> Result<()> {
        crate::durable::replace(&self.action_path(), a.to_text().as_bytes())
    }

    fn forget(&self) -> Result<()> {
        let p = self.action_path();
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    fn send(&self, url: &str, f: &Feedback) -> Result<()> {
        self.client.send_json("POST", url, f.json.as_bytes())?;
        Ok(())
    }

    /// A `proceeding` feedback; a failure to send it is logged, not fatal.
    fn proceeding(&self, url: &str, cnt: u32, detail: String) {
        let f = Feedback::new("proceeding", "none", Some(Steps { cnt, of: STEPS }), detail);
        if let Err(e) = self.send(url, &f) {
            log::warn!("hawkbit: progress feedback not sent: {e}");
        }
    }

    /// Records `final_feedback` for `a` (power-safe), then sends it; once
    /// the server took it the action is forgotten.
    fn finish(&self, mut a: Action, f: Feedback) -> Result<()> {
        a.final_feedback = Some(f);
        self.save(&a)?;
        self.flush(&a)
    }

    fn flush(&self, a: &Action) -> Result<()> {
        if let Some(f) = &a.final_feedback {
            self.send(&a.feedback, f)?;
            if f.finished == "success" {
                // An action offered again after its success is answered
                // with the same feedback, not installed twice.
                crate::durable::replace(&self.state.join(DONE_FILE), a.to_text().as_bytes())?;
            }
            log::info!(
                "hawkbit: action {}: reported {} {}",
                a.id,
                f.execution,
                f.finished
            );
        }
        self.forget()
    }

    /// Settles the recorded action. Returns whether the cycle may go on
    /// to the server's links (false while a reboot or a confirmation is
    /// awaited).
    fn settle(&self, host: &mut dyn Host) -> Result<bool> {
        let Some(a) = self.load() else {
            return Ok(true);
        };
        if a.final_feedback.is_some() {
            self.flush(&a)?;
            return Ok(true);
        }
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
            let detail = format!(
                "{} runs on slot {slot} and was confirmed by mark-good after the reboot",
                a.version
            );
            let f = Feedback::new(
                "closed",
                "success",
                Some(Steps {
                    cnt: STEPS,
                    of: STEPS,
                }),
                detail,
            );
            self.finish(a, f)?;
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

    fn put_config_data(&self, config: &Config, host: &mut dyn Host, url: &str) -> Result<()> {
        let mut data = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                data.push(format!("{}:{}", ddi::quote(k), ddi::quote(&v)));
            }
        };
        // goosebit keys its hardware and version on these names (as SWUpdate sends them).
        put("hw_boardname", Some(config.product.clone()));
        put("hw_revision", config.hardware.clone());
        put("sw_version", host.installed_version());
        put("agent_version", Some(env!("CARGO_PKG_VERSION").into()));
        match host.boot() {
            Ok(b) => {
                put("booted_slot", Some(b.booted.to_string()));
                put("boot_control", Some(b.backend.into()));
            }
            Err(e) => log::warn!("hawkbit: boot control unavailable: {e}"),
        }
        let doc = format!("{{\"mode\":\"replace\",\"data\":{{{}}}}}", data.join(","));
        self.client.send_json("PUT", url, doc.as_bytes())?;
        log::info!("hawkbit: configData sent");
        Ok(())
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
        let done = read_action(&self.state.join(DONE_FILE));
        if let Some(done) = done.filter(|a| a.id == d.id && a.version == version) {
            if host.installed_version().as_deref() == Some(version.as_str()) {
                log::info!(
                    "hawkbit: action {} succeeded already; reporting it again",
                    d.id
                );
                return self.flush(&done);
            }
        }
        let action = Action {
            id: d.id.clone(),
            feedback: feedback.clone(),
            version: version.clone(),
            slot: None,
            final_feedback: None,
        };
        let fail = |a: Action, e: &Error| -> Result<()> {
            log::warn!("hawkbit: action {}: {e}", a.id);
            self.finish(a, Feedback::new("closed", "failure", None, e.to_string()))
        };
        let artifact = match one_artifact(&d) {
            Ok(a) => a,
            Err(e) => return fail(action, &e),
        };
        self.save(&action)?;
        let dir = self.state.join(crate::state::DOWNLOAD_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let file = dir.join(safe_name(&artifact.filename));
        let Some(href) = artifact.href.clone() else {
            return fail(action, &protocol(url, "the artifact has no download link"));
        };
        self.proceeding(
            &feedback,
            0,
            format!("Downloading {} ({version})", artifact.filename),
        );
        match self.download(&href, &file, artifact, &feedback) {
            Ok(()) => {}
            // Transient: keep the action and the partial file; the next poll resumes.
            Err(Error::Net(e)) if e.is_transient() => return Err(Error::Net(e)),
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return fail(action, &e);
            }
        }
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
            ddi: self,
            url: &feedback,
            last: String::new(),
        };
        let slot = match host.install(&file, &mut progress) {
            Ok(s) => s,
            // Another update run holds the lock: not this action's failure;
            // the next poll tries again with the file already here.
            Err(e @ Error::Busy { .. }) => return Err(e),
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return fail(action, &e);
            }
        };
        let _ = std::fs::remove_file(&file);
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

    /// Downloads `href` into `file` (resuming), then checks the server's hashes.
    fn download(&self, href: &str, file: &Path, art: &ddi::Artifact, feedback: &str) -> Result<()> {
        if art.sha1.is_none() && art.sha256.is_none() {
            return Err(protocol(
                href,
                "the artifact has neither a sha256 nor a sha1 hash",
            ));
        }
        if !file.exists() {
            let mut step = 0u64;
            net::fetch_to_file(&self.client, href, file, None, &mut |held, total| {
                let Some(t) = total.or(art.size).filter(|t| *t > 0) else {
                    return;
                };
                let pct = held.min(t) * 100 / t;
                if pct / 10 > step {
                    step = pct / 10;
                    self.proceeding(feedback, 0, format!("Downloaded {pct}%"));
                }
            })?;
        }
        let check = check_hashes(file, art);
        if check.is_err() {
            let _ = std::fs::remove_file(file);
        }
        check?;
        self.proceeding(feedback, 1, "Downloaded 100%; server hash verified".into());
        Ok(())
    }
}

/// Reads an action file; a damaged one is logged and ignored.
fn read_action(p: &Path) -> Option<Action> {
    let text = std::fs::read_to_string(p).ok()?;
    let a = Action::parse(&text);
    if a.is_none() {
        log::warn!("{}: damaged; ignored", p.display());
    }
    a
}

fn one_artifact(d: &ddi::DeploymentBase) -> Result<&ddi::Artifact> {
    match d.artifacts.as_slice() {
        [a] => Ok(a),
        arts => Err(protocol(
            "deploymentBase",
            &format!(
                "expected exactly one artifact (a single-file bundle), found {}",
                arts.len()
            ),
        )),
    }
}

/// The artifact's file name without any directory part.
fn safe_name(name: &str) -> String {
    let n = name.rsplit('/').next().unwrap_or("");
    if n.is_empty() || n == "." || n == ".." {
        "bundle".into()
    } else {
        n.into()
    }
}

/// Checks every hash the server gave (sha256, sha1) over the file.
fn check_hashes(file: &Path, art: &ddi::Artifact) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let mut s256 = ring::digest::Context::new(&ring::digest::SHA256);
    let mut s1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(file, e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
    }
    let hex = |d: ring::digest::Digest| {
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let name = &art.filename;
    if let Some(size) = art.size {
        if size != len {
            return Err(protocol(
                name,
                &format!("size {len} differs from the server's {size}"),
            ));
        }
    }
    for (what, want, got) in [
        ("sha256", &art.sha256, hex(s256.finish())),
        ("sha1", &art.sha1, hex(s1.finish())),
    ] {
        if let Some(want) = want {
            if !want.eq_ignore_ascii_case(&got) {
                return Err(protocol(
                    name,
                    &format!("{what} {got} differs from the server's {want}"),
                ));
            }
        }
    }
    Ok(())
}

/// Install progress as DDI `proceeding` feedback (write = 2, read-back = 3,
/// activation = 4 of 4), at most one per phase and 10 % step.
struct FeedbackProgress<'a> {
    ddi: &'a Ddi,
    url: &'a str,
    last: String,
}

impl Progress for FeedbackProgress<'_> {
    fn target(&mut self, _: &str, _: Option<Slot>, _: Option<u64>) {}
    fn begin(&mut self, phase: Phase, image: Option<&str>, _: Option<u64>) {
        let (cnt, name) = match phase {
            Phase::Verifying => (1, "Verifying"),
            Phase::Writing | Phase::Downloading => (1, "Writing"),
            Phase::ReadingBack => (2, "Reading back"),
            Phase::Activating => (3, "Activating"),
            _ => return,
        };
        let what = match image {
            Some(i) => format!("{name} {i}"),
            None => name.to_owned(),
        };
        if what != self.last {
            self.ddi.proceeding(self.url, cnt, what.clone());
            self.last = what;
        }
    }
    fn advance(&mut self, _: u64, _: u64) {}
    fn fail(&mut self, _: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_checked_and_a_mismatch_named() {
        let dir = std::env::temp_dir().join(format!("hawkbit-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"abc").unwrap();
        let art = |sha1: &str, sha256: Option<&str>| ddi::Artifact {
            filename: "f".into(),
            sha1: Some(sha1.into()),
            sha256: sha256.map(Into::into),
            size: Some(3),
            href: None,
        };
        // FIPS 180-2 test vectors for "abc".
        let sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        check_hashes(&p, &art(sha1, Some(sha256))).unwrap();
        let e = check_hashes(&p, &art(&sha1.replace('a', "b"), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha1") && e.contains("differs"), "{e}");
        let e = check_hashes(&p, &art(sha1, Some(&sha256.replace('b', "c"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn action_record_round_trips_and_damage_is_refused() {
        let mut a = Action {
            id: "7".into(),
            feedback: "http://h/T/controller/v1/c/deploymentBase/7/feedback".into(),
            version: "2.0.0".into(),
            slot: None,
            final_feedback: None,
        };
        assert_eq!(Action::parse(&a.to_text()), Some(a.clone()));
        a.slot = Some(Slot::B);
        a.final_feedback = Some(Feedback::new("closed", "failure", None, "x y\nz".into()));
        assert_eq!(Action::parse(&a.to_text()), Some(a.clone()));
        let t = a.to_text();
        assert_eq!(Action::parse(&t.replace("slot b", "slot q")), None);
        assert_eq!(Action::parse(&t[1..]), None);
        assert_eq!(Action::parse(&t.replace("id 7\n", "")), None);
    }

    #[test]
    fn artifact_names_cannot_leave_the_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name(".."), "bundle");
        assert_eq!(safe_name("b.ota"), "b.ota");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jitter(60).as_millis();
            assert!((54_000..=66_000).contains(&d), "{d}");
        }
    }
}
