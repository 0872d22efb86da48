//! The request/response client: one request, one reply, bounded waiting.
//!
//! Each attempt discards stale input, sends the request frame and reads until
//! the matching reply (`cmd | 0x80`) or an error frame (`0xFF`) arrives or the
//! reply timeout passes. Frames with another command byte (a late reply to an
//! earlier attempt, noise that happens to be a frame) are logged and ignored.
//! A timed-out attempt is repeated, up to `retries` attempts in all; an error
//! frame or a malformed reply is final (the CRC already ruled out line noise).

use std::io;
use std::time::{Duration, Instant};

use super::frame::{Decoder, Frame};
use super::{cmd, ErrorKind, McuError, Phase, State};

/// A byte link to the MCU (the serial port, or a test double).
pub trait Link {
    /// A name for messages (the device path).
    fn name(&self) -> String;
    /// Writes all of `bytes`.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads what is available, waiting at most `timeout`; `Ok(0)` = timed out.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Drops unread input (stale replies, noise).
    fn discard_input(&mut self) -> io::Result<()>;
}

/// The MCU's answer to a reboot notice (0x03).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// 1: the appliance agrees to the reboot.
    Accepted,
    /// 0: the appliance is busy; do not reboot.
    Refused,
}

/// Default per-attempt reply timeout: a 7-byte frame takes 7 ms at 9600 baud,
/// so this leaves the MCU's main loop ample time.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_millis(500);
/// Default attempts per request (silent after 1.5 s with the default timeout).
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// The protocol client over a [`Link`].
#[derive(Debug)]
pub struct Mcu<L> {
    link: L,
    replytimeout: Duration,
    attempts: u32,
    decoder: Decoder,
}

impl<L: Link> Mcu<L> {
    /// A client waiting `replytimeout` per attempt, `attempts` attempts per
    /// request (0 is taken as 1).
    pub fn new(link: L, replytimeout: Duration, attempts: u32) -> Mcu<L> {
        Mcu {
            link,
            replytimeout,
            attempts: attempts.max(1),
            decoder: Decoder::new(),
        }
    }

    /// The underlying link.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// 0x01: what the appliance is doing.
    pub fn state(&mut self) -> Result<State, McuError> {
        const REQ: &str = "get-state";
        let reply = self.request(REQ, cmd::GET_STATE, &[])?;
        match reply.payload() {
            [b] => State::from_byte(*b).ok_or_else(|| self.bad(REQ, format!("unknown state {b}"))),
            p => Err(self.bad(REQ, format!("{} payload bytes, expected 1", p.len()))),
        }
    }

    /// 0x02: shows `phase` and `percent` (clamped to 100) on the display.
    pub fn show_progress(&mut self, phase: Phase, percent: u8) -> Result<(), McuError> {
        const REQ: &str = "show-progress";
        let reply = self.request(REQ, cmd::SHOW_PROGRESS, &[phase.byte(), percent.min(100)])?;
        match reply.payload() {
            [] => Ok(()),
            p => Err(self.bad(REQ, format!("{} payload bytes, expected 0", p.len()))),
        }
    }

    /// 0x03: announces a reboot in `seconds`; the appliance accepts or refuses.
    pub fn reboot_notice(&mut self, seconds: u16) -> Result<Notice, McuError> {
        const REQ: &str = "reboot-notice";
        let reply = self.request(REQ, cmd::REBOOT_NOTICE, &seconds.to_be_bytes())?;
        match reply.payload() {
            [1] => Ok(Notice::Accepted),
            [0] => Ok(Notice::Refused),
            [b] => Err(self.bad(REQ, format!("answer {b}, expected 0 or 1"))),
            p => Err(self.bad(REQ, format!("{} payload bytes, expected 1", p.len()))),
        }
    }

    fn bad(&self, request: &'static str, reason: String) -> McuError {
        McuError::new(self.link.name(), ErrorKind::BadReply { request, reason })
    }

    /// Sends `cmd` + `payload` and returns the reply frame (or the error frame
    /// as an error), retrying timed-out attempts.
    fn request(&mut self, name: &'static str, cmd: u8, payload: &[u8]) -> Result<Frame, McuError> {
        // Every request payload here is ≤ 2 bytes, far below MAX_PAYLOAD.
        let wire = Frame::new(cmd, payload)
            .map_err(|e| self.bad(name, e.to_string()))?
            .encode();
        let io_err =
            |link: &L, what, source| McuError::new(link.name(), ErrorKind::Io { what, source });
        for attempt in 1..=self.attempts {
            self.link
                .discard_input()
                .map_err(|e| io_err(&self.link, "discard input", e))?;
            self.decoder.reset();
            self.link
                .send(wire.as_bytes())
                .map_err(|e| io_err(&self.link, "write", e))?;
            match self
                .await_reply(cmd)
                .map_err(|e| io_err(&self.link, "read", e))?
            {
                Some(reply) if reply.cmd() == cmd::ERROR => {
                    let code = reply.payload().first().copied().unwrap_or(0);
                    return Err(McuError::new(
                        self.link.name(),
                        ErrorKind::Rejected {
                            request: name,
                            code,
                        },
                    ));
                }
                Some(reply) => return Ok(reply),
                None => log::debug!(
                    "mcu {}: no reply to {name} (attempt {attempt}/{}), decoder {:?}",
                    self.link.name(),
                    self.attempts,
                    self.decoder.stats()
                ),
            }
        }
        Err(McuError::new(
            self.link.name(),
            ErrorKind::Silent {
                request: name,
                attempts: self.attempts,
                timeout_ms: u64::try_from(self.replytimeout.as_millis()).unwrap_or(u64::MAX),
            },
        ))
    }

    /// Reads until a reply to `cmd` (or an error frame) or the timeout.
    fn await_reply(&mut self, cmd: u8) -> io::Result<Option<Frame>> {
        let deadline = Instant::now() + self.replytimeout;
        let want = cmd | cmd::REPLY;
        let mut buf = [0u8; 64];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let n = self.link.recv(&mut buf, left)?;
            let mut found = None;
            let name = self.link.name();
            self.decoder.feed(&buf[..n], |frame| {
                if found.is_some() {
                    return;
                }
                if frame.cmd() == want || frame.cmd() == cmd::ERROR {
                    found = Some(frame);
                } else {
                    log::debug!("mcu {name}: ignoring unexpected {frame:?}");
                }
            });
            if found.is_some() {
                return Ok(found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A link that answers each sent request with the next scripted bytes
    /// (None = stay silent for that attempt).
    struct Scripted {
        replies: VecDeque<Option<Vec<u8>>>,
        pending: Vec<u8>,
        sent: Vec<Vec<u8>>,
    }

    impl Scripted {
        fn new(replies: Vec<Option<Vec<u8>>>) -> Self {
            Scripted {
                replies: replies.into(),
                pending: Vec::new(),
                sent: Vec::new(),
            }
        }
    }

    impl Link for Scripted {
        fn name(&self) -> String {
            "scripted".into()
        }
        fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.sent.push(bytes.to_vec());
            if let Some(Some(r)) = self.replies.pop_front() {
                self.pending = r;
            }
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
            // Deliver in 3-byte pieces to exercise chunking; nothing = timeout.
            if self.pending.is_empty() {
                std::thread::sleep(timeout);
                return Ok(0);
            }
            let n = self.pending.len().min(3).min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
        fn discard_input(&mut self) -> io::Result<()> {
            self.pending.clear();
            Ok(())
        }
    }

    fn frame(cmd: u8, payload: &[u8]) -> Vec<u8> {
        Frame::new(cmd, payload)
            .unwrap()
            .encode()
            .as_bytes()
            .to_vec()
    }

    fn mcu(replies: Vec<Option<Vec<u8>>>) -> Mcu<Scripted> {
        // "Silent" is an empty read after sleeping the (short) timeout.
        Mcu::new(Scripted::new(replies), Duration::from_millis(5), 3)
    }

    #[test]
    fn state_reply_is_parsed_and_request_is_on_the_wire() {
        let mut m = mcu(vec![Some(frame(0x81, &[1]))]);
        assert_eq!(m.state().unwrap(), State::Cooking);
        // From python: binascii.crc_hqx(bytes([1, 1]), 0) == 0x2310
        assert_eq!(m.link.sent, vec![vec![0x01, 0x01, 0x01, 0x23, 0x10]]);
    }

    #[test]
    fn silent_attempts_are_retried_then_reported() {
        let mut m = mcu(vec![None, None, Some(frame(0x81, &[0]))]);
        assert_eq!(m.state().unwrap(), State::Idle);
        assert_eq!(m.link.sent.len(), 3);
        let mut m = mcu(vec![None, None, None, Some(frame(0x81, &[0]))]);
        let e = m.state().unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::Silent { attempts: 3, .. }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "scripted: no reply to get-state after 3 attempt(s) of 5 ms"
        );
    }

    #[test]
    fn stale_and_foreign_frames_are_skipped() {
        let mut stream = frame(0x83, &[1]);
        stream.extend_from_slice(&[0xde, 0xad]);
        stream.extend(frame(0x82, &[]));
        let mut m = mcu(vec![Some(stream)]);
        m.show_progress(Phase::Installing, 150).unwrap();
        // percent clamped to 100
        assert_eq!(m.link.sent[0], frame(0x02, &[1, 100]));
    }

    #[test]
    fn error_frame_is_final() {
        let mut m = mcu(vec![Some(frame(0xff, &[1])), Some(frame(0x83, &[1]))]);
        let e = m.reboot_notice(10).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Rejected { code: 1, .. }), "{e}");
        assert!(e.to_string().contains("unknown command"), "{e}");
        assert_eq!(m.link.sent.len(), 1);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let mut m = mcu(vec![Some(frame(0x81, &[9]))]);
        assert!(m
            .state()
            .unwrap_err()
            .to_string()
            .contains("unknown state 9"));
        let mut m = mcu(vec![Some(frame(0x81, &[0, 0]))]);
        assert!(m.state().is_err());
        let mut m = mcu(vec![Some(frame(0x83, &[2]))]);
        assert!(m.reboot_notice(1).is_err());
        let mut m = mcu(vec![Some(frame(0x82, &[0]))]);
        assert!(m.show_progress(Phase::Done, 100).is_err());
    }

    #[test]
    fn notice_answers() {
        let mut m = mcu(vec![Some(frame(0x83, &[1])), Some(frame(0x83, &[0]))]);
        assert_eq!(m.reboot_notice(300).unwrap(), Notice::Accepted);
        assert_eq!(m.reboot_notice(300).unwrap(), Notice::Refused);
        assert_eq!(m.link.sent[0], frame(0x03, &[0x01, 0x2c]));
    }
}
