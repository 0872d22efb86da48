//! The power-safe report queue in `state_dir`.
//!
//! * `report-state`: the next sequence number (advanced and synced
//!   *before* a report with that number is written, so a number is never
//!   used twice, even across a power cut), the count of reports dropped
//!   because the queue was full, the installed-but-unconfirmed release ([`Pending`]) and
//!   the keys of recent events (a failure repeated every poll is reported
//!   once).
//! * `reports/<seq>@<product>@<to>@<device>.json` + `.json.sig`: one queued
//!   fleet report (its destination in the name, so the device never parses
//!   a report again: the parser stays out of the binary).
//! * `reports/<seq>@ddi@<action>.json` + `.json.url`: one queued hawkBit
//!   DDI feedback document and the URL it is POSTed to (the final
//!   `success`/`failure` of an action: it must survive a power cut exactly
//!   like a report, so it waits in the same queue, numbered from the same
//!   sequence, and is delivered by the same loop, `deliver.rs`).
//!
//! The attachment (`.sig` / `.url`) is written first and the `.json` last,
//! both atomically, so a `.json` present means a whole entry. Delivered
//! entries are removed.
//!
//! The queue holds at most [`MAX_QUEUED`] reports and [`MAX_QUEUE_BYTES`]
//! bytes; beyond that the oldest are dropped and counted.

use std::path::{Path, PathBuf};

use crate::durable::replace as write_atomic;
use crate::slots::Slot;
use crate::{Error, Result};

/// Most reports kept waiting for delivery.
pub const MAX_QUEUED: usize = 64;
/// Most bytes (reports and signatures) kept waiting for delivery.
pub const MAX_QUEUE_BYTES: u64 = 64 * 1024;
/// Recent event keys remembered for de-duplication.
pub const RECENT: usize = 8;
/// The state file.
pub use crate::state::REPORT_STATE_FILE as STATE_FILE;
/// First line of the state file.
const STATE_HEADER: &str = "ota-report-state 1";
/// The queue directory.
pub use crate::state::REPORT_QUEUE_DIR as QUEUE_DIR;

/// A release installed and activated but not yet confirmed or rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The release the device ran before.
    pub from: Option<String>,
    /// The installed release.
    pub to: String,
    /// The slot it was written to.
    pub slot: Slot,
    /// Why its trial is failing, if the device noted it (`health check X
    /// failed` from `mark-good`, `marked bad` from `mark-bad`).
    pub cause: Option<String>,
}

/// The state file: lines `name value`, written by hand (a serde derive
/// would cost the device binary several KB):
///
/// ```text
/// ota-report-state 1
/// next_seq 12
/// dropped 0
/// pending 1.3.2 1.4.0 b health check 50-app failed   (from or -, to, slot, cause or -)
/// recent committed|1.4.0|             (one line each, oldest first)
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Sequence number of the next report.
    pub next_seq: u64,
    /// Reports dropped because the queue was full.
    pub dropped: u64,
    /// See [`Pending`].
    pub pending: Option<Pending>,
    /// Keys of recent events, newest last.
    pub recent: Vec<String>,
}

/// The queue of one state directory.
#[derive(Debug, Clone)]
pub struct Queue {
    state_dir: PathBuf,
}

/// What a queued entry is, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A signed fleet report, PUT below the report target at `dest`
    /// (`<product>/<to>/<device>/<seq>.json`); the attachment is its
    /// detached signature.
    Report {
        /// Destination below the report target.
        dest: String,
    },
    /// A hawkBit DDI feedback document of action `action`, POSTed to the
    /// URL that is its attachment.
    Feedback {
        /// The DDI action id.
        action: String,
    },
}

/// Name part that marks a feedback entry (`<seq>@ddi@<action>.json`).
const FEEDBACK_TAG: &str = "ddi";

/// One queued entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number.
    pub seq: u64,
    /// Report or feedback.
    pub kind: Kind,
    /// The document: the report, or the feedback.
    pub json: PathBuf,
    /// The report's signature, or the feedback's URL.
    pub attachment: PathBuf,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(p, e)
}

/// `write_atomic`, removing its temporary file when it fails (a full disk
/// must not leave debris that grows).
fn write_clean(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).inspect_err(|_| {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            let _ = std::fs::remove_file(dir.join(format!(".{}.tmp", name.to_string_lossy())));
        }
    })
}

impl Queue {
    /// The queue in `state_dir`.
    pub fn new(state_dir: &Path) -> Queue {
        Queue {
            state_dir: state_dir.to_owned(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.state_dir.join(QUEUE_DIR)
    }

    /// Reads the state; a missing file is the initial state, a damaged one
    /// is an error (the caller logs it; sequence numbers must not restart
    /// silently).
    pub fn state(&self) -> Result<State> {
        let path = self.state_dir.join(STATE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => parse_state(&t).ok_or(Error::State {
                path,
                reason: "corrupt record".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, s: &State) -> Result<()> {
        std::fs::create_dir_all(&self.state_dir).map_err(io(&self.state_dir))?;
        let mut t = format!(
            "{STATE_HEADER}\nnext_seq {}\ndropped {}\n",
            s.next_seq, s.dropped
        );
        if let Some(p) = &s.pending {
            t.push_str(&format!(
                "pending {} {} {} {}\n",
                p.from.as_deref().unwrap_or("-"),
                p.to,
                p.slot,
                p.cause.as_deref().unwrap_or("-")
            ));
        }
        for r in &s.recent {
            t.push_str(&format!("recent {r}\n"));
        }
        write_clean(&self.state_dir.join(STATE_FILE), t.as_bytes())
    }

    /// Takes the next sequence number (synced before it is used).
    pub fn take_seq(&self, s: &mut State) -> Result<u64> {
        let seq = s.next_seq;
        s.next_seq += 1;
        self.save(s)?;
        Ok(seq)
    }

    /// Queues a signed report, then enforces the bounds (dropping the
    /// oldest, counted in `s.dropped`, saved).
    /// `dest` is `<product>/<to>/<device>/<seq>.json` (segments checked by
    /// the caller to be `[A-Za-z0-9._+-]+`).
    pub fn push(&self, s: &mut State, seq: u64, dest: &str, json: &[u8], sig: &[u8]) -> Result<()> {
        let mut parts = dest.split('/');
        let (p, t, d) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        self.put_entry(s, &format!("{seq:010}@{p}@{t}@{d}.json"), ".sig", sig, json)
    }

    /// Queues the DDI feedback document `json` of action `action` (checked
    /// by the caller to be `[A-Za-z0-9._+-]+`), to be POSTed to `url`,
    /// with the next sequence number; then enforces the bounds.
    pub fn push_feedback(&self, s: &mut State, action: &str, url: &str, json: &[u8]) -> Result<()> {
        let seq = self.take_seq(s)?;
        let name = format!("{seq:010}@{FEEDBACK_TAG}@{action}.json");
        self.put_entry(s, &name, ".url", url.as_bytes(), json)
    }

    /// Whether a feedback entry of `action` is queued.
    pub fn has_feedback(&self, action: &str) -> bool {
        self.entries()
            .iter()
            .any(|e| matches!(&e.kind, Kind::Feedback { action: a } if a == action))
    }

    /// Writes `<name><suffix>` (the attachment), then `<name>`; then the bounds.
    fn put_entry(
        &self,
        s: &mut State,
        name: &str,
        suffix: &str,
        attachment: &[u8],
        json: &[u8],
    ) -> Result<()> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let second = dir.join(format!("{name}{suffix}"));
        write_clean(&second, attachment)?;
        if let Err(e) = write_clean(&dir.join(name), json) {
            let _ = std::fs::remove_file(second);
            return Err(e);
        }
        self.enforce(s)
    }

    /// Drops the oldest entries beyond the bounds.
    pub fn enforce(&self, s: &mut State) -> Result<()> {
        let entries = self.entries();
        let sizes: Vec<u64> = entries
            .iter()
            .map(|e| {
                [&e.json, &e.attachment]
                    .iter()
                    .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                    .sum()
            })
            .collect();
        let mut total: u64 = sizes.iter().sum();
        let mut count = entries.len();
        let mut dropped = 0;
        for (e, size) in entries.iter().zip(&sizes) {
            if count <= MAX_QUEUED && total <= MAX_QUEUE_BYTES {
                break;
            }
            remove(e);
            count -= 1;
            total -= size;
            dropped += 1;
        }
        if dropped > 0 {
            s.dropped += dropped;
            log::warn!("report queue full: dropped the {dropped} oldest report(s)");
            self.save(s)?;
        }
        Ok(())
    }

    /// Queued entries, oldest first. Debris (a signature without its
    /// report, temporary files) is removed on the way.
    pub fn entries(&self) -> Vec<Entry> {
        let dir = self.dir();
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut out = Vec::new();
        for n in &names {
            match n.strip_suffix(".json").and_then(parse_name) {
                Some((seq, kind)) => {
                    let suffix = match kind {
                        Kind::Report { .. } => "sig",
                        Kind::Feedback { .. } => "url",
                    };
                    out.push(Entry {
                        seq,
                        kind,
                        json: dir.join(n),
                        attachment: dir.join(format!("{n}.{suffix}")),
                    })
                }
                None => {
                    let whole = n
                        .strip_suffix(".sig")
                        .or_else(|| n.strip_suffix(".url"))
                        .is_some_and(|j| names.iter().any(|m| m == j));
                    if !whole {
                        let _ = std::fs::remove_file(dir.join(n));
                    }
                }
            }
        }
        // Insertion sort: a handful of entries, and no sort code to link.
        for i in 1..out.len() {
            let mut j = i;
            while j > 0 && out[j - 1].seq > out[j].seq {
                out.swap(j - 1, j);
                j -= 1;
            }
        }
        out
    }

    /// Bytes the queue holds.
    pub fn bytes(&self) -> u64 {
        self.entries()
            .iter()
            .flat_map(|e| [&e.json, &e.attachment])
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum()
    }
}

/// `<seq>@<product>@<to>@<device>` (a report) or `<seq>@ddi@<action>` (a
/// feedback): the sequence number (10 digits) and the kind; else `None`.
fn parse_name(stem: &str) -> Option<(u64, Kind)> {
    let mut f = stem.split('@');
    let seq = f
        .next()
        .filter(|s| s.len() == 10 && s.bytes().all(|c| c.is_ascii_digit()))?
        .parse()
        .ok()?;
    let parts: Vec<&str> = f.collect();
    if !parts.iter().all(|x| super::record::is_segment(x)) {
        return None;
    }
    match parts[..] {
        [FEEDBACK_TAG, action] => Some((
            seq,
            Kind::Feedback {
                action: action.to_owned(),
            },
        )),
        [p, t, d] => Some((
            seq,
            Kind::Report {
                dest: format!("{p}/{t}/{d}/{seq}.json"),
            },
        )),
        _ => None,
    }
}

fn parse_state(t: &str) -> Option<State> {
    let mut lines = t.lines();
    if lines.next()? != STATE_HEADER {
        return None;
    }
    let mut s = State::default();
    for l in lines {
        let (k, v) = l.split_once(' ')?;
        match k {
            "next_seq" => s.next_seq = v.parse().ok()?,
            "dropped" => s.dropped = v.parse().ok()?,
            "recent" => s.recent.push(v.to_owned()),
            "pending" => {
                let mut f = v.splitn(4, ' ');
                let opt = |x: &str| (x != "-").then(|| x.to_owned());
                let from = opt(f.next()?);
                let to = f.next()?.to_owned();
                let slot = f.next()?.parse().ok()?;
                let cause = opt(f.next()?);
                s.pending = Some(Pending {
                    from,
                    to,
                    slot,
                    cause,
                });
            }
            _ => return None,
        }
    }
    Some(s)
}

/// Removes a delivered or dropped entry (document first: then a
/// half-removed entry is debris, never a report without its signature).
pub fn remove(e: &Entry) {
    let _ = std::fs::remove_file(&e.json);
    let _ = std::fs::remove_file(&e.attachment);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::new(dir.path());
        let mut s = q.state().unwrap();
        for _ in 0..(MAX_QUEUED + 10) {
            let seq = q.take_seq(&mut s).unwrap();
            q.push(&mut s, seq, &format!("p/1.0/d/{seq}.json"), b"{}\n", b"sig")
                .unwrap();
        }
        let e = q.entries();
        assert_eq!(e.len(), MAX_QUEUED);
        assert_eq!(e[0].seq, 10);
        assert_eq!(
            e[0].kind,
            Kind::Report {
                dest: "p/1.0/d/10.json".into()
            }
        );
        assert_eq!(q.state().unwrap().dropped, 10);
        assert_eq!(q.state().unwrap().next_seq, MAX_QUEUED as u64 + 10);
        // Every field survives the file; damage is an error, not a reset.
        let full = State {
            next_seq: 7,
            dropped: 2,
            pending: Some(Pending {
                from: None,
                to: "1.4.0".into(),
                slot: Slot::B,
                cause: Some("health check 50 app failed".into()),
            }),
            recent: vec!["failed|1.4.0|writing: disk full".into(), "x".into()],
        };
        let q2 = Queue::new(&dir.path().join("other"));
        q2.save(&full).unwrap();
        assert_eq!(q2.state().unwrap(), full);
        std::fs::write(dir.path().join("other").join(STATE_FILE), "next_seq 1\n").unwrap();
        assert!(q2.state().is_err());
        // The byte bound: big reports push out more.
        let big = vec![b'x'; 4000];
        for _ in 0..20 {
            let seq = q.take_seq(&mut s).unwrap();
            q.push(&mut s, seq, &format!("p/1.0/d/{seq}.json"), &big, b"sig")
                .unwrap();
        }
        assert!(q.bytes() <= MAX_QUEUE_BYTES, "{}", q.bytes());
        // Debris is cleared: a lone signature and a temp file.
        let lone = dir.path().join("reports/0000099999@p@1.0@d.json.sig");
        let tmp = dir.path().join("reports/.0000099999@p@1.0@d.json.tmp");
        std::fs::write(&lone, b"x").unwrap();
        std::fs::write(&tmp, b"x").unwrap();
        let n = q.entries().len();
        assert!(!lone.exists() && !tmp.exists());
        assert_eq!(q.entries().len(), n);
    }

    #[test]
    fn feedback_and_reports_share_one_ordered_queue() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::new(dir.path());
        let mut s = q.state().unwrap();
        let seq = q.take_seq(&mut s).unwrap();
        q.push(&mut s, seq, "p/2.0/d/0.json", b"{\"r\":0}\n", b"sig")
            .unwrap();
        assert!(!q.has_feedback("7"));
        q.push_feedback(&mut s, "7", "http://h/feedback", b"{\"f\":1}")
            .unwrap();
        let seq = q.take_seq(&mut s).unwrap();
        q.push(&mut s, seq, "p/2.0/d/2.json", b"{\"r\":2}\n", b"sig")
            .unwrap();
        let e = q.entries();
        let kinds: Vec<(u64, Kind)> = e.iter().map(|e| (e.seq, e.kind.clone())).collect();
        assert_eq!(
            kinds,
            [
                (
                    0,
                    Kind::Report {
                        dest: "p/2.0/d/0.json".into()
                    }
                ),
                (1, Kind::Feedback { action: "7".into() }),
                (
                    2,
                    Kind::Report {
                        dest: "p/2.0/d/2.json".into()
                    }
                ),
            ]
        );
        assert_eq!(
            std::fs::read(&e[1].attachment).unwrap(),
            b"http://h/feedback"
        );
        assert_eq!(std::fs::read(&e[1].json).unwrap(), b"{\"f\":1}");
        assert!(q.has_feedback("7") && !q.has_feedback("8"));
        assert_eq!(
            q.state().unwrap().next_seq,
            3,
            "one sequence for both kinds"
        );
        // A URL file without its document is debris; a document whose
        // name does not parse is removed too.
        let lone = dir.path().join("reports/0000000009@ddi@9.json.url");
        let odd = dir.path().join("reports/0000000010@ddi@a@b@c.json");
        std::fs::write(&lone, b"x").unwrap();
        std::fs::write(&odd, b"x").unwrap();
        assert_eq!(q.entries().len(), 3);
        assert!(!lone.exists() && !odd.exists());
        remove(&e[1]);
        assert!(!e[1].attachment.exists() && q.entries().len() == 2);
    }
}
