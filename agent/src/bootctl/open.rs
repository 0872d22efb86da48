//! The one place that picks a backend: [`open`] reads the booted slot and
//! opens the backend the configuration names (one `match`).

use std::path::Path;

use super::{android, booted, uboot, BootControl};
use crate::config::{Bootloader, Config};
use crate::slots::{Layout, Slot};
use crate::state::StateDir;
use crate::Result;

/// How the booted slot is determined.
#[derive(Debug, Clone, Copy)]
pub enum BootedSource<'a> {
    /// `--booted-slot` (tests).
    Override(Slot),
    /// The kernel command line file (`/proc/cmdline`, config key `cmdline`).
    Cmdline(&'a Path),
}

/// Finds the booted slot.
pub fn booted_slot(source: BootedSource<'_>, layout: &Layout) -> Result<Slot> {
    match source {
        BootedSource::Override(slot) => Ok(slot),
        BootedSource::Cmdline(path) => booted::from_file(path, &layout.disk, &layout.partitions),
    }
}

/// Options of [`open`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// `--booted-slot`: trust this instead of the kernel command line.
    pub booted: Option<Slot>,
    /// Replace an invalid Android bootctrl block on the next write instead of
    /// refusing to work with it (`set-active --reinit`).
    pub reinit: bool,
}

/// Opens the backend the configuration names on the disk's slot `layout`
/// (read by the caller): finds the booted slot and reads the bootloader
/// state. Records go to `state`.
pub fn open(
    config: &Config,
    layout: &Layout,
    state: &StateDir,
    options: OpenOptions,
) -> Result<Box<dyn BootControl>> {
    let source = match options.booted {
        Some(slot) => BootedSource::Override(slot),
        None => BootedSource::Cmdline(&config.cmdline),
    };
    let booted = booted_slot(source, layout)?;
    let state = state.clone();
    Ok(match config.bootloader {
        Bootloader::Uboot => Box::new(uboot::Uboot::open_config(config, booted, state)?),
        Bootloader::Android => Box::new(android::Android::open_config(
            config,
            layout,
            booted,
            state,
            options.reinit,
        )?),
    })
}
