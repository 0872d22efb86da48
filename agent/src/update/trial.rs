//! Trial boots that survive being unplugged (docs/contract.md "Trial boots
//! and power loss").
//!
//! The bootloader counts every boot of a trial slot. A good release whose
//! trial boots are cut by power `bootlimit` times is given up like a broken
//! one, and a given-up release is never installed again: a few unlucky
//! unplugs would strand a kitchen appliance on its old release. The agent
//! tells the two apart where the boot chain lets it:
//!
//! * every boot of the trial slot that reaches userspace is recorded, once
//!   per boot (its kernel boot id), by `ota-agent booted` (early) and by
//!   `mark-good` (before its health checks);
//! * a failed health check is recorded by `mark-good`.
//!
//! When the bootloader gives the slot up after its tries (`bootlimit`),
//! the boots that never reached userspace count as failures (a kernel
//! panic and a power pull before userspace look the same), the others as
//! power losses. If no health check failed, at least one boot reached
//! userspace, and the failures of every round of this release's trial stay
//! below the boot limit, the rollback was "power lost during trial":
//! `ota-agent resume` activates the slot again for a new round, at most
//! [`MAX_RETRIES`] times per release. A release that never reaches
//! userspace, or fails a health check, still ends on the old slot within
//! `bootlimit` boots, exactly as before; `mark-bad` and other reasons are
//! never retried. Backend-neutral: it needs only the booted slot, the trial
//! flag and the boot limit that both boot-control backends give.

use crate::bootctl::BootStatus;
use crate::slots::Slot;
use crate::state::{StateDir, Trial};
use crate::Result;

/// Rounds a release's trial is started again after power losses.
pub const MAX_RETRIES: u32 = 2;
/// Boot ids kept per round (more than any boot limit: `boot_tries` ≤ 7).
const MAX_REACHED: usize = 16;

/// `release`, just activated in `slot`: its trial starts.
pub fn begin(state: &StateDir, slot: Slot, release: &str) -> Result<()> {
    state.set_trial(&Trial {
        format: 1,
        slot,
        release: release.to_owned(),
        reached: Vec::new(),
        failed_boots: 0,
        health_failed: false,
        retries: 0,
        retry_pending: false,
    })
}

/// This boot (`boot_id`) of `booted` reached userspace: recorded once per
/// boot while `booted` is the unconfirmed slot of the trial. Returns
/// whether it was new. (Not `status.trial`: with Android bootctrl, on the
/// last try `ab_select` would already pick the other slot next, so the
/// booted slot no longer counts as "on trial" there.)
pub fn reached(state: &StateDir, status: &BootStatus, boot_id: &str) -> Result<bool> {
    let Some(mut t) = state.trial()? else {
        return Ok(false);
    };
    let booted = status.booted;
    let confirmed = status.slots[booted.index()].successful;
    if t.slot != booted || confirmed || boot_id.is_empty() {
        return Ok(false);
    }
    if t.reached.iter().any(|b| b == boot_id) || t.reached.len() >= MAX_REACHED {
        return Ok(false);
    }
    t.reached.push(boot_id.to_owned());
    state.set_trial(&t)?;
    Ok(true)
}

/// A health check failed on `booted`: its trial is never retried.
pub fn health_failed(state: &StateDir, booted: Slot) -> Result<()> {
    match state.trial()? {
        Some(mut t) if t.slot == booted && !t.health_failed => {
            t.health_failed = true;
            state.set_trial(&t)
        }
        _ => Ok(()),
    }
}

/// `booted` was confirmed: its trial is over.
pub fn committed(state: &StateDir, booted: Slot) -> Result<()> {
    match state.trial()? {
        Some(t) if t.slot == booted => state.clear_trial(),
        _ => Ok(()),
    }
}

/// How [`on_rollback`] judged the trial the bootloader gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// One line kept with the rollback record (`status`, reports).
    pub cause: String,
    /// Power cuts ended it (else its boots never reached userspace).
    pub power_lost: bool,
}

/// The bootloader gave `from` up for `reason` after `boot_limit` tries.
/// Judges its tracked trial, if any: lost to power (a round with retries
/// left is then marked for `resume`), or failed because its boots never
/// reached userspace (a kernel that panics). `None`: nothing tracked, a
/// health check failed (its own note is the cause) or another reason.
pub fn on_rollback(
    state: &StateDir,
    from: Slot,
    reason: &str,
    boot_limit: Option<u32>,
) -> Result<Option<Judged>> {
    let Some(mut t) = state.trial()? else {
        return Ok(None);
    };
    if t.slot != from {
        state.clear_trial()?;
        return Ok(None);
    }
    let limit = boot_limit.unwrap_or(0);
    let reached = u32::try_from(t.reached.len()).unwrap_or(u32::MAX);
    let failed = t.failed_boots + limit.saturating_sub(reached);
    let counted = reason == "bootlimit" && !t.health_failed && limit > 0;
    let power = counted && reached > 0 && failed < limit;
    if !power {
        state.clear_trial()?;
        let cause = match reached {
            _ if !counted => return Ok(None),
            0 => format!("none of the {limit} trial boots reached userspace"),
            _ => format!("{failed} trial boots never reached userspace (limit {limit})"),
        };
        return Ok(Some(Judged {
            cause,
            power_lost: false,
        }));
    }
    let what = format!(
        "power lost during trial: {reached} of {limit} boots reached userspace, none failed a health check"
    );
    let cause = if t.retries >= MAX_RETRIES {
        state.clear_trial()?;
        format!("{what}; no retry left ({MAX_RETRIES} used)")
    } else {
        t.failed_boots = failed;
        t.retry_pending = true;
        state.set_trial(&t)?;
        format!(
            "{what}; trying it again ({} of {MAX_RETRIES})",
            t.retries + 1
        )
    };
    Ok(Some(Judged {
        cause,
        power_lost: true,
    }))
}

/// The trial `resume` must start again, if one is pending.
pub fn retry_due(state: &StateDir) -> Option<Trial> {
    state.trial().ok().flatten().filter(|t| t.retry_pending)
}

/// The slot of `t` was activated again: a new round begins.
pub fn retried(state: &StateDir, mut t: Trial) -> Result<()> {
    t.retries += 1;
    t.retry_pending = false;
    t.reached.clear();
    state.set_trial(&t)
}

/// This boot's id (first line of `file`; empty if unreadable).
pub fn boot_id(file: &std::path::Path) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootctl::SlotState;

    /// Booted `booted`; `trial`: the slot not yet confirmed (the other one is).
    fn status(booted: Slot, trial: Option<Slot>) -> BootStatus {
        BootStatus {
            backend: "uboot",
            booted,
            active: booted,
            trial,
            boot_count: None,
            boot_limit: Some(3),
            slots: [Slot::A, Slot::B].map(|slot| SlotState {
                slot,
                bootable: true,
                successful: trial != Some(slot),
                tries_remaining: None,
                priority: None,
            }),
            unrecorded_rollback: None,
        }
    }

    /// One round of three trial boots of slot b; `reached[i]`: boot i got
    /// to userspace. Returns the cause `on_rollback` gives a power loss.
    fn round(state: &StateDir, reached_boots: [bool; 3], round: u32) -> Option<String> {
        judge(state, reached_boots, round)
            .filter(|j| j.power_lost)
            .map(|j| j.cause)
    }

    fn judge(state: &StateDir, reached_boots: [bool; 3], round: u32) -> Option<Judged> {
        for (i, r) in reached_boots.iter().enumerate() {
            if *r {
                let id = format!("boot-{round}-{i}");
                assert!(reached(state, &status(Slot::B, Some(Slot::B)), &id).unwrap());
                // The same boot again (booted, then mark-good): counted once.
                assert!(!reached(state, &status(Slot::B, Some(Slot::B)), &id).unwrap());
            }
        }
        on_rollback(state, Slot::B, "bootlimit", Some(3)).unwrap()
    }

    #[test]
    fn power_lost_trials_are_retried_twice_real_failures_never() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        // Two of three boots reached userspace: power, retried.
        begin(&state, Slot::B, "2.0.0").unwrap();
        let c = round(&state, [false, true, true], 0).unwrap();
        assert!(
            c.contains("2 of 3 boots reached userspace") && c.contains("1 of 2"),
            "{c}"
        );
        let t = retry_due(&state).unwrap();
        retried(&state, t).unwrap();
        assert!(retry_due(&state).is_none());
        // Round 2: one more boot never got there: 2 failures of 3, retried.
        let c = round(&state, [true, false, true], 1).unwrap();
        assert!(c.contains("2 of 2"), "{c}");
        retried(&state, retry_due(&state).unwrap()).unwrap();
        // Round 3: retries used up: the rollback stands.
        let c = round(&state, [true, true, true], 2).unwrap();
        assert!(c.contains("no retry left"), "{c}");
        assert!(retry_due(&state).is_none() && state.trial().unwrap().is_none());

        // Failures add up over rounds: 1 + 2 = 3 = the limit.
        begin(&state, Slot::B, "2.0.1").unwrap();
        assert!(round(&state, [false, true, true], 0).is_some());
        retried(&state, retry_due(&state).unwrap()).unwrap();
        assert_eq!(round(&state, [false, false, true], 1), None);
        assert!(state.trial().unwrap().is_none());

        // Never reached userspace (a kernel that panics): no retry, and
        // the rollback says why.
        begin(&state, Slot::B, "2.0.2").unwrap();
        assert_eq!(
            judge(&state, [false, false, false], 0),
            Some(Judged {
                cause: "none of the 3 trial boots reached userspace".into(),
                power_lost: false
            })
        );
        assert!(retry_due(&state).is_none() && state.trial().unwrap().is_none());
        // A failed health check: no retry, even if every boot got there
        // (its own note is the cause).
        begin(&state, Slot::B, "2.0.3").unwrap();
        health_failed(&state, Slot::B).unwrap();
        assert_eq!(judge(&state, [true, true, true], 0), None);
        // mark-bad is never power.
        begin(&state, Slot::B, "2.0.4").unwrap();
        reached(&state, &status(Slot::B, Some(Slot::B)), "x").unwrap();
        assert_eq!(
            on_rollback(&state, Slot::B, "mark-bad", Some(3)).unwrap(),
            None
        );
    }

    #[test]
    fn only_boots_of_the_trial_slot_count_and_a_commit_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(!reached(&state, &status(Slot::B, Some(Slot::B)), "1").unwrap());
        begin(&state, Slot::B, "2.0.0").unwrap();
        // The old slot, or the trial slot once confirmed, or no boot id.
        assert!(!reached(&state, &status(Slot::A, None), "1").unwrap());
        assert!(!reached(&state, &status(Slot::B, None), "1").unwrap());
        assert!(!reached(&state, &status(Slot::B, Some(Slot::B)), "").unwrap());
        assert!(reached(&state, &status(Slot::B, Some(Slot::B)), "1").unwrap());
        committed(&state, Slot::A).unwrap();
        assert!(state.trial().unwrap().is_some());
        committed(&state, Slot::B).unwrap();
        assert!(state.trial().unwrap().is_none());
    }
}
