//! [`Device`]: this device for one run of a command — its configuration,
//! `state_dir`, installed release, slot layout and boot control, each read
//! at most once and then handed to every step that needs it.

use crate::bootctl::{self, BootControl, OpenOptions};
use crate::bundle::{self, DeviceFacts};
use crate::config::Config;
use crate::report::{Event, Reporter};
use crate::slots::{Layout, Slot};
use crate::state::StateDir;
use crate::{Error, Result};

/// One run's view of the device. Built by the front end from the
/// configuration (and `--booted-slot`); a daemon builds a fresh one per
/// cycle, since the boot state may change between cycles.
pub struct Device {
    config: Config,
    state: StateDir,
    booted_override: Option<Slot>,
    /// `VERSION_ID` of `version_file`, read once; the error's reason.
    installed: std::result::Result<semver::Version, String>,
    layout: Option<Layout>,
    boot: Option<Box<dyn BootControl>>,
    /// The policy's clock (windows, hook deferrals); `None` = the system
    /// clock. Tests set it ([`Device::set_now`], or [`FAKE_NOW_ENV`] for
    /// the binary).
    now: Option<i64>,
    /// The daemon's control socket state (inhibits and consent are asked
    /// with the policy); `None` outside the daemon.
    control: Option<std::sync::Arc<crate::control::Hub>>,
}

/// Environment variable, for tests only: a `YYYY-MM-DDTHH:MM:SSZ` time the
/// policy (maintenance windows, hook deferral bounds) takes as "now"
/// instead of the system clock (docs/policy.md). Signature and expiry
/// checks always use the system clock.
pub const FAKE_NOW_ENV: &str = "OTA_AGENT_TEST_NOW";

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("state", &self.state)
            .field("installed", &self.installed)
            .field("boot_open", &self.boot.is_some())
            .finish()
    }
}

impl Device {
    /// This device per `config`; `booted_override` replaces the kernel
    /// command line's booted slot (`--booted-slot`, tests). Reads the
    /// installed release; the disk and the bootloader are read when first
    /// needed.
    pub fn new(config: Config, booted_override: Option<Slot>) -> Device {
        let installed = bundle::installed_version(&config.version_file).map_err(|e| match e {
            Error::Io { source, .. } => source.to_string(),
            Error::DeviceFile { reason, .. } => reason,
            other => other.to_string(),
        });
        Device {
            state: StateDir::new(&config.state_dir),
            config,
            booted_override,
            installed,
            layout: None,
            boot: None,
            control: None,
            now: std::env::var(FAKE_NOW_ENV).ok().and_then(|v| {
                let t = bundle::time::parse_rfc3339_utc(&v);
                match t {
                    Some(_) => {
                        log::warn!("{FAKE_NOW_ENV}={v}: the policy clock is faked (tests only)")
                    }
                    None => log::warn!("{FAKE_NOW_ENV}={v:?} is not YYYY-MM-DDTHH:MM:SSZ; ignored"),
                }
                t
            }),
        }
    }

    /// The policy's clock: seconds since the epoch.
    pub fn now(&self) -> i64 {
        self.now.unwrap_or_else(bundle::time::now)
    }

    /// Sets the policy's clock (tests).
    pub fn set_now(&mut self, now: i64) {
        self.now = Some(now);
    }

    /// Lets the daemon's control socket (`hub`) take part in the policy.
    pub fn set_control(&mut self, hub: std::sync::Arc<crate::control::Hub>) {
        self.control = Some(hub);
    }

    /// The daemon's control socket state, if this run has one.
    pub fn control(&self) -> Option<&std::sync::Arc<crate::control::Hub>> {
        self.control.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The installed release (`VERSION_ID` of `version_file`).
    pub fn installed(&self) -> Result<semver::Version> {
        self.installed.clone().map_err(|reason| Error::DeviceFile {
            path: self.config.version_file.clone(),
            reason,
        })
    }

    /// The installed release as text, `None` when unreadable (a status
    /// field, never a reason to stop).
    pub fn installed_text(&self) -> Option<String> {
        self.installed.as_ref().ok().map(ToString::to_string)
    }

    /// What the manifest policy judges against: product, hardware, the
    /// installed release, the stored minimum security version, the clock.
    pub fn facts(&self, reinstall: bool) -> Result<DeviceFacts> {
        Ok(DeviceFacts {
            product: self.config.product.clone(),
            hardware: self.config.hardware.clone(),
            installed: self.installed()?,
            min_security_version: self.state.min_security_version()?,
            now: bundle::time::now(),
            reinstall,
        })
    }

    /// The disk's slot layout (GPT read at the first call).
    pub fn layout(&mut self) -> Result<&Layout> {
        let layout = match self.layout.take() {
            Some(l) => l,
            None => Layout::discover(&self.config.disk)?,
        };
        Ok(self.layout.insert(layout))
    }

    /// Boot control, opened at the first call. Opening records a rollback
    /// the bootloader reported (so the report survives even if nobody runs
    /// `status`); a failure to record is logged, never fatal.
    pub fn boot_control(&mut self) -> Result<&mut dyn BootControl> {
        self.open_boot_control(false)
    }

    /// Like [`Device::boot_control`]; `reinit` replaces an invalid Android
    /// bootctrl block at the next write (`set-active --reinit`).
    pub fn open_boot_control(&mut self, reinit: bool) -> Result<&mut dyn BootControl> {
        if self.boot.is_none() {
            let layout = match self.layout.take() {
                Some(l) => l,
                None => Layout::discover(&self.config.disk)?,
            };
            let layout = &*self.layout.insert(layout);
            let options = OpenOptions {
                booted: self.booted_override,
                reinit,
            };
            let mut bc = bootctl::open(&self.config, layout, &self.state, options)?;
            match bc.record_rollback() {
                Ok(Some(r)) => {
                    log::warn!(
                        "the bootloader left slot {} for slot {} ({}); recorded",
                        r.from,
                        r.to,
                        r.reason
                    );
                    let mut reporter = Reporter::new(&self.config);
                    let boot_limit = bc.status().boot_limit;
                    // Why the trial failed, as mark-good / mark-bad noted
                    // it, or that power cuts ended it (then `resume` may
                    // try it again): kept with the rollback record, because
                    // the report below settles the note (the hawkBit
                    // feedback, sent later, names it from here).
                    let judged =
                        super::trial::on_rollback(&self.state, r.from, &r.reason, boot_limit)
                            .unwrap_or_else(|e| {
                                log::warn!("{e}");
                                None
                            });
                    if let Some(j) = &judged {
                        log::warn!("slot {}: {}", r.from, j.cause);
                        if j.power_lost {
                            reporter.record(Event::PowerLost {
                                slot: r.from,
                                cause: &j.cause,
                            });
                        }
                    }
                    let judged = judged.map(|j| j.cause);
                    if let Some(cause) = judged.or_else(|| reporter.pending_cause(r.from)) {
                        if let Err(e) = self.state.note_rollback_cause(&cause) {
                            log::warn!("could not keep the rollback's cause: {e}");
                        }
                    }
                    reporter.record(Event::RolledBack {
                        from_slot: Some(r.from),
                        reason: &r.reason,
                        boot_limit,
                    });
                }
                Ok(None) => {}
                // Recording is bookkeeping: it must not block confirming a slot.
                Err(e) => log::warn!("could not record the last rollback: {e}"),
            }
            self.boot = Some(bc);
        }
        match self.boot.as_deref_mut() {
            Some(bc) => Ok(bc),
            None => Err(Error::Internal("boot control not opened".into())),
        }
    }

    /// The layout and boot control together (the installer needs both).
    pub fn layout_and_boot_control(&mut self) -> Result<(&Layout, &mut dyn BootControl)> {
        self.boot_control()?;
        match (&self.layout, &mut self.boot) {
            (Some(l), Some(b)) => Ok((l, b.as_mut())),
            _ => Err(Error::Internal(
                "boot control opened without a layout".into(),
            )),
        }
    }
}
