//! `ota-agent install PATH [--reboot] [--reinstall]`: verify a bundle (file
//! or directory), write it into the inactive slot, check it on flash and
//! activate it; with `--reboot`, reboot through the appliance gate.
//!
//! Run it again after a power cut or an error: a journal in `state_dir`
//! lets it resume (see `install` module docs). Progress: a bar on a
//! terminal, log lines otherwise, `state_dir/install-status.json` always,
//! and the appliance display when `[mcu]` is configured.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::{usage, Globals};
use crate::bundle::{Bundle, DeviceFacts, TrustedKeys};
use crate::config::Config;
use crate::install::status::{self, StatusFile};
use crate::install::{Approved, BundlePayloads, FileDisk, Installer, Outcome, Payloads, Progress};
use crate::mcu::display::percent;
use crate::mcu::{
    Decision, GatePolicy, McuDisplay, Phase, ProgressSink, RebootGate, SerialMcu, SystemClock,
};
use crate::slots::Layout;
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
    let outcome = install_into_inactive(globals, &config, &approved, &mut payloads, &mut mcu)?;
    if let Some((image, offset)) = outcome.resumed {
        log::info!("resumed an interrupted install at image {image}, byte {offset}");
    }
    if reboot {
        return reboot_now(&config, mcu.as_mut());
    }
    Ok(0)
}

/// Writes `approved` into the inactive slot from `payloads` (resuming from the
/// journal), verifies and activates it, with progress on the terminal, in
/// `state_dir` and on the appliance display; prints the one-line result.
/// Shared by `install` (local bundle) and `update` (streamed over HTTP).
pub(super) fn install_into_inactive(
    globals: &Globals,
    config: &Config,
    approved: &Approved,
    payloads: &mut dyn Payloads,
    mcu: &mut Option<SerialMcu>,
) -> Result<Outcome> {
    let mut bc = super::slots::open(globals, config, false)?;
    let layout = Layout::discover(&config.disk)?;
    let disk = FileDisk::open(&config.disk)?;
    let mut progress = CliProgress::new(McuDisplay::new(mcu.as_mut()));
    let outcome = Installer::new(
        &disk,
        &layout,
        bc.as_mut(),
        &config.state_dir,
        &mut progress,
    )
    .install(approved, payloads);
    progress.end();
    let outcome = outcome?;
    println!(
        "installed {} {} into slot {}; the next boot tries it (confirm with mark-good)",
        approved.manifest().product,
        outcome.version,
        outcome.slot
    );
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
            let status = StatusFile::new(&config.state_dir);
            if let Ok(Some(mut s)) = status.read() {
                s.phase = status::Phase::Rebooting;
                if let Err(e) = status.write(&s) {
                    log::warn!("install status: {e}");
                }
            }
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
            println!("reboot deferred: {d}");
            Ok(0)
        }
    }
}

/// Terminal bar or log lines, plus the appliance display.
struct CliProgress<S> {
    display: S,
    tty: bool,
    last: Option<(status::Phase, u8)>,
}

impl<S: ProgressSink> CliProgress<S> {
    fn new(display: S) -> Self {
        CliProgress {
            display,
            tty: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn end(&mut self) {
        if self.tty && self.last.is_some() {
            eprintln!();
        }
    }
}

impl<S: ProgressSink> Progress for CliProgress<S> {
    fn report(&mut self, phase: status::Phase, image: &str, done: u64, total: u64) {
        let pct = percent(done, total);
        let mcu_phase = match phase {
            status::Phase::Downloading => Phase::Downloading,
            status::Phase::Installed => Phase::Done,
            status::Phase::Failed => Phase::Failed,
            status::Phase::Rebooting => Phase::Rebooting,
            _ => Phase::Installing,
        };
        self.display.show(mcu_phase, pct);
        if self.last == Some((phase, pct)) {
            return;
        }
        let changed_phase = self.last.map(|l| l.0) != Some(phase);
        self.last = Some((phase, pct));
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let name = serde_json::to_value(phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if self.tty {
            let filled = usize::from(pct) * 30 / 100;
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r{name:<11} [{:<30}] {pct:>3}% {:.1}/{:.1} MiB {image:<12}",
                "#".repeat(filled),
                mib(done),
                mib(total)
            );
            let _ = err.flush();
        } else if changed_phase || pct.is_multiple_of(10) {
            log::info!(
                "{name} {image}: {pct}% ({done} of {total} bytes)",
                image = if image.is_empty() { "-" } else { image }
            );
        }
    }
}
