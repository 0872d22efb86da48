//! The protocol client and the reboot gate against the simulated MCU. The
//! gate's clock is fake (no real sleeps between polls); only the serial reply
//! timeouts are real and short.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ota_agent::mcu::gate::{Deferral, Refusal};
use ota_agent::mcu::{
    Clock, Decision, ErrorKind, GatePolicy, Mcu, McuDisplay, Notice, Phase, ProgressSink,
    RebootGate, SerialPort, State,
};

use crate::common::mcu_sim::{count, Script, SimMcu};

#[derive(Clone, Default)]
struct FakeClock {
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

/// Reply timeout when the simulator answers: generous, so a loaded test
/// machine cannot turn a slow reply into a retry (an answered request costs
/// only the real latency).
const ANSWERED: Duration = Duration::from_secs(3);
/// Reply timeout when silence is the point of the test.
const SILENT: Duration = Duration::from_millis(50);

fn connect_with(sim: &SimMcu, timeout: Duration, attempts: u32) -> Mcu<SerialPort> {
    let port = SerialPort::open(sim.path(), 9600).expect("open pty slave");
    Mcu::new(port, timeout, attempts)
}

fn connect(sim: &SimMcu) -> Mcu<SerialPort> {
    connect_with(sim, ANSWERED, 2)
}

fn policy(poll_s: u64, deadline_s: u64) -> GatePolicy {
    GatePolicy {
        idle_poll: Duration::from_secs(poll_s),
        deadline: Duration::from_secs(deadline_s),
        notice_s: 10,
    }
}

fn decide_with(mcu: Mcu<SerialPort>, policy: GatePolicy) -> (Decision, FakeClock) {
    let clock = FakeClock::default();
    let decision = RebootGate::new(Some(mcu), policy, clock.clone()).decide();
    (decision, clock)
}

fn decide(sim: &SimMcu, policy: GatePolicy) -> (Decision, FakeClock) {
    decide_with(connect(sim), policy)
}

#[test]
fn port_is_opened_exclusive() {
    let sim = SimMcu::start(Script::states(&[0]));
    let port = SerialPort::open(sim.path(), 9600).unwrap();
    assert!(port.is_exclusive().unwrap());
}

#[test]
fn unsupported_baud_and_missing_port_are_named_errors() {
    let sim = SimMcu::start(Script::states(&[0]));
    let e = SerialPort::open(sim.path(), 12345).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnsupportedBaud(12345)), "{e}");
    let e = SerialPort::open("/dev/nonexistent-tty".as_ref(), 9600).unwrap_err();
    assert!(
        e.to_string().starts_with("/dev/nonexistent-tty: open:"),
        "{e}"
    );
}

#[test]
fn requests_reach_the_mcu_with_the_documented_bytes() {
    let sim = SimMcu::start(Script::states(&[3]));
    let mut mcu = connect(&sim);
    assert_eq!(mcu.state().unwrap(), State::TimerSet);
    mcu.show_progress(Phase::Downloading, 42).unwrap();
    assert_eq!(mcu.reboot_notice(300).unwrap(), Notice::Accepted);
    assert_eq!(
        sim.finish(),
        [
            (0x01, vec![]),
            (0x02, vec![0, 42]),
            (0x03, vec![0x01, 0x2c])
        ]
    );
}

#[test]
fn idle_mcu_opens_the_gate_at_once() {
    let sim = SimMcu::start(Script::states(&[0]));
    let (d, clock) = decide(&sim, policy(60, 600));
    assert!(matches!(d, Decision::Reboot), "{d:?}");
    assert_eq!(clock.now(), Duration::ZERO);
    assert_eq!(
        sim.finish(),
        [(0x01, vec![]), (0x03, vec![0, 10]), (0x02, vec![2, 0])]
    );
}

#[test]
fn cooking_then_idle_reboots_after_two_polls() {
    let sim = SimMcu::start(Script::states(&[1, 2, 0]));
    let (d, clock) = decide(&sim, policy(60, 600));
    assert!(matches!(d, Decision::Reboot), "{d:?}");
    assert_eq!(*clock.sleeps.borrow(), [Duration::from_secs(60); 2]);
    let requests = sim.finish();
    assert_eq!((count(&requests, 0x01), count(&requests, 0x03)), (3, 1));
}

#[test]
fn never_idle_is_deferred_at_the_deadline() {
    let sim = SimMcu::start(Script::states(&[1]));
    let (d, clock) = decide(&sim, policy(60, 300));
    let Decision::Deferred(Deferral {
        last,
        waited,
        asked,
    }) = d
    else {
        panic!("rebooted while cooking");
    };
    assert!(matches!(last, Refusal::Busy(State::Cooking)));
    assert_eq!((asked, waited), (6, Duration::from_secs(300)));
    assert_eq!(clock.now(), Duration::from_secs(300));
    let requests = sim.finish();
    assert_eq!((count(&requests, 0x01), count(&requests, 0x03)), (6, 0));
}

#[test]
fn silent_mcu_is_deferred_never_forced() {
    let mut script = Script::states(&[0]);
    script.silent = true;
    let sim = SimMcu::start(script);
    let (d, _) = decide_with(connect_with(&sim, SILENT, 2), policy(60, 120));
    let Decision::Deferred(Deferral { last, asked, .. }) = d else {
        panic!("rebooted under a silent mcu");
    };
    assert!(
        matches!(last, Refusal::Unreachable(ref e) if matches!(e.kind, ErrorKind::Silent { attempts: 2, .. })),
        "{last:?}"
    );
    // 3 polls (0, 60, 120 s), each 2 attempts on the wire.
    assert_eq!(asked, 3);
    let requests = sim.finish();
    assert_eq!(count(&requests, 0x01), 6);
    assert_eq!(count(&requests, 0x03), 0);
}

#[test]
fn refused_notice_is_deferred() {
    let mut script = Script::states(&[0]);
    script.notice = 0;
    let sim = SimMcu::start(script);
    let (d, _) = decide(&sim, policy(60, 60));
    assert!(
        matches!(
            d,
            Decision::Deferred(Deferral {
                last: Refusal::Refused,
                asked: 2,
                ..
            })
        ),
        "{d:?}"
    );
}

#[test]
fn noisy_line_still_yields_every_reply_first_time() {
    let mut script = Script::states(&[1, 0]);
    script.noisy = true;
    let sim = SimMcu::start(script);
    let (d, _) = decide(&sim, policy(60, 600));
    assert!(matches!(d, Decision::Reboot), "{d:?}");
    // No retries were needed: each request went out exactly once.
    assert_eq!(
        sim.finish(),
        [
            (0x01, vec![]),
            (0x01, vec![]),
            (0x03, vec![0, 10]),
            (0x02, vec![2, 0])
        ]
    );
}

#[test]
fn lost_reply_is_retried() {
    let mut script = Script::states(&[4]);
    script.drop_first = 1;
    let sim = SimMcu::start(script);
    // The dropped attempt costs one full timeout; 2 s leaves room for load.
    let mut mcu = connect_with(&sim, Duration::from_secs(2), 3);
    assert_eq!(mcu.state().unwrap(), State::Fault);
    assert_eq!(count(&sim.finish(), 0x01), 2);
}

#[test]
fn display_sends_changes_only() {
    let sim = SimMcu::start(Script::states(&[0]));
    let mut display = McuDisplay::new(Some(connect(&sim)));
    for pct in [0, 0, 50, 50, 100] {
        display.show(Phase::Installing, pct);
    }
    display.show(Phase::Done, 100);
    assert_eq!(
        sim.finish(),
        [
            (0x02, vec![1, 0]),
            (0x02, vec![1, 50]),
            (0x02, vec![1, 100]),
            (0x02, vec![3, 100])
        ]
    );
}
