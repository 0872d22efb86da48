//! The control server: one thread, `poll(2)` over the listening socket,
//! the hub's wake-up socket and every client, non-blocking reads and
//! writes from per-client buffers. Requests are answered in order; a
//! subscriber gets every event line and `progress` at most once per its
//! interval (the newest document, never a backlog).
//!
//! Bounds: [`MAX_CLIENTS`] connections (one more is told so and closed), a
//! request line of [`protocol::MAX_LINE`] bytes (longer: an error line,
//! then the connection is closed), [`MAX_QUEUED`] bytes waiting for a
//! client (more: the client is dropped — a reader that does not read
//! cannot hold up the update or the other clients). A client's requests
//! are read only while less than `PAUSE_AT` bytes wait for it, so one that
//! sends requests without reading the replies is stalled by its own full
//! socket, not served in a loop (it costs no CPU; measured in
//! docs/benchmarks.md "Control socket").

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::hub::Hub;
use super::protocol::{self, Command};
use super::ControlConfig;
use crate::{Error, Result};

/// Most clients connected at once.
pub const MAX_CLIENTS: usize = 16;
/// Most bytes queued for one client before it is dropped.
pub const MAX_QUEUED: usize = 64 << 10;
/// A client's requests wait while this many bytes of replies and events
/// wait for it.
const PAUSE_AT: usize = 16 << 10;

/// Binds `c.socket` with `c.mode` and `c.group`. A socket file left by a
/// daemon that died is replaced; one that answers is another daemon's.
pub fn bind(c: &ControlConfig) -> Result<UnixListener> {
    let path = &c.socket;
    let fail = |why: String| Error::io(path, io::Error::other(why));
    if UnixStream::connect(path).is_ok() {
        return Err(fail(
            "another ota-agent daemon answers on this socket".into(),
        ));
    }
    match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            fs::remove_file(path).map_err(|e| Error::io(path, e))?
        }
        Ok(_) => return Err(fail("exists and is not a socket; not replaced".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    let gid = c.group.as_deref().map(group_id).transpose()?;
    // Created with the process umask (connecting needs write permission),
    // then opened up to exactly `mode` for the owner and `group`.
    let l = UnixListener::bind(path).map_err(|e| Error::io(path, e))?;
    let done = (|| {
        if let Some(g) = gid {
            std::os::unix::fs::chown(path, None, Some(g))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(c.mode))?;
        l.set_nonblocking(true)
    })();
    if let Err(e) = done {
        let _ = fs::remove_file(path);
        return Err(Error::io(path, e));
    }
    Ok(l)
}

/// A group name from `/etc/group`, or a number.
fn group_id(name: &str) -> Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let text = fs::read_to_string("/etc/group").map_err(|e| Error::io("/etc/group", e))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(n, _)| *n == name)
        .and_then(|(_, gid)| gid.parse().ok())
        .ok_or_else(|| {
            Error::io(
                "/etc/group",
                io::Error::other(format!(
                    "[control] group \"{}\" does not exist",
                    crate::error::quote(name)
                )),
            )
        })
}

/// Serves `listener` on a new thread until the process ends.
pub fn spawn(listener: UnixListener, wake: UnixStream, hub: Arc<Hub>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ota-control".into())
        // Requests are refused past protocol::MAX_DEPTH before they are
        // parsed; the rest (poll, formatting) needs little.
        .stack_size(256 << 10)
        .spawn(move || Server::new(listener, wake, hub).run())
        .map(drop)
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    out: Vec<u8>,
    sub: Option<Sub>,
    /// The client closed its side: answer what it sent, then close
    /// (a subscriber keeps its events).
    eof: bool,
    /// Close once `out` is written (after a fatal protocol error).
    closing: bool,
    dead: bool,
}

impl Client {
    /// A complete request line waits in `input`.
    fn has_line(&self) -> bool {
        self.input.contains(&b'\n')
    }

    /// Whether to read more from the socket now.
    fn wants_input(&self) -> bool {
        !self.eof && !self.closing && !self.has_line() && self.out.len() < PAUSE_AT
    }
}

struct Sub {
    interval: Duration,
    last: Option<Instant>,
    /// The document sequence last sent.
    seq: u64,
}

struct Server {
    listener: UnixListener,
    wake: UnixStream,
    hub: Arc<Hub>,
    clients: Vec<Client>,
    cursor: u64,
}

impl Server {
    fn new(listener: UnixListener, wake: UnixStream, hub: Arc<Hub>) -> Server {
        let cursor = hub.news(0).cursor;
        Server {
            listener,
            wake,
            hub,
            clients: Vec::new(),
            cursor,
        }
    }

    fn run(mut self) {
        loop {
            let timeout = self.next_progress_due();
            let ready = {
                let mut fds = vec![
                    PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
                ];
                for c in &self.clients {
                    let mut want = PollFlags::empty();
                    if c.wants_input() {
                        want |= PollFlags::POLLIN;
                    }
                    if !c.out.is_empty() {
                        want |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(c.stream.as_fd(), want));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => fds
                        .iter()
                        .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                        .collect::<Vec<_>>(),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        log::error!(
                            "control socket: poll failed: {e}; the socket is no longer served"
                        );
                        return;
                    }
                }
            };
            if !ready[1].is_empty() {
                let mut sink = [0u8; 256];
                while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
            }
            if !ready[0].is_empty() {
                self.accept();
            }
            let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
            for (c, r) in self.clients.iter_mut().zip(ready.iter().skip(2)) {
                if r.intersects(readable) && c.wants_input() {
                    read_input(c);
                }
                serve_lines(c, &self.hub);
                // The peer closed both ways: nothing can reach it any more.
                if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                    c.dead = true;
                }
            }
            self.distribute();
            for c in &mut self.clients {
                flush(c);
            }
            self.clients.retain(|c| !c.dead);
            // Events go to subscribers only: a client that lets its
            // replies pile up does not hold the daemon's exit.
            let flushed = self
                .clients
                .iter()
                .all(|c| c.sub.is_none() || c.out.is_empty());
            self.hub.served(self.cursor, flushed);
        }
    }

    /// When the next rate-limited `progress` is due (`NONE` = none waits).
    fn next_progress_due(&self) -> PollTimeout {
        let latest = self.hub.doc_seq();
        let now = Instant::now();
        self.clients
            .iter()
            .filter_map(|c| c.sub.as_ref())
            .filter(|s| s.seq < latest)
            .map(|s| {
                s.last.map_or(Duration::ZERO, |t| {
                    (t + s.interval).saturating_duration_since(now)
                })
            })
            .min()
            .map_or(PollTimeout::NONE, |d| {
                // Rounded up: waking a millisecond early would spin.
                PollTimeout::from(u16::try_from(d.as_millis() + 1).unwrap_or(u16::MAX))
            })
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS {
                        let line =
                            protocol::error(None, &format!("too many clients ({MAX_CLIENTS})"));
                        let _ = stream.set_nonblocking(true);
                        let _ = (&stream).write(line.as_bytes());
                        log::warn!("control socket: refused a client: {MAX_CLIENTS} are connected");
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        stream,
                        input: Vec::new(),
                        out: protocol::hello().into_bytes(),
                        sub: None,
                        eof: false,
                        closing: false,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("control socket: accept: {e}");
                    return;
                }
            }
        }
    }

    /// New events to every subscriber; `progress` to those it is due.
    fn distribute(&mut self) {
        let news = self.hub.news(self.cursor);
        self.cursor = news.cursor;
        let now = Instant::now();
        for c in &mut self.clients {
            let Some(sub) = c.sub.as_mut() else { continue };
            for (seq, line) in &news.events {
                c.out.extend_from_slice(line.as_bytes());
                // A phase event carries the document it was sent with.
                sub.seq = sub.seq.max(*seq);
            }
            let (seq, line) = &news.progress;
            let due = sub
                .last
                .is_none_or(|t| now.duration_since(t) >= sub.interval);
            if *seq > sub.seq && due {
                c.out.extend_from_slice(line.as_bytes());
                sub.seq = *seq;
                sub.last = Some(now);
            }
        }
    }
}

/// Reads what `c` sent, until the socket is empty or a line is complete.
fn read_input(c: &mut Client) {
    let mut buf = [0u8; 4096];
    while !c.has_line() && c.input.len() <= protocol::MAX_LINE {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.eof = true;
                return;
            }
            Ok(n) => c.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
}

/// Answers `c`'s complete lines while fewer than [`PAUSE_AT`] bytes wait
/// for it: a client that does not read its replies is not read either (its
/// writes block in the kernel), so it costs neither memory nor CPU.
fn serve_lines(c: &mut Client, hub: &Hub) {
    while c.out.len() < PAUSE_AT {
        let Some(end) = c.input.iter().position(|&b| b == b'\n') else {
            break;
        };
        let line: Vec<u8> = c.input.drain(..=end).collect();
        if end + 1 > protocol::MAX_LINE {
            refuse_long(c);
            return;
        }
        let line = &line[..end];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match protocol::parse(line) {
            Ok(req) => {
                if let Command::Subscribe { interval_ms } = req.cmd {
                    c.sub = Some(Sub {
                        interval: Duration::from_millis(interval_ms),
                        last: None,
                        seq: 0,
                    });
                }
                hub.handle(req.id, &req.cmd)
            }
            Err(r) => protocol::error(r.id, &r.error),
        };
        c.out.extend_from_slice(reply.as_bytes());
    }
    if !c.has_line() && c.input.len() >= protocol::MAX_LINE {
        refuse_long(c);
    } else if c.eof && c.sub.is_none() && !c.has_line() {
        c.closing = true;
    }
}

fn refuse_long(c: &mut Client) {
    let line = protocol::error(
        None,
        &format!(
            "request line longer than {} bytes; closing",
            protocol::MAX_LINE
        ),
    );
    c.out.extend_from_slice(line.as_bytes());
    c.input.clear();
    c.closing = true;
}

/// Writes what is queued for `c` without blocking; drops a client that
/// lets more than [`MAX_QUEUED`] bytes pile up.
fn flush(c: &mut Client) {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
    if c.out.len() > MAX_QUEUED {
        log::warn!(
            "control socket: dropped a client that does not read ({} bytes queued)",
            c.out.len()
        );
        c.dead = true;
    } else if c.out.is_empty() && c.closing {
        c.dead = true;
    }
}
