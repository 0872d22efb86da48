//! Where a run reports: every progress event goes to the one
//! [`StatusWriter`] (`state_dir/update-status.json`), and the document it
//! keeps is then shown on the appliance display (its phase mapped by
//! [`Phase::mcu`]) and handed to the front end's [`Console`] (the CLI
//! draws a bar or logs a line). Results meant for a person (installed,
//! rebooting, …) are [`Announcement`]s; the front end words and prints them.

use std::path::PathBuf;

use crate::mcu::ProgressSink;
use crate::slots::Slot;
use crate::state::StateDir;
use crate::update_status::{Phase, Progress, StatusWriter, UpdateStatus};

/// A result of a run that a person should see (printed by the CLI on
/// stdout, one line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A release was written, verified and activated.
    Installed {
        /// The manifest's product.
        product: String,
        /// The release.
        version: semver::Version,
        /// The slot that the next boot tries.
        slot: Slot,
    },
    /// `update --download-only` staged a verified release.
    Downloaded {
        /// The release.
        version: semver::Version,
        /// The bundle directory it is in.
        dir: PathBuf,
    },
    /// The appliance agreed: the reboot command runs now.
    Rebooting,
    /// The appliance did not agree in time; the update stays pending.
    RebootDeferred(String),
}

/// The front end of a run: a terminal, a log, a test recorder.
pub trait Console {
    /// The status document changed (`phase_changed`: a new phase began or
    /// the run failed).
    fn progress(&mut self, doc: &UpdateStatus, phase_changed: bool);
    /// The run's progress output is over (e.g. end a bar line).
    fn end(&mut self);
    /// A result for a person.
    fn announce(&mut self, announcement: &Announcement);
    /// [`Progress::go_on`]: whether the run may go on (the control
    /// socket's suspend and cancel; a terminal always says yes).
    fn go_on(&mut self) -> crate::Result<()> {
        Ok(())
    }
}

/// A console that shows nothing (library use, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Console for Silent {
    fn progress(&mut self, _: &UpdateStatus, _: bool) {}
    fn end(&mut self) {}
    fn announce(&mut self, _: &Announcement) {}
}

/// The status file, the appliance display and the console of one run.
pub struct RunProgress<'c, S> {
    writer: StatusWriter,
    display: S,
    console: &'c mut dyn Console,
}

impl<'c, S: ProgressSink> RunProgress<'c, S> {
    /// A new run in `state`; `from_version` is the installed release.
    pub fn new(
        state: &StateDir,
        from_version: Option<String>,
        display: S,
        console: &'c mut dyn Console,
    ) -> Self {
        RunProgress {
            writer: StatusWriter::new(state, from_version),
            display,
            console,
        }
    }

    /// Ends the console's progress output.
    pub fn end(&mut self) {
        self.console.end();
    }

    /// Hands `announcement` to the console.
    pub fn announce(&mut self, announcement: &Announcement) {
        self.console.announce(announcement);
    }

    fn show(&mut self, phase_changed: bool) {
        let doc = self.writer.doc();
        // The appliance hears of an update only once there is one: a
        // failed channel check (server down) is not an update failure.
        if let (Some(p), Some(_)) = (doc.phase.mcu(), &doc.version) {
            self.display.show(p, doc.display_percent());
        }
        self.console.progress(doc, phase_changed);
    }
}

impl<S: ProgressSink> Progress for RunProgress<'_, S> {
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
    fn go_on(&mut self) -> crate::Result<()> {
        self.console.go_on()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcu::Phase as M;

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
        let state = StateDir::new(dir.path());
        let mut console = Silent;
        let mut p = RunProgress::new(
            &state,
            Some("1.3.0".into()),
            Recorder::default(),
            &mut console,
        );
        // A failed check (no release known yet) shows nothing.
        p.begin(Phase::Checking, None, None);
        p.fail("server down");
        assert_eq!(p.display.0, []);
        let read = |s: &StateDir| crate::update_status::read(s).unwrap().unwrap();
        assert_eq!(read(&state).phase, Phase::Failed);
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
        let on_disk = read(&state);
        assert_eq!(on_disk.phase, Phase::Installed);
        assert_eq!(on_disk.version.as_deref(), Some("1.4.0"));
        assert_eq!((on_disk.bytes_done, on_disk.bytes_total), (200, Some(200)));
        p.fail("gone");
        assert_eq!(p.display.0.last(), Some(&(M::Failed, 100)));
    }
}
