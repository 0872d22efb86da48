//! The client side (`ota-agent ctl`): connect, check the `hello` line's
//! protocol version, send one request line, read its reply — and for
//! `subscribe`, the event lines after it.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::PROTOCOL;
use crate::{Error, Result};

/// How long a reply may take (the daemon answers from memory).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the daemon.
pub struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: std::path::PathBuf,
}

impl Connection {
    /// Connects to the daemon at `socket` and reads its `hello`. A missing
    /// socket or one nobody listens on means the daemon is not running.
    pub fn open(socket: &Path) -> Result<Connection> {
        let not_running = |e: io::Error| {
            Error::io(
                socket,
                io::Error::new(
                    e.kind(),
                    format!("the ota-agent daemon is not running ({e})"),
                ),
            )
        };
        let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => not_running(e),
            _ => Error::io(socket, e),
        })?;
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| Error::io(socket, e))?;
        let writer = stream.try_clone().map_err(|e| Error::io(socket, e))?;
        let mut c = Connection {
            reader: BufReader::new(stream),
            writer,
            path: socket.to_owned(),
        };
        let hello = c.line()?;
        let v = value(&hello);
        if v["event"] != "hello" {
            // Refused before the hello (too many clients): its error line.
            return Err(c.fail(&format!(
                "the daemon refused the connection: {}",
                hello.trim()
            )));
        }
        let theirs = v["protocol"].as_u64().unwrap_or(0);
        if theirs != u64::from(PROTOCOL) {
            return Err(c.fail(&format!(
                "the daemon speaks protocol {theirs}, this client {PROTOCOL}"
            )));
        }
        Ok(c)
    }

    fn fail(&self, why: &str) -> Error {
        Error::io(&self.path, io::Error::other(why.to_owned()))
    }

    /// The next line from the daemon (`timeout`: `None` waits for ever).
    pub fn next_line(&mut self, timeout: Option<Duration>) -> Result<String> {
        self.reader
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(|e| Error::io(&self.path, e))?;
        self.line()
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(self.fail("the daemon closed the connection")),
            Ok(_) => Ok(line),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(self.fail(&format!(
                    "the daemon did not answer within {} s",
                    REPLY_TIMEOUT.as_secs()
                )))
            }
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// Sends `request` (one JSON object) and returns the reply line; event
    /// lines before it (a subscription on this connection) are skipped.
    pub fn request(&mut self, request: &str) -> Result<String> {
        let mut line = request.trim_end().to_owned();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, e))?;
        loop {
            let reply = self.next_line(Some(REPLY_TIMEOUT))?;
            if !reply.starts_with("{\"event\"") {
                return Ok(reply);
            }
        }
    }
}

/// A line as JSON (`null` when it is none).
fn value(line: &str) -> serde_json::Value {
    serde_json::from_slice(line.as_bytes()).unwrap_or_default()
}

/// The reply's `error`, if it is an error reply.
pub fn reply_error(reply: &str) -> Option<String> {
    let v = value(reply);
    if v["ok"] == true {
        return None;
    }
    Some(
        v["error"]
            .as_str()
            .map_or_else(|| reply.trim().to_owned(), str::to_owned),
    )
}
