//! The serial link to the appliance's main controller (docs/mcu-protocol.md).
//!
//! The rice cooker's MCU owns the heater; the agent must not reboot the SoC in
//! the middle of a cooking programme, and it shows update progress on the
//! appliance's display. The SoC asks, the MCU answers.
//!
//! ```text
//!   install / update / daemon
//!        │ show(phase, %)             │ decide()
//!        ▼                            ▼
//!   display::McuDisplay         gate::RebootGate ── Clock (injectable)
//!        └──────────┬─────────────────┘
//!                   ▼  trait Appliance
//!            protocol::Mcu<L: Link>   requests, replies, timeouts, retries
//!                   │  frame::{Frame, Decoder}   (no I/O)
//!                   ▼
//!            serial::SerialPort       termios raw, poll timeouts, TIOCEXCL
//! ```
//!
//! # Frames
//!
//! `SOH(0x01) LEN CMD PAYLOAD CRC16`: `LEN` counts `CMD` + `PAYLOAD`; the CRC is
//! CRC-16/XMODEM over `LEN`, `CMD` and `PAYLOAD`, sent big-endian. Payloads are
//! at most [`frame::MAX_PAYLOAD`] (32) bytes. A reader resynchronises on the next
//! `SOH` after garbage, an impossible `LEN` or a bad CRC.
//!
//! # Commands
//!
//! A reply's `CMD` is the request's `CMD | 0x80`.
//!
//! | CMD  | request            | request payload                        | reply payload |
//! |------|--------------------|----------------------------------------|---------------|
//! | 0x01 | get state          | —                                      | state: 0 idle, 1 cooking, 2 keep-warm, 3 timer/reservation set, 4 fault |
//! | 0x02 | show progress      | phase (0 downloading, 1 installing, 2 rebooting, 3 done, 4 failed), percent 0–100 | — (ack) |
//! | 0x03 | reboot notice      | seconds until reboot, u16 big-endian   | 1 accepted, 0 refused (busy) |
//! | 0xFF | error (reply only) | —                                      | code: 1 unknown command, 2 bad length |
//!
//! Requests are idempotent: the SoC repeats a request whose reply it did not
//! get (up to `retries` attempts of `reply_timeout_ms` each). The firmware
//! team's copy of this contract, with worked frames, is `docs/mcu-protocol.md`.
//!
//! # Policy
//!
//! Only an MCU that says *idle* and then *accepts* the reboot notice lets the
//! agent reboot. Busy, refusing, silent, garbled or erroring all mean "not
//! now": the gate asks again every `idle_poll_s` and gives up after
//! `reboot_deadline_s`, leaving the installed update pending for the next
//! attempt. A reboot is never forced. With no `[mcu]` section the gate is open.

pub mod display;
pub mod frame;
pub mod gate;
pub mod protocol;
pub mod serial;
mod sys;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use display::{McuDisplay, NoDisplay, ProgressSink};
pub use gate::{
    Appliance, Clock, Decision, Deferral, GatePolicy, RebootGate, Refusal, SerialMcu, SystemClock,
};
pub use protocol::{Link, Mcu, Notice};
pub use serial::SerialPort;

/// Command bytes (requests; the reply is `cmd | 0x80`).
pub mod cmd {
    /// 0x01 get state.
    pub const GET_STATE: u8 = 0x01;
    /// 0x02 show progress.
    pub const SHOW_PROGRESS: u8 = 0x02;
    /// 0x03 reboot notice.
    pub const REBOOT_NOTICE: u8 = 0x03;
    /// 0xFF error (reply only).
    pub const ERROR: u8 = 0xFF;
    /// Bit set in every reply's command byte.
    pub const REPLY: u8 = 0x80;
}

/// What the appliance is doing (reply to 0x01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// 0: nothing running; the only state in which the agent may reboot.
    Idle,
    /// 1: a cooking programme is running.
    Cooking,
    /// 2: keeping the rice warm.
    KeepWarm,
    /// 3: a timer / reservation is set.
    TimerSet,
    /// 4: the appliance reports a fault.
    Fault,
}

impl State {
    /// Parses the state byte; unknown values are a protocol error.
    pub fn from_byte(b: u8) -> Option<State> {
        Some(match b {
            0 => State::Idle,
            1 => State::Cooking,
            2 => State::KeepWarm,
            3 => State::TimerSet,
            4 => State::Fault,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn byte(self) -> u8 {
        match self {
            State::Idle => 0,
            State::Cooking => 1,
            State::KeepWarm => 2,
            State::TimerSet => 3,
            State::Fault => 4,
        }
    }

    /// A short lowercase name (`mcu status` prints it).
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Cooking => "cooking",
            State::KeepWarm => "keep-warm",
            State::TimerSet => "timer-set",
            State::Fault => "fault",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Update phase shown on the appliance display (0x02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// 0: downloading.
    Downloading,
    /// 1: writing the inactive slot.
    Installing,
    /// 2: about to reboot.
    Rebooting,
    /// 3: finished.
    Done,
    /// 4: the update failed.
    Failed,
}

impl Phase {
    /// The wire value.
    pub fn byte(self) -> u8 {
        match self {
            Phase::Downloading => 0,
            Phase::Installing => 1,
            Phase::Rebooting => 2,
            Phase::Done => 3,
            Phase::Failed => 4,
        }
    }

    /// Parses the phase byte.
    pub fn from_byte(b: u8) -> Option<Phase> {
        Some(match b {
            0 => Phase::Downloading,
            1 => Phase::Installing,
            2 => Phase::Rebooting,
            3 => Phase::Done,
            4 => Phase::Failed,
            _ => return None,
        })
    }
}

/// A failed exchange with the MCU, naming the port.
#[derive(Debug, thiserror::Error)]
#[error("{port}: {kind}")]
pub struct McuError {
    /// The serial device (or link name).
    pub port: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong on the MCU link.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// Opening, configuring, reading or writing the port failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The configured baud rate is not a standard termios rate.
    #[error("unsupported baud rate {0}")]
    UnsupportedBaud(u32),
    /// No valid reply arrived within the attempts allowed.
    #[error("no reply to {request} after {attempts} attempt(s) of {timeout_ms} ms")]
    Silent {
        /// Request name.
        request: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Per-attempt reply timeout.
        timeout_ms: u64,
    },
    /// The MCU answered with an error frame (0xFF).
    #[error("{request} rejected by the mcu: {}", error_code_name(*code))]
    Rejected {
        /// Request name.
        request: &'static str,
        /// The error code.
        code: u8,
    },
    /// A reply with the right command byte but a malformed payload.
    #[error("bad reply to {request}: {reason}")]
    BadReply {
        /// Request name.
        request: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

fn error_code_name(code: u8) -> String {
    match code {
        1 => "unknown command (code 1)".into(),
        2 => "bad length (code 2)".into(),
        other => format!("error code {other}"),
    }
}

impl McuError {
    pub(crate) fn new(port: impl Into<String>, kind: ErrorKind) -> McuError {
        McuError {
            port: port.into(),
            kind,
        }
    }
}

/// The port path as text for messages.
pub(crate) fn port_name(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// `[mcu]`: the serial link to the appliance's main controller.
#[derive(Debug, Clone)]
pub struct McuConfig {
    /// Serial device.
    pub port: PathBuf,
    /// Baud rate (8N1).
    pub baud: u32,
    /// How long to wait for one reply, in milliseconds.
    pub reply_timeout_ms: u64,
    /// Attempts per request before the MCU counts as silent.
    pub retries: u32,
    /// Seconds between "are you idle?" questions while the appliance is busy.
    pub idle_poll_s: u64,
    /// Seconds after which a deferred reboot is given up (the update stays pending).
    pub reboot_deadline_s: u64,
}

impl Default for McuConfig {
    fn default() -> Self {
        McuConfig {
            port: "/dev/ttyS1".into(),
            baud: 9600,
            reply_timeout_ms: 500,
            retries: 3,
            idle_poll_s: 60,
            reboot_deadline_s: 6 * 3600,
        }
    }
}

/// Opens the configured port as a protocol client (`mcu status` uses this;
/// the gate and display open lazily through [`SerialMcu`]).
pub fn open(config: &McuConfig) -> Result<Mcu<SerialPort>, McuError> {
    let port = SerialPort::open(&config.port, config.baud)?;
    Ok(Mcu::new(
        port,
        std::time::Duration::from_millis(config.reply_timeout_ms),
        config.retries,
    ))
}
