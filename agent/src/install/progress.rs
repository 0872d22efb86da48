//! The bookkeeping of one install: progress reports and the journal.

use super::journal::Journal;
use crate::update_status::{Phase, Progress};

/// Progress reports and the journal of one install.
pub(super) struct Bookkeeping<'p> {
    /// Where progress goes (status file, terminal, display).
    pub progress: &'p mut dyn Progress,
    /// The checkpoint journal in `state_dir`.
    pub journal: Journal,
}

impl Bookkeeping<'_> {
    /// A phase begins on `image` (empty: none) with `total` bytes (if
    /// any); the whole update stands at `overall` bytes.
    pub fn phase(&mut self, phase: Phase, image: &str, total: Option<u64>, overall: u64) {
        let image = (!image.is_empty()).then_some(image);
        self.progress.begin(phase, image, total);
        self.progress.advance(0, overall);
    }
}
