//! `ota-agent check`, `update`, `daemon` and `install`: arguments in,
//! lines out; the flow itself is [`crate::update`].
//!
//! * `check` prints the decision and why; exit 0 = update available,
//!   3 = none ([`EXIT_NO_UPDATE`]).
//! * `update [--download-only]` checks, streams the release into the
//!   inactive slot, activates it and reboots when the appliance allows
//!   (or stages it in `<state_dir>/download/`); exit 3 when there was
//!   nothing to do.
//! * `daemon [--max-cycles N]` polls every `poll_interval_s`.
//! * `resume [--reboot]` continues an interrupted install from the source
//!   it was started from; exit 3 when there is none.
//! * `install PATH|URL [--reboot] [--reinstall]` installs a bundle file or
//!   directory, or streams a bundle directory from a server.
//!
//! Progress: a bar on a terminal, log lines otherwise
//! (`cli/progress.rs`), `state_dir/update-status.json` always
//! (docs/update-status.md), the appliance display when `[mcu]` is set.

use std::ffi::OsString;

use super::args::{string, usage, Globals, EXIT_DEFERRED, EXIT_NO_UPDATE, EXIT_REFUSED};
use super::progress::Terminal;
use crate::policy::Verdict;
use crate::update::{self, BundleSource};
use crate::{Error, Result};

fn no_args(args: Vec<OsString>, help: &str) -> Result<bool> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    if let Some(arg) = parser.next().map_err(usage)? {
        return match arg {
            Short('h') | Long("help") => {
                print!("{help}");
                Ok(false)
            }
            other => Err(usage(other.unexpected())),
        };
    }
    Ok(true)
}

/// `ota-agent check`
pub fn check(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    if !no_args(args, "usage: ota-agent check\n\nReads the channel file and prints the decision (exit 0 update available, 3 none;\nwith a policy: 4 it defers the next phase, 5 it refused the release).\n")? {
        return Ok(0);
    }
    let dev = globals.device()?;
    let d = update::check_channel(&dev)?;
    println!("{d}");
    if !d.is_update() {
        return Ok(EXIT_NO_UPDATE);
    }
    // With a policy (docs/policy.md): what it says about the next phase.
    Ok(match update::check_policy(&dev, &d)? {
        None => 0,
        Some((phase, Verdict::Proceed)) => {
            println!("policy: {} may proceed now", phase.name());
            0
        }
        Some((_, v @ Verdict::Defer { .. })) => {
            println!("policy: {v}");
            EXIT_DEFERRED
        }
        Some((_, v @ Verdict::Refuse { .. })) => {
            println!("policy: {v}");
            EXIT_REFUSED
        }
    })
}

/// `ota-agent update [--download-only]`
pub fn update(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut download_only = false;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("download-only") => download_only = true,
            Short('h') | Long("help") => {
                print!("usage: ota-agent update [--download-only]\n\nChecks the channel, then streams the release into the inactive slot,\nactivates it and reboots when the appliance allows.\n  --download-only   stage the verified bundle in state_dir/download instead\n");
                return Ok(0);
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let mut dev = globals.device()?;
    let done = update::update(&mut dev, download_only, &mut Terminal::new())?;
    Ok(if done { 0 } else { EXIT_NO_UPDATE })
}

/// `ota-agent daemon [--max-cycles N]`
pub fn daemon(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut max_cycles: Option<u64> = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("max-cycles") => {
                let v = string(parser.value().map_err(usage)?)?;
                max_cycles =
                    Some(v.parse().map_err(|_| {
                        Error::Usage(format!("--max-cycles {v:?} is not a number"))
                    })?);
            }
            Short('h') | Long("help") => {
                print!("usage: ota-agent daemon [--max-cycles N]\n\nPolls the channel every poll_interval_s (with jitter) and updates.\n  --max-cycles N   stop after N polls (tests)\n");
                return Ok(0);
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let config = globals.config()?;
    update::daemon(
        &config,
        globals.booted_slot,
        max_cycles,
        &mut Terminal::new(),
    )?;
    Ok(0)
}

const RESUME_USAGE: &str = "\
usage: ota-agent resume [--reboot]

Continues an install that a power cut interrupted, from the bundle path or
URL it was started from (kept in state_dir). Exit 0 resumed and activated,
3 nothing to resume, 1 failed.
  --reboot      reboot afterwards (when the appliance MCU agrees)
";

/// `ota-agent resume [--reboot]`
pub fn resume(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut reboot = false;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("reboot") => reboot = true,
            Short('h') | Long("help") => {
                print!("{RESUME_USAGE}");
                return Ok(0);
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let mut dev = globals.device()?;
    let done = update::resume(&mut dev, reboot, &mut Terminal::new())?;
    if !done {
        println!("nothing to resume");
    }
    Ok(if done { 0 } else { EXIT_NO_UPDATE })
}

const INSTALL_USAGE: &str = "\
usage: ota-agent install PATH|URL [--reboot] [--reinstall]

Installs a bundle into the inactive slot and activates it for the next boot.
PATH is a bundle directory or single-file bundle; URL (http:// or https://,
as the configuration allows) is a bundle directory on a server or its
manifest.json, whose payloads are streamed into the slot.
  --reboot      reboot afterwards (when the appliance MCU agrees)
  --reinstall   accept a version equal to the installed one
";

/// `ota-agent install …`
pub fn install(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut source: Option<OsString> = None;
    let (mut reboot, mut reinstall) = (false, false);
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("reboot") => reboot = true,
            Long("reinstall") => reinstall = true,
            Short('h') | Long("help") => {
                print!("{INSTALL_USAGE}");
                return Ok(0);
            }
            Value(v) if source.is_none() => source = Some(v),
            other => return Err(usage(other.unexpected())),
        }
    }
    let source = source.ok_or_else(|| Error::Usage("install needs a bundle PATH or URL".into()))?;
    let source = match source.to_str() {
        Some(s) => BundleSource::parse(s),
        // Not UTF-8: only a path can be that.
        None => BundleSource::Local(source.into()),
    };
    let mut dev = globals.device()?;
    update::install(&mut dev, &source, reinstall, reboot, &mut Terminal::new())?;
    Ok(0)
}
