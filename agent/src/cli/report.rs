//! `ota-agent identity [--registry-line]` and `ota-agent report [--send]`:
//! the device's report identity and its queue of signed reports
//! (docs/fleet.md).

use std::ffi::OsString;

use super::args::Globals;
use crate::config::Config;
use crate::{Error, Result};

/// `ota-agent identity [--registry-line]`
pub fn identity(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    one_flag(
        globals,
        args,
        "--registry-line",
        crate::report::cmd_identity,
    )
}

/// `ota-agent report [--send]`
pub fn queue(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    one_flag(globals, args, "--send", crate::report::cmd_report)
}

/// A command that takes at most the one flag `flag`.
fn one_flag(
    globals: &Globals,
    args: Vec<OsString>,
    flag: &str,
    run: fn(&Config, bool) -> Result<i32>,
) -> Result<i32> {
    let mut on = false;
    for a in args {
        match a.to_str() {
            Some(f) if f == flag => on = true,
            _ => {
                return Err(Error::Usage(format!(
                    "unexpected argument {a:?} (only {flag})"
                )))
            }
        }
    }
    run(&globals.config()?, on)
}
