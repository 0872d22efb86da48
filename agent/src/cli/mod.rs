//! Command-line front end: global options, then one command (DESIGN.md
//! "Command line" is the contract). Each command's argument parsing lives in
//! its own file; this file only dispatches and maps errors to exit statuses.
//!
//! Exit statuses: 0 success, 1 failure (one line on stderr says what and why),
//! 2 usage error, 3 `check` found no update.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::{Error, Result};

mod env;
#[cfg(feature = "hawkbit")] // hawkbit:
mod hawkbit_host; // hawkbit:
mod install;
mod mcu;
mod net;
mod progress;
mod slots;
mod verify;

/// Exit status of a failed command.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status of a command-line mistake.
pub const EXIT_USAGE: i32 = 2;
/// Exit status of `check` when no update is available.
pub const EXIT_NO_UPDATE: i32 = 3;

const USAGE: &str = "\
usage: ota-agent [--config FILE] [--booted-slot a|b] [-v...] [-q] <command> [args]

commands:
  status [--json]            slots, boot count, pending update, last rollback
  mark-good                  confirm the booted slot (after health checks)
  mark-bad                   mark the booted slot unbootable
  set-active a|b|other [--reinit]  choose the slot for the next boot
  install URL|PATH [--reboot]  verify and install a bundle into the inactive slot
  verify URL|PATH            verify a bundle without installing it
  check                      read the channel (exit 0 update available, 3 none)
  update                     check + download + install
  daemon [--max-cycles N]    the poll loop
  env print [NAME...]        like fw_printenv
  env set NAME [VALUE...]    like fw_setenv (also: env set -s SCRIPT|-)
  mcu status                 ask the appliance MCU for its state
";

/// Options that come before the command.
#[derive(Debug, Clone)]
pub struct Globals {
    /// `--config FILE`, or the default path.
    pub config_path: PathBuf,
    /// `--booted-slot a|b` (tests): overrides the kernel command line.
    pub booted_slot: Option<String>,
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
}

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
                globals.booted_slot = Some(string(parser.value().map_err(usage)?)?)
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
        "status" => slots::status(&globals, rest),
        "mark-good" => slots::mark_good(&globals, rest),
        "mark-bad" => slots::mark_bad(&globals, rest),
        "set-active" => slots::set_active(&globals, rest),
        "mcu" => mcu::run(&globals, rest),
        "verify" => verify::run(&globals, rest),
        "install" => install::run(&globals, rest),
        "check" => net::check(&globals, rest),
        "update" => net::update(&globals, rest),
        "daemon" => net::daemon(&globals, rest),
        other => Err(Error::Usage(format!(
            "unknown or not yet implemented command `{other}` (try --help)"
        ))),
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
