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
use crate::Result;

mod env_access;
mod error;
mod plan;
pub mod var;
mod view;

use error::{err, BACKEND};
use plan::{plan_clear_rollback, plan_mark_successful, plan_mark_unbootable, plan_set_active};
use view::{number, View};

pub use env_access::{EnvAccess, FwEnv, MemEnv};

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
            cause: None,
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

#[cfg(test)]
mod tests;
