//! hawkbit: the daemon's side of the hawkBit DDI mode (`crate::hawkbit`):
//! the [`Host`] that installs a downloaded bundle exactly as `ota-agent
//! install` does, reads boot control and reboots, and the poll loop.
//! Kept apart so the daemon refactor can move it as one piece.

use std::path::Path;

use super::progress::CliProgress;
use super::Globals;
use crate::bundle::{Bundle, DeviceFacts, TrustedKeys};
use crate::config::Config;
use crate::hawkbit::{self, BootView, Host};
use crate::install::{Approved, BundlePayloads};
use crate::mcu::{McuDisplay, SerialMcu};
use crate::slots::Slot;
use crate::state::StateDir;
use crate::update_status::{Phase, Progress};
use crate::Result;

struct DaemonHost<'a> {
    globals: &'a Globals,
    config: &'a Config,
}

/// Forwards progress to the status file / display and to DDI feedback.
struct Tee<'a>(&'a mut dyn Progress, &'a mut dyn Progress);

impl Progress for Tee<'_> {
    fn target(&mut self, v: &str, s: Option<Slot>, t: Option<u64>) {
        self.0.target(v, s, t);
        self.1.target(v, s, t);
    }
    fn begin(&mut self, p: Phase, i: Option<&str>, t: Option<u64>) {
        self.0.begin(p, i, t);
        self.1.begin(p, i, t);
    }
    fn advance(&mut self, d: u64, o: u64) {
        self.0.advance(d, o);
        self.1.advance(d, o);
    }
    fn fail(&mut self, e: &str) {
        self.0.fail(e);
        self.1.fail(e);
    }
}

impl Host for DaemonHost<'_> {
    fn installed_version(&self) -> Option<String> {
        super::install::installed_version(self.config)
    }

    fn boot(&mut self) -> Result<BootView> {
        let bc = super::slots::open(self.globals, self.config, false)?;
        let booted = bc.booted_slot();
        let last = StateDir::new(&self.config.state_dir)
            .last_rollback()
            .ok()
            .flatten();
        Ok(BootView {
            booted,
            active: bc.active_slot(),
            booted_good: bc.is_successful(booted),
            backend: bc.backend(),
            last_rollback: last.map(|r| format!("left slot {}: {}", r.from, r.reason)),
        })
    }

    fn install(&mut self, bundle: &Path, feedback: &mut dyn Progress) -> Result<Slot> {
        let keys = TrustedKeys::load_dir(&self.config.keys_dir)?;
        let b = Bundle::open(bundle, &keys)?;
        let facts = DeviceFacts::from_config(self.config, false)?;
        let approved = Approved::from_bundle(&b, &facts)?;
        for w in approved.warnings() {
            log::warn!("{w}");
        }
        let mut payloads = BundlePayloads::new(&b)?;
        let mut mcu = self.config.mcu.as_ref().map(SerialMcu::new);
        let mut cli = CliProgress::new(
            &self.config.state_dir,
            super::install::installed_version(self.config),
            McuDisplay::new(mcu.as_mut()),
        );
        let r = super::install::install_into_inactive(
            self.globals,
            self.config,
            &approved,
            &mut payloads,
            &mut Tee(&mut cli, feedback),
        );
        cli.end();
        Ok(r?.slot)
    }

    fn reboot(&mut self) -> Result<()> {
        let mut mcu = self.config.mcu.as_ref().map(SerialMcu::new);
        super::install::reboot_now(self.config, mcu.as_mut()).map(drop)
    }
}

/// `ota-agent daemon` with `[hawkbit]`: polls the DDI server.
pub(super) fn daemon(globals: &Globals, config: &Config, max_cycles: Option<u64>) -> Result<i32> {
    let mut host = DaemonHost { globals, config };
    let mut cycle = 0u64;
    loop {
        cycle += 1;
        let sleep = match super::net::lock(config) {
            Ok(_lock) => match hawkbit::cycle(config, &mut host) {
                Ok(d) => d,
                Err(e) => {
                    log::warn!("hawkbit cycle {cycle} failed: {e}");
                    std::time::Duration::from_secs(
                        config.hawkbit.as_ref().map_or(60, |h| h.poll_floor_s),
                    )
                }
            },
            Err(e) => {
                log::warn!("hawkbit cycle {cycle} skipped: {e}");
                std::time::Duration::from_secs(60)
            }
        };
        if max_cycles.is_some_and(|m| cycle >= m) {
            return Ok(0);
        }
        std::thread::sleep(sleep);
    }
}
