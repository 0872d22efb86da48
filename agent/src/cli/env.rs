//! `ota-agent env print|set`, and the `fw_printenv` / `fw_setenv` personalities.
//! (Placeholder until the uboot-env crate lands; every entry point refuses.)

use std::ffi::OsString;

use super::Globals;
use crate::{Error, Result};

fn not_yet() -> Result<i32> {
    Err(Error::Usage("env commands are not implemented yet".into()))
}

/// `ota-agent env …`
pub fn run(_globals: &Globals, _args: Vec<OsString>) -> Result<i32> {
    not_yet()
}

/// Invoked as `fw_printenv`.
pub fn fw_printenv(_args: Vec<OsString>) -> Result<i32> {
    not_yet()
}

/// Invoked as `fw_setenv`.
pub fn fw_setenv(_args: Vec<OsString>) -> Result<i32> {
    not_yet()
}
