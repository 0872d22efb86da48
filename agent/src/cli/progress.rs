//! Progress of `install`, `update` and `daemon` for people and the
//! appliance: every event goes to the one [`StatusWriter`]
//! (`state_dir/update-status.json`), and the document it keeps is then
//! shown on the appliance display (its phase mapped by
//! [`Phase::mcu`](crate::update_status::Phase::mcu)) and on stderr — a bar
//! redrawn at most 4 times a second on a terminal, otherwise a log line at
//! each phase and each 10 % step.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::mcu::ProgressSink;
use crate::slots::Slot;
use crate::update_status::{human, Phase, Progress, StatusWriter, UpdateStatus};

const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// The status file, the appliance display and the terminal.
pub(super) struct CliProgress<S> {
    writer: StatusWriter,
    display: S,
    tty: bool,
    /// A bar line is on the terminal without its newline.
    drawn: bool,
    last_draw: Option<Instant>,
    /// Last logged (phase, 10 % step), off a terminal.
    last_log: Option<(Phase, u8)>,
}

impl<S: ProgressSink> CliProgress<S> {
    /// A new run in `state_dir`; `from_version` is the installed release.
    pub(super) fn new(state_dir: &Path, from_version: Option<String>, display: S) -> Self {
        Self::with_writer(StatusWriter::new(state_dir, from_version), display)
    }

    fn with_writer(writer: StatusWriter, display: S) -> Self {
        CliProgress {
            writer,
            display,
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last_draw: None,
            last_log: None,
        }
    }

    /// Ends the bar line on a terminal.
    pub(super) fn end(&mut self) {
        if self.tty && self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }

    fn show(&mut self, phase_changed: bool) {
        let doc = self.writer.doc();
        // The appliance hears of an update only once there is one: a
        // failed channel check (server down) is not an update failure.
        if let (Some(p), Some(_)) = (doc.phase.mcu(), &doc.version) {
            self.display.show(p, doc.display_percent());
        }
        // Nothing to draw before an update is known; a failure is printed
        // once, as the command's error line.
        if matches!(doc.phase, Phase::Checking | Phase::Idle | Phase::Failed) {
            return;
        }
        let complete = doc.phase_bytes_total == Some(doc.phase_bytes_done);
        if self.tty {
            let now = Instant::now();
            let due = self
                .last_draw
                .is_none_or(|l| now.duration_since(l) >= REDRAW_EVERY);
            if !(phase_changed || complete || due) {
                return;
            }
            let line = render(doc, true);
            let mut err = std::io::stderr().lock();
            if phase_changed && self.drawn {
                let _ = writeln!(err);
            }
            let _ = write!(err, "\r{line}\x1b[K");
            // The last phase of a run ends its line (the result follows).
            self.drawn = !matches!(
                doc.phase,
                Phase::Installed | Phase::Rebooting | Phase::Downloaded
            );
            if !self.drawn {
                let _ = writeln!(err);
            }
            let _ = err.flush();
            self.last_draw = Some(now);
        } else {
            let step = doc.percent.map_or(0, |p| p / 10);
            if phase_changed || self.last_log != Some((doc.phase, step)) {
                self.last_log = Some((doc.phase, step));
                log::info!("{}", render(doc, false));
            }
        }
    }
}

impl<S: ProgressSink> Progress for CliProgress<S> {
    fn target(&mut self, version: &str, slot: Option<Slot>, total: Option<u64>) {
        self.writer.target(version, slot, total);
    }
    fn begin(&mut self, phase: Phase, image: Option<&str>, total: Option<u64>) {
        self.writer.begin(phase, image, total);
        self.show(true);
    }
    fn advance(&mut self, done: u64, overall: u64) {
        self.writer.advance(done, overall);
        self.show(false);
    }
    fn fail(&mut self, error: &str) {
        self.writer.fail(error);
        self.show(true);
        self.end();
    }
}

/// One progress line: `downloading  rootfs [#####---------------]  25%
/// 3.0 MiB/12.0 MiB 1.0 MiB/s ETA 9s` (the bar only with `bar`).
pub(super) fn render(s: &UpdateStatus, bar: bool) -> String {
    let mut out = format!("{:<12} ", s.phase.name());
    if let Some(image) = &s.image {
        out.push_str(image);
        out.push(' ');
    }
    if let (Some(p), true) = (s.percent, bar) {
        let filled = usize::from(p.min(100)) * 20 / 100;
        out.push('[');
        out.extend(std::iter::repeat_n('#', filled));
        out.extend(std::iter::repeat_n('-', 20 - filled));
        out.push_str("] ");
    }
    if let Some(p) = s.percent {
        out.push_str(&format!("{p:3}% "));
    }
    if let Some(t) = s.phase_bytes_total {
        out.push_str(&format!("{}/{}", human(s.phase_bytes_done), human(t)));
    } else if s.phase_bytes_done > 0 {
        out.push_str(&human(s.phase_bytes_done));
    }
    if let Some(r) = s.rate_bps {
        out.push_str(&format!(" {}/s", human(r)));
    }
    if let Some(eta) = s.eta_s {
        out.push_str(&format!(" ETA {}", eta_text(eta)));
    }
    let mut out = out.trim_end().to_owned();
    if let (Phase::Failed, Some(e)) = (s.phase, &s.error) {
        out.push_str(": ");
        out.push_str(e);
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
    use crate::mcu::Phase as M;

    fn doc(phase: Phase, done: u64, total: Option<u64>, rate: Option<u64>) -> UpdateStatus {
        let mut d = UpdateStatus::idle(None);
        d.phase = phase;
        d.image = Some("rootfs".into());
        d.phase_bytes_done = done;
        d.phase_bytes_total = total;
        d.percent = total.map(|t| crate::update_status::percent(done, t));
        d.rate_bps = rate;
        d.eta_s = match (total, rate) {
            (Some(t), Some(r)) => Some((t - done) / r),
            _ => None,
        };
        d
    }

    #[test]
    fn line_shows_phase_percent_sizes_rate_eta() {
        let s = doc(Phase::Downloading, 3 << 20, Some(12 << 20), Some(1 << 20));
        assert_eq!(
            render(&s, true),
            "downloading  rootfs [#####---------------]  25% 3.0 MiB/12.0 MiB 1.0 MiB/s ETA 9s"
        );
        assert_eq!(
            render(&s, false),
            "downloading  rootfs  25% 3.0 MiB/12.0 MiB 1.0 MiB/s ETA 9s"
        );
        assert_eq!(
            render(&doc(Phase::Writing, 500, None, None), false),
            "writing      rootfs 500 B"
        );
        let mut f = doc(Phase::Failed, 0, None, None);
        f.image = None;
        f.error = Some("disk full".into());
        assert_eq!(render(&f, false), "failed: disk full");
        let mut r = doc(Phase::ReadingBack, 1 << 20, Some(2 << 20), None);
        r.image = Some("rootfs".into());
        assert_eq!(
            render(&r, false),
            "reading-back rootfs  50% 1.0 MiB/2.0 MiB"
        );
        assert_eq!(eta_text(3725), "1h02m");
        assert_eq!(eta_text(125), "2m05s");
    }

    #[derive(Default)]
    struct Recorder(Vec<(M, u8)>);

    impl ProgressSink for Recorder {
        fn show(&mut self, phase: M, percent: u8) {
            if self.0.last() != Some(&(phase, percent)) {
                self.0.push((phase, percent));
            }
        }
    }

    /// The display follows the document's phases through a streamed
    /// download, the read-back and the activation; the file holds the same.
    #[test]
    fn display_and_file_follow_the_same_phases() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = CliProgress::new(dir.path(), Some("1.3.0".into()), Recorder::default());
        // A failed check (no release known yet) shows nothing.
        p.begin(Phase::Checking, None, None);
        p.fail("server down");
        assert_eq!(p.display.0, []);
        assert_eq!(
            crate::update_status::read(dir.path())
                .unwrap()
                .unwrap()
                .phase,
            Phase::Failed
        );
        p.begin(Phase::Checking, None, None);
        p.target("1.4.0", Some(Slot::B), Some(200));
        p.begin(Phase::Verifying, None, None);
        p.begin(Phase::Downloading, Some("rootfs"), Some(200));
        p.advance(100, 100);
        p.advance(200, 200);
        p.begin(Phase::ReadingBack, Some("rootfs"), Some(200));
        p.advance(200, 200);
        p.begin(Phase::Activating, None, None);
        p.begin(Phase::Installed, None, None);
        assert_eq!(
            p.display.0,
            [
                (M::Installing, 0),
                (M::Downloading, 0),
                (M::Downloading, 50),
                (M::Downloading, 100),
                (M::Installing, 100),
                (M::Done, 100),
            ]
        );
        let on_disk = crate::update_status::read(dir.path()).unwrap().unwrap();
        assert_eq!(on_disk.phase, Phase::Installed);
        assert_eq!(on_disk.version.as_deref(), Some("1.4.0"));
        assert_eq!((on_disk.bytes_done, on_disk.bytes_total), (200, Some(200)));
        p.fail("gone");
        assert_eq!(p.display.0.last(), Some(&(M::Failed, 100)));
    }
}
