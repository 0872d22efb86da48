//! The bookkeeping of one install: progress reports and the journal.

use std::io;

use super::journal::Journal;
use crate::update_status::{Phase, Progress};
use crate::Error;

/// Progress reports and the journal of one install.
pub(super) struct Bookkeeping<'p> {
    /// Where progress goes (status file, terminal, display).
    pub progress: &'p mut dyn Progress,
    /// The checkpoint journal in `state_dir`.
    pub journal: Journal,
    /// Why [`Bookkeeping::go_on`] stopped the install (it wins over the
    /// `io::Error` it caused on the way out).
    pub stopped: Option<Error>,
}

impl Bookkeeping<'_> {
    /// A phase begins on `image` (empty: none) with `total` bytes (if
    /// any); the whole update stands at `overall` bytes.
    pub fn phase(&mut self, phase: Phase, image: &str, total: Option<u64>, overall: u64) {
        let image = (!image.is_empty()).then_some(image);
        self.progress.begin(phase, image, total);
        self.progress.advance(0, overall);
    }

    /// [`Progress::go_on`] between chunks: its error is kept in
    /// `stopped` and handed to the writer as an `io::Error`.
    pub fn go_on(&mut self) -> io::Result<()> {
        self.progress.go_on().map_err(|e| {
            let text = e.to_string();
            self.stopped = Some(e);
            io::Error::other(text)
        })
    }
}
