//! The reboot gate: the appliance decides when the SoC may reboot.
//!
//! ```text
//!   decide() ─► no [mcu]? ───────────────────────────────► Reboot (gate open)
//!      │
//!      ├─► ask state ─ idle ─► reboot notice ─ accepted ─► show "rebooting" ─► Reboot
//!      │     │                      └ refused / no answer ┐
//!      │     └ busy / silent / error ─────────────────────┤
//!      │                                                  ▼
//!      │                       waited ≥ reboot_deadline_s? ── yes ─► Deferred (update stays
//!      │                                  │ no                        pending; never forced)
//!      └──────────── sleep min(idle_poll_s, time left) ◄─┘
//! ```
//!
//! A silent MCU counts as *not idle*: it may be mid-programme with a hung
//! UART task, and a reboot is only ever a convenience, never urgent. The gate
//! keeps asking until the deadline like for a busy appliance.
//!
//! Time comes from an injectable [`Clock`] (monotonic `now` and `sleep`), so the
//! decisions and their timing are tested without real sleeps.
//!
//! # Wiring (install `--reboot`, update, daemon)
//!
//! ```no_run
//! use ota_agent::config::Config;
//! use ota_agent::mcu::{Decision, GatePolicy, McuDisplay, Phase, ProgressSink, RebootGate, SerialMcu, SystemClock};
//! # fn install(_: &mut dyn ProgressSink) -> ota_agent::Result<()> { Ok(()) }
//! # fn reboot() {}
//! # fn demo(config: &Config) -> ota_agent::Result<()> {
//! // One lazily opened port for display and gate; None when [mcu] is absent.
//! let mut mcu = config.mcu.as_ref().map(SerialMcu::new);
//! // Progress while downloading/installing (best effort, never fails the update).
//! let mut display = McuDisplay::new(mcu.as_mut());
//! display.show(Phase::Downloading, 0);
//! install(&mut display)?; // calls display.show(phase, percent) as it goes
//! // Before rebooting: ask the appliance.
//! let policy = config.mcu.as_ref().map(GatePolicy::from_config).unwrap_or_default();
//! match RebootGate::new(mcu.as_mut(), policy, SystemClock::new()).decide() {
//!     Decision::Reboot => reboot(),
//!     Decision::Deferred(d) => log::warn!("reboot deferred: {d}"), // stays pending
//! }
//! # Ok(()) }
//! ```
//!
//! The daemon calls `decide()` again on its next cycle while an installed update
//! is pending; `update`/`install --reboot` exit 0 with the update pending and
//! say so.

use std::fmt;
use std::time::{Duration, Instant};

use super::protocol::{Link, Mcu, Notice};
use super::serial::SerialPort;
use super::McuConfig;
use super::{ErrorKind, McuError, Phase, State};

/// Seconds announced in the reboot notice: the agent reboots right after the
/// MCU accepts; a clean shutdown takes a few seconds.
pub const REBOOT_NOTICE_S: u16 = 10;

/// Monotonic time and sleeping, injectable for tests.
pub trait Clock {
    /// Time since an arbitrary fixed start.
    fn now(&self) -> Duration;
    /// Waits `d`.
    fn sleep(&self, d: Duration);
}

/// The real clock (`Instant`, `thread::sleep`).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> SystemClock {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// What the gate (and the display) need from the appliance.
pub trait Appliance {
    /// 0x01 get state.
    fn state(&mut self) -> Result<State, McuError>;
    /// 0x03 reboot notice.
    fn reboot_notice(&mut self, seconds: u16) -> Result<Notice, McuError>;
    /// 0x02 show progress.
    fn show_progress(&mut self, phase: Phase, percent: u8) -> Result<(), McuError>;
}

impl<L: Link> Appliance for Mcu<L> {
    fn state(&mut self) -> Result<State, McuError> {
        Mcu::state(self)
    }
    fn reboot_notice(&mut self, seconds: u16) -> Result<Notice, McuError> {
        Mcu::reboot_notice(self, seconds)
    }
    fn show_progress(&mut self, phase: Phase, percent: u8) -> Result<(), McuError> {
        Mcu::show_progress(self, phase, percent)
    }
}

impl<A: Appliance + ?Sized> Appliance for &mut A {
    fn state(&mut self) -> Result<State, McuError> {
        (**self).state()
    }
    fn reboot_notice(&mut self, seconds: u16) -> Result<Notice, McuError> {
        (**self).reboot_notice(seconds)
    }
    fn show_progress(&mut self, phase: Phase, percent: u8) -> Result<(), McuError> {
        (**self).show_progress(phase, percent)
    }
}

/// The configured MCU, opened on first use. A port that cannot be opened (or
/// fails with an I/O error) is an error for that request and is reopened on
/// the next, so a briefly busy or re-plugged port does not wedge the daemon.
#[derive(Debug)]
pub struct SerialMcu {
    config: McuConfig,
    mcu: Option<Mcu<SerialPort>>,
}

impl SerialMcu {
    /// The MCU described by `config` (nothing is opened yet).
    pub fn new(config: &McuConfig) -> SerialMcu {
        SerialMcu {
            config: config.clone(),
            mcu: None,
        }
    }

    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Mcu<SerialPort>) -> Result<T, McuError>,
    ) -> Result<T, McuError> {
        let mcu = match &mut self.mcu {
            Some(mcu) => mcu,
            None => self.mcu.insert(super::open(&self.config)?),
        };
        let result = f(mcu);
        if let Err(McuError {
            kind: ErrorKind::Io { .. },
            ..
        }) = &result
        {
            self.mcu = None;
        }
        result
    }
}

impl Appliance for SerialMcu {
    fn state(&mut self) -> Result<State, McuError> {
        self.with(|m| m.state())
    }
    fn reboot_notice(&mut self, seconds: u16) -> Result<Notice, McuError> {
        self.with(|m| m.reboot_notice(seconds))
    }
    fn show_progress(&mut self, phase: Phase, percent: u8) -> Result<(), McuError> {
        self.with(|m| m.show_progress(phase, percent))
    }
}

/// When to ask and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatePolicy {
    /// Between questions while the appliance is not ready (at least 1 s).
    pub idle_poll: Duration,
    /// After this long without a yes, the reboot is deferred.
    pub deadline: Duration,
    /// Seconds announced in the reboot notice.
    pub notice_s: u16,
}

impl Default for GatePolicy {
    /// The `[mcu]` defaults: ask every 60 s for up to 6 h.
    fn default() -> Self {
        GatePolicy::from_config(&McuConfig::default())
    }
}

impl GatePolicy {
    /// `idle_poll_s` and `reboot_deadline_s` from the config.
    pub fn from_config(config: &McuConfig) -> GatePolicy {
        GatePolicy {
            idle_poll: Duration::from_secs(config.idle_poll_s),
            deadline: Duration::from_secs(config.reboot_deadline_s),
            notice_s: REBOOT_NOTICE_S,
        }
    }
}

/// Why the appliance did not allow the reboot (the last answer seen).
#[derive(Debug)]
pub enum Refusal {
    /// It answered with a state other than idle.
    Busy(State),
    /// It was idle but refused the reboot notice.
    Refused,
    /// No usable answer: silent, unopenable port, error frame, garbled reply.
    Unreachable(McuError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Busy(s) => write!(f, "appliance is {s}"),
            Refusal::Refused => f.write_str("appliance refused the reboot notice"),
            Refusal::Unreachable(e) => write!(f, "mcu {e}"),
        }
    }
}

/// A deferred reboot: the update stays installed and pending.
#[derive(Debug)]
pub struct Deferral {
    /// The last answer.
    pub last: Refusal,
    /// How long the gate waited (by its clock).
    pub waited: Duration,
    /// How many times it asked for the state.
    pub asked: u32,
}

impl fmt::Display for Deferral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} after asking {} time(s) over {} s; the update stays pending",
            self.last,
            self.asked,
            self.waited.as_secs()
        )
    }
}

/// The gate's answer.
#[derive(Debug)]
#[must_use]
pub enum Decision {
    /// Reboot now: no MCU is configured, or it is idle and accepted the notice.
    Reboot,
    /// Do not reboot; the deadline passed (or was 0) without a yes.
    Deferred(Deferral),
}

/// Asks the appliance before a reboot; see the module docs.
#[derive(Debug)]
pub struct RebootGate<A, C> {
    appliance: Option<A>,
    policy: GatePolicy,
    clock: C,
}

impl<A: Appliance, C: Clock> RebootGate<A, C> {
    /// A gate over `appliance` (`None` = no MCU configured: always open).
    pub fn new(appliance: Option<A>, policy: GatePolicy, clock: C) -> Self {
        RebootGate {
            appliance,
            policy,
            clock,
        }
    }

    /// The appliance and clock back.
    pub fn into_parts(self) -> (Option<A>, C) {
        (self.appliance, self.clock)
    }

    /// Asks until the appliance says yes or the deadline passes. Blocks for up
    /// to `reboot_deadline_s` (plus one round of reply timeouts).
    pub fn decide(&mut self) -> Decision {
        let Some(appliance) = self.appliance.as_mut() else {
            log::debug!("mcu: none configured, reboot gate open");
            return Decision::Reboot;
        };
        let poll = self.policy.idle_poll.max(Duration::from_secs(1));
        let start = self.clock.now();
        let mut asked = 0u32;
        loop {
            asked = asked.saturating_add(1);
            let last = match appliance.state() {
                Ok(State::Idle) => match appliance.reboot_notice(self.policy.notice_s) {
                    Ok(Notice::Accepted) => {
                        if let Err(e) = appliance.show_progress(Phase::Rebooting, 0) {
                            log::warn!("mcu: cannot show the reboot on the display: {e}");
                        }
                        log::info!("mcu: appliance idle, reboot accepted");
                        return Decision::Reboot;
                    }
                    Ok(Notice::Refused) => Refusal::Refused,
                    Err(e) => Refusal::Unreachable(e),
                },
                Ok(busy) => Refusal::Busy(busy),
                Err(e) => Refusal::Unreachable(e),
            };
            let waited = self.clock.now().saturating_sub(start);
            if waited >= self.policy.deadline {
                let deferral = Deferral {
                    last,
                    waited,
                    asked,
                };
                log::warn!("mcu: reboot deferred: {deferral}");
                return Decision::Deferred(deferral);
            }
            let nap = poll.min(self.policy.deadline - waited);
            log::info!(
                "mcu: reboot deferred ({last}); asking again in {} s",
                nap.as_secs()
            );
            self.clock.sleep(nap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// A clock whose sleep advances time instantly; it records every sleep.
    #[derive(Clone, Default)]
    pub(crate) struct FakeClock {
        now: Rc<Cell<Duration>>,
        sleeps: Rc<RefCell<Vec<Duration>>>,
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            self.now.get()
        }
        fn sleep(&self, d: Duration) {
            self.sleeps.borrow_mut().push(d);
            self.now.set(self.now.get() + d);
        }
    }

    /// Answers from scripts; each state query also costs `query_cost` of fake time.
    struct Fake {
        states: VecDeque<Result<State, ()>>,
        notices: VecDeque<Notice>,
        clock: FakeClock,
        query_cost: Duration,
        log: Vec<String>,
    }

    fn silent() -> McuError {
        McuError::new(
            "fake",
            ErrorKind::Silent {
                request: "get-state",
                attempts: 3,
                timeout_ms: 500,
            },
        )
    }

    impl Appliance for Fake {
        fn state(&mut self) -> Result<State, McuError> {
            self.clock.now.set(self.clock.now.get() + self.query_cost);
            self.log
                .push(format!("state@{}", self.clock.now().as_secs()));
            // An exhausted script repeats its last answer.
            let s = if self.states.len() > 1 {
                self.states.pop_front()
            } else {
                self.states.front().cloned()
            };
            s.unwrap_or(Err(())).map_err(|()| silent())
        }
        fn reboot_notice(&mut self, seconds: u16) -> Result<Notice, McuError> {
            self.log.push(format!("notice {seconds}"));
            Ok(self.notices.pop_front().unwrap_or(Notice::Accepted))
        }
        fn show_progress(&mut self, phase: Phase, percent: u8) -> Result<(), McuError> {
            self.log.push(format!("show {phase:?} {percent}"));
            Ok(())
        }
    }

    fn fake(states: Vec<Result<State, ()>>, notices: Vec<Notice>, clock: &FakeClock) -> Fake {
        Fake {
            states: states.into(),
            notices: notices.into(),
            clock: clock.clone(),
            query_cost: Duration::ZERO,
            log: Vec::new(),
        }
    }

    fn policy(poll: u64, deadline: u64) -> GatePolicy {
        GatePolicy {
            idle_poll: Duration::from_secs(poll),
            deadline: Duration::from_secs(deadline),
            notice_s: 10,
        }
    }

    #[test]
    fn no_mcu_means_open_gate() {
        let clock = FakeClock::default();
        let mut gate = RebootGate::<Fake, _>::new(None, policy(60, 300), clock.clone());
        assert!(matches!(gate.decide(), Decision::Reboot));
        assert!(clock.sleeps.borrow().is_empty());
    }

    #[test]
    fn idle_and_accepted_reboots_at_once_and_shows_it() {
        let clock = FakeClock::default();
        let mut app = fake(vec![Ok(State::Idle)], vec![], &clock);
        let d = RebootGate::new(Some(&mut app), policy(60, 300), clock.clone()).decide();
        assert!(matches!(d, Decision::Reboot));
        assert_eq!(app.log, ["state@0", "notice 10", "show Rebooting 0"]);
        assert_eq!(clock.now(), Duration::ZERO);
    }

    #[test]
    fn cooking_then_idle_reboots_after_polls() {
        let clock = FakeClock::default();
        let mut app = fake(
            vec![Ok(State::Cooking), Ok(State::KeepWarm), Ok(State::Idle)],
            vec![],
            &clock,
        );
        let d = RebootGate::new(Some(&mut app), policy(60, 300), clock.clone()).decide();
        assert!(matches!(d, Decision::Reboot), "{d:?}");
        assert_eq!(app.log[..3], ["state@0", "state@60", "state@120"]);
        assert_eq!(clock.now(), Duration::from_secs(120));
    }

    #[test]
    fn never_idle_defers_at_the_deadline_asking_at_each_poll() {
        let clock = FakeClock::default();
        let mut app = fake(vec![Ok(State::Cooking)], vec![], &clock);
        let d = RebootGate::new(Some(&mut app), policy(60, 300), clock.clone()).decide();
        let Decision::Deferred(d) = d else {
            panic!("rebooted under a cooking appliance")
        };
        assert!(matches!(d.last, Refusal::Busy(State::Cooking)));
        assert_eq!((d.asked, d.waited), (6, Duration::from_secs(300)));
        assert_eq!(
            app.log,
            [
                "state@0",
                "state@60",
                "state@120",
                "state@180",
                "state@240",
                "state@300"
            ]
        );
        assert!(!app.log.iter().any(|l| l.starts_with("notice")));
    }

    #[test]
    fn last_nap_is_cut_to_the_deadline() {
        let clock = FakeClock::default();
        let mut app = fake(vec![Ok(State::TimerSet)], vec![], &clock);
        let d = RebootGate::new(Some(&mut app), policy(60, 150), clock.clone()).decide();
        assert!(matches!(d, Decision::Deferred(_)));
        assert_eq!(
            *clock.sleeps.borrow(),
            [60, 60, 30].map(Duration::from_secs)
        );
    }

    #[test]
    fn silent_mcu_is_not_idle() {
        let clock = FakeClock::default();
        let mut app = fake(vec![Err(())], vec![], &clock);
        let Decision::Deferred(d) =
            RebootGate::new(Some(&mut app), policy(60, 120), clock.clone()).decide()
        else {
            panic!("rebooted under a silent mcu")
        };
        assert!(matches!(d.last, Refusal::Unreachable(_)));
        assert_eq!(d.asked, 3);
        assert!(d.to_string().contains("no reply to get-state"), "{d}");
    }

    #[test]
    fn refused_notice_defers_then_accepts_later() {
        let clock = FakeClock::default();
        let mut app = fake(vec![Ok(State::Idle)], vec![Notice::Refused], &clock);
        let d = RebootGate::new(Some(&mut app), policy(60, 300), clock.clone()).decide();
        assert!(matches!(d, Decision::Reboot));
        assert_eq!(
            app.log,
            [
                "state@0",
                "notice 10",
                "state@60",
                "notice 10",
                "show Rebooting 0"
            ]
        );
    }

    #[test]
    fn slow_queries_count_against_the_deadline() {
        // Each silent query costs 2 s of clock time (reply timeouts).
        let clock = FakeClock::default();
        let mut app = fake(vec![Err(())], vec![], &clock);
        app.query_cost = Duration::from_secs(2);
        let Decision::Deferred(d) =
            RebootGate::new(Some(&mut app), policy(60, 100), clock.clone()).decide()
        else {
            panic!("rebooted under a silent mcu")
        };
        // asks at 2, 64 (2+60+2), 102 (64+36 nap cut to the deadline, +2).
        assert_eq!(app.log, ["state@2", "state@64", "state@102"]);
        assert_eq!(d.waited, Duration::from_secs(102));
    }

    #[test]
    fn zero_deadline_asks_once() {
        let clock = FakeClock::default();
        let mut app = fake(vec![Ok(State::Fault)], vec![], &clock);
        let d = RebootGate::new(Some(&mut app), policy(60, 0), clock.clone()).decide();
        assert!(matches!(d, Decision::Deferred(Deferral { asked: 1, .. })));
    }
}
