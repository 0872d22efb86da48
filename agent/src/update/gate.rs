//! The device's policy (docs/policy.md) at the three points of a run:
//! before the download, before the activation (inside the installer, once
//! the slot is written and read back) and before the reboot. A deferral or
//! refusal stops the run with [`Error::Deferred`] / [`Error::Refused`]
//! and a `deferred` / `failed` fleet report; nothing is written before a
//! deferred download, nothing activated before a deferred activation.
//! Also the reboot itself (policy, then the appliance gate) and the
//! policy's part of `ota-agent check`.

use super::progress::{Announcement, Console};
use super::Device;
use crate::bundle::Manifest;
use crate::config::Config;
use crate::install::journal::{self, Journal};
use crate::install::Approved;
use crate::mcu::{Appliance, Decision as Gate, GatePolicy, RebootGate, SerialMcu, SystemClock};
use crate::policy::{self, Offer, Phase, Verdict};
use crate::report::{Event, Reporter};
use crate::state::StateDir;
use crate::update_status::{Phase as StatusPhase, Progress, StatusWriter};
use crate::{Error, Result};

/// What a run needs to ask the policy, taken from the [`Device`] before
/// the installer borrows it.
pub(super) struct Asker {
    config: Config,
    state: StateDir,
    now: i64,
    from: Option<String>,
    control: Option<std::sync::Arc<crate::control::Hub>>,
}

impl Asker {
    pub(super) fn new(dev: &Device) -> Asker {
        Asker {
            config: dev.config().clone(),
            state: dev.state().clone(),
            now: dev.now(),
            from: dev.installed_text(),
            control: dev.control().cloned(),
        }
    }

    /// Whether a policy is configured at all (windows, hooks, or the
    /// daemon's control socket with its inhibits and consent). Not in
    /// hawkBit mode: there the server's maintenance windows and action
    /// types decide, and a deferral would read as a failed action
    /// (docs/policy.md).
    pub(super) fn active(&self) -> bool {
        (self.config.policy.is_active() || self.control.is_some()) && self.config.hawkbit.is_none()
    }

    fn offer(&self, m: &Manifest, phase: Phase) -> Offer {
        Offer::new(
            phase,
            m,
            self.from.clone(),
            self.state.min_security_version().ok(),
        )
    }

    /// `Ok` when `phase` of `m` may start now; else the deferral or
    /// refusal as an error, reported to the fleet queue.
    pub(super) fn require(
        &self,
        m: &Manifest,
        phase: Phase,
        mcu: Option<&'static str>,
    ) -> Result<()> {
        if !self.active() {
            return Ok(());
        }
        let mut offer = self.offer(m, phase);
        offer.mcu = mcu;
        let to = m.version.to_string();
        let voice = self.control.as_deref().map(|h| h as &dyn policy::Voice);
        match policy::decide(
            &self.config.policy,
            &self.state,
            self.now,
            &offer,
            true,
            voice,
        )? {
            Verdict::Proceed => Ok(()),
            Verdict::Defer { why, until } => {
                // Without a hook's "until", so that the queue's
                // de-duplication (same release, same reason) holds across
                // polls of one long deferral.
                let reason = why.split(" (until ").next().unwrap_or(&why);
                Reporter::new(&self.config).record(Event::Deferred {
                    to: Some(&to),
                    why: reason,
                });
                Err(Error::Deferred { why, until })
            }
            Verdict::Refuse { why } => {
                Reporter::new(&self.config).record(Event::Failed {
                    to: &to,
                    error: &format!("refused: {why}"),
                });
                Err(Error::Refused(why))
            }
        }
    }
}

/// Whether the journal says every image of `approved` is written (an
/// activation was deferred): its download is behind it.
pub(super) fn written(state: &StateDir, approved: &Approved) -> bool {
    Journal::new(state.path())
        .load()
        .is_some_and(|r| r.manifest == approved.digest() && r.phase == journal::Phase::Written)
}

/// The policy's answer for the phase `approved` is at (`check`: no hook's
/// answer is recorded, `check_only` is true in the offer).
pub(super) fn explain(dev: &Device, approved: &Approved) -> Result<Option<(Phase, Verdict)>> {
    let asker = Asker::new(dev);
    if !asker.active() {
        return Ok(None);
    }
    let m = approved.manifest();
    let pending = crate::update_status::read(dev.state())
        .ok()
        .flatten()
        .is_some_and(|d| {
            d.phase == StatusPhase::Installed
                && d.version.as_deref() == Some(&m.version.to_string())
        });
    let phase = if pending {
        Phase::Reboot
    } else if written(dev.state(), approved) {
        Phase::Activate
    } else {
        Phase::Download
    };
    let mut offer = asker.offer(m, phase);
    offer.check_only = true;
    let v = policy::decide(
        &asker.config.policy,
        dev.state(),
        asker.now,
        &offer,
        false,
        None,
    )?;
    Ok(Some((phase, v)))
}

/// `check`'s second line: what the policy says about the offered release
/// now (window, hooks; nothing recorded), `None` without a policy or an
/// update. Fetches and verifies the release's manifest (its urgency and
/// sizes are part of the question).
pub fn check_policy(
    dev: &Device,
    d: &crate::net::check::Decision,
) -> Result<Option<(Phase, Verdict)>> {
    let crate::net::check::Decision::Update { manifest_url, .. } = d else {
        return Ok(None);
    };
    if !dev.config().policy.is_active() || dev.config().hawkbit.is_some() {
        return Ok(None);
    }
    let client = crate::net::Client::from_config(dev.config())?;
    let keys = crate::bundle::TrustedKeys::load_dir(&dev.config().keys_dir)?;
    let approved = super::stage::fetch_approved(&client, manifest_url, &keys, &dev.facts(false)?)?;
    explain(dev, &approved)
}

/// Asks the policy about rebooting into `m` (with the appliance's state
/// for the hooks, when it answers), then [`reboot`]. A reboot the policy
/// defers is [`Error::Deferred`]: the update stays activated and the
/// daemon asks again at its next cycle.
pub(super) fn reboot_with_policy(
    dev: &Device,
    m: &Manifest,
    mut mcu: Option<&mut SerialMcu>,
    console: &mut dyn Console,
) -> Result<()> {
    let asker = Asker::new(dev);
    if asker.active() {
        let state = mcu
            .as_deref_mut()
            .and_then(|a| a.state().ok())
            .map(|s| s.name());
        asker.require(m, Phase::Reboot, state)?;
        policy::forget_deferrals(dev.state());
    }
    reboot(dev, mcu, console)
}

/// Asks the appliance, then runs `reboot_command`. A deferred reboot is not
/// an error: the update stays pending and activates at the next reboot.
pub fn reboot(dev: &Device, mcu: Option<&mut SerialMcu>, console: &mut dyn Console) -> Result<()> {
    let config = dev.config();
    let policy = config
        .mcu
        .as_ref()
        .map(GatePolicy::from_config)
        .unwrap_or_default();
    match RebootGate::new(mcu, policy, SystemClock::new()).decide() {
        Gate::Reboot => {
            // The gate has shown the reboot on the display; the file too.
            StatusWriter::resume(dev.state(), dev.installed_text()).begin(
                StatusPhase::Rebooting,
                None,
                None,
            );
            let (program, args) =
                config
                    .reboot_command
                    .split_first()
                    .ok_or_else(|| Error::Config {
                        path: config.source.clone(),
                        reason: "key `reboot_command`: must name a program".into(),
                    })?;
            console.announce(&Announcement::Rebooting);
            let st = std::process::Command::new(program)
                .args(args)
                .status()
                .map_err(|e| Error::io(program, e))?;
            if !st.success() {
                return Err(Error::io(
                    program,
                    std::io::Error::other(format!("reboot command failed: {st}")),
                ));
            }
            Ok(())
        }
        Gate::Deferred(d) => {
            Reporter::new(config).record(Event::Deferred {
                to: None,
                why: &format!("reboot deferred: {d}"),
            });
            console.announce(&Announcement::RebootDeferred(d.to_string()));
            Ok(())
        }
    }
}
