//! The environment interpreted: which slot U-Boot boots, the trial and its
//! count, and the derived health of each slot (see the parent's table).

use std::collections::BTreeMap;

use super::error::BACKEND;
use super::var;
use crate::slots::Slot;

/// The boot script's `bootlimit` when the variable is missing.
const SCRIPT_DEFAULT_BOOTLIMIT: u32 = 3;

/// U-Boot numbers are hex in `setexpr`; the contract keeps them below 10,
/// where hex and decimal agree. Parsed as hex like U-Boot; garbage → `None`.
pub(super) fn number(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(t, 16).ok()
}

fn slot_set(text: Option<&str>) -> [bool; 2] {
    let text = text.unwrap_or("");
    [text.contains('a'), text.contains('b')]
}

pub(super) fn slot_set_text(set: [bool; 2]) -> String {
    Slot::ALL
        .iter()
        .filter(|s| set[s.index()])
        .map(|s| s.letter())
        .collect()
}

/// The environment interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct View {
    pub(super) slot: Slot,
    pub(super) trial: bool,
    pub(super) count: u32,
    pub(super) limit: u32,
    pub(super) good: [bool; 2],
    pub(super) bad: [bool; 2],
    /// Unrecorded rollback: (raw value, failed slot, reason).
    pub(super) rollback: Option<(String, Slot, String)>,
}

impl View {
    pub(super) fn parse(vars: &BTreeMap<String, String>) -> View {
        let get = |k: &str| vars.get(k).map(String::as_str);
        // boot.cmd boots `a` unless ota_slot is exactly `b`.
        let slot = match get(var::SLOT) {
            Some("b") => Slot::B,
            Some("a") => Slot::A,
            other => {
                log::warn!("{BACKEND}: ota_slot is {other:?}; U-Boot boots slot a");
                Slot::A
            }
        };
        let count = match get(var::BOOTCOUNT) {
            None => 0,
            Some(v) => number(v).unwrap_or_else(|| {
                log::warn!(
                    "{BACKEND}: bootcount `{v}` is not a number; treating the trial as used up"
                );
                u32::MAX
            }),
        };
        let limit = get(var::BOOTLIMIT)
            .and_then(number)
            .unwrap_or(SCRIPT_DEFAULT_BOOTLIMIT);
        let rollback = get(var::ROLLBACK).filter(|v| !v.is_empty()).map(|raw| {
            let (slot_text, reason) = raw.split_once(':').unwrap_or((raw, "unknown"));
            // A report naming no valid slot still means "the slot we left":
            // the one that is not ota_slot now.
            let failed = slot_text.parse::<Slot>().unwrap_or(slot.other());
            (raw.to_string(), failed, reason.to_string())
        });
        let trial = get(var::UPGRADE_AVAILABLE) == Some("1");
        let good = match get(var::GOOD) {
            Some(text) => slot_set(Some(text)),
            // Factory environment: the slot booted without a trial is trusted.
            None => [slot == Slot::A && !trial, slot == Slot::B && !trial],
        };
        View {
            slot,
            trial,
            count,
            limit,
            good,
            bad: slot_set(get(var::BAD)),
            rollback,
        }
    }

    pub(super) fn trial_slot(&self) -> Option<Slot> {
        self.trial.then_some(self.slot)
    }

    pub(super) fn exhausted(&self) -> bool {
        self.trial && self.count >= self.limit
    }

    pub(super) fn bootable(&self, slot: Slot) -> bool {
        if self.bad[slot.index()] {
            return false;
        }
        if matches!(&self.rollback, Some((_, failed, _)) if *failed == slot) {
            return false;
        }
        !(slot == self.slot && self.exhausted())
    }

    pub(super) fn successful(&self, slot: Slot) -> bool {
        self.good[slot.index()] && self.trial_slot() != Some(slot) && self.bootable(slot)
    }

    pub(super) fn active(&self) -> Slot {
        if self.exhausted() {
            self.slot.other()
        } else {
            self.slot
        }
    }
}
