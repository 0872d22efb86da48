//! What every command file shares: the global options ([`Globals`]), the
//! exit statuses, and argument helpers. Command files depend on this file,
//! never on each other or on `mod.rs`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{self, Config};
use crate::slots::Slot;
use crate::update::Device;
use crate::{Error, Result};

/// Exit status of a failed command.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status of a command-line mistake.
pub const EXIT_USAGE: i32 = 2;
/// Exit status of `check` when no update is available.
pub const EXIT_NO_UPDATE: i32 = 3;
/// Exit status when the device's policy defers the next phase (a window
/// is closed or a policy hook said not now; docs/policy.md).
pub const EXIT_DEFERRED: i32 = 4;
/// Exit status when a policy hook refused the release.
pub const EXIT_REFUSED: i32 = 5;

/// Options that come before the command.
#[derive(Debug, Clone)]
pub struct Globals {
    /// `--config FILE`, or the default path.
    pub config_path: PathBuf,
    /// `--booted-slot a|b` (tests): overrides the kernel command line.
    pub booted_slot: Option<Slot>,
    /// `-v` count minus `-q` count.
    pub verbosity: i32,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            config_path: config::DEFAULT_PATH.into(),
            booted_slot: None,
            verbosity: 0,
        }
    }
}

impl Globals {
    /// Loads the configuration file these options name.
    pub fn config(&self) -> Result<Config> {
        Config::load(&self.config_path)
    }

    /// This device for one run: the configuration these options name.
    pub fn device(&self) -> Result<Device> {
        Ok(Device::new(self.config()?, self.booted_slot))
    }
}

/// Turns a lexopt error into a usage error.
pub(crate) fn usage(e: lexopt::Error) -> Error {
    Error::Usage(e.to_string())
}

/// An argument as UTF-8, or a usage error.
pub(crate) fn string(value: OsString) -> Result<String> {
    value
        .into_string()
        .map_err(|v| Error::Usage(format!("argument {v:?} is not valid UTF-8")))
}
