//! A simulated appliance MCU on the master side of a pseudo-terminal pair.
//! The agent code under test opens the slave's path like a real UART.
//!
//! The simulator implements docs/mcu-protocol.md's command table itself (frames built
//! with the `crc` crate directly, not with the agent's encoder) and answers
//! per a [`Script`]. It records every request frame it receives.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crc::{Crc, CRC_16_XMODEM};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios;

/// How the simulated MCU behaves.
#[derive(Clone, Debug)]
pub struct Script {
    /// Answers to successive get-state requests; the last one repeats.
    pub states: Vec<u8>,
    /// Answer to reboot notices (1 accept, 0 refuse).
    pub notice: u8,
    /// Never answer anything.
    pub silent: bool,
    /// Surround every reply with garbage, a corrupted copy and false starts.
    pub noisy: bool,
    /// Leave this many requests unanswered first (lost replies).
    pub drop_first: usize,
}

impl Script {
    pub fn states(states: &[u8]) -> Script {
        Script {
            states: states.to_vec(),
            notice: 1,
            silent: false,
            noisy: false,
            drop_first: 0,
        }
    }
}

/// A request as received: (cmd, payload).
pub type Request = (u8, Vec<u8>);

pub struct SimMcu {
    path: PathBuf,
    // Held open so the master never sees a hang-up between agent opens.
    _slave: OwnedFd,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Request>>>,
    thread: Option<JoinHandle<()>>,
}

fn crc16(bytes: &[u8]) -> u16 {
    Crc::<u16>::new(&CRC_16_XMODEM).checksum(bytes)
}

/// A frame built independently of the agent's encoder.
pub fn frame(cmd: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![payload.len() as u8 + 1, cmd];
    body.extend_from_slice(payload);
    let crc = crc16(&body);
    let mut out = vec![0x01];
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Minimal request parser for the simulator: scans for SOH, checks LEN and
/// CRC, skips one byte on any failure (requests arrive clean here; the
/// agent's decoder is what the noisy tests exercise).
fn parse_requests(buf: &mut Vec<u8>) -> Vec<Request> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        if buf[i] != 0x01 || i + 1 >= buf.len() {
            if buf[i] != 0x01 {
                i += 1;
                continue;
            }
            break;
        }
        let len = buf[i + 1] as usize;
        if len == 0 {
            i += 1;
            continue;
        }
        if buf.len() < i + len + 4 {
            break;
        }
        let body = &buf[i + 1..i + 2 + len];
        let crc = u16::from_be_bytes([buf[i + 2 + len], buf[i + 3 + len]]);
        if crc16(body) == crc {
            out.push((body[1], body[2..].to_vec()));
            i += len + 4;
        } else {
            i += 1;
        }
    }
    buf.drain(..i);
    out
}

fn reply(script: &Script, state_queries: &mut usize, (cmd, payload): &Request) -> Vec<u8> {
    match (*cmd, payload.len()) {
        (0x01, 0) => {
            let i = (*state_queries).min(script.states.len() - 1);
            *state_queries += 1;
            frame(0x81, &[script.states[i]])
        }
        (0x02, 2) => frame(0x82, &[]),
        (0x03, 2) => frame(0x83, &[script.notice]),
        (0x01..=0x03, _) => frame(0xff, &[2]),
        _ => frame(0xff, &[1]),
    }
}

fn noisy(reply: &[u8]) -> Vec<u8> {
    let mut corrupted = reply.to_vec();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0x5a; // bad CRC
    let mut out = vec![0x00, 0xff, 0x55, 0x01, 0x00, 0x01, 0x40, 0x13]; // garbage, SOH LEN=0, SOH LEN=64
    out.extend_from_slice(&corrupted);
    out.extend_from_slice(&[0x01, 0x03, 0x81]); // a false start...
    out.extend_from_slice(reply); // ...that would swallow the real reply
    out.extend_from_slice(&[0x01, 0x0c, 0x7e]); // an unfinished false start after it
    out
}

impl SimMcu {
    pub fn start(script: Script) -> SimMcu {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        // Raw from the start, so nothing is echoed before the agent opens it.
        let mut tio = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        termios::cfmakeraw(&mut tio);
        termios::tcsetattr(pty.slave.as_fd(), termios::SetArg::TCSANOW, &tio).unwrap();
        let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let mut master = File::from(pty.master);
        let thread = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                let mut state_queries = 0;
                let mut seen = 0;
                loop {
                    // Once asked to stop, drain what is already written
                    // (so `finish` sees every request), then end.
                    let stopping = stop.load(Ordering::Relaxed);
                    let wait = PollTimeout::from(if stopping { 0u16 } else { 20 });
                    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                    if poll(&mut fds, wait).unwrap() == 0 {
                        if stopping {
                            break;
                        }
                        continue;
                    }
                    let mut buf = [0u8; 256];
                    let n = match master.read(&mut buf) {
                        Ok(n) => n,
                        Err(_) => break,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    for req in parse_requests(&mut pending) {
                        requests.lock().unwrap().push(req.clone());
                        seen += 1;
                        if script.silent || seen <= script.drop_first {
                            continue;
                        }
                        let answer = reply(&script, &mut state_queries, &req);
                        let bytes = if script.noisy { noisy(&answer) } else { answer };
                        // Dribble in small pieces, like a slow UART.
                        for piece in bytes.chunks(3) {
                            master.write_all(piece).unwrap();
                            std::thread::sleep(Duration::from_micros(300));
                        }
                    }
                }
            })
        };
        SimMcu {
            path,
            _slave: pty.slave,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The slave device the agent opens (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the simulator after it has read everything sent to it, and
    /// returns every request it received.
    pub fn finish(mut self) -> Vec<Request> {
        self.stop_and_join();
        self.requests.lock().unwrap().clone()
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("simulator thread panicked");
        }
    }
}

/// How many of `requests` have command `cmd`.
pub fn count(requests: &[Request], cmd: u8) -> usize {
    requests.iter().filter(|(c, _)| *c == cmd).count()
}

impl Drop for SimMcu {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn sim_frames_match_python() {
    // python3 -c 'import binascii; print(hex(binascii.crc_hqx(bytes([2,0x81,1]), 0)))' -> 0x56e8
    assert_eq!(frame(0x81, &[1]), [0x01, 0x02, 0x81, 0x01, 0x56, 0xe8]);
}
