//! The boot-control commands: `status`, `mark-good` (health checks, then
//! confirm the booted slot and apply its security floor), `mark-bad`,
//! `set-active`. Every one opens boot control through [`Device`], which
//! first records a rollback the bootloader reported; the changing ones
//! hold the update lock.

use super::lock::lock;
use super::{trial, Device};
use crate::bootctl::BootStatus;
use crate::health;
use crate::report::{Event, Reporter};
use crate::slots::Slot;
use crate::state::Rollback;
use crate::update_status::{self, UpdateStatus};
use crate::Result;

/// Everything `status` shows.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// The boot-control state.
    pub boot: BootStatus,
    /// The newest recorded rollback.
    pub last_rollback: Option<Rollback>,
    /// `VERSION_ID` of `version_file`, if readable.
    pub installed_version: Option<String>,
    /// The update status document, if there is a valid one.
    pub update: Option<UpdateStatus>,
}

/// Gathers the state for `status`.
pub fn status(dev: &mut Device) -> Result<StatusReport> {
    let bc = dev.boot_control()?;
    let boot = bc.status();
    let last_rollback = dev.state().last_rollback()?;
    // A torn or foreign file must not hide the boot state: warn, show none.
    let update = update_status::read(dev.state()).unwrap_or_else(|e| {
        log::warn!("{e}; shown as no update");
        None
    });
    Ok(StatusReport {
        boot,
        last_rollback,
        installed_version: dev.installed_text(),
        update,
    })
}

/// What `mark-good` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// The booted slot, now confirmed.
    pub slot: Slot,
    /// Health checks that passed.
    pub checks: usize,
    /// The minimum security version it raised, if any.
    pub security_floor: Option<u32>,
}

/// Runs the health checks (each within `health_timeout_s`); when all pass,
/// confirms the booted slot and raises the stored minimum security version
/// to the confirmed release's.
pub fn mark_good(dev: &mut Device) -> Result<Confirmed> {
    let _lock = lock(dev.state())?;
    let health_dir = dev.config().health_dir.clone();
    let limit = std::time::Duration::from_secs(dev.config().health_timeout_s);
    let mut reporter = Reporter::new(dev.config());
    // This trial boot got here: a power cut from now on is not a failed boot.
    note_reached(dev)?;
    let state = dev.state().clone();
    let bc = dev.boot_control()?;
    let slot = bc.booted_slot();
    let checks = health::run_all_within(&health_dir, limit).inspect_err(|error| {
        if let Err(e) = trial::health_failed(&state, slot) {
            log::warn!("{e}");
        }
        reporter.record(Event::HealthFailed {
            booted: slot,
            error,
        })
    })?;
    let attempts = bc.status().boot_count;
    bc.mark_successful()?;
    trial::committed(&state, slot)?;
    reporter.record(Event::Committed {
        booted: slot,
        boot_attempts: attempts,
    });
    log::info!("{checks} health checks passed");
    // The installed release's anti-rollback floor applies once it is confirmed.
    let security_floor = crate::install::confirm_security_version(state.path(), slot)?;
    if let Some(v) = security_floor {
        log::info!("minimum security version raised to {v}");
    }
    Ok(Confirmed {
        slot,
        checks,
        security_floor,
    })
}

/// `ota-agent booted`, early in userspace: records that this boot of a
/// trial slot got here (`trial`), so that a power cut from now on does not
/// count as a failed boot. Returns whether it was recorded (false: no
/// trial, or already recorded for this boot).
pub fn booted(dev: &mut Device) -> Result<bool> {
    let _lock = lock(dev.state())?;
    note_reached(dev)
}

/// Records (`trial::reached`) that this boot, by its kernel boot id, of
/// the booted slot reached userspace; `booted` and `mark-good` both do.
fn note_reached(dev: &mut Device) -> Result<bool> {
    let boot_id = trial::boot_id(&dev.config().boot_id_file);
    let state = dev.state().clone();
    let status = dev.boot_control()?.status();
    trial::reached(&state, &status, &boot_id)
}

/// Marks the booted slot unbootable; returns it and the slot of the next
/// boot.
pub fn mark_bad(dev: &mut Device) -> Result<(Slot, Slot)> {
    let _lock = lock(dev.state())?;
    let mut reporter = Reporter::new(dev.config());
    let bc = dev.boot_control()?;
    let booted = bc.booted_slot();
    bc.mark_unbootable(booted)?;
    reporter.record(Event::MarkedBad { booted });
    Ok((booted, bc.active_slot()))
}

/// The slot `set-active` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This slot.
    Slot(Slot),
    /// The slot not booted.
    Other,
}

/// Makes `target` the slot of the next boot (`reinit`: replace an invalid
/// Android bootctrl block). Returns the slot and the state afterwards.
pub fn set_active(dev: &mut Device, target: Target, reinit: bool) -> Result<(Slot, BootStatus)> {
    let _lock = lock(dev.state())?;
    let bc = dev.open_boot_control(reinit)?;
    let slot = match target {
        Target::Other => bc.booted_slot().other(),
        Target::Slot(s) => s,
    };
    bc.set_active(slot)?;
    Ok((slot, bc.status()))
}
