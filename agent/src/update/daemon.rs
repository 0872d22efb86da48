//! `daemon`: first continues an install a power cut interrupted
//! ([`super::resume`]), then polls the channel every `poll_interval_s` (±10 % jitter); a
//! failed cycle (server down, …) is logged and the loop goes on. Each cycle
//! is one run with its own [`Device`] (the boot state may change between
//! cycles) and holds the update lock, so runs never overlap with `install`,
//! `update`, `mark-good` or `set-active`. A cycle the policy defers
//! (docs/policy.md) ends quietly; the next starts at the next poll, or
//! when the window opens or the hook said, if sooner (at least a minute).

use std::sync::Arc;
use std::time::Duration;

use super::lock::lock;
use super::progress::Console;
use super::run::{resume_locked, run_once};
use super::Device;
use crate::config::Config;
use crate::control::{observed, pause, Control, Relay};
use crate::net::backoff;
use crate::report::Reporter;
use crate::slots::Slot;
use crate::Result;

/// The soonest a deferred cycle is retried (seconds), whatever time the
/// policy named.
const MIN_RETRY_S: u64 = 60;

/// Runs the poll loop; returns after `max_cycles` cycles (tests), else
/// never.
pub fn daemon(
    config: &Config,
    booted_override: Option<Slot>,
    max_cycles: Option<u64>,
    console: &mut dyn Console,
) -> Result<()> {
    // The local control socket (docs/local-api.md), before anything else:
    // a UI sees the resume below too.
    let control = match &config.control {
        Some(c) => {
            let doc = crate::update_status::read(&crate::state::StateDir::new(&config.state_dir))
                .ok()
                .flatten()
                .unwrap_or_else(|| crate::update_status::UpdateStatus::idle(None));
            Some(Control::start(c, doc, config.hawkbit.is_none())?)
        }
        None => None,
    };
    let mut relay;
    let console: &mut dyn Console = match &control {
        Some(c) => {
            relay = Relay::new(c.hub(), console);
            &mut relay
        }
        None => console,
    };
    if config.hawkbit.is_some() {
        // hawkbit: the DDI server replaces the channel file.
        #[cfg(feature = "hawkbit")]
        {
            let r = crate::hawkbit::daemon(
                config,
                booted_override,
                max_cycles,
                console,
                control.as_ref(),
            );
            if let Some(c) = &control {
                c.finish();
            }
            return r;
        }
        #[cfg(not(feature = "hawkbit"))]
        return Err(crate::Error::Usage(
            "[hawkbit] is configured but this ota-agent was built without the hawkbit feature"
                .into(),
        ));
    }
    let device = || {
        let mut dev = Device::new(config.clone(), booted_override);
        if let Some(c) = &control {
            dev.set_control(Arc::clone(c.hub()));
        }
        dev
    };
    // After a reboot: record a rollback the bootloader reported (the slot
    // itself is confirmed by `mark-good` after the health checks, a
    // separate boot service), so status/progress tell the truth.
    if let Err(e) = device().boot_control() {
        log::warn!("boot control unavailable: {e}");
    }
    // An install a power cut interrupted goes on before the first poll.
    let mut dev = device();
    match lock(dev.state()) {
        Ok(_lock) => match observed(control.as_ref(), true, || {
            resume_locked(&mut dev, true, console)
        }) {
            Ok(true) => log::info!("the interrupted install was resumed and completed"),
            Ok(false) => {}
            Err(e @ crate::Error::Deferred { .. }) => log::info!("interrupted install: {e}"),
            Err(e) => log::warn!("resuming the interrupted install failed: {e}"),
        },
        Err(e) => log::warn!("resume skipped: {e}"),
    }
    let mut cycle = 0u64;
    let mut sending = None;
    loop {
        cycle += 1;
        if crate::report::done(&mut sending) {
            sending = Reporter::new(config).deliver_in_background(&config.source);
        }
        let mut dev = device();
        let mut delay = poll_delay(config.poll_interval_s);
        match lock(dev.state()) {
            Ok(_lock) => match observed(control.as_ref(), false, || {
                run_once(&mut dev, false, console)
            }) {
                Ok(true) => log::info!("cycle {cycle}: update installed"),
                Ok(false) => log::info!("cycle {cycle}: nothing to do"),
                // The policy said not now (docs/policy.md): not a failure.
                // Nothing more happens this cycle; the next one asks again,
                // earlier than the poll when the window or hook said when.
                Err(crate::Error::Deferred { why, until }) => {
                    log::info!("cycle {cycle}: deferred: {why}");
                    delay = retry_delay(delay, until, dev.now());
                }
                Err(crate::Error::Refused(why)) => log::info!("cycle {cycle}: refused: {why}"),
                Err(e) => log::warn!("cycle {cycle} failed: {e}"),
            },
            Err(e) => log::warn!("cycle {cycle} skipped: {e}"),
        }
        if max_cycles.is_some_and(|m| cycle >= m) {
            crate::report::finish(sending);
            if let Some(c) = &control {
                c.finish();
            }
            return Ok(());
        }
        pause(control.as_ref(), delay);
    }
}

/// The wait after a deferred cycle: the poll delay, or until the time the
/// policy named if that is sooner — but at least [`MIN_RETRY_S`].
fn retry_delay(poll: Duration, until: Option<i64>, now: i64) -> Duration {
    match until {
        Some(t) => {
            let wait = u64::try_from(t.saturating_sub(now)).unwrap_or(0);
            poll.min(Duration::from_secs(wait.max(MIN_RETRY_S)))
        }
        None => poll,
    }
}

/// `interval` seconds ±10 %, so a fleet does not poll in lockstep.
pub fn poll_delay(interval_s: u64) -> Duration {
    let ms = interval_s.saturating_mul(1000);
    let spread = ms / 5;
    let jitter = if spread == 0 {
        0
    } else {
        backoff::random_u64() % (spread + 1)
    };
    Duration::from_millis(ms - ms / 10 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_cycle_retries_when_the_policy_said_within_bounds() {
        let poll = Duration::from_secs(21600);
        // No time named: the next poll.
        assert_eq!(retry_delay(poll, None, 1000), poll);
        // A window opening in an hour: then.
        assert_eq!(
            retry_delay(poll, Some(1000 + 3600), 1000),
            Duration::from_secs(3600)
        );
        // Sooner than a minute, or in the past: a minute.
        assert_eq!(
            retry_delay(poll, Some(1005), 1000),
            Duration::from_secs(MIN_RETRY_S)
        );
        assert_eq!(
            retry_delay(poll, Some(10), 1000),
            Duration::from_secs(MIN_RETRY_S)
        );
        // Later than the next poll: the poll.
        assert_eq!(retry_delay(poll, Some(1000 + 86400), 1000), poll);
    }

    #[test]
    fn poll_delay_is_interval_plus_minus_ten_percent_and_spreads() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let d = poll_delay(3600).as_millis();
            assert!((3_240_000..=3_960_000).contains(&d), "{d}");
            seen.insert(d);
        }
        assert!(seen.len() > 150, "only {} distinct delays", seen.len());
        assert_eq!(poll_delay(0), Duration::ZERO);
    }
}
