//! The device side of the DDI cycle on top of [`crate::update`]: the
//! bundle is installed exactly as `ota-agent install FILE` does it
//! (`update::install`: lock, signature, product, hardware, versions,
//! expiry, write, read back, activate), boot control is read through a
//! fresh [`Device`] each time, and the reboot goes through the appliance
//! gate (`update::reboot`). The cycle sees the device through [`Host`].

use std::path::Path;

use crate::config::Config;
use crate::mcu::SerialMcu;
use crate::slots::Slot;
use crate::update::{self, Announcement, BundleSource, Console, Device};
use crate::update_status::{Progress, UpdateStatus};
use crate::Result;

/// What the cycle needs from the device; implemented by the daemon.
pub trait Host {
    /// The installed release (`VERSION_ID`), if readable.
    fn installed_version(&self) -> Option<String>;
    /// Boot-control view (records a rollback the bootloader reported).
    fn boot(&mut self) -> Result<BootView>;
    /// Verifies the bundle file exactly as `ota-agent install` does, writes
    /// it into the inactive slot and activates it; returns the slot.
    fn install(&mut self, bundle: &Path, progress: &mut dyn Progress) -> Result<Slot>;
    /// Reboots into the activated slot (through the appliance gate).
    fn reboot(&mut self) -> Result<()>;
}

/// What boot control says.
#[derive(Debug, Clone)]
pub struct BootView {
    /// Running slot.
    pub booted: Slot,
    /// Slot the next boot uses.
    pub active: Slot,
    /// Whether the booted slot is confirmed (`mark-good`).
    pub booted_good: bool,
    /// Backend name (`uboot`, `android`).
    pub backend: &'static str,
    /// The reason of the last rollback, if any was recorded.
    pub last_rollback: Option<String>,
}

/// The device as `ota-agent daemon` runs it.
pub(super) struct DaemonHost<'a> {
    config: &'a Config,
    booted: Option<Slot>,
    console: &'a mut dyn Console,
}

impl<'a> DaemonHost<'a> {
    pub(super) fn new(
        config: &'a Config,
        booted: Option<Slot>,
        console: &'a mut dyn Console,
    ) -> Self {
        DaemonHost {
            config,
            booted,
            console,
        }
    }

    fn device(&self) -> Device {
        Device::new(self.config.clone(), self.booted)
    }
}

/// The run's console plus DDI progress feedback at each phase change.
struct Tee<'a> {
    console: &'a mut dyn Console,
    feedback: &'a mut dyn Progress,
}

impl Console for Tee<'_> {
    fn progress(&mut self, doc: &UpdateStatus, phase_changed: bool) {
        if phase_changed {
            self.feedback.begin(doc.phase, doc.image.as_deref(), None);
        }
        self.console.progress(doc, phase_changed);
    }
    fn end(&mut self) {
        self.console.end();
    }
    fn announce(&mut self, a: &Announcement) {
        self.console.announce(a);
    }
}

impl Host for DaemonHost<'_> {
    fn installed_version(&self) -> Option<String> {
        self.device().installed_text()
    }

    fn boot(&mut self) -> Result<BootView> {
        let mut dev = self.device();
        let bc = dev.boot_control()?;
        let (booted, active, backend) = (bc.booted_slot(), bc.active_slot(), bc.backend());
        let booted_good = bc.is_successful(booted);
        let last = dev.state().last_rollback().ok().flatten();
        Ok(BootView {
            booted,
            active,
            booted_good,
            backend,
            // With why the trial failed, as mark-good / mark-bad noted it
            // (kept with the record when the rollback was recorded).
            last_rollback: last.map(|r| match r.cause {
                Some(c) => format!("left slot {}: {}; {c}", r.from, r.reason),
                None => format!("left slot {}: {}", r.from, r.reason),
            }),
        })
    }

    fn install(&mut self, bundle: &Path, feedback: &mut dyn Progress) -> Result<Slot> {
        let mut dev = self.device();
        let source = BundleSource::Local(bundle.to_owned());
        let mut tee = Tee {
            console: &mut *self.console,
            feedback,
        };
        update::install(&mut dev, &source, false, false, &mut tee)?;
        // The slot written is the one boot control now points at.
        Ok(self.device().boot_control()?.active_slot())
    }

    fn reboot(&mut self) -> Result<()> {
        let dev = self.device();
        let mut mcu = self.config.mcu.as_ref().map(SerialMcu::new);
        update::reboot(&dev, mcu.as_mut(), &mut *self.console)
    }
}
