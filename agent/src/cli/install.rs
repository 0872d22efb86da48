//! `ota-agent install PATH [--reboot] [--reinstall]`: verify a bundle (file
//! or directory), write it into the inactive slot, check it on flash and
//! activate it; with `--reboot`, reboot through the appliance gate.
//!
//! Run it again after a power cut or an error: a journal in `state_dir`
//! lets it resume (see `install` module docs). Progress: a bar on a
//! terminal, log lines otherwise, `state_dir/update-status.json` always
//! (docs/update-status.md), and the appliance display when `[mcu]` is
//! configured (`cli/progress.rs`).

use std::ffi::OsString;
use std::path::PathBuf;

use super::progress::CliProgress;
use super::{usage, Globals};
use crate::bundle::{Bundle, DeviceFacts, TrustedKeys};
use crate::config::Config;
use crate::install::{Approved, BundlePayloads, FileDisk, Installer, Outcome, Payloads};
use crate::mcu::{Decision, GatePolicy, McuDisplay, RebootGate, SerialMcu, SystemClock};
use crate::slots::Layout;
use crate::update_status::{Phase, Progress, StatusWriter};
use crate::{Error, Result};

const USAGE: &str = "\
usage: ota-agent install PATH [--reboot] [--reinstall]

Installs a bundle (directory or single file) into the inactive slot and
activates it for the next boot.
  --reboot      reboot afterwards (when the appliance MCU agrees)
  --reinstall   accept a version equal to the installed one
";

/// `ota-agent install …`
pub fn run(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut path: Option<PathBuf> = None;
    let (mut reboot, mut reinstall) = (false, false);
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("reboot") => reboot = true,
            Long("reinstall") => reinstall = true,
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(0);
            }
            Value(v) if path.is_none() => path = Some(v.into()),
            other => return Err(usage(other.unexpected())),
        }
    }
    let path = path.ok_or_else(|| Error::Usage("install needs a bundle PATH".into()))?;
    let config = globals.config()?;
    let keys = TrustedKeys::load_dir(&config.keys_dir)?;
    let b = Bundle::open(&path, &keys)?;
    let facts = DeviceFacts::from_config(&config, reinstall)?;
    let approved = Approved::from_bundle(&b, &facts)?;
    for w in approved.warnings() {
        log::warn!("{w}");
    }
    let mut payloads = BundlePayloads::new(&b)?;
    let mut mcu = config.mcu.as_ref().map(SerialMcu::new);
    let mut progress = CliProgress::new(
        &config.state_dir,
        installed_version(&config),
        McuDisplay::new(mcu.as_mut()),
    );
    let outcome = install_into_inactive(globals, &config, &approved, &mut payloads, &mut progress);
    progress.end();
    drop(progress);
    let outcome = outcome?;
    if let Some((image, offset)) = outcome.resumed {
        log::info!("resumed an interrupted install at image {image}, byte {offset}");
    }
    if reboot {
        return reboot_now(&config, mcu.as_mut());
    }
    Ok(0)
}

/// The installed release (`VERSION_ID` of `version_file`) as text, `None`
/// when it cannot be read (a status field, never a reason to stop).
pub(super) fn installed_version(config: &Config) -> Option<String> {
    crate::bundle::installed_version(&config.version_file)
        .map(|v| v.to_string())
        .ok()
}

/// Writes `approved` into the inactive slot from `payloads` (resuming from the
/// journal), verifies and activates it, reporting to `progress` (status
/// file, terminal, appliance display); prints the one-line result.
/// Shared by `install` (local bundle) and `update` (streamed over HTTP).
pub(super) fn install_into_inactive(
    globals: &Globals,
    config: &Config,
    approved: &Approved,
    payloads: &mut dyn Payloads,
    progress: &mut dyn Progress,
) -> Result<Outcome> {
    let prepared = super::slots::open(globals, config, false).and_then(|bc| {
        Ok((
            bc,
            Layout::discover(&config.disk)?,
            FileDisk::open(&config.disk)?,
        ))
    });
    let (mut bc, layout, disk) = match prepared {
        Ok(p) => p,
        Err(e) => {
            progress.fail(&e.to_string());
            return Err(e);
        }
    };
    let outcome = Installer::new(&disk, &layout, bc.as_mut(), &config.state_dir, progress)
        .install(approved, payloads)?;
    println!(
        "installed {} {} into slot {}; the next boot tries it (confirm with mark-good)",
        approved.manifest().product,
        outcome.version,
        outcome.slot
    );
    crate::report::Reporter::new(config).record(crate::report::Event::Installed {
        to: &outcome.version.to_string(),
        slot: outcome.slot,
    }); // report:
    Ok(outcome)
}

/// Asks the appliance, then runs `reboot_command`. A deferred reboot is not
/// an error: the update stays pending and activates at the next reboot.
pub(super) fn reboot_now(config: &Config, mcu: Option<&mut SerialMcu>) -> Result<i32> {
    let policy = config
        .mcu
        .as_ref()
        .map(GatePolicy::from_config)
        .unwrap_or_default();
    match RebootGate::new(mcu, policy, SystemClock::new()).decide() {
        Decision::Reboot => {
            // The gate has shown the reboot on the display; the file too.
            StatusWriter::resume(&config.state_dir, installed_version(config)).begin(
                Phase::Rebooting,
                None,
                None,
            );
            let (program, args) = config
                .reboot_command
                .split_first()
                .ok_or_else(|| Error::Usage("reboot_command is empty".into()))?;
            println!("rebooting");
            let st = std::process::Command::new(program)
                .args(args)
                .status()
                .map_err(|e| Error::io(program, e))?;
            if !st.success() {
                return Err(Error::io(
                    program,
                    std::io::Error::other(format!("reboot command failed: {st}")),
                ));
            }
            Ok(0)
        }
        Decision::Deferred(d) => {
            crate::report::Reporter::new(config).record(crate::report::Event::Deferred {
                to: None,
                why: &format!("reboot deferred: {d}"),
            }); // report:
            println!("reboot deferred: {d}");
            Ok(0)
        }
    }
}
