//! Download progress: a bar with rate and ETA on a terminal, a log line now
//! and then otherwise, and the machine-readable status file
//! `<state_dir>/progress.json` that `status --json` and the MCU display read.
//!
//! `progress.json` (written atomically, at most once a second):
//! ```json
//! {"format":1,"phase":"downloading","version":"1.4.0","done":1048576,
//!  "total":4194304,"percent":25,"rate_bps":524288,"eta_s":6,"time":1795564800}
//! ```
//! `phase` is one of `checking`, `downloading`, `installing`, `done`,
//! `failed`, `idle` (the MCU protocol's phases plus the two ends); `total`,
//! `percent`, `eta_s` are `null` while the length is unknown.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The status file's name in `state_dir`.
pub const STATUS_FILE: &str = "progress.json";

/// One snapshot of the status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Always 1.
    pub format: u32,
    /// What the agent is doing.
    pub phase: &'static str,
    /// The release being fetched, if known.
    pub version: Option<String>,
    /// Bytes done.
    pub done: u64,
    /// Bytes in total, if known.
    pub total: Option<u64>,
    /// `done` as a percentage of `total`.
    pub percent: Option<u8>,
    /// Recent rate, bytes per second.
    pub rate_bps: u64,
    /// Estimated seconds left.
    pub eta_s: Option<u64>,
    /// Seconds since the epoch of this snapshot.
    pub time: u64,
}

/// Shows and records progress of one phase.
#[derive(Debug)]
pub struct Reporter {
    status_path: Option<PathBuf>,
    tty: bool,
    label: String,
    version: Option<String>,
    phase: &'static str,
    start: Instant,
    start_bytes: Option<u64>,
    last_show: Option<Instant>,
    last_file: Option<Instant>,
    log_every: Duration,
}

impl Reporter {
    /// A reporter for `label` (e.g. a file name), writing the status file in
    /// `state_dir` when given. A bar is drawn when stderr is a terminal.
    pub fn new(label: &str, version: Option<String>, state_dir: Option<PathBuf>) -> Reporter {
        Reporter {
            status_path: state_dir.map(|d| d.join(STATUS_FILE)),
            tty: std::io::stderr().is_terminal(),
            label: label.to_owned(),
            version,
            phase: "downloading",
            start: Instant::now(),
            start_bytes: None,
            last_show: None,
            last_file: None,
            log_every: Duration::from_secs(10),
        }
    }

    /// Records a phase with no byte counts (`checking`, `done`, `failed`, `idle`).
    pub fn phase(&mut self, phase: &'static str) {
        self.phase = phase;
        let s = self.snapshot(0, None);
        self.write_file(&s);
    }

    fn snapshot(&self, done: u64, total: Option<u64>) -> Status {
        let secs = self.start.elapsed().as_secs_f64();
        let fresh = done.saturating_sub(self.start_bytes.unwrap_or(done));
        let rate = if secs > 0.2 {
            (fresh as f64 / secs) as u64
        } else {
            0
        };
        let percent = total.map(|t| {
            (done.min(t).saturating_mul(100))
                .checked_div(t)
                .map_or(100, |p| u8::try_from(p).unwrap_or(100))
        });
        let eta_s = match (total, rate) {
            (Some(t), r) if r > 0 => Some(t.saturating_sub(done) / r),
            _ => None,
        };
        Status {
            format: 1,
            phase: self.phase,
            version: self.version.clone(),
            done,
            total,
            percent,
            rate_bps: rate,
            eta_s,
            time: crate::state::now(),
        }
    }

    fn write_file(&self, s: &Status) {
        if let Some(path) = &self.status_path {
            if let Ok(mut text) = serde_json::to_vec(s) {
                text.push(b'\n');
                if let Err(e) = crate::state::write_atomic(path, &text) {
                    log::debug!("status file: {e}");
                }
            }
        }
    }

    /// Called after every chunk; shows at most ~4 times a second (terminal),
    /// every `log_every` (logs), writes the file at most once a second.
    pub fn update(&mut self, done: u64, total: Option<u64>) {
        if self.start_bytes.is_none() {
            self.start_bytes = Some(done);
            self.start = Instant::now();
        }
        let now = Instant::now();
        let due = |last: Option<Instant>, every: Duration| {
            last.is_none_or(|l| now.duration_since(l) >= every)
        };
        let finished = total == Some(done);
        let show_every = if self.tty {
            Duration::from_millis(250)
        } else {
            self.log_every
        };
        if !(finished
            || due(self.last_show, show_every)
            || due(self.last_file, Duration::from_secs(1)))
        {
            return;
        }
        let s = self.snapshot(done, total);
        if finished || due(self.last_file, Duration::from_secs(1)) {
            self.write_file(&s);
            self.last_file = Some(now);
        }
        if finished || due(self.last_show, show_every) {
            self.last_show = Some(now);
            let line = render(&self.label, &s, self.tty);
            if self.tty {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r{line}\x1b[K");
                if finished {
                    let _ = writeln!(err);
                }
            } else {
                log::info!("{line}");
            }
        }
    }
}

/// `1.5 MiB`-style sizes.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One progress line: `label [#####-----]  40% 1.2 MiB/3.0 MiB 512.0 KiB/s ETA 4s`
/// (the bar only on a terminal).
pub fn render(label: &str, s: &Status, bar: bool) -> String {
    let mut out = format!("{label} ");
    if let (Some(p), true) = (s.percent, bar) {
        let filled = usize::from(p) * 20 / 100;
        out.push('[');
        out.extend(std::iter::repeat_n('#', filled));
        out.extend(std::iter::repeat_n('-', 20 - filled));
        out.push_str("] ");
    }
    if let Some(p) = s.percent {
        out.push_str(&format!("{p:3}% "));
    }
    out.push_str(&human(s.done));
    if let Some(t) = s.total {
        out.push('/');
        out.push_str(&human(t));
    }
    out.push_str(&format!(" {}/s", human(s.rate_bps)));
    if let Some(eta) = s.eta_s {
        out.push_str(&format!(" ETA {}", eta_text(eta)));
    }
    out
}

fn eta_text(s: u64) -> String {
    match s {
        0..=99 => format!("{s}s"),
        100..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(done: u64, total: Option<u64>, rate: u64) -> Status {
        Status {
            format: 1,
            phase: "downloading",
            version: None,
            done,
            total,
            percent: total.map(|t| (done * 100 / t) as u8),
            rate_bps: rate,
            eta_s: total.map(|t| (t - done) / rate.max(1)),
            time: 0,
        }
    }

    #[test]
    fn line_shows_percent_sizes_rate_eta() {
        let s = status(3 << 20, Some(12 << 20), 1 << 20);
        assert_eq!(
            render("rootfs", &s, true),
            "rootfs [#####---------------]  25% 3.0 MiB/12.0 MiB 1.0 MiB/s ETA 9s"
        );
        assert_eq!(
            render("rootfs", &s, false),
            "rootfs  25% 3.0 MiB/12.0 MiB 1.0 MiB/s ETA 9s"
        );
        assert_eq!(render("x", &status(500, None, 0), false), "x 500 B 0 B/s");
        assert_eq!(eta_text(3725), "1h02m");
    }

    #[test]
    fn status_file_is_written_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reporter::new("f", Some("1.2.3".into()), Some(dir.path().into()));
        r.update(10, Some(10));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATUS_FILE)).unwrap()).unwrap();
        assert_eq!(v["phase"], "downloading");
        assert_eq!(v["done"], 10);
        assert_eq!(v["percent"], 100);
        assert_eq!(v["version"], "1.2.3");
        r.phase("done");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATUS_FILE)).unwrap()).unwrap();
        assert_eq!(v["phase"], "done");
    }
}
