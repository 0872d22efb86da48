//! Command-line front end: global options, then one command. Each group of
//! commands has its file (`boot`: status, mark-good, mark-bad, set-active;
//! `update`: check, update, daemon, install; `verify`, `env`, `mcu`); they
//! parse arguments, call the library ([`crate::update`] for the update
//! flow) and print. This file only dispatches and maps errors to exit
//! statuses.
//!
//! Exit statuses: 0 success, 1 failure (one line on stderr says what and why),
//! 2 usage error, 3 `check` found no update (`resume`: nothing to resume),
//! 4 the update policy defers the next phase, 5 a policy hook refused the
//! release (docs/policy.md; one line on stderr, no `error:`).

use std::ffi::OsString;
use std::path::Path;

use crate::slots::Slot;
use crate::{Error, Result};

mod args;
mod boot;
mod ctl;
mod env;
mod mcu;
mod progress;
mod report;
mod update;
mod verify;

use args::{string, usage};
pub use args::{Globals, EXIT_DEFERRED, EXIT_FAILURE, EXIT_NO_UPDATE, EXIT_REFUSED, EXIT_USAGE};

const USAGE: &str = "\
usage: ota-agent [--config FILE] [--booted-slot a|b] [-v...] [-q] <command> [args]

commands:
  status [--json]            slots, boot count, pending update, last rollback
  booted                     early at boot: this trial boot reached userspace
  mark-good                  confirm the booted slot (after health checks)
  mark-bad                   mark the booted slot unbootable
  set-active a|b|other [--reinit]  choose the slot for the next boot
  install PATH|URL [--reboot]  verify and install a bundle into the inactive slot
  resume [--reboot]          continue an install a power cut interrupted (3: none)
  verify PATH                verify a bundle without installing it
  check                      read the channel (exit 0 update available, 3 none,
                             4 policy defers it, 5 policy refused it)
  update                     check + download + install
  daemon [--max-cycles N]    the poll loop
  env print [NAME...]        like fw_printenv
  env set NAME [VALUE...]    like fw_setenv (also: env set -s SCRIPT|-)
  mcu status                 ask the appliance MCU for its state
  identity [--registry-line] device id and report public key (PEM)
  report [--send]            the signed report queue; --send delivers it now
  ctl [--socket PATH] CMD    talk to the running daemon (docs/local-api.md):
                             status, subscribe [--interval MS] [--count N]
                             [--until-outcome], check-now, accept|decline VERSION,
                             inhibit REASON [--lease S], release ID, suspend,
                             resume, cancel

install, resume, update: exit 4 when the update policy defers a phase, 5 when
it refuses the release (docs/policy.md).
";

/// Runs the program with `args` (including argv\[0\]) and returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let mut args = args.into_iter();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest: Vec<OsString> = args.collect();
    let result = match name.as_str() {
        "fw_printenv" => {
            crate::logger::init(0);
            env::fw_printenv(rest)
        }
        "fw_setenv" => {
            crate::logger::init(0);
            env::fw_setenv(rest)
        }
        _ => run(rest),
    };
    match result {
        Ok(status) => status,
        // The policy's answers are outcomes, not failures: one line each.
        Err(e @ (Error::Deferred { .. } | Error::Refused(_))) => {
            eprintln!("{name}: {e}");
            exit_code(&e)
        }
        Err(e) => {
            eprintln!("{name}: error: {e}");
            exit_code(&e)
        }
    }
}

/// Maps an error to the documented exit status.
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Usage(_) => EXIT_USAGE,
        Error::Deferred { .. } => EXIT_DEFERRED,
        Error::Refused(_) => EXIT_REFUSED,
        _ => EXIT_FAILURE,
    }
}

fn run(args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut globals = Globals::default();
    let mut parser = lexopt::Parser::from_args(args);
    let command = loop {
        match parser.next().map_err(usage)? {
            Some(Long("config")) => globals.config_path = parser.value().map_err(usage)?.into(),
            Some(Long("booted-slot")) => {
                let s = string(parser.value().map_err(usage)?)?;
                globals.booted_slot =
                    Some(s.parse::<Slot>().map_err(|_| {
                        Error::Usage(format!("--booted-slot `{s}`: expected a or b"))
                    })?)
            }
            Some(Short('v')) | Some(Long("verbose")) => globals.verbosity += 1,
            Some(Short('q')) | Some(Long("quiet")) => globals.verbosity -= 1,
            Some(Short('h')) | Some(Long("help")) => {
                print!("{USAGE}");
                return Ok(0);
            }
            Some(Value(cmd)) => break string(cmd)?,
            Some(arg) => return Err(usage(arg.unexpected())),
            None => return Err(Error::Usage("no command given (try --help)".into())),
        }
    };
    crate::logger::init(globals.verbosity);
    let rest: Vec<OsString> = parser.raw_args().map_err(usage)?.collect();
    match command.as_str() {
        "env" => env::run(&globals, rest),
        "status" => boot::status(&globals, rest),
        "mark-good" => boot::mark_good(&globals, rest),
        "booted" => boot::booted(&globals, rest),
        "mark-bad" => boot::mark_bad(&globals, rest),
        "set-active" => boot::set_active(&globals, rest),
        "mcu" => mcu::run(&globals, rest),
        "verify" => verify::run(&globals, rest),
        "install" => update::install(&globals, rest),
        "resume" => update::resume(&globals, rest),
        "check" => update::check(&globals, rest),
        "update" => update::update(&globals, rest),
        "daemon" => update::daemon(&globals, rest),
        "identity" => report::identity(&globals, rest),
        "report" => report::queue(&globals, rest),
        "ctl" => ctl::run(&globals, rest),
        other => Err(Error::Usage(format!(
            "unknown or not yet implemented command `{other}` (try --help)"
        ))),
    }
}
