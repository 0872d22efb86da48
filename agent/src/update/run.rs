//! One update run: `check` (the channel decision), `update` (check, then
//! stream the release into the inactive slot, activate, reboot when the
//! appliance allows; or stage it with `--download-only`) and `install`
//! (a local bundle or a bundle directory on a server).

use std::path::PathBuf;

use super::gate::{self, reboot, reboot_with_policy, Asker};
use super::lock::lock;
use super::progress::{Announcement, Console, RunProgress};
use super::stage::{self, fetch_approved};
use super::Device;
use crate::bundle::{self, Bundle, TrustedKeys};
use crate::config::Config;
use crate::install::journal::Journal;
use crate::install::{Approved, BundlePayloads, FileDisk, Installer, Outcome, Payloads};
use crate::mcu::{McuDisplay, SerialMcu};
use crate::net::check::{self as channel_check, ChannelFacts, Decision};
use crate::net::payloads::HttpPayloads;
use crate::net::{self, Client};
use crate::policy::Phase as PolicyPhase;
use crate::report::{Event, Reporter};
use crate::slots::Slot;
use crate::state::{InstallSource, StateDir};
use crate::update_status::{self, Phase, Progress};
use crate::{Error, Result};

/// The device id: `device_id`, else the first line of `device_id_file`.
pub fn device_id(c: &Config) -> Result<String> {
    if let Some(id) = &c.device_id {
        return Ok(id.clone());
    }
    let text =
        std::fs::read_to_string(&c.device_id_file).map_err(|e| Error::io(&c.device_id_file, e))?;
    let id = text.lines().next().unwrap_or("").trim();
    if id.is_empty() {
        return Err(Error::DeviceFile {
            path: c.device_id_file.clone(),
            reason: "device id file is empty".into(),
        });
    }
    Ok(id.to_owned())
}

/// Reads the channel and decides for this device (a release it rolled
/// back from is [`Decision::RolledBack`]).
pub fn check(dev: &Device, client: &Client, keys: &TrustedKeys) -> Result<Decision> {
    let c = dev.config();
    let server = c.server.as_deref().ok_or_else(|| Error::Config {
        path: c.source.clone(),
        reason: "key `server` is not set (no release server to check)".into(),
    })?;
    let installed = dev.installed()?;
    let id = device_id(c)?;
    let facts = ChannelFacts {
        product: &c.product,
        channel: &c.channel,
        installed: &installed,
        device_id: &id,
        now: bundle::time::now(),
    };
    let (chan, d) = channel_check::check(client, server, keys, &facts)?;
    crate::report::remember_target(dev.state().path(), chan.reports.as_deref());
    let refused = crate::policy::refused(dev.state());
    Ok(match d {
        Decision::Update { version, .. }
            if dev.state().rejected_release().as_ref() == Some(&version) =>
        {
            Decision::RolledBack { version }
        }
        Decision::Update { version, .. }
            if refused.as_ref().is_some_and(|(v, _)| *v == version) =>
        {
            let why = refused.map(|(_, why)| why).unwrap_or_default();
            Decision::Refused { version, why }
        }
        d => d,
    })
}

/// `check` for the command line: the client and keys of the configuration.
pub fn check_channel(dev: &Device) -> Result<Decision> {
    let client = Client::from_config(dev.config())?;
    let keys = TrustedKeys::load_dir(&dev.config().keys_dir)?;
    check(dev, &client, &keys)
}

/// `update [--download-only]`: takes the lock, then one run. Returns
/// whether an update was installed (or staged).
pub fn update(dev: &mut Device, download_only: bool, console: &mut dyn Console) -> Result<bool> {
    let _lock = lock(dev.state())?;
    let sending = Reporter::new(dev.config()).deliver_in_background(&dev.config().source);
    let r = run_once(dev, download_only, console);
    crate::report::finish(sending);
    r
}

/// One update run (the lock held by the caller). Every phase goes to
/// `state_dir/update-status.json` and the appliance display.
pub(super) fn run_once(
    dev: &mut Device,
    download_only: bool,
    console: &mut dyn Console,
) -> Result<bool> {
    let config = dev.config().clone();
    let state = dev.state().clone();
    let client = Client::from_config(&config)?;
    let keys = TrustedKeys::load_dir(&config.keys_dir)?;
    let from = dev.installed_text();
    // An update installed and waiting for its reboot keeps its document
    // (a UI should go on saying so) until the device runs another release.
    let current = read_status(&state);
    let pending = current.clone().filter(|d| {
        matches!(d.phase, Phase::Installed | Phase::Rebooting) && d.from_version == from
    });
    let mut mcu = config.mcu.as_ref().map(SerialMcu::new);
    let mut progress = RunProgress::new(&state, from, McuDisplay::new(mcu.as_mut()), console);
    // Installed and activated, but the device runs the old release and no
    // switch is pending any more: the bootloader fell back (or `mark-bad`).
    // That release failed here; trying it again would only repeat the
    // failed boots, so it is recorded and skipped until a newer one comes.
    let mut rolled_back = false;
    let pending = match pending {
        Some(doc) if !switch_pending(dev) => {
            rolled_back = true;
            Reporter::new(&config).record(Event::RolledBack {
                from_slot: None,
                reason: "unbootable",
                boot_limit: None,
            });
            if let Some(v) = doc.version.as_deref().and_then(|v| v.parse().ok()) {
                state.reject_release(&v)?;
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
    let rejected = state.rejected_release();
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
    let d = match check(dev, &client, &keys) {
        Ok(d) => d,
        Err(e) => {
            if !keep {
                progress.fail(&e.to_string());
            }
            return Err(e);
        }
    };
    log::info!("{d}");
    if let Decision::LeaseExpired { version } = &d {
        Reporter::new(&config).record(Event::Deferred {
            to: Some(&version.to_string()),
            why: "rollout lease expired",
        })
    }
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
    let asker = Asker::new(dev);
    // Installed and activated, waiting for the reboot: nothing to fetch
    // (with a policy, the reboot it deferred is asked for again).
    if let Some(p) = &pending {
        if p.version.as_deref() == Some(version.to_string().as_str()) {
            log::info!("{version} is installed and waits for a reboot");
            if download_only || !asker.active() || p.phase != Phase::Installed {
                return Ok(false);
            }
            drop(progress);
            let approved = fetch_approved(&client, &manifest_url, &keys, &dev.facts(false)?)?;
            reboot_with_policy(dev, approved.manifest(), mcu.as_mut(), console)?;
            return Ok(true);
        }
        progress.begin(Phase::Checking, None, None);
    }
    let to = version.to_string();
    let r = dev.facts(false).and_then(|facts| {
        // The manifest first (verified, judged, the channel's version);
        // with a policy, the download is asked about before any payload
        // byte — unless an activation it deferred left the slot written.
        let approved = match (download_only, asker.active()) {
            (true, false) => None,
            _ => Some(fetch_approved(&client, &manifest_url, &keys, &facts)?),
        };
        if let Some(a) = &approved {
            if a.manifest().version != version {
                return Err(bundle::BundleError::Refused(format!(
                    "the channel offers {version} but its manifest is version {}",
                    a.manifest().version
                ))
                .into());
            }
            if !gate::written(&state, a) {
                asker.require(a.manifest(), PolicyPhase::Download, None)?;
            }
        }
        Reporter::new(&config).record(Event::DownloadStarted { to: &to });
        let approved = match approved {
            Some(a) if !download_only => a,
            _ => {
                let dir = stage::download_release(
                    &client,
                    &manifest_url,
                    &keys,
                    &facts,
                    Some(&version),
                    &state.download_dir(),
                    &mut progress,
                )?;
                progress.begin(Phase::Downloaded, None, None);
                progress.end();
                progress.announce(&Announcement::Downloaded { version, dir });
                return Ok(None);
            }
        };
        let mut payloads =
            HttpPayloads::new(&client, &manifest_url, approved.manifest(), Some(&state));
        let source = InstallSource {
            source: manifest_url.clone(),
            reinstall: false,
        };
        install_into_inactive(dev, &approved, &mut payloads, &source, &mut progress)?;
        Ok(Some(approved))
    });
    match &r {
        // Reported by the policy. Before the download nothing was written
        // (the status goes back to idle); a deferred activation leaves the
        // written slot, its journal and its status as they are.
        Err(Error::Deferred { .. } | Error::Refused(_)) => {
            if !keep && !slot_write_began(&state) {
                progress.begin(Phase::Idle, None, None);
            }
        }
        Err(e) => {
            Reporter::new(&config).record(Event::Failed {
                to: &to,
                error: &e.to_string(),
            });
            progress.fail(&e.to_string());
        }
        Ok(_) => {}
    }
    progress.end();
    drop(progress);
    if let Some(approved) = r? {
        reboot_with_policy(dev, approved.manifest(), mcu.as_mut(), console)?;
    }
    Ok(true)
}

/// Whether boot control still has a switch to the other slot pending (the
/// state `install` leaves until the reboot). Unknown = pending: a release
/// is only recorded as rolled back on evidence.
fn switch_pending(dev: &mut Device) -> bool {
    match dev.boot_control() {
        Ok(bc) => bc.active_slot() != bc.booted_slot(),
        Err(e) => {
            log::warn!("boot control unavailable: {e}");
            true
        }
    }
}

/// `verify PATH [--reinstall]`: every check `install` makes before writing
/// flash (signature, device policy, each payload's size and SHA-256 and
/// what it produces), without writing anything. Policy warnings are logged.
pub fn verify(dev: &Device, path: &std::path::Path, reinstall: bool) -> Result<Bundle> {
    let keys = TrustedKeys::load_dir(&dev.config().keys_dir)?;
    let b = Bundle::open(path, &keys)?;
    let facts = dev.facts(reinstall)?;
    for w in bundle::check_policy(&b.manifest, &facts)? {
        log::warn!("{w}");
    }
    b.check_payloads()?;
    Ok(b)
}

/// Where `install` takes a bundle from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    /// A bundle directory or single-file bundle on this device.
    Local(PathBuf),
    /// A bundle directory on a server: the URL of its `manifest.json`
    /// (payloads are fetched relative to it and streamed into the slot).
    Remote(String),
}

impl BundleSource {
    /// An `http://` or `https://` argument is remote: a URL ending in
    /// `.json` names the manifest, any other the bundle directory (its
    /// `manifest.json` is used). Everything else is a local path.
    pub fn parse(arg: &str) -> BundleSource {
        if arg.starts_with("https://") || arg.starts_with("http://") {
            if arg.ends_with(".json") {
                BundleSource::Remote(arg.to_owned())
            } else {
                BundleSource::Remote(net::join_url(arg, bundle::MANIFEST_FILE))
            }
        } else {
            BundleSource::Local(arg.into())
        }
    }
}

/// `install SOURCE [--reinstall] [--reboot]`: takes the lock, verifies
/// the bundle against the device, writes it into the inactive slot
/// (resuming an interrupted install from the journal), activates it and,
/// with `reboot`, reboots through the appliance gate.
pub fn install(
    dev: &mut Device,
    source: &BundleSource,
    reinstall: bool,
    reboot_after: bool,
    console: &mut dyn Console,
) -> Result<()> {
    let _lock = lock(dev.state())?;
    install_locked(dev, source, reinstall, reboot_after, console)
}

/// `resume [--reboot]`: takes the lock and continues the install that a
/// power cut (or a crash) interrupted, from the source it was started
/// from. Returns false when there is nothing to resume.
pub fn resume(dev: &mut Device, reboot_after: bool, console: &mut dyn Console) -> Result<bool> {
    let _lock = lock(dev.state())?;
    resume_locked(dev, reboot_after, console)
}

/// Whether an install began writing a slot: its journal holds a checkpoint
/// or a slot's write marker is present.
fn slot_write_began(state: &crate::state::StateDir) -> bool {
    Journal::new(state.path()).load().is_some()
        || state.is_being_written(Slot::A)
        || state.is_being_written(Slot::B)
}

/// [`resume`] with the lock held by the caller (the daemon at start).
pub(super) fn resume_locked(
    dev: &mut Device,
    reboot_after: bool,
    console: &mut dyn Console,
) -> Result<bool> {
    let state = dev.state().clone();
    read_status(&state); // a corrupt status file is set aside here

    // Opening boot control records a rollback the bootloader reported (on
    // a device whose old slot is not on trial, mark-good did not run):
    // that decides whether a trial lost to power is tried again. Without
    // boot control there is nothing to resume into anyway.
    if let Err(e) = dev.boot_control() {
        log::debug!("boot control: {e}");
    }
    if let Some(t) = super::trial::retry_due(&state) {
        retry_trial(dev, t, reboot_after, console)?;
        return Ok(true);
    }
    let Some(src) = state.install_source() else {
        return Ok(false);
    };
    if !slot_write_began(&state) {
        log::info!(
            "the install of {} stopped before writing a slot; nothing to resume",
            src.source
        );
        state.clear_install_source()?;
        return Ok(false);
    }
    log::info!("resuming the interrupted install of {}", src.source);
    install_locked(
        dev,
        &BundleSource::parse(&src.source),
        src.reinstall,
        reboot_after,
        console,
    )?;
    Ok(true)
}

/// Starts a new round of a trial that power cuts ended (`trial`): the slot
/// holds the release exactly as the install left it (verified on flash
/// then; nothing has written it since), so it is activated again.
fn retry_trial(
    dev: &mut Device,
    t: crate::state::Trial,
    reboot_after: bool,
    console: &mut dyn Console,
) -> Result<()> {
    let state = dev.state().clone();
    let (slot, release) = (t.slot, t.release.clone());
    let round = t.retries + 1;
    dev.boot_control()?.set_active(slot)?;
    super::trial::retried(&state, t)?;
    log::warn!(
        "the trial of {release} in slot {slot} was ended by power cuts; activated it again (retry {round} of {})",
        super::trial::MAX_RETRIES
    );
    Reporter::new(dev.config()).record(Event::Installed { to: &release, slot });
    if reboot_after {
        let config = dev.config().clone();
        let mut mcu = config.mcu.as_ref().map(SerialMcu::new);
        reboot(dev, mcu.as_mut(), console)?;
    }
    Ok(())
}

/// The status document; a corrupt one is set aside (one warning).
fn read_status(state: &StateDir) -> Option<update_status::UpdateStatus> {
    update_status::read(state).unwrap_or_else(|e| {
        state.set_aside(crate::state::UPDATE_STATUS_FILE, &e.to_string());
        None
    })
}

fn install_locked(
    dev: &mut Device,
    source: &BundleSource,
    reinstall: bool,
    reboot_after: bool,
    console: &mut dyn Console,
) -> Result<()> {
    let recorded = InstallSource {
        source: match source {
            BundleSource::Local(p) => p.to_string_lossy().into_owned(),
            BundleSource::Remote(u) => u.clone(),
        },
        reinstall,
    };
    let config = dev.config().clone();
    let keys = TrustedKeys::load_dir(&config.keys_dir)?;
    let mut mcu = config.mcu.as_ref().map(SerialMcu::new);
    // The bundle file (kept open for its payloads) or the server's client:
    // whichever the payloads are read from lives as long as the install.
    let (bundle, client);
    let (approved, mut payloads): (Approved, Box<dyn Payloads + '_>) = match source {
        BundleSource::Local(path) => {
            bundle = Bundle::open(path, &keys)?;
            let approved = Approved::from_bundle(&bundle, &dev.facts(reinstall)?)?;
            for w in approved.warnings() {
                log::warn!("{w}");
            }
            (approved, Box::new(BundlePayloads::new(&bundle)?))
        }
        BundleSource::Remote(manifest_url) => {
            client = Client::from_config(&config)?;
            let approved = fetch_approved(&client, manifest_url, &keys, &dev.facts(reinstall)?)?;
            if !gate::written(dev.state(), &approved) {
                Asker::new(dev).require(approved.manifest(), PolicyPhase::Download, None)?;
            }
            let payloads = HttpPayloads::new(
                &client,
                manifest_url,
                approved.manifest(),
                Some(dev.state()),
            );
            (approved, Box::new(payloads))
        }
    };
    let outcome = install_reporting(
        dev,
        &approved,
        payloads.as_mut(),
        &recorded,
        mcu.as_mut(),
        console,
    )?;
    if let Some((image, offset)) = outcome.resumed {
        log::info!("resumed an interrupted install at image {image}, byte {offset}");
    }
    if reboot_after {
        reboot_with_policy(dev, approved.manifest(), mcu.as_mut(), console)?;
    }
    Ok(())
}

/// [`install_into_inactive`] with the run's progress (status file,
/// appliance display, console).
fn install_reporting(
    dev: &mut Device,
    approved: &Approved,
    payloads: &mut dyn Payloads,
    source: &InstallSource,
    mcu: Option<&mut SerialMcu>,
    console: &mut dyn Console,
) -> Result<Outcome> {
    let state = dev.state().clone();
    let mut progress =
        RunProgress::new(&state, dev.installed_text(), McuDisplay::new(mcu), console);
    let outcome = install_into_inactive(dev, approved, payloads, source, &mut progress);
    progress.end();
    outcome
}

/// Writes `approved` into the inactive slot from `payloads` (resuming from
/// the journal), verifies and activates it, reporting to `progress`.
/// Shared by `install` (local or remote bundle) and `update`.
fn install_into_inactive<S: crate::mcu::ProgressSink>(
    dev: &mut Device,
    approved: &Approved,
    payloads: &mut dyn Payloads,
    source: &InstallSource,
    progress: &mut RunProgress<'_, S>,
) -> Result<Outcome> {
    let disk_path = dev.config().disk.clone();
    let state_dir = dev.state().path().to_owned();
    let state = dev.state().clone();
    let asker = Asker::new(dev);
    let mut before_activate = || asker.require(approved.manifest(), PolicyPhase::Activate, None);
    let prepared = dev
        .layout_and_boot_control()
        .and_then(|(layout, bc)| Ok((layout, bc, FileDisk::open(&disk_path)?)));
    let (layout, bc, disk) = match prepared {
        Ok(p) => p,
        Err(e) => {
            progress.fail(&e.to_string());
            return Err(e);
        }
    };
    // Before the first slot write, so that `resume` finds it after a cut;
    // kept while the install may go on (I/O errors), dropped when it ended.
    state.record_install_source(source)?;
    let outcome = Installer::new(&disk, layout, bc, &state_dir, progress)
        .before_activate(&mut before_activate)
        .install(approved, payloads);
    // Kept only for an install that may go on: one that began writing a
    // slot and stopped on an I/O error. A refusal (before the first write)
    // or a content error leaves state_dir as it was.
    // A cancelled install is abandoned like a refused one: nothing resumes it.
    if matches!(
        outcome,
        Ok(_) | Err(Error::Bundle(_) | Error::Install(_) | Error::Cancelled)
    ) || !slot_write_began(&state)
    {
        if let Err(e) = state.clear_install_source() {
            log::warn!("{e}");
        }
    }
    let outcome = outcome?;
    // Its trial starts: boots that reach userspace are counted from here.
    if let Err(e) = super::trial::begin(&state, outcome.slot, &outcome.version.to_string()) {
        log::warn!("the trial of {} is not tracked: {e}", outcome.version);
    }
    Reporter::new(dev.config()).record(Event::Installed {
        to: &outcome.version.to_string(),
        slot: outcome.slot,
    });
    progress.announce(&Announcement::Installed {
        product: approved.manifest().product.clone(),
        version: outcome.version.clone(),
        slot: outcome.slot,
    });
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::Silent;

    fn device(dir: &std::path::Path) -> Device {
        let config = Config {
            state_dir: dir.join("state"),
            ..Config::default()
        };
        Device::new(config, Some(Slot::A))
    }

    fn source() -> InstallSource {
        InstallSource {
            source: "/data/update.ota".into(),
            reinstall: false,
        }
    }

    #[test]
    fn nothing_recorded_is_nothing_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut dev = device(dir.path());
        assert!(!resume(&mut dev, false, &mut Silent).unwrap());
    }

    #[test]
    fn a_source_without_a_slot_write_is_forgotten_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let mut dev = device(dir.path());
        dev.state().record_install_source(&source()).unwrap();
        assert!(!resume(&mut dev, false, &mut Silent).unwrap());
        assert_eq!(dev.state().install_source(), None);
    }

    #[test]
    fn a_started_write_is_attempted_again_and_its_source_kept_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut dev = device(dir.path());
        let state = dev.state().clone();
        state.record_install_source(&source()).unwrap();
        state.begin_write(Slot::B).unwrap();
        // The install is attempted (and fails here: no keys, no bundle;
        // agent/tests/it/resume_cli.rs resumes a real one).
        assert!(resume(&mut dev, false, &mut Silent).is_err());
        // Not a content error: the record stays for the next attempt.
        assert_eq!(state.install_source(), Some(source()));
    }
}
