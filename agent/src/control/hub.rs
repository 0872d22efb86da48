//! [`Hub`]: what the daemon's update loop and the control server share —
//! one mutex, one condition variable. The update loop publishes its status
//! document and outcomes and asks [`Hub::go_on`] between chunks; the server
//! turns requests into changes here and events into lines. Neither waits
//! for the other for longer than a copy: the server never holds the lock
//! while it writes to a socket, and it learns of news through a wake-up
//! byte on a socket pair, never by polling.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::protocol::{self, Command};
use crate::policy::hooks::Answer;
use crate::policy::{Offer, Phase as PolicyPhase, Voice};
use crate::update_status::{Phase, UpdateStatus};
use crate::{Error, Result};

/// Events kept for the server to fetch (it fetches at every wake-up, so
/// only a burst longer than this between two wake-ups would lose any).
const KEEP_EVENTS: usize = 64;
/// Most inhibits held at once.
pub const MAX_INHIBITS: usize = 16;

/// The shared state. See the module documentation.
pub struct Hub {
    shared: Mutex<Shared>,
    cond: Condvar,
    /// The daemon's end of the wake-up pair (non-blocking).
    wake: UnixStream,
}

struct Shared {
    doc: UpdateStatus,
    doc_seq: u64,
    /// `(sequence, doc_seq when pushed, line)`.
    events: VecDeque<(u64, u64, String)>,
    event_seq: u64,
    running: bool,
    suspended: bool,
    cancel: bool,
    check_now: bool,
    next_check: Option<Instant>,
    inhibits: Vec<Inhibit>,
    next_inhibit: u64,
    /// The last deferral was an inhibit's: releasing the last one wakes the loop.
    inhibit_deferred: bool,
    consent: bool,
    /// The daemon's own loop runs the updates (false in hawkBit mode,
    /// where the DDI server steers the action: only `status`, `subscribe`
    /// and `check-now` are served).
    steer: bool,
    /// `(version, offer JSON)` waiting for `accept` / `decline`.
    offer: Option<(String, String)>,
    /// The answer to the last offer: `(version, accepted)`.
    answer: Option<(String, bool)>,
    /// The server's progress: the last event sequence it handed out, and
    /// whether every client's buffer was written then.
    served: (u64, bool),
}

struct Inhibit {
    id: u64,
    reason: String,
    until: Instant,
}

/// What the server takes from the hub at a wake-up.
pub(super) struct News {
    /// Events after the server's cursor: `(doc_seq when pushed, line)`.
    pub events: Vec<(u64, String)>,
    /// The new cursor.
    pub cursor: u64,
    /// The current document's sequence number and `progress` line.
    pub progress: (u64, String),
}

/// How a run of the update loop ended, for the `outcome` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A release was installed (and the reboot asked for).
    Installed,
    /// Nothing to do.
    UpToDate,
    /// The policy (window, hook, inhibit, consent) said not now.
    Deferred,
    /// The release was refused (hook or `decline`).
    Refused,
    /// Stopped by `cancel`.
    Cancelled,
    /// Any other error.
    Failed,
}

impl Outcome {
    /// The outcome of a run's result.
    pub fn of(r: &Result<bool>) -> Outcome {
        match r {
            Ok(true) => Outcome::Installed,
            Ok(false) => Outcome::UpToDate,
            Err(Error::Deferred { .. }) => Outcome::Deferred,
            Err(Error::Refused(_)) => Outcome::Refused,
            Err(Error::Cancelled) => Outcome::Cancelled,
            Err(_) => Outcome::Failed,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::UpToDate => "up-to-date",
            Outcome::Deferred => "deferred",
            Outcome::Refused => "refused",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        }
    }
}

fn doc_json(doc: &UpdateStatus) -> String {
    serde_json::to_string(doc).unwrap_or_else(|_| "null".into())
}

impl Hub {
    /// A hub starting from `doc` (the status file, or idle); `consent`:
    /// downloads wait for `accept`; `steer`: inhibits, consent, suspend,
    /// resume and cancel are served (not in hawkBit mode). Returns the
    /// server's end of the wake-up pair too.
    pub fn new(
        doc: UpdateStatus,
        consent: bool,
        steer: bool,
    ) -> std::io::Result<(Arc<Hub>, UnixStream)> {
        let (wake, server_end) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        server_end.set_nonblocking(true)?;
        let hub = Hub {
            shared: Mutex::new(Shared {
                doc,
                doc_seq: 1,
                events: VecDeque::new(),
                event_seq: 0,
                running: false,
                suspended: false,
                cancel: false,
                check_now: false,
                next_check: None,
                inhibits: Vec::new(),
                next_inhibit: 1,
                inhibit_deferred: false,
                consent,
                steer,
                offer: None,
                answer: None,
                served: (0, true),
            }),
            cond: Condvar::new(),
            wake,
        };
        Ok((Arc::new(hub), server_end))
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere aborts the process (panic = "abort"), so a
        // poisoned lock cannot be observed; take the data either way.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the server something changed (a full pair means it already knows).
    fn wake_server(&self) {
        let _ = (&self.wake).write(&[1]);
    }

    fn push(&self, s: &mut Shared, line: String) {
        s.event_seq += 1;
        s.events.push_back((s.event_seq, s.doc_seq, line));
        while s.events.len() > KEEP_EVENTS {
            s.events.pop_front();
        }
        self.wake_server();
    }

    // --- the update loop's side ---

    /// A run begins.
    pub fn begin_run(&self) {
        let mut s = self.lock();
        s.running = true;
        s.cancel = false;
        s.check_now = false;
        self.push(&mut s, protocol::event("state", "\"state\":\"running\""));
    }

    /// The run ended with `outcome` (`None`: not worth an event); `detail`
    /// is its one-line reason (empty when there is none).
    pub fn end_run(&self, outcome: Option<Outcome>, detail: &str) {
        let mut s = self.lock();
        s.running = false;
        s.suspended = false;
        s.cancel = false;
        s.inhibit_deferred = outcome == Some(Outcome::Deferred) && s.inhibit_deferred;
        if let Some(outcome) = outcome {
            let version = s
                .doc
                .version
                .as_deref()
                .map_or_else(|| "null".into(), crate::json::string);
            let line = protocol::event(
                "outcome",
                &format!(
                    "\"result\":\"{}\",\"version\":{version},\"detail\":{}",
                    outcome.name(),
                    crate::json::string(detail)
                ),
            );
            self.push(&mut s, line);
        }
        self.push(&mut s, protocol::event("state", "\"state\":\"idle\""));
    }

    /// The run's status document changed (`phase_changed`: a new phase).
    pub fn publish(&self, doc: &UpdateStatus, phase_changed: bool) {
        let mut s = self.lock();
        s.doc = doc.clone();
        s.doc_seq += 1;
        if phase_changed {
            let line = protocol::event("phase", &format!("\"update\":{}", doc_json(doc)));
            self.push(&mut s, line);
        } else {
            self.wake_server();
        }
    }

    /// Between chunks: waits while suspended; `Err(Cancelled)` after a
    /// `cancel`.
    pub fn go_on(&self) -> Result<()> {
        let mut s = self.lock();
        loop {
            if s.cancel {
                return Err(Error::Cancelled);
            }
            if !s.suspended {
                return Ok(());
            }
            s = self.cond.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Sleeps until the next cycle: `d`, or less after `check-now` (or an
    /// answer to an offer, or the last inhibit released after it deferred).
    pub fn sleep(&self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut s = self.lock();
        s.next_check = Some(deadline);
        let mut s = self.wait_until(s, deadline, |s| s.check_now);
        s.check_now = false;
        s.next_check = None;
    }

    /// Waits on the condition variable until `done` holds or `deadline`
    /// passes; returns the lock.
    fn wait_until<'a>(
        &'a self,
        mut s: MutexGuard<'a, Shared>,
        deadline: Instant,
        done: impl Fn(&Shared) -> bool,
    ) -> MutexGuard<'a, Shared> {
        while !done(&s) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .cond
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        s
    }

    // --- the server's side ---

    /// The server handed out the events up to `cursor`; `flushed`: every
    /// client's buffer was written.
    pub(super) fn served(&self, cursor: u64, flushed: bool) {
        let mut s = self.lock();
        // Wakes the waiters (the exit drain) only on news: the server
        // calls this at every turn of its loop.
        if s.served != (cursor, flushed) {
            s.served = (cursor, flushed);
            self.cond.notify_all();
        }
    }

    /// Waits (at most `limit`) until the server has written every event so
    /// far to every client — before the daemon exits (`--max-cycles`), so
    /// the last `outcome` reaches the subscribers.
    pub fn drain(&self, limit: Duration) {
        let s = self.lock();
        drop(self.wait_until(s, Instant::now() + limit, |s| {
            s.served.0 >= s.event_seq && s.served.1
        }));
    }

    /// The current document's sequence number.
    pub(super) fn doc_seq(&self) -> u64 {
        self.lock().doc_seq
    }

    /// Events after `cursor` and the current document.
    pub(super) fn news(&self, cursor: u64) -> News {
        let s = self.lock();
        News {
            events: s
                .events
                .iter()
                .filter(|(seq, _, _)| *seq > cursor)
                .map(|(_, d, line)| (*d, line.clone()))
                .collect(),
            cursor: s.event_seq,
            progress: (
                s.doc_seq,
                protocol::event("progress", &format!("\"update\":{}", doc_json(&s.doc))),
            ),
        }
    }

    /// Serves one request (all but `subscribe`, which the server keeps per
    /// connection): the reply line.
    pub(super) fn handle(&self, id: Option<u64>, cmd: &Command) -> String {
        let mut s = self.lock();
        let r = match cmd {
            Command::Status | Command::Subscribe { .. } => Ok(status(&mut s)),
            Command::CheckNow => check_now(&mut s),
            _ if !s.steer => Err(
                "not available in hawkBit mode: the DDI server steers the update (status, subscribe and check-now are)"
                    .into(),
            ),
            Command::Accept { version } => answer(&mut s, version, true),
            Command::Decline { version } => answer(&mut s, version, false),
            Command::Inhibit { reason, lease_s } => inhibit(&mut s, reason, *lease_s),
            Command::Release { inhibit } => release(&mut s, *inhibit),
            Command::Suspend => suspend(&mut s),
            Command::Resume => resume(&mut s),
            Command::Cancel => cancel(&mut s),
        };
        let state = match cmd {
            Command::Suspend | Command::Resume if r.is_ok() => Some(state_name(&s)),
            _ => None,
        };
        if let Some(st) = state {
            self.push(
                &mut s,
                protocol::event("state", &format!("\"state\":\"{st}\"")),
            );
        }
        drop(s);
        // Wakes a suspended writer (resume, cancel) and the sleeping loop.
        self.cond.notify_all();
        match r {
            Ok(fields) => protocol::ok(id, &fields),
            Err(e) => protocol::error(id, &e),
        }
    }
}

fn state_name(s: &Shared) -> &'static str {
    match (s.running, s.suspended) {
        (false, _) => "idle",
        (true, false) => "running",
        (true, true) => "suspended",
    }
}

fn prune(s: &mut Shared) {
    let now = Instant::now();
    s.inhibits.retain(|i| i.until > now);
}

fn status(s: &mut Shared) -> String {
    prune(s);
    let now = Instant::now();
    let inhibits: Vec<String> = s
        .inhibits
        .iter()
        .map(|i| {
            format!(
                "{{\"id\":{},\"reason\":{},\"left_s\":{}}}",
                i.id,
                crate::json::string(&i.reason),
                i.until.saturating_duration_since(now).as_secs()
            )
        })
        .collect();
    let next = s.next_check.map_or_else(
        || "null".into(),
        |t| t.saturating_duration_since(now).as_secs().to_string(),
    );
    format!(
        "\"state\":\"{}\",\"consent\":\"{}\",\"update\":{},\"offer\":{},\"inhibits\":[{}],\"next_check_s\":{next}",
        state_name(s),
        if s.consent { "required" } else { "auto" },
        doc_json(&s.doc),
        s.offer.as_ref().map_or("null", |(_, json)| json.as_str()),
        inhibits.join(","),
    )
}

fn check_now(s: &mut Shared) -> std::result::Result<String, String> {
    if s.running {
        return Err(format!("a run is in progress ({})", s.doc.phase));
    }
    s.check_now = true;
    Ok(String::new())
}

fn answer(s: &mut Shared, version: &str, accepted: bool) -> std::result::Result<String, String> {
    if !s.consent {
        return Err("this device does not ask for consent ([control] consent = \"auto\")".into());
    }
    match &s.offer {
        None => Err("no release is offered".into()),
        Some((v, _)) if v != version => Err(format!(
            "the offered release is {v}, not {}",
            crate::error::quote(version)
        )),
        Some(_) => {
            s.answer = Some((version.to_owned(), accepted));
            s.offer = None;
            s.check_now = true;
            Ok(String::new())
        }
    }
}

fn inhibit(s: &mut Shared, reason: &str, lease_s: u64) -> std::result::Result<String, String> {
    prune(s);
    if s.inhibits.len() >= MAX_INHIBITS {
        return Err(format!("{MAX_INHIBITS} inhibits are held already"));
    }
    let id = s.next_inhibit;
    s.next_inhibit += 1;
    s.inhibits.push(Inhibit {
        id,
        reason: reason.to_owned(),
        until: Instant::now() + Duration::from_secs(lease_s),
    });
    Ok(format!("\"inhibit\":{id},\"lease_s\":{lease_s}"))
}

fn release(s: &mut Shared, id: u64) -> std::result::Result<String, String> {
    prune(s);
    let before = s.inhibits.len();
    s.inhibits.retain(|i| i.id != id);
    if s.inhibits.len() == before {
        return Err(format!("no inhibit {id} is held (released or expired)"));
    }
    if s.inhibits.is_empty() && s.inhibit_deferred {
        s.inhibit_deferred = false;
        s.check_now = true;
    }
    Ok(String::new())
}

fn suspend(s: &mut Shared) -> std::result::Result<String, String> {
    if !s.running {
        return Err("nothing to suspend: no update is running".into());
    }
    s.suspended = true;
    Ok(String::new())
}

fn resume(s: &mut Shared) -> std::result::Result<String, String> {
    if !s.suspended {
        return Err("nothing to resume: not suspended".into());
    }
    s.suspended = false;
    Ok(String::new())
}

fn cancel(s: &mut Shared) -> std::result::Result<String, String> {
    if !s.running {
        return Err("nothing to cancel: no update is running".into());
    }
    if matches!(
        s.doc.phase,
        Phase::Activating | Phase::Installed | Phase::Rebooting
    ) {
        return Err(format!("too late to cancel: {}", s.doc.phase));
    }
    s.cancel = true;
    Ok(String::new())
}

/// Inhibits and consent, asked by the policy before its hooks
/// (docs/local-api.md "What the policy hears").
impl Voice for Hub {
    fn name(&self) -> &str {
        "local control"
    }

    fn answer(&self, offer: &Offer, now: i64) -> Answer {
        let mut s = self.lock();
        prune(&mut s);
        let t = Instant::now();
        if let Some(i) = s.inhibits.iter().max_by_key(|i| i.until) {
            let left = i.until.saturating_duration_since(t).as_secs() as i64;
            let note = format!("inhibit {} ({})", i.id, i.reason);
            s.inhibit_deferred = true;
            return Answer::Defer {
                note,
                until: Some(now.saturating_add(left.max(1))),
            };
        }
        s.inhibit_deferred = false;
        if offer.phase != PolicyPhase::Download || !s.consent {
            return Answer::Proceed;
        }
        let to = &offer.to_version;
        match &s.answer {
            Some((v, true)) if v == to => return Answer::Proceed,
            Some((v, false)) if v == to => {
                return Answer::Refuse {
                    note: "declined on the control socket".into(),
                }
            }
            _ => {}
        }
        if s.offer.as_ref().map(|(v, _)| v) != Some(to) {
            let json = offer.to_json().trim_end().to_owned();
            let line = protocol::event("offer", &format!("\"offer\":{json}"));
            s.offer = Some((to.clone(), json));
            self.push(&mut s, line);
        }
        Answer::Defer {
            note: format!("waiting for consent to {to} (accept or decline on the control socket)"),
            until: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(consent: bool, steer: bool) -> Arc<Hub> {
        Hub::new(UpdateStatus::idle(None), consent, steer)
            .unwrap()
            .0
    }

    fn reply(h: &Hub, cmd: Command) -> serde_json::Value {
        serde_json::from_str(&h.handle(Some(1), &cmd)).unwrap()
    }

    #[test]
    fn in_hawkbit_mode_only_status_subscribe_and_check_now_are_served() {
        let h = hub(false, false);
        assert_eq!(reply(&h, Command::Status)["ok"], true);
        assert_eq!(reply(&h, Command::CheckNow)["ok"], true);
        h.begin_run();
        for cmd in [
            Command::Suspend,
            Command::Cancel,
            Command::Resume,
            Command::Inhibit {
                reason: "cooking".into(),
                lease_s: 60,
            },
            Command::Accept {
                version: "1.0.0".into(),
            },
        ] {
            let r = reply(&h, cmd.clone());
            assert_eq!(r["ok"], false, "{cmd:?}");
            assert!(r["error"].as_str().unwrap().contains("hawkBit"), "{r}");
        }
        // The same commands are served by the daemon's own loop.
        let h = hub(false, true);
        h.begin_run();
        assert_eq!(reply(&h, Command::Suspend)["ok"], true);
        assert_eq!(reply(&h, Command::Cancel)["ok"], true);
        assert!(matches!(h.go_on(), Err(Error::Cancelled)));
    }
}
