//! The `android` backend: the `bootloader_control` block in the `misc`
//! partition (format in [`super::bootloader_control`]), with the semantics of AOSP
//! `libboot_control` and U-Boot `ab_select`:
//!
//! * active = the slot `ab_select` will pick (highest priority bootable);
//! * `set_active(x)`: x gets priority 15 and the configured tries, every other
//!   slot at 15 drops to 14, x's `verity_corrupted` is cleared when x is not
//!   the booted slot. Stricter than AOSP: activating a slot other than the
//!   booted one also clears its `successful_boot`, so it is always a trial
//!   that `ab_select` counts down (AOSP relies on the updater having called
//!   `setSlotAsUnbootable` first);
//! * `mark_successful`: `successful_boot = 1`, `tries_remaining >= 1`
//!   (`ab_select` skips slots with no tries, even successful ones);
//! * `mark_unbootable(x)`: `tries_remaining = 0`, `successful_boot = 0`.
//!
//! Every write first checks that `ab_select` will still find a bootable slot
//! in the new block (and, for `set_active`, that it picks the target);
//! otherwise nothing is written.
//!
//! A block with a bad magic, CRC or version is reported. AOSP and U-Boot
//! silently re-initialise it; the agent only does so when asked
//! (`set-active <slot> --reinit`), because a corrupt block after an update
//! means the device's state is unknown and someone should know.
//!
//! Rollback detection: the bootloader leaves no reason behind, so
//! `set_active` records the activation in `state_dir`; when the device later
//! runs another slot while the activated one is unbootable and unconfirmed,
//! `ab_select` gave up on it (`bootlimit`).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::bootloader_control::{self, BootloaderControl, SlotMeta, MAX_PRIORITY};
use crate::bootctl::{BootControl, BootStatus, SlotState};
use crate::config::Config;
use crate::slots::{Layout, Slot};
use crate::state::{self, Activation, Rollback, StateDir};
use crate::{Error, Result};

const BACKEND: &str = "android";

fn err(reason: impl Into<String>) -> Error {
    Error::Bootctl {
        backend: BACKEND,
        reason: reason.into(),
    }
}

/// Access to the 32-byte block.
pub trait BlockAccess {
    /// Reads the block.
    fn read(&mut self) -> Result<[u8; bootloader_control::SIZE]>;
    /// Writes the block and makes it durable. A 32-byte write inside one
    /// sector; a torn write is caught by the CRC.
    fn write(&mut self, block: &[u8; bootloader_control::SIZE]) -> Result<()>;
    /// Where the block lives, for messages.
    fn describe(&self) -> String;
    /// Where the block lives on disk, if it does.
    fn location(&self) -> Option<crate::slots::Reserved> {
        None
    }
}

/// The block at a byte offset of a disk or image file.
#[derive(Debug, Clone)]
pub struct MiscFile {
    path: PathBuf,
    offset: u64,
}

impl MiscFile {
    /// The block at `offset` bytes into `path`.
    pub fn new(path: impl Into<PathBuf>, offset: u64) -> MiscFile {
        MiscFile {
            path: path.into(),
            offset,
        }
    }
}

impl BlockAccess for MiscFile {
    fn read(&mut self) -> Result<[u8; bootloader_control::SIZE]> {
        let io = |e| Error::io(&self.path, e);
        let mut f = std::fs::File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut block = [0u8; bootloader_control::SIZE];
        f.read_exact(&mut block).map_err(io)?;
        Ok(block)
    }

    fn write(&mut self, block: &[u8; bootloader_control::SIZE]) -> Result<()> {
        let io = |e| Error::io(&self.path, e);
        let mut f = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(io)?;
        f.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        f.write_all(block).map_err(io)?;
        f.sync_data().map_err(io)
    }

    fn describe(&self) -> String {
        format!(
            "bootctrl at byte {} of {}",
            self.offset,
            self.path.display()
        )
    }
    fn location(&self) -> Option<crate::slots::Reserved> {
        Some(crate::slots::Reserved {
            what: "Android bootloader_control block".into(),
            device: self.path.clone(),
            offset: i64::try_from(self.offset).unwrap_or(i64::MAX),
            len: bootloader_control::SIZE as u64,
        })
    }
}

/// In-memory [`BlockAccess`] for tests; counts writes.
#[derive(Debug, Clone)]
pub struct MemBlock {
    /// The block.
    pub block: [u8; bootloader_control::SIZE],
    /// Number of writes.
    pub writes: usize,
}

impl BlockAccess for MemBlock {
    fn read(&mut self) -> Result<[u8; bootloader_control::SIZE]> {
        Ok(self.block)
    }
    fn write(&mut self, block: &[u8; bootloader_control::SIZE]) -> Result<()> {
        self.block = *block;
        self.writes += 1;
        Ok(())
    }
    fn describe(&self) -> String {
        "bootctrl in memory".into()
    }
}

impl<B: BlockAccess + ?Sized> BlockAccess for Box<B> {
    fn read(&mut self) -> Result<[u8; bootloader_control::SIZE]> {
        (**self).read()
    }
    fn write(&mut self, block: &[u8; bootloader_control::SIZE]) -> Result<()> {
        (**self).write(block)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn location(&self) -> Option<crate::slots::Reserved> {
        (**self).location()
    }
}

/// The Android bootctrl backend.
pub struct Android<B> {
    misc: B,
    ctrl: BootloaderControl,
    /// True when the stored block is invalid and `ctrl` is a fresh default
    /// that the next write will store (only with `reinit`).
    reinit_pending: bool,
    booted: Slot,
    boot_tries: u8,
    state: StateDir,
}

/// Locates the block in the configured misc partition.
pub fn misc_block(layout: &Layout, name: &str) -> Result<MiscFile> {
    let part = layout.by_name(name).ok_or_else(|| {
        err(format!(
            "no partition named `{name}` on {} (config key misc_partition)",
            layout.disk.display()
        ))
    })?;
    if part.size < bootloader_control::OFFSET + bootloader_control::SIZE as u64 {
        return Err(err(format!(
            "partition `{name}` is {} bytes, too small for the bootctrl block at byte {}",
            part.size,
            bootloader_control::OFFSET
        )));
    }
    Ok(MiscFile::new(
        &layout.disk,
        part.offset + bootloader_control::OFFSET,
    ))
}

impl Android<Box<dyn BlockAccess>> {
    /// Opens the block in the configured `misc_partition`.
    pub fn open_config(
        config: &Config,
        layout: &Layout,
        booted: Slot,
        state: StateDir,
        reinit: bool,
    ) -> Result<Self> {
        let misc: Box<dyn BlockAccess> = Box::new(misc_block(layout, &config.misc_partition)?);
        Android::new(misc, booted, config.boot_tries, state, reinit)
    }
}

impl<B: BlockAccess> Android<B> {
    /// Reads the block from `misc`. An invalid block is an error unless
    /// `reinit`, in which case the next write replaces it with a fresh block
    /// (booted slot confirmed, the other bootable but unconfirmed) changed by
    /// that write.
    pub fn new(
        mut misc: B,
        booted: Slot,
        boot_tries: u8,
        state: StateDir,
        reinit: bool,
    ) -> Result<Self> {
        let (ctrl, reinit_pending) = match Self::load(&mut misc)? {
            Ok(ctrl) => (ctrl, false),
            Err(e) if reinit => {
                log::warn!("{BACKEND}: {}: {e}; re-initialising it as asked", misc.describe());
                // Like U-Boot's default block, except that the running slot
                // is trusted (confirmed): the operator asked for this while
                // running it, and a trial needs a confirmed fallback.
                let mut fresh = BootloaderControl::initial(booted.index(), boot_tries);
                fresh.slots[booted.index()].successful = true;
                (fresh, true)
            }
            Err(e) => {
                return Err(err(format!(
                    "{}: {e}; nothing changed (re-initialise with `ota-agent set-active {booted} --reinit`)",
                    misc.describe()
                )))
            }
        };
        Ok(Android {
            misc,
            ctrl,
            reinit_pending,
            booted,
            boot_tries,
            state,
        })
    }

    /// The block access (tests inspect the fake through it).
    pub fn misc(&self) -> &B {
        &self.misc
    }

    fn load(misc: &mut B) -> Result<Result<BootloaderControl, String>> {
        let raw = misc.read()?;
        Ok(match BootloaderControl::parse(&raw) {
            Ok(ctrl) if ctrl.slot_count() == 2 => Ok(ctrl),
            Ok(ctrl) => Err(format!(
                "bootctrl manages {} slots; this device has 2",
                ctrl.slot_count()
            )),
            Err(e) => Err(e.to_string()),
        })
    }

    fn reload(&mut self) -> Result<()> {
        if self.reinit_pending {
            return Ok(());
        }
        self.ctrl = Self::load(&mut self.misc)?
            .map_err(|e| err(format!("{}: {e}; nothing changed", self.misc.describe())))?;
        Ok(())
    }

    fn meta(&self, slot: Slot) -> &SlotMeta {
        &self.ctrl.slots[slot.index()]
    }

    /// Writes `ctrl` if it differs, after checking that U-Boot will still
    /// find a bootable slot (`want`: and that it is this one).
    fn commit(&mut self, ctrl: BootloaderControl, want: Option<Slot>) -> Result<()> {
        let picked = ctrl.select();
        match (picked, want) {
            (None, _) => {
                return Err(err(
                    "the change would leave no bootable slot; nothing changed",
                ))
            }
            (Some(p), Some(w)) if p != w.index() => {
                return Err(err(format!(
                    "after the change the bootloader would still pick slot {}; nothing changed",
                    if p == 0 { "a" } else { "b" }
                )))
            }
            _ => {}
        }
        if ctrl == self.ctrl && !self.reinit_pending {
            return Ok(());
        }
        self.misc.write(&ctrl.build())?;
        self.ctrl = ctrl;
        self.reinit_pending = false;
        Ok(())
    }

    fn slot_of(index: usize) -> Slot {
        if index == 1 {
            Slot::B
        } else {
            Slot::A
        }
    }
}

impl<B: BlockAccess> BootControl for Android<B> {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn storage(&self) -> Vec<crate::slots::Reserved> {
        self.misc.location().into_iter().collect()
    }

    fn booted_slot(&self) -> Slot {
        self.booted
    }

    fn active_slot(&self) -> Slot {
        // With no bootable slot U-Boot stops; report the booted slot then
        // (status shows both slots unbootable).
        self.ctrl.select().map(Self::slot_of).unwrap_or(self.booted)
    }

    fn set_active(&mut self, slot: Slot) -> Result<()> {
        if self.state.is_being_written(slot) {
            return Err(err(format!(
                "slot {slot} is being written (or its write was interrupted); refusing to activate it"
            )));
        }
        self.reload()?;
        let confirmed_booted = slot == self.booted && self.is_successful(slot);
        let fallback = slot.other();
        if !confirmed_booted && !self.is_successful(fallback) {
            // ab_select would fall back to an unconfirmed slot (counting its
            // tries down), and if that is broken too nothing boots.
            return Err(err(format!(
                "slot {fallback} is not confirmed (mark-good it first), so it cannot be the fallback for a trial of slot {slot}; nothing changed"
            )));
        }
        let mut ctrl = self.ctrl.clone();
        for (i, s) in ctrl.slots.iter_mut().enumerate().take(2) {
            if i != slot.index() && s.priority >= MAX_PRIORITY {
                s.priority = MAX_PRIORITY - 1;
            }
        }
        let target = &mut ctrl.slots[slot.index()];
        target.priority = MAX_PRIORITY;
        if confirmed_booted {
            target.tries_remaining = target.tries_remaining.max(1);
        } else {
            target.tries_remaining = self.boot_tries.min(bootloader_control::MAX_TRIES);
        }
        if slot != self.booted {
            target.verity_corrupted = false;
            target.successful = false;
        }
        if slot != self.booted {
            // Two-phase: uncommitted before the block write, committed after.
            // A power cut between the two leaves an uncommitted record, which
            // is dropped — at worst a rollback goes unreported, never one
            // that did not happen is reported.
            let activation = Activation {
                time: state::now(),
                slot,
                from: self.booted,
                committed: false,
            };
            self.state.set_activation(activation.clone())?;
            self.commit(ctrl, Some(slot))?;
            self.state.set_activation(Activation {
                committed: true,
                ..activation
            })?;
        } else {
            self.commit(ctrl, Some(slot))?;
            self.state.clear_activation()?;
        }
        Ok(())
    }

    fn mark_successful(&mut self) -> Result<()> {
        self.reload()?;
        let mut ctrl = self.ctrl.clone();
        let me = &mut ctrl.slots[self.booted.index()];
        me.successful = true;
        // ab_select skips slots with no tries, successful or not.
        me.tries_remaining = me.tries_remaining.max(1);
        self.commit(ctrl, None)?;
        if self
            .state
            .activation()?
            .is_some_and(|a| a.slot == self.booted)
        {
            self.state.clear_activation()?;
        }
        Ok(())
    }

    fn mark_unbootable(&mut self, slot: Slot) -> Result<()> {
        self.reload()?;
        let mut ctrl = self.ctrl.clone();
        let s = &mut ctrl.slots[slot.index()];
        s.tries_remaining = 0;
        s.successful = false;
        // The slot that remains must be confirmed (see the trait): for the
        // booted slot it is the fallback; for the other slot, the installer
        // must not overwrite the only known-good slot while running a trial.
        if !self.is_successful(slot.other()) {
            return Err(err(format!(
                "slot {} is not confirmed, so marking slot {slot} unbootable would leave no known-good slot to boot; nothing changed",
                slot.other()
            )));
        }
        // An activation of this slot is void now (e.g. the installer starts
        // over): forget it first, so it cannot later look like a bootloader
        // rollback. A power cut before the block write only loses that
        // bookkeeping, never reports a rollback that did not happen.
        if self
            .state
            .activation()?
            .is_some_and(|a| a.slot == slot && slot != self.booted)
        {
            self.state.clear_activation()?;
        }
        self.commit(ctrl, None)?;
        if slot == self.booted {
            self.state.push_rollback(Rollback {
                time: state::now(),
                from: slot,
                to: slot.other(),
                reason: "mark-bad".into(),
                uncleared: None,
                cause: None,
            })?;
        }
        Ok(())
    }

    fn is_bootable(&self, slot: Slot) -> bool {
        self.meta(slot).bootable()
    }

    fn is_successful(&self, slot: Slot) -> bool {
        let m = self.meta(slot);
        m.successful && m.bootable()
    }

    fn status(&self) -> BootStatus {
        let slot_state = |slot: Slot| {
            let m = self.meta(slot);
            SlotState {
                slot,
                bootable: m.bootable(),
                successful: m.successful && m.bootable(),
                tries_remaining: Some(m.tries_remaining),
                priority: Some(m.priority),
            }
        };
        let active = self.active_slot();
        let trial = self
            .ctrl
            .select()
            .map(Self::slot_of)
            .filter(|s| !self.meta(*s).successful);
        BootStatus {
            backend: BACKEND,
            booted: self.booted,
            active,
            trial,
            boot_count: None,
            boot_limit: Some(u32::from(self.boot_tries)),
            slots: [slot_state(Slot::A), slot_state(Slot::B)],
            unrecorded_rollback: None,
        }
    }

    fn record_rollback(&mut self) -> Result<Option<Rollback>> {
        let Some(act) = self.state.activation()? else {
            return Ok(None);
        };
        if !act.committed {
            log::debug!(
                "{BACKEND}: dropping an activation of slot {} interrupted before its block write",
                act.slot
            );
            self.state.clear_activation()?;
            return Ok(None);
        }
        let token = format!("activation:{}:{}", act.slot, act.time);
        let last = self.state.last_rollback()?;
        let m = *self.meta(act.slot);
        if act.slot == self.booted {
            if m.successful {
                self.state.clear_activation()?;
            }
            return Ok(None);
        }
        if m.bootable() || m.successful {
            // Not rebooted yet (or confirmed elsewhere): still pending.
            return Ok(None);
        }
        let already = last
            .as_ref()
            .is_some_and(|r| r.uncleared.as_deref() == Some(token.as_str()));
        let record = Rollback {
            time: state::now(),
            from: act.slot,
            to: self.booted,
            reason: if m.verity_corrupted {
                "verity"
            } else {
                "bootlimit"
            }
            .into(),
            uncleared: Some(token),
            cause: None,
        };
        if !already {
            self.state.push_rollback(record.clone())?;
        }
        self.state.clear_activation()?;
        self.state.confirm_rollback_cleared()?;
        Ok((!already).then_some(Rollback {
            uncleared: None,
            ..record
        }))
    }
}

/// Reads and decodes the block of `path` at `offset` (for tools and tests).
pub fn read_block(path: &Path, offset: u64) -> Result<BootloaderControl> {
    let mut misc = MiscFile::new(path, offset);
    let raw = misc.read()?;
    BootloaderControl::parse(&raw).map_err(|e| err(format!("{}: {e}", misc.describe())))
}

#[cfg(test)]
mod tests;
