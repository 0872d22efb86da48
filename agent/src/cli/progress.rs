//! The terminal side of `install`, `update` and `daemon`: the [`Console`]
//! the update flow reports to. Progress is a bar redrawn at most 4 times a
//! second on a terminal, otherwise a log line at each phase and each 10 %
//! step (stderr); results ([`Announcement`]) are one line each on stdout. The
//! status file and the appliance display are the library's
//! (`update::RunProgress`).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::update::{Announcement, Console};
use crate::update_status::{human, Phase, UpdateStatus};

const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// stderr for progress, stdout for results.
pub(super) struct Terminal {
    tty: bool,
    /// A bar line is on the terminal without its newline.
    drawn: bool,
    last_draw: Option<Instant>,
    /// Last logged (phase, 10 % step), off a terminal.
    last_log: Option<(Phase, u8)>,
}

impl Terminal {
    pub(super) fn new() -> Self {
        Terminal {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last_draw: None,
            last_log: None,
        }
    }
}

impl Console for Terminal {
    fn end(&mut self) {
        if self.tty && self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }

    fn progress(&mut self, doc: &UpdateStatus, phase_changed: bool) {
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

    fn announce(&mut self, announcement: &Announcement) {
        // Result lines go to stdout after the bar's line is ended.
        self.end();
        println!("{}", words(announcement));
    }
}

/// The line for an [`Announcement`].
pub(super) fn words(announcement: &Announcement) -> String {
    match announcement {
        Announcement::Installed {
            product,
            version,
            slot,
        } => format!(
            "installed {product} {version} into slot {slot}; the next boot tries it (confirm with mark-good)"
        ),
        Announcement::Downloaded { version, dir } => format!(
            "{version}: downloaded and verified into {}; install with `ota-agent install {}`",
            dir.display(),
            dir.display()
        ),
        Announcement::Rebooting => "rebooting".to_owned(),
        Announcement::RebootDeferred(why) => format!("reboot deferred: {why}"),
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
}
