//! The serial port at the edge: open, raw 8N1, read with a timeout, write.
//!
//! * Opened with `O_NOCTTY` (never becomes our controlling terminal) and
//!   `O_NONBLOCK` (open does not wait for carrier), then made blocking again.
//! * `TIOCEXCL` so nobody else opens the port while we hold it.
//! * termios raw mode (`cfmakeraw`: no echo, no line editing, no CR/LF
//!   translation, 8 data bits), no parity, one stop bit, `CLOCAL` (ignore modem
//!   lines), `CREAD`, no flow control; `VMIN = 0, VTIME = 0` — reads are
//!   bounded by `poll(2)` instead.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, BaudRate, ControlFlags, FlushArg, SetArg, SpecialCharacterIndices};

use super::protocol::Link;
use super::{port_name, sys, ErrorKind, McuError};

/// An open, configured serial port.
#[derive(Debug)]
pub struct SerialPort {
    file: File,
    path: PathBuf,
}

fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        _ => return None,
    })
}

/// Whether `baud` is a rate [`SerialPort::open`] can set (the standard
/// termios rates 1200..=921600).
pub fn is_supported_baud(baud: u32) -> bool {
    baud_rate(baud).is_some()
}

impl SerialPort {
    /// Opens `path` exclusively at `baud`, 8N1 raw.
    pub fn open(path: &Path, baud: u32) -> Result<SerialPort, McuError> {
        let err = |kind| McuError::new(port_name(path), kind);
        let io_err = |what| move |source: io::Error| err(ErrorKind::Io { what, source });
        let rate = baud_rate(baud).ok_or_else(|| err(ErrorKind::UnsupportedBaud(baud)))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .map_err(io_err("open"))?;
        sys::set_exclusive(file.as_fd()).map_err(io_err("set exclusive mode (TIOCEXCL)"))?;
        let mut tio = termios::tcgetattr(file.as_fd())
            .map_err(|e| io_err("read terminal attributes")(e.into()))?;
        termios::cfmakeraw(&mut tio);
        tio.control_flags &= !(ControlFlags::PARENB | ControlFlags::CSTOPB | ControlFlags::CSIZE);
        tio.control_flags |= ControlFlags::CS8 | ControlFlags::CLOCAL | ControlFlags::CREAD;
        tio.control_flags &= !ControlFlags::CRTSCTS;
        tio.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        tio.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::cfsetspeed(&mut tio, rate).map_err(|e| io_err("set baud rate")(e.into()))?;
        termios::tcsetattr(file.as_fd(), SetArg::TCSANOW, &tio)
            .map_err(|e| io_err("set terminal attributes")(e.into()))?;
        // Blocking again: writes wait for room, reads are bounded by poll.
        fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty()))
            .map_err(|e| io_err("clear O_NONBLOCK")(e.into()))?;
        termios::tcflush(file.as_fd(), FlushArg::TCIOFLUSH)
            .map_err(|e| io_err("flush")(e.into()))?;
        Ok(SerialPort {
            file,
            path: path.to_owned(),
        })
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the port is in exclusive mode (`TIOCGEXCL`).
    pub fn is_exclusive(&self) -> io::Result<bool> {
        sys::is_exclusive(self.file.as_fd())
    }
}

impl Link for SerialPort {
    fn name(&self) -> String {
        port_name(&self.path)
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.flush()
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Rounded up so a sub-millisecond remainder still waits; longer
            // than u16::MAX ms just loops again.
            let ms = u16::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            match self.file.read(buf) {
                // VMIN = 0: a zero read means nothing there after all; wait on.
                Ok(0) if !left.is_zero() => continue,
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn discard_input(&mut self) -> io::Result<()> {
        termios::tcflush(self.file.as_fd(), FlushArg::TCIFLUSH).map_err(io::Error::from)
    }
}
