//! Sending the queue, oldest first, each entry by its kind:
//!
//! * a fleet report: `PUT <target>/<product>/<to>/<device>/<seq>.json.sig`,
//!   then the `.json` itself (a reader that sees the report finds its
//!   signature already there). PUT of the same bytes to the same name is
//!   idempotent, so a delivery cut off after the server stored a report but
//!   before the device removed it only sends it again.
//! * a hawkBit feedback: `POST` of the document to its action's feedback
//!   URL with the DDI client (its authorization). A repeated final
//!   feedback is harmless to a DDI server (the action is closed either
//!   way); one the server refuses for good (404/409/410: the action is gone
//!   or closed) is dropped with a warning, so it cannot block the queue.
//!
//! Retry rules are docs/network.md's: 5xx/408/429/timeouts/resets are
//! transient (backoff, bounded), other 4xx and TLS errors end this run for
//! that kind (the entry stays queued for the next run; entries of the other
//! kind still go). The response body is never read.

use std::time::{Duration, Instant};

use super::queue::{self, Kind, Queue};
use crate::net::{join_url, Client, NetError, NetErrorKind};

/// What one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Entries the servers accepted.
    pub sent: usize,
    /// Entries still queued.
    pub left: usize,
    /// Why the run stopped early for a kind, if it did.
    pub error: Option<String>,
}

/// Where each kind of entry goes in this run; a kind without a way out
/// stays queued.
#[derive(Clone, Copy, Default)]
pub struct Routes<'a> {
    /// Fleet reports: the client and the report target URL.
    pub reports: Option<(&'a Client, &'a str)>,
    /// hawkBit feedback: the DDI client.
    pub feedback: Option<&'a Client>,
}

fn retrying(
    mut once: impl FnMut() -> Result<(), NetError>,
    client: &Client,
) -> Result<(), NetError> {
    let mut backoff = client.settings().backoff.clone();
    loop {
        match once() {
            Err(e) if e.is_transient() => match backoff.next_delay() {
                Some(d) => std::thread::sleep(d),
                None => return Err(e),
            },
            r => return r,
        }
    }
}

/// Sends queued entries, oldest first, until every kind with a route is
/// sent or has failed once, or `budget` has passed.
pub fn deliver(q: &Queue, routes: Routes<'_>, budget: Duration) -> Delivered {
    let start = Instant::now();
    let mut out = Delivered::default();
    let (mut reports, mut feedback) = (routes.reports, routes.feedback);
    for e in q.entries() {
        if start.elapsed() >= budget {
            out.error = Some("time budget used up".into());
            break;
        }
        let (json, attachment) = match (std::fs::read(&e.json), std::fs::read(&e.attachment)) {
            (Ok(j), Ok(a)) => (j, a),
            // Removed meanwhile by the bound, or debris.
            _ => {
                queue::remove(&e);
                continue;
            }
        };
        let sent = match &e.kind {
            Kind::Report { dest } => {
                let Some((client, target)) = reports else {
                    continue;
                };
                let url = join_url(target, dest);
                let r = retrying(
                    || client.put_once(&format!("{url}.sig"), &attachment),
                    client,
                )
                .and_then(|()| retrying(|| client.put_once(&url, &json), client));
                if r.is_err() {
                    reports = None;
                }
                r
            }
            Kind::Feedback { action } => {
                let Some(client) = feedback else { continue };
                let url = String::from_utf8_lossy(&attachment);
                let r = retrying(|| client.send_json("POST", &url, &json), client);
                match r {
                    Err(err) if matches!(err.kind, NetErrorKind::Status(404 | 409 | 410)) => {
                        log::warn!("hawkbit: feedback of action {action} dropped: {err}");
                        queue::remove(&e);
                        continue;
                    }
                    Err(_) => feedback = None,
                    Ok(()) => {}
                }
                r
            }
        };
        match sent {
            Ok(()) => {
                queue::remove(&e);
                out.sent += 1;
            }
            Err(err) => out.error = Some(err.to_string()),
        }
    }
    out.left = q.entries().len();
    out
}
