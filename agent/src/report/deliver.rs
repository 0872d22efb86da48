//! Sending queued reports: `PUT <target>/<product>/<to>/<device>/<seq>.json.sig`,
//! then the `.json` itself (a reader that sees the report finds its
//! signature already there). PUT of the same bytes to the same name is
//! idempotent, so a delivery cut off after the server stored a report but
//! before the device removed it only sends it again.
//!
//! Retry rules are docs/network.md's: 5xx/408/429/timeouts/resets are
//! transient (backoff, bounded), other 4xx and TLS errors end this run (the
//! report stays queued for the next run). The response body is never read.

use std::time::{Duration, Instant};

use super::queue::{self, Queue};
use crate::net::{join_url, Client, NetError};

/// What one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Reports the target accepted.
    pub sent: usize,
    /// Reports still queued.
    pub left: usize,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

fn put_retrying(client: &Client, url: &str, body: &[u8]) -> Result<(), NetError> {
    let mut backoff = client.settings().backoff.clone();
    loop {
        match client.put_once(url, body) {
            Err(e) if e.is_transient() => match backoff.next_delay() {
                Some(d) => std::thread::sleep(d),
                None => return Err(e),
            },
            r => return r,
        }
    }
}

/// Sends queued reports, oldest first, until the queue is empty, a report
/// fails, or `budget` has passed.
pub fn deliver(client: &Client, target: &str, q: &Queue, budget: Duration) -> Delivered {
    let start = Instant::now();
    let mut out = Delivered::default();
    loop {
        let entries = q.entries();
        let Some(e) = entries.first() else {
            return out;
        };
        out.left = entries.len();
        if start.elapsed() >= budget {
            out.error = Some("time budget used up".into());
            return out;
        }
        let (json, sig) = match (std::fs::read(&e.json), std::fs::read(&e.sig)) {
            (Ok(j), Ok(s)) => (j, s),
            // Removed meanwhile by the bound, or debris: look again.
            _ => {
                queue::remove(e);
                continue;
            }
        };
        let url = join_url(target, &e.dest);
        let sent = put_retrying(client, &format!("{url}.sig"), &sig)
            .and_then(|()| put_retrying(client, &url, &json));
        match sent {
            Ok(()) => {
                queue::remove(e);
                out.sent += 1;
                out.left -= 1;
            }
            Err(err) => {
                out.error = Some(err.to_string());
                return out;
            }
        }
    }
}
