//! The pure `plan_*` functions: each computes the new variable set of one
//! change from the stored one, without I/O. A refusal is an error and means
//! nothing is written.

use std::collections::BTreeMap;

use super::error::err;
use super::var;
use super::view::{slot_set_text, View};
use crate::slots::Slot;
use crate::Result;

/// `set_active(slot)` on the variables (see the trait for the invariants).
pub(super) fn plan_set_active(
    v: &View,
    old: &BTreeMap<String, String>,
    slot: Slot,
    booted: Slot,
    boot_tries: u8,
) -> Result<BTreeMap<String, String>> {
    let mut vars = old.clone();
    let mut good = v.good;
    let mut bad = v.bad;
    set(&mut vars, var::SLOT, slot.letter());
    set(&mut vars, var::BOOTCOUNT, "0");
    if slot == booted && v.successful(slot) {
        // Cancel a pending switch: stay on the running, confirmed slot.
        set(&mut vars, var::UPGRADE_AVAILABLE, "0");
    } else {
        // A trial. Its fallback must be confirmed: U-Boot boots the fallback
        // without counting, and a trial whose fallback is broken too would
        // leave nothing that boots.
        let fallback = slot.other();
        if !v.successful(fallback) {
            return Err(err(format!(
                "slot {fallback} is not confirmed (mark-good it first), so it cannot be the fallback for a trial of slot {slot}; nothing changed"
            )));
        }
        // Without altbootcmd a failing slot would be retried forever.
        if vars
            .get(var::ALTBOOTCMD)
            .is_none_or(|c| c.trim().is_empty())
        {
            return Err(err(format!(
                "altbootcmd is not set, so U-Boot could not fall back from a failed trial of slot {slot}; refusing to activate it"
            )));
        }
        good[slot.index()] = false;
        bad[slot.index()] = false;
        set(&mut vars, var::UPGRADE_AVAILABLE, "1");
        set(&mut vars, var::BOOTLIMIT, boot_tries.to_string());
    }
    set_slots(&mut vars, var::GOOD, good);
    set_slots(&mut vars, var::BAD, bad);
    Ok(vars)
}

/// `mark_successful()` of `booted` on the variables.
pub(super) fn plan_mark_successful(
    v: &View,
    old: &BTreeMap<String, String>,
    booted: Slot,
) -> Result<BTreeMap<String, String>> {
    if v.bad[booted.index()] {
        return Err(err(format!(
            "the booted slot {booted} was marked unbootable; activate it again (set-active {booted}) before marking it good"
        )));
    }
    let mut vars = old.clone();
    let mut good = v.good;
    good[booted.index()] = true;
    if v.trial && v.slot == booted {
        // The trial slot proved itself: stop counting.
        set(&mut vars, var::UPGRADE_AVAILABLE, "0");
        set(&mut vars, var::BOOTCOUNT, "0");
    }
    set_slots(&mut vars, var::GOOD, good);
    Ok(vars)
}

/// `mark_unbootable(slot)` on the variables; `other_writing`: the remaining
/// slot has an unfinished write.
pub(super) fn plan_mark_unbootable(
    v: &View,
    old: &BTreeMap<String, String>,
    slot: Slot,
    booted: Slot,
    other_writing: bool,
) -> Result<BTreeMap<String, String>> {
    let other = slot.other();
    let mut vars = old.clone();
    let mut good = v.good;
    let mut bad = v.bad;
    good[slot.index()] = false;
    bad[slot.index()] = true;
    // The slot that remains must be confirmed: U-Boot boots it without
    // counting, so an unconfirmed one could be a boot loop (and for the
    // booted slot: the installer must not overwrite the only good slot).
    if !v.successful(other) || other_writing {
        return Err(err(format!(
            "slot {other} is not confirmed, so marking slot {slot} unbootable would leave no known-good slot to boot; nothing changed"
        )));
    }
    if slot == booted {
        set(&mut vars, var::SLOT, other.letter());
        set(&mut vars, var::BOOTCOUNT, "0");
        set(&mut vars, var::UPGRADE_AVAILABLE, "0");
        set(&mut vars, var::ROLLBACK, format!("{slot}:mark-bad"));
    } else if v.slot == slot {
        // A pending switch to the slot being invalidated: stay here.
        set(&mut vars, var::SLOT, booted.letter());
        set(&mut vars, var::UPGRADE_AVAILABLE, "0");
        set(&mut vars, var::BOOTCOUNT, "0");
    }
    set_slots(&mut vars, var::GOOD, good);
    set_slots(&mut vars, var::BAD, bad);
    Ok(vars)
}

/// Clearing the rollback report `raw` after it was recorded: the failed slot
/// is remembered as bad, so a later mark-bad cannot fall back to it. If the
/// report changed meanwhile, nothing is changed.
pub(super) fn plan_clear_rollback(
    v: &View,
    old: &BTreeMap<String, String>,
    raw: &str,
    failed: Slot,
) -> Result<BTreeMap<String, String>> {
    if old.get(var::ROLLBACK).map(String::as_str) != Some(raw) {
        return Ok(old.clone());
    }
    let mut vars = old.clone();
    vars.remove(var::ROLLBACK);
    let mut bad = v.bad;
    let mut good = v.good;
    bad[failed.index()] = true;
    good[failed.index()] = false;
    set_slots(&mut vars, var::BAD, bad);
    set_slots(&mut vars, var::GOOD, good);
    Ok(vars)
}

fn set(vars: &mut BTreeMap<String, String>, name: &str, value: impl Into<String>) {
    vars.insert(name.to_string(), value.into());
}

/// Stores a slot set. U-Boot's `env import` drops variables with an empty
/// value, so the empty set is stored as `none` for `ota_good` (whose absence
/// means "factory environment") and as no variable for `ota_bad`.
fn set_slots(vars: &mut BTreeMap<String, String>, name: &str, set_: [bool; 2]) {
    let text = slot_set_text(set_);
    match (text.is_empty(), name == var::GOOD) {
        (true, true) => set(vars, name, "none"),
        (true, false) => {
            vars.remove(name);
        }
        (false, _) => set(vars, name, text),
    }
}
