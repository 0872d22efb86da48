//! The local control socket (docs/local-api.md): the appliance's own UI and
//! application talk to the running daemon over a Unix socket in a small,
//! versioned JSON-lines protocol — status, events as they happen, check
//! now, consent to an offered release, inhibits with a lease, and suspend,
//! resume or cancel of a download or write in progress.
//!
//! ```text
//!  update loop (daemon thread)            control server (one thread)
//!  ─────────────────────────              ───────────────────────────
//!  Relay console ── publish ──►  Hub  ◄── handle(request) ── clients
//!  installer ───── go_on ─────►(mutex,──► news() ─────────► subscribers
//!  policy ──────── Voice ─────► condvar)   (woken by a byte, never polls)
//! ```
//!
//! The update never waits for a client: the server writes with
//! non-blocking sockets from its own buffers, and a subscriber that does not
//! read is disconnected once [`server::MAX_QUEUED`] bytes wait for it.

pub mod client;
mod hub;
pub mod protocol;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use hub::{Hub, Outcome, MAX_INHIBITS};
pub use server::{MAX_CLIENTS, MAX_QUEUED};

use crate::update::{Announcement, Console};
use crate::update_status::UpdateStatus;
use crate::Result;

/// `[control]` of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// The socket's path (its directory must exist).
    pub socket: PathBuf,
    /// The socket's permissions (`mode = "0660"`).
    pub mode: u32,
    /// The socket's group (name or number); `None` = the daemon's.
    pub group: Option<String>,
    /// `consent = "required"`: a download waits for `accept`.
    pub consent: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: "/run/ota-agent/control.sock".into(),
            mode: 0o660,
            group: None,
            consent: false,
        }
    }
}

/// The daemon's control socket: the hub its update loop talks to; the
/// server thread runs until the process ends.
pub struct Control {
    hub: Arc<Hub>,
}

impl Control {
    /// Binds the socket of `config` (refused when another daemon answers
    /// on it, or it cannot be made), then serves it on its own thread.
    /// `doc` is the status to start from; `steer`: false in hawkBit mode
    /// (see [`Hub::new`]).
    pub fn start(config: &ControlConfig, doc: UpdateStatus, steer: bool) -> Result<Control> {
        let listener = server::bind(config)?;
        let (hub, wake) = Hub::new(doc, config.consent, steer)
            .map_err(|e| crate::Error::io(&config.socket, e))?;
        server::spawn(listener, wake, Arc::clone(&hub))
            .map_err(|e| crate::Error::io(&config.socket, e))?;
        log::info!("control socket {} is served", config.socket.display());
        Ok(Control { hub })
    }

    /// Before the daemon returns: lets the server write what is queued
    /// (the last `outcome`) for up to a second.
    pub fn finish(&self) {
        self.hub.drain(Duration::from_secs(1));
    }

    /// The shared state (for [`crate::update::Device::set_control`]).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// Runs one cycle of the update loop, `run`, telling the hub (if any)
/// that it began and how it ended (the `state` and `outcome` events;
/// `quiet`: no outcome when there was nothing to do — the resume at start).
pub fn observed(
    control: Option<&Control>,
    quiet: bool,
    run: impl FnOnce() -> Result<bool>,
) -> Result<bool> {
    let Some(c) = control else { return run() };
    c.hub.begin_run();
    let r = run();
    let detail = r
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    let outcome = Outcome::of(&r);
    let worth = !quiet || outcome != Outcome::UpToDate;
    c.hub.end_run(worth.then_some(outcome), &detail);
    r
}

/// Waits `d` before the next cycle: on the hub (a `check-now` ends it
/// early) when there is a control socket, else plainly.
pub fn pause(control: Option<&Control>, d: Duration) {
    match control {
        Some(c) => c.hub.sleep(d),
        None => std::thread::sleep(d),
    }
}

/// A [`Console`] that also tells the hub: the status document to the
/// subscribers, and `go_on` from the hub (suspend, cancel).
pub struct Relay<'a> {
    hub: &'a Hub,
    inner: &'a mut dyn Console,
}

impl<'a> Relay<'a> {
    /// `inner` (the terminal or log) with `hub` listening in.
    pub fn new(hub: &'a Hub, inner: &'a mut dyn Console) -> Relay<'a> {
        Relay { hub, inner }
    }
}

impl Console for Relay<'_> {
    fn progress(&mut self, doc: &UpdateStatus, phase_changed: bool) {
        self.hub.publish(doc, phase_changed);
        self.inner.progress(doc, phase_changed);
    }
    fn end(&mut self) {
        self.inner.end();
    }
    fn announce(&mut self, announcement: &Announcement) {
        self.inner.announce(announcement);
    }
    fn go_on(&mut self) -> Result<()> {
        self.hub.go_on()
    }
}
