//! The `uboot` backend: boot control through the U-Boot environment
//! (docs/contract.md "U-Boot environment").
//!
//! | variable            | meaning                                                     |
//! |---------------------|-------------------------------------------------------------|
//! | `ota_slot`          | slot U-Boot boots (anything but `b` means `a`, as boot.cmd) |
//! | `upgrade_available` | `1` while `ota_slot` is on trial                            |
//! | `bootcount`         | trial boots so far (U-Boot adds 1 per boot while trial)     |
//! | `bootlimit`         | trial boots allowed; `bootcount > bootlimit` → `altbootcmd` |
//! | `altbootcmd`        | fallback: swap `ota_slot`, end trial, set `ota_rollback`    |
//! | `ota_rollback`      | `<slot>:<reason>` left by `altbootcmd` or `mark_unbootable` |
//! | `ota_good`          | agent-private: confirmed slots (`ab`, `a`, … or `none`)      |
//! | `ota_bad`           | agent-private: slots marked unbootable (`"b"`)              |
//!
//! The standard variables cannot say whether the *other* slot is healthy, so
//! the agent keeps `ota_good`/`ota_bad` next to them (prefix `ota_`, ignored
//! by boot scripts). Derived health:
//!
//! * bootable(x) = x ∉ `ota_bad`, x is not the slot named by an unrecorded
//!   `ota_rollback`, and if x is the trial slot: `bootcount < bootlimit`.
//! * successful(x) = x ∈ `ota_good`, x is not on trial, and bootable(x).
//!   A factory environment has no `ota_good` yet: then the slot U-Boot boots
//!   without a trial counts as confirmed (the factory image is trusted); the
//!   agent's first write makes the set explicit.
//! * active = the fallback slot when the trial's tries are used up, else
//!   `ota_slot`.
//!
//! Every change is ONE `store` of the whole variable set (the `uboot-env`
//! crate writes it to the other redundant copy), so a power cut leaves the
//! old or the new set, never a mix.

use std::collections::BTreeMap;

use crate::bootctl::{BootControl, BootStatus, SlotState};
use crate::config::Config;
use crate::slots::Slot;
use crate::state::{self, Rollback, StateDir};
use crate::{Error, Result};

/// Variable names of the contract.
pub mod var {
    /// Slot to boot.
    pub const SLOT: &str = "ota_slot";
    /// `1` during a trial.
    pub const UPGRADE_AVAILABLE: &str = "upgrade_available";
    /// Trial boots so far.
    pub const BOOTCOUNT: &str = "bootcount";
    /// Trial boots allowed.
    pub const BOOTLIMIT: &str = "bootlimit";
    /// The fallback command.
    pub const ALTBOOTCMD: &str = "altbootcmd";
    /// Rollback report `<slot>:<reason>`.
    pub const ROLLBACK: &str = "ota_rollback";
    /// Agent-private: confirmed slots.
    pub const GOOD: &str = "ota_good";
    /// Agent-private: slots marked unbootable.
    pub const BAD: &str = "ota_bad";
    /// What the environment must hold before an install writes anything
    /// (`ota_rollback`, `ota_good` and `ota_bad` are absent by design until
    /// used).
    pub const REQUIRED: [&str; 5] = [SLOT, UPGRADE_AVAILABLE, BOOTCOUNT, BOOTLIMIT, ALTBOOTCMD];
}

/// The boot script's `bootlimit` when the variable is missing.
const SCRIPT_DEFAULT_BOOTLIMIT: u32 = 3;

const BACKEND: &str = "uboot";

fn err(reason: impl Into<String>) -> Error {
    Error::Bootctl {
        backend: BACKEND,
        reason: reason.into(),
    }
}

/// Access to the whole U-Boot environment as name → value.
pub trait EnvAccess {
    /// Reads every variable.
    fn load(&mut self) -> Result<BTreeMap<String, String>>;
    /// Reads, lets `edit` change the variables, and writes them back in ONE
    /// write if they changed — all under one hold of the storage's lock, so
    /// a concurrent `fw_setenv` is not lost. The write is atomic with respect
    /// to power loss (redundant copies / CRC in the storage layer). An error
    /// from `edit` writes nothing. Returns whether it wrote.
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool>;
    /// Where the copies live (the installer never writes over them).
    fn locations(&self) -> Vec<crate::slots::Reserved> {
        Vec::new()
    }
}

/// The in-memory fake of [`EnvAccess`] for tests: counts writes.
#[derive(Debug, Clone, Default)]
pub struct MemEnv {
    /// The variables.
    pub vars: BTreeMap<String, String>,
    /// How many writes were made.
    pub writes: usize,
}

impl EnvAccess for MemEnv {
    fn load(&mut self) -> Result<BTreeMap<String, String>> {
        Ok(self.vars.clone())
    }
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool> {
        let mut vars = self.vars.clone();
        edit(&mut vars)?;
        if vars == self.vars {
            return Ok(false);
        }
        self.vars = vars;
        self.writes += 1;
        Ok(true)
    }
}

/// U-Boot numbers are hex in `setexpr`; the contract keeps them below 10,
/// where hex and decimal agree. Parsed as hex like U-Boot; garbage → `None`.
fn number(text: &str) -> Option<u32> {
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

fn slot_set_text(set: [bool; 2]) -> String {
    Slot::ALL
        .iter()
        .filter(|s| set[s.index()])
        .map(|s| s.letter())
        .collect()
}

/// The environment interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    slot: Slot,
    trial: bool,
    count: u32,
    limit: u32,
    good: [bool; 2],
    bad: [bool; 2],
    /// Unrecorded rollback: (raw value, failed slot, reason).
    rollback: Option<(String, Slot, String)>,
}

impl View {
    fn parse(vars: &BTreeMap<String, String>) -> View {
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

    fn trial_slot(&self) -> Option<Slot> {
        self.trial.then_some(self.slot)
    }

    fn exhausted(&self) -> bool {
        self.trial && self.count >= self.limit
    }

    fn bootable(&self, slot: Slot) -> bool {
        if self.bad[slot.index()] {
            return false;
        }
        if matches!(&self.rollback, Some((_, failed, _)) if *failed == slot) {
            return false;
        }
        !(slot == self.slot && self.exhausted())
    }

    fn successful(&self, slot: Slot) -> bool {
        self.good[slot.index()] && self.trial_slot() != Some(slot) && self.bootable(slot)
    }

    fn active(&self) -> Slot {
        if self.exhausted() {
            self.slot.other()
        } else {
            self.slot
        }
    }
}

/// The U-Boot environment backend.
pub struct Uboot<E> {
    env: E,
    vars: BTreeMap<String, String>,
    view: View,
    booted: Slot,
    boot_tries: u8,
    state: StateDir,
}

impl Uboot<Box<dyn EnvAccess>> {
    /// Opens the environment `config.fw_env_config` describes.
    pub fn open_config(config: &Config, booted: Slot, state: StateDir) -> Result<Self> {
        let env: Box<dyn EnvAccess> = Box::new(FwEnv::open(&config.fw_env_config)?);
        Uboot::new(env, booted, config.boot_tries, state)
    }
}

impl<E: EnvAccess + ?Sized> EnvAccess for Box<E> {
    fn load(&mut self) -> Result<BTreeMap<String, String>> {
        (**self).load()
    }
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool> {
        (**self).update(edit)
    }
    fn locations(&self) -> Vec<crate::slots::Reserved> {
        (**self).locations()
    }
}

impl<E: EnvAccess> Uboot<E> {
    /// Uses `env`; `booted` is the running slot, `boot_tries` the
    /// `bootlimit` a new trial gets.
    pub fn new(mut env: E, booted: Slot, boot_tries: u8, state: StateDir) -> Result<Self> {
        let vars = env.load()?;
        let view = View::parse(&vars);
        Ok(Uboot {
            env,
            vars,
            view,
            booted,
            boot_tries,
            state,
        })
    }

    /// The environment access (tests inspect the fake through it).
    pub fn env(&self) -> &E {
        &self.env
    }

    /// One change: `plan` computes the new variables from the stored ones
    /// (read fresh, under the storage lock) without I/O; they are written in
    /// one write if they differ. A refusal from `plan` writes nothing.
    fn change(
        &mut self,
        plan: impl Fn(&View, &BTreeMap<String, String>) -> Result<BTreeMap<String, String>>,
    ) -> Result<()> {
        let mut after = None;
        self.env.update(&mut |vars| {
            let new = plan(&View::parse(vars), vars)?;
            *vars = new;
            after = Some(vars.clone());
            Ok(())
        })?;
        if let Some(vars) = after {
            self.view = View::parse(&vars);
            self.vars = vars;
        }
        Ok(())
    }
}

/// `set_active(slot)` on the variables (see the trait for the invariants).
fn plan_set_active(
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
fn plan_mark_successful(
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
fn plan_mark_unbootable(
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
fn plan_clear_rollback(
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

impl<E: EnvAccess> BootControl for Uboot<E> {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn storage(&self) -> Vec<crate::slots::Reserved> {
        self.env.locations()
    }

    fn check_ready(&self) -> Result<()> {
        let missing: Vec<&str> = var::REQUIRED
            .into_iter()
            .filter(|v| !self.vars.contains_key(*v))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(err(format!(
            "the U-Boot environment lacks {} (every one of {} is needed to activate a slot); nothing was written",
            missing.join(", "),
            var::REQUIRED.join(", ")
        )))
    }

    fn booted_slot(&self) -> Slot {
        self.booted
    }

    fn active_slot(&self) -> Slot {
        self.view.active()
    }

    fn set_active(&mut self, slot: Slot) -> Result<()> {
        if self.state.is_being_written(slot) {
            return Err(err(format!(
                "slot {slot} is being written (or its write was interrupted); refusing to activate it"
            )));
        }
        let (booted, tries) = (self.booted, self.boot_tries);
        self.change(|v, vars| plan_set_active(v, vars, slot, booted, tries))
    }

    fn mark_successful(&mut self) -> Result<()> {
        let booted = self.booted;
        self.change(|v, vars| plan_mark_successful(v, vars, booted))
    }

    fn mark_unbootable(&mut self, slot: Slot) -> Result<()> {
        let booted = self.booted;
        let other_writing = self.state.is_being_written(slot.other());
        self.change(|v, vars| plan_mark_unbootable(v, vars, slot, booted, other_writing))
    }

    fn is_bootable(&self, slot: Slot) -> bool {
        self.view.bootable(slot)
    }

    fn is_successful(&self, slot: Slot) -> bool {
        self.view.successful(slot)
    }

    fn status(&self) -> BootStatus {
        let v = &self.view;
        let slot_state = |slot: Slot| SlotState {
            slot,
            bootable: v.bootable(slot),
            successful: v.successful(slot),
            tries_remaining: None,
            priority: None,
        };
        BootStatus {
            backend: BACKEND,
            booted: self.booted,
            active: v.active(),
            trial: v.trial_slot(),
            boot_count: self.vars.get(var::BOOTCOUNT).and_then(|c| number(c)),
            boot_limit: Some(v.limit),
            slots: [slot_state(Slot::A), slot_state(Slot::B)],
            unrecorded_rollback: v.rollback.as_ref().map(|r| r.0.clone()),
        }
    }

    fn record_rollback(&mut self) -> Result<Option<Rollback>> {
        self.vars = self.env.load()?;
        self.view = View::parse(&self.vars);
        let last = self.state.last_rollback()?;
        let Some((raw, failed, reason)) = self.view.rollback.clone() else {
            // A previous run recorded and cleared but lost power before
            // confirming the clear: finish that.
            if last.is_some_and(|r| r.uncleared.is_some()) {
                self.state.confirm_rollback_cleared()?;
            }
            return Ok(None);
        };
        // Step 1: record (unless a previous run recorded exactly this report
        // and lost power before clearing it).
        let already = last
            .as_ref()
            .is_some_and(|r| r.uncleared.as_deref() == Some(raw.as_str()));
        let record = Rollback {
            time: state::now(),
            from: failed,
            to: self.view.slot,
            reason,
            uncleared: Some(raw),
        };
        if !already {
            self.state.push_rollback(record.clone())?;
        }
        // Step 2: one env write clears the report (plan_clear_rollback).
        let raw = record.uncleared.clone().unwrap_or_default();
        self.change(|v, vars| plan_clear_rollback(v, vars, &raw, failed))?;
        // Step 3: the record no longer waits for the clear.
        self.state.confirm_rollback_cleared()?;
        Ok((!already).then_some(Rollback {
            uncleared: None,
            ..record
        }))
    }
}

/// [`EnvAccess`] on the real environment: `uboot_env::EnvStore` as
/// `fw_env.config` describes it (redundant copies, CRC, flags byte).
pub struct FwEnv {
    store: uboot_env::EnvStore,
    devices: Vec<uboot_env::EnvDevice>,
}

impl FwEnv {
    /// Opens the storage named by the `fw_env.config` at `path`.
    pub fn open(path: &std::path::Path) -> Result<FwEnv> {
        let config = uboot_env::FwEnvConfig::load(path)?;
        Ok(FwEnv {
            store: uboot_env::EnvStore::open(&config)?,
            devices: config.devices().to_vec(),
        })
    }
}

impl EnvAccess for FwEnv {
    fn locations(&self) -> Vec<crate::slots::Reserved> {
        self.devices
            .iter()
            .enumerate()
            .map(|(i, d)| crate::slots::Reserved {
                what: format!("U-Boot env copy {}", i + 1),
                device: d.path.clone(),
                offset: d.offset,
                // An MTD copy may span several erase blocks.
                len: match (d.sector_size, d.sector_count) {
                    (Some(size), Some(count)) => (size * count).max(d.size as u64),
                    _ => d.size as u64,
                },
            })
            .collect()
    }

    /// No valid copy is an error: boot control never starts from a guess.
    fn load(&mut self) -> Result<BTreeMap<String, String>> {
        let env = self.store.read()?;
        Ok(to_map(&env))
    }

    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool> {
        // The store's closure returns its own error type: keep ours aside and
        // leave the environment unchanged, so nothing is written.
        let mut refused = None;
        let wrote = self.store.update(None, |env| {
            let mut vars = to_map(env);
            if let Err(e) = edit(&mut vars) {
                refused = Some(e);
                return Ok(());
            }
            let mut next = uboot_env::Env::new();
            for (k, v) in &vars {
                next.set(k, v)?;
            }
            *env = next;
            Ok(())
        })?;
        match refused {
            Some(e) => Err(e),
            // ONE write of the whole image, to the non-current copy.
            None => Ok(wrote),
        }
    }
}

fn to_map(env: &uboot_env::Env) -> BTreeMap<String, String> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests;
