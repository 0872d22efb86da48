//! Boot control: which slot runs, which boots next, and whether each slot is
//! bootable and confirmed — one narrow interface with Android `IBootControl`
//! semantics, and one backend per file, chosen by one `match` in [`open`].
//!
//! ```text
//!   cli (status, mark-good, mark-bad, set-active), installer
//!        │
//!        ▼
//!   dyn BootControl ──► uboot::Uboot   (U-Boot env: ota_slot, upgrade_available,
//!        │                               bootcount, bootlimit, ota_rollback)
//!        └───────────► android::Android (bootloader_control in `misc` @ 2048)
//! ```
//!
//! No caller touches raw env variables or bootctrl bits; slot policy lives
//! only in the backends.
//!
//! The installer's protocol (docs/boot-control.md explains why each step is
//! safe across power cuts):
//!
//! ```text
//!   bc.record_rollback()                 report what the bootloader did
//!   target = bc.booted_slot().other()
//!   bc.mark_unbootable(target)           refused unless the booted slot is confirmed
//!   state.begin_write(target)            set_active(target) refused from here …
//!   write + read back + verify SHA-256   (Layout::partition gives offset/size)
//!   state.end_write(target)              … to here (also after a crash)
//!   bc.set_active(target)                one write: the trial starts at the next boot
//! ```
//!
//! Every mutating method reads the current state, computes the new one and writes it in ONE write (one env write, one 32-byte
//! block write), so a power cut leaves either the old or the new state.

use serde::Serialize;

use crate::slots::Slot;
use crate::state::Rollback;
use crate::Result;

pub mod android;
pub mod booted;
pub mod bootloader_control;
mod open;
pub mod uboot;

pub use open::{booted_slot, open, BootedSource, OpenOptions};

/// One slot's health as the bootloader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotState {
    /// The slot.
    pub slot: Slot,
    /// The bootloader may boot it (not marked unbootable, tries left).
    pub bootable: bool,
    /// It was confirmed by `mark-good` and not invalidated since.
    pub successful: bool,
    /// Boot attempts left before the bootloader gives up on it, when the
    /// backend counts per slot (android `tries_remaining`).
    pub tries_remaining: Option<u8>,
    /// Android priority (0..=15); `None` for uboot.
    pub priority: Option<u8>,
}

/// A snapshot of the boot-control state, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootStatus {
    /// `uboot` or `android`.
    pub backend: &'static str,
    /// The slot running now.
    pub booted: Slot,
    /// The slot the next boot will try.
    pub active: Slot,
    /// The slot on trial (activated, not yet confirmed), if any.
    pub trial: Option<Slot>,
    /// Boots used by the trial (uboot `bootcount`), when known.
    pub boot_count: Option<u32>,
    /// Boots a trial gets (uboot `bootlimit`, android configured tries).
    pub boot_limit: Option<u32>,
    /// Slot A then slot B.
    pub slots: [SlotState; 2],
    /// A rollback the bootloader reported that the agent has not yet
    /// recorded (raw, e.g. `b:bootlimit`).
    pub unrecorded_rollback: Option<String>,
}

/// The boot-control interface. Implementations hold the booted slot (fixed
/// for the life of the process) and the state read at open; every mutating
/// method re-reads, writes once and refreshes its view.
pub trait BootControl {
    /// `uboot` or `android` (prefixes error messages).
    fn backend(&self) -> &'static str;

    /// The slot the running system was booted from. Never changes while the
    /// process runs; comes from the kernel command line or `--booted-slot`.
    fn booted_slot(&self) -> Slot;

    /// The slot the bootloader will try on the next boot, taking into account
    /// a trial whose tries are used up (then it is the fallback slot).
    fn active_slot(&self) -> Slot;

    /// Makes `slot` the slot of the next boot.
    ///
    /// Invariants: refused (nothing written) when `slot` is being written or
    /// its write was interrupted (`state_dir/writing-<slot>`). Activating the
    /// other slot always starts a *trial*: the slot gets the configured number
    /// of boot tries and becomes unconfirmed, so a broken image is abandoned
    /// by the bootloader. Activating the booted, confirmed slot cancels a
    /// pending switch. One write.
    fn set_active(&mut self, slot: Slot) -> Result<()>;

    /// Confirms the booted slot: it stays bootable without counting tries.
    ///
    /// Invariants: only ever the booted slot (hence no argument). Ends a
    /// trial only when the booted slot is the trial slot; a pending switch to
    /// the other slot is left alone. Refused when the booted slot was marked
    /// unbootable. Idempotent. At most one write.
    fn mark_successful(&mut self) -> Result<()>;

    /// Marks `slot` unbootable.
    ///
    /// Invariants: refused (nothing written) unless the *remaining* slot
    /// (`slot.other()`) is confirmed, so the device always keeps a known-good
    /// slot. For the booted slot the next boot falls back to the other slot.
    /// For the other slot (the installer calls this before overwriting it) a
    /// pending switch to it is cancelled in the same write; while the booted
    /// slot is itself unconfirmed, overwriting the other slot is thus refused.
    /// One write.
    fn mark_unbootable(&mut self, slot: Slot) -> Result<()>;

    /// Whether the bootloader may boot `slot` (not marked unbootable, tries
    /// left).
    fn is_bootable(&self, slot: Slot) -> bool;

    /// Whether `slot` is confirmed (`mark_successful`) and still bootable.
    fn is_successful(&self, slot: Slot) -> bool;

    /// The whole state, for `status`.
    fn status(&self) -> BootStatus;

    /// Records in `state_dir` a rollback the bootloader performed (or that
    /// `mark_unbootable` requested) and clears the bootloader's report, so
    /// each rollback is recorded exactly once even across power cuts.
    /// Returns the new record, if any.
    fn record_rollback(&mut self) -> Result<Option<Rollback>>;

    /// Where this backend keeps its state on disk (U-Boot env copies, the
    /// `bootloader_control` block): the installer refuses to write a slot
    /// partition that overlaps any of it.
    fn storage(&self) -> Vec<crate::slots::Reserved> {
        Vec::new()
    }

    /// Refuses, before the installer writes anything, when the bootloader
    /// state lacks what activating a slot later needs (the uboot backend:
    /// a contract variable). One line naming what is missing.
    fn check_ready(&self) -> Result<()> {
        Ok(())
    }
}
