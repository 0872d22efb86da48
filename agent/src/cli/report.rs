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
    one_flag(globals, args, "--send", |config, send| {
        let ddi = if send { ddi_client(config)? } else { None };
        crate::report::cmd_report(config, send, ddi.as_ref())
    })
}

/// The client queued hawkBit feedback goes out with, when `[hawkbit]` is set.
#[cfg(feature = "hawkbit")]
fn ddi_client(config: &Config) -> Result<Option<crate::net::Client>> {
    crate::hawkbit::feedback_client(config)
}
#[cfg(not(feature = "hawkbit"))]
fn ddi_client(_: &Config) -> Result<Option<crate::net::Client>> {
    Ok(None)
}

/// A command that takes at most the one flag `flag`.
fn one_flag(
    globals: &Globals,
    args: Vec<OsString>,
    flag: &str,
    run: impl FnOnce(&Config, bool) -> Result<i32>,
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
