//! `ota-agent check`, `update` and `daemon`: the network commands.
//!
//! * `check` prints the decision and why; exit 0 = update available,
//!   3 = none ([`EXIT_NO_UPDATE`]).
//! * `update` = check, then stream the release into the inactive slot
//!   (`net::payloads::HttpPayloads` as the installer's payload source,
//!   resuming at the install journal's offset), activate, reboot when the
//!   appliance allows. `--download-only` stages the verified bundle in
//!   `<state_dir>/download/` instead.
//! * `daemon [--max-cycles N]` polls every `poll_interval_s` (±10 % jitter);
//!   a failed cycle (server down, …) is logged and the loop goes on. Runs
//!   never overlap: `update` and each daemon cycle hold an exclusive lock on
//!   `<state_dir>/update.lock`. At start the daemon records a rollback the
//!   bootloader reported (as every boot-control command does).

use std::ffi::OsString;
use std::fs::File;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::progress::CliProgress;
use super::{usage, Globals, EXIT_NO_UPDATE};
use crate::bundle::{self, DeviceFacts, TrustedKeys};
use crate::config::Config;
use crate::install::Approved;
use crate::mcu::{McuDisplay, SerialMcu};
use crate::net::check::Decision;
use crate::net::payloads::HttpPayloads;
use crate::net::{backoff, update, Client};
use crate::update_status::{self, Phase, Progress};
use crate::{Error, Result};

/// The lock file in `state_dir` that serialises update runs.
pub const LOCK_FILE: &str = "update.lock";

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
    if !no_args(args, "usage: ota-agent check\n\nReads the channel file and prints the decision (exit 0 update available, 3 none).\n")? {
        return Ok(0);
    }
    let config = globals.config()?;
    let client = Client::from_config(&config)?;
    let keys = TrustedKeys::load_dir(&config.keys_dir)?;
    let d = update::check(&config, &client, &keys)?;
    println!("{d}");
    Ok(if d.is_update() { 0 } else { EXIT_NO_UPDATE })
}

/// Takes the update lock, or says who holds it.
// hawkbit: pub(super) for cli/hawkbit_host.rs
pub(super) fn lock(config: &Config) -> Result<Flock<File>> {
    std::fs::create_dir_all(&config.state_dir).map_err(|e| Error::io(&config.state_dir, e))?;
    let path = config.state_dir.join(LOCK_FILE);
    let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        Error::io(
            &path,
            std::io::Error::other(format!("another update run holds the lock ({errno})")),
        )
    })
}

/// One update run (lock held by the caller). Returns whether an update was
/// installed (or, with `download_only`, staged). Every phase goes to
/// `state_dir/update-status.json` and the appliance display.
fn run_once(globals: &Globals, config: &Config, download_only: bool) -> Result<bool> {
    let client = Client::from_config(config)?;
    let keys = TrustedKeys::load_dir(&config.keys_dir)?;
    let from = super::install::installed_version(config);
    // An update installed and waiting for its reboot keeps its document
    // (a UI should go on saying so) until the device runs another release.
    let current = update_status::read(&config.state_dir).unwrap_or_else(|e| {
        log::warn!("{e}; ignored");
        None
    });
    let pending = current.clone().filter(|d| {
        matches!(d.phase, Phase::Installed | Phase::Rebooting) && d.from_version == from
    });
    let mut mcu = config.mcu.as_ref().map(SerialMcu::new);
    let mut progress = CliProgress::new(&config.state_dir, from, McuDisplay::new(mcu.as_mut()));
    // Installed and activated, but the device runs the old release and no
    // switch is pending any more: the bootloader fell back (or `mark-bad`).
    // That release failed here; trying it again would only repeat the
    // failed boots, so it is recorded and skipped until a newer one comes.
    let mut rolled_back = false;
    let pending = match pending {
        Some(doc) if !switch_pending(globals, config) => {
            rolled_back = true;
            if let Some(v) = doc.version.as_deref().and_then(|v| v.parse().ok()) {
                update::reject(&config.state_dir, &v)?;
                progress.target(&v.to_string(), doc.slot, None);
                progress.fail(&format!(
                    "{v} was rolled back; not installed again (a newer release will be)"
                ));
                log::warn!("{v} was installed but the device went back to the old release; recorded, it will not be installed again");
            }
            None
        }
        p => p,
    };
    // Documents that stay until another release starts: an install waiting
    // for its reboot, and the failure of a release that was rolled back.
    let rejected = update::rejected(&config.state_dir);
    let keep = pending.is_some()
        || rolled_back
        || current.is_some_and(|d| {
            d.phase == Phase::Failed
                && rejected.is_some()
                && d.version.as_deref().and_then(|v| v.parse().ok()) == rejected
        });
    if !keep {
        progress.begin(Phase::Checking, None, None);
    }
    let d = match update::check(config, &client, &keys) {
        Ok(d) => d,
        Err(e) => {
            if !keep {
                progress.fail(&e.to_string());
            }
            return Err(e);
        }
    };
    log::info!("{d}");
    let Decision::Update {
        version,
        manifest_url,
        ..
    } = d
    else {
        if !keep {
            progress.begin(Phase::Idle, None, None);
        }
        return Ok(false);
    };
    // Installed and activated, waiting for the reboot: nothing to fetch.
    if let Some(p) = &pending {
        if p.version.as_deref() == Some(version.to_string().as_str()) {
            log::info!("{version} is installed and waits for a reboot");
            return Ok(false);
        }
        progress.begin(Phase::Checking, None, None);
    }
    let r = DeviceFacts::from_config(config, false).and_then(|facts| {
        if download_only {
            let dir = config.state_dir.join(update::DOWNLOAD_DIR);
            let dir = update::download_release(
                &client,
                &manifest_url,
                &keys,
                &facts,
                Some(&version),
                &dir,
                &mut progress,
            )?;
            progress.begin(Phase::Downloaded, None, None);
            progress.end();
            println!(
                "{version}: downloaded and verified into {}; install with `ota-agent install {}`",
                dir.display(),
                dir.display()
            );
            return Ok(());
        }
        install_streaming(
            globals,
            config,
            &client,
            &keys,
            &facts,
            &manifest_url,
            &version,
            &mut progress,
        )
    });
    if let Err(e) = &r {
        progress.fail(&e.to_string());
    }
    progress.end();
    drop(progress);
    r?;
    if !download_only {
        super::install::reboot_now(config, mcu.as_mut())?;
    }
    Ok(true)
}

/// Whether boot control still has a switch to the other slot pending (the
/// state `install` leaves until the reboot). Unknown = pending: a release
/// is only recorded as rolled back on evidence.
fn switch_pending(globals: &Globals, config: &Config) -> bool {
    match super::slots::open(globals, config, false) {
        Ok(bc) => bc.active_slot() != bc.booted_slot(),
        Err(e) => {
            log::warn!("boot control unavailable: {e}");
            true
        }
    }
}

/// Streams the release straight into the inactive slot: manifest and
/// signature verified and judged first, then each payload from the
/// server (resuming at the install journal's offset) and activation.
#[allow(clippy::too_many_arguments)]
fn install_streaming(
    globals: &Globals,
    config: &Config,
    client: &Client,
    keys: &TrustedKeys,
    facts: &DeviceFacts,
    manifest_url: &str,
    version: &semver::Version,
    progress: &mut dyn Progress,
) -> Result<()> {
    let mbytes = client.get_small(manifest_url, bundle::manifest::MAX_LEN)?;
    let sig = client.get_small(
        &format!("{manifest_url}.sig"),
        bundle::signature::MAX_SIGNATURE_LEN,
    )?;
    let approved = Approved::new(&mbytes, &sig, keys, facts)?;
    for w in approved.warnings() {
        log::warn!("{w}");
    }
    if approved.manifest().version != *version {
        return Err(bundle::BundleError::Refused(format!(
            "the channel offers {version} but its manifest is version {}",
            approved.manifest().version
        ))
        .into());
    }
    let mut payloads = HttpPayloads::new(
        client,
        manifest_url,
        approved.manifest(),
        Some(&config.state_dir),
    );
    super::install::install_into_inactive(globals, config, &approved, &mut payloads, progress)
        .map(drop)
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
    let config = globals.config()?;
    let _lock = lock(&config)?;
    Ok(if run_once(globals, &config, download_only)? {
        0
    } else {
        EXIT_NO_UPDATE
    })
}

/// `ota-agent daemon [--max-cycles N]`
pub fn daemon(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut max_cycles: Option<u64> = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("max-cycles") => {
                let v = super::string(parser.value().map_err(usage)?)?;
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
    if config.hawkbit.is_some() {
        // hawkbit: the DDI server replaces the channel file.
        #[cfg(feature = "hawkbit")]
        return super::hawkbit_host::daemon(globals, &config, max_cycles);
        #[cfg(not(feature = "hawkbit"))]
        return Err(Error::Usage(
            "[hawkbit] is configured but this ota-agent was built without the hawkbit feature"
                .into(),
        ));
    }
    // After a reboot: record a rollback the bootloader reported (the slot
    // itself is confirmed by `mark-good` after the health checks, a
    // separate boot service), so status/progress tell the truth.
    match super::slots::open(globals, &config, false) {
        Ok(_) => {}
        Err(e) => log::warn!("boot control unavailable: {e}"),
    }
    let mut cycle = 0u64;
    loop {
        cycle += 1;
        match lock(&config) {
            Ok(_lock) => match run_once(globals, &config, false) {
                Ok(true) => log::info!("cycle {cycle}: update installed"),
                Ok(false) => log::info!("cycle {cycle}: nothing to do"),
                Err(e) => log::warn!("cycle {cycle} failed: {e}"),
            },
            Err(e) => log::warn!("cycle {cycle} skipped: {e}"),
        }
        if max_cycles.is_some_and(|m| cycle >= m) {
            return Ok(0);
        }
        std::thread::sleep(poll_delay(config.poll_interval_s));
    }
}

/// `interval` seconds ±10 %, so a fleet does not poll in lockstep.
fn poll_delay(interval_s: u64) -> Duration {
    let ms = interval_s.saturating_mul(1000);
    let spread = ms / 5;
    let jitter = if spread == 0 {
        0
    } else {
        backoff::random_u64() % (spread + 1)
    };
    Duration::from_millis(ms - ms / 10 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_delay_is_interval_plus_minus_ten_percent_and_spreads() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let d = poll_delay(3600).as_millis();
            assert!((3_240_000..=3_960_000).contains(&d), "{d}");
            seen.insert(d);
        }
        assert!(seen.len() > 150, "only {} distinct delays", seen.len());
        assert_eq!(poll_delay(0), Duration::ZERO);
    }
}
