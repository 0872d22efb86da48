//! Progress on the appliance display (0x02), best effort.
//!
//! The install and download code report `(phase, percent)` through
//! [`ProgressSink::show`] as often as they like; the MCU sink sends a frame
//! only when the pair changes (≤ 101 frames per phase, ~7 ms each at 9600
//! baud). A display failure never fails an update: it is logged once, and
//! further frames of the same phase are skipped so a silent MCU costs at most
//! one round of reply timeouts per phase instead of stalling every chunk.

use super::gate::Appliance;
use super::Phase;

/// Where update progress goes.
pub trait ProgressSink {
    /// Shows `phase` at `percent` (values above 100 are shown as 100).
    fn show(&mut self, phase: Phase, percent: u8);
}

impl<S: ProgressSink + ?Sized> ProgressSink for &mut S {
    fn show(&mut self, phase: Phase, percent: u8) {
        (**self).show(phase, percent)
    }
}

/// Discards progress (no display, or tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDisplay;

impl ProgressSink for NoDisplay {
    fn show(&mut self, _phase: Phase, _percent: u8) {}
}

/// `done` of `total` as a percentage 0..=100 (0 when `total` is 0).
pub fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 0;
    }
    // ≤ 100 after min, so the cast is lossless.
    (u128::from(done.min(total)) * 100 / u128::from(total)) as u8
}

/// Progress frames to the appliance MCU (`None` = no MCU: discards).
#[derive(Debug)]
pub struct McuDisplay<A> {
    appliance: Option<A>,
    last: Option<(Phase, u8)>,
    failed_in: Option<Phase>,
}

impl<A: Appliance> McuDisplay<A> {
    /// A display over `appliance`.
    pub fn new(appliance: Option<A>) -> Self {
        McuDisplay {
            appliance,
            last: None,
            failed_in: None,
        }
    }

    /// The appliance back (e.g. to hand it to the reboot gate).
    pub fn into_inner(self) -> Option<A> {
        self.appliance
    }
}

impl<A: Appliance> ProgressSink for McuDisplay<A> {
    fn show(&mut self, phase: Phase, percent: u8) {
        let Some(appliance) = self.appliance.as_mut() else {
            return;
        };
        let percent = percent.min(100);
        if self.last == Some((phase, percent)) || self.failed_in == Some(phase) {
            return;
        }
        match appliance.show_progress(phase, percent) {
            Ok(()) => {
                self.last = Some((phase, percent));
                self.failed_in = None;
            }
            Err(e) => {
                log::warn!("mcu: progress display failed ({e}); skipped until the next phase");
                self.failed_in = Some(phase);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcu::{ErrorKind, McuError, Notice, State};

    #[derive(Default)]
    struct Recorder {
        shown: Vec<(Phase, u8)>,
        fail: bool,
    }

    impl Appliance for Recorder {
        fn state(&mut self) -> Result<State, McuError> {
            unreachable!()
        }
        fn reboot_notice(&mut self, _: u16) -> Result<Notice, McuError> {
            unreachable!()
        }
        fn show_progress(&mut self, phase: Phase, percent: u8) -> Result<(), McuError> {
            self.shown.push((phase, percent));
            if self.fail {
                return Err(McuError::new(
                    "fake",
                    ErrorKind::Silent {
                        request: "show-progress",
                        attempts: 1,
                        timeout_ms: 1,
                    },
                ));
            }
            Ok(())
        }
    }

    #[test]
    fn only_changes_are_sent_and_percent_is_clamped() {
        let mut rec = Recorder::default();
        let mut d = McuDisplay::new(Some(&mut rec));
        for p in [0, 0, 1, 1, 1, 250] {
            d.show(Phase::Downloading, p);
        }
        d.show(Phase::Installing, 100);
        assert_eq!(
            rec.shown,
            [
                (Phase::Downloading, 0),
                (Phase::Downloading, 1),
                (Phase::Downloading, 100),
                (Phase::Installing, 100)
            ]
        );
    }

    #[test]
    fn a_failing_display_is_skipped_until_the_phase_changes() {
        let mut rec = Recorder {
            fail: true,
            ..Default::default()
        };
        let mut d = McuDisplay::new(Some(&mut rec));
        for p in 0..50 {
            d.show(Phase::Downloading, p);
        }
        d.show(Phase::Installing, 0);
        assert_eq!(rec.shown, [(Phase::Downloading, 0), (Phase::Installing, 0)]);
    }

    #[test]
    fn percent_of_bytes() {
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 3), 100);
        assert_eq!(percent(u64::MAX - 1, u64::MAX), 99);
    }
}
