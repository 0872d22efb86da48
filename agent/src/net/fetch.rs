//! Resumable downloads: [`Download`] is an `io::Read` over one remote file
//! that reconnects by itself with `Range`/`If-Range` (`net::to_file` stores
//! one with a power-cut-safe checkpoint).
//!
//! Resume rules (RFC 9110 §13.1.5 If-Range, §14 Range, §15.3.7 206,
//! §15.5.17 416):
//! * a resumed request carries `Range: bytes=N-` and `If-Range:` with the
//!   strong ETag of the bytes already held (a weak ETag may not be used in
//!   If-Range; then `Last-Modified` is used). Without any validator a resume
//!   could splice two versions, so the download restarts from 0 instead;
//! * `206` must carry `Content-Range: bytes N-…/LEN` starting exactly at N,
//!   with the same validator and length as before, else it counts as changed;
//! * `200` to a range request means the file changed (If-Range failed) or
//!   the server ignores ranges. Same validator: the first N body bytes are
//!   skipped. Otherwise the consumer is told [`NetErrorKind::Changed`] and
//!   must call [`Download::restart`] after dropping its unverified bytes;
//! * `416` with `bytes */N`: everything is already here; otherwise changed.

use std::io::{self, Read};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{classify, classify_io, status_kind, Backoff, Client, NetError, NetErrorKind};
use crate::Result;

/// What identifies the exact version of a remote file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// A strong entity tag, quotes included (`"5f3e-1a2b"`).
    Etag(String),
    /// The `Last-Modified` date, verbatim.
    LastModified(String),
}

impl Validator {
    fn from_response<B>(resp: &ureq::http::Response<B>) -> Option<Validator> {
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match h("etag") {
            Some(e) if !e.starts_with("W/") && e.len() >= 2 => Some(Validator::Etag(e)),
            _ => h("last-modified").map(Validator::LastModified),
        }
    }

    fn header_value(&self) -> &str {
        match self {
            Validator::Etag(v) | Validator::LastModified(v) => v,
        }
    }
}

/// Counters of one download, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests sent.
    pub requests: u32,
    /// Body bytes received from the server (including skipped and discarded ones).
    pub received: u64,
    /// Connections that failed transiently (cut, timeout, 5xx).
    pub failures: u32,
    /// Times the file changed and the download started over.
    pub restarts: u32,
}

/// A parsed `Content-Range: bytes FIRST-LAST/LEN` or `bytes */LEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub range: Option<(u64, u64)>,
    pub len: Option<u64>,
}

pub(crate) fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, len) = rest.split_once('/')?;
    let len = match len {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    let range = match range {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-')?;
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            if b < a || len.is_some_and(|l| b >= l) {
                return None;
            }
            Some((a, b))
        }
    };
    Some(ContentRange { range, len })
}

/// One remote file as a byte stream from `offset` on, reconnecting on
/// transient failures (bounded by the client's backoff policy).
pub struct Download {
    client: Client,
    url: String,
    pos: u64,
    total: Option<u64>,
    validator: Option<Validator>,
    body: Option<ureq::BodyReader<'static>>,
    /// Bytes read from the current connection.
    conn_read: u64,
    backoff: Backoff,
    /// A `200` response held back until the consumer calls `restart`.
    pending: Option<(ureq::BodyReader<'static>, Option<u64>, Option<Validator>)>,
    /// Resume without a validator (the consumer checks every byte against a
    /// signed hash, so a splice is caught before it matters).
    blind: bool,
    stats: Stats,
    /// Start of the current minimum-progress window and the bytes in it.
    window: Option<(Instant, u64)>,
    /// When the last `read` returned.
    last_return: Option<Instant>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("url", &self.url)
            .field("pos", &self.pos)
            .field("total", &self.total)
            .field("validator", &self.validator)
            .finish()
    }
}

impl Download {
    /// Prepares a download of `url` starting at `offset`, where the bytes
    /// before `offset` (if any) were of the version `validator`. Nothing is
    /// sent before the first read.
    pub fn new(
        client: &Client,
        url: &str,
        offset: u64,
        validator: Option<Validator>,
    ) -> Result<Download, NetError> {
        client.check_scheme(url)?;
        // Bytes of an unknown version cannot be resumed safely (see
        // `new_verified_by_consumer` for the exception).
        let offset = if validator.is_some() { offset } else { 0 };
        Ok(Download {
            client: client.clone(),
            url: url.to_owned(),
            pos: offset,
            total: None,
            validator,
            body: None,
            conn_read: 0,
            backoff: client.settings().backoff.clone(),
            pending: None,
            blind: false,
            stats: Stats::default(),
            window: None,
            last_return: None,
        })
    }

    /// Like [`Download::new`], but resumes at `offset` even without a
    /// validator (`Range` without `If-Range`), and [`Download::skip_on_change`]
    /// may continue across a change. Only for consumers that verify every
    /// byte against the signed SHA-256 before the data is used (the
    /// installer reads the slot back): a splice then fails that check
    /// instead of being activated.
    pub fn new_verified_by_consumer(
        client: &Client,
        url: &str,
        offset: u64,
        validator: Option<Validator>,
    ) -> Result<Download, NetError> {
        let mut d = Download::new(client, url, 0, validator)?;
        d.pos = offset;
        d.blind = true;
        Ok(d)
    }

    /// After [`NetErrorKind::Changed`], for a consumer that cannot restart:
    /// continue at the same position in the new version's `200` body
    /// (skipping the bytes before it). Returns false when there is no such
    /// body (then the next read sends a fresh range request).
    pub fn skip_on_change(&mut self) -> bool {
        let Some((mut body, total, validator)) = self.pending.take() else {
            // A 206 of another version: the next range request adopts
            // whatever version the server has now.
            self.stats.restarts += 1;
            self.validator = None;
            self.total = None;
            return false;
        };
        self.stats.restarts += 1;
        let skipped = io::copy(&mut (&mut body).take(self.pos), &mut io::sink()).unwrap_or(0);
        self.stats.received += skipped;
        self.total = total;
        self.validator = validator;
        self.conn_read = 0;
        if skipped == self.pos {
            self.body = Some(body);
            true
        } else {
            self.body = None;
            false
        }
    }

    /// The next byte offset this download yields.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The file's length, once a response said it.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The version of the bytes yielded so far.
    pub fn validator(&self) -> Option<&Validator> {
        self.validator.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// After [`NetErrorKind::Changed`]: the consumer dropped what it had;
    /// the download continues from byte 0 of the new version.
    pub fn restart(&mut self) {
        self.stats.restarts += 1;
        self.pos = 0;
        self.conn_read = 0;
        match self.pending.take() {
            Some((body, total, validator)) => {
                self.body = Some(body);
                self.total = total;
                self.validator = validator;
            }
            None => {
                self.body = None;
                self.total = None;
                self.validator = None;
            }
        }
    }

    /// One request from `self.pos`.
    fn connect(&mut self) -> Result<(), NetError> {
        let url = self.url.as_str();
        let err = |kind| NetError::new(url, kind);
        let mut req = self.client.get_request(url); // hawkbit: auth header
        let ranged = self.pos > 0;
        if ranged {
            req = req.header("Range", format!("bytes={}-", self.pos));
            if let Some(v) = &self.validator {
                req = req.header("If-Range", v.header_value());
            }
        }
        self.stats.requests += 1;
        let resp = req.call().map_err(|e| classify(url, e))?;
        let status = resp.status().as_u16();
        let validator = Validator::from_response(&resp);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match status {
            206 if ranged => {
                let cr = header("content-range")
                    .and_then(|v| parse_content_range(&v))
                    .ok_or_else(|| {
                        err(NetErrorKind::Protocol(
                            "206 without a valid Content-Range".into(),
                        ))
                    })?;
                let Some((first, _last)) = cr.range else {
                    return Err(err(NetErrorKind::Protocol("206 with `bytes */…`".into())));
                };
                if first != self.pos {
                    return Err(err(NetErrorKind::Protocol(format!(
                        "asked for bytes from {}, Content-Range starts at {first}",
                        self.pos
                    ))));
                }
                let same_len = match (self.total, cr.len) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                let blind_first = self.blind && self.validator.is_none();
                if !blind_first && (validator.is_some() && validator != self.validator || !same_len)
                {
                    // If-Range should have prevented this; trust the newer facts.
                    self.pending = None;
                    return Err(err(NetErrorKind::Changed));
                }
                if cr.len.is_some() {
                    self.total = cr.len;
                }
                if blind_first {
                    self.validator = validator;
                }
                self.body = Some(resp.into_body().into_reader());
                self.conn_read = 0;
                Ok(())
            }
            200 => {
                let total = resp.body().content_length();
                let body = resp.into_body().into_reader();
                if !ranged {
                    self.total = total;
                    self.validator = validator;
                    self.body = Some(body);
                    self.conn_read = 0;
                    return Ok(());
                }
                let unchanged = validator.is_some()
                    && validator == self.validator
                    && (self.total.is_none() || total == self.total);
                if unchanged {
                    // The server ignores Range; skip what we already have.
                    log::info!("{url}: no range support; skipping {} bytes", self.pos);
                    let mut body = body;
                    let skipped = io::copy(&mut (&mut body).take(self.pos), &mut io::sink())
                        .map_err(|e| classify_io(url, e))?;
                    self.stats.received += skipped;
                    if skipped != self.pos {
                        return Err(err(NetErrorKind::Transient(
                            "connection ended while skipping held bytes".into(),
                        )));
                    }
                    self.total = total;
                    self.body = Some(body);
                    self.conn_read = 0;
                    return Ok(());
                }
                self.pending = Some((body, total, validator));
                Err(err(NetErrorKind::Changed))
            }
            416 if ranged => {
                let cr = header("content-range").and_then(|v| parse_content_range(&v));
                match cr.and_then(|c| c.len) {
                    // nginx sends no ETag with 416; a same-length other file
                    // is caught by the payload hash check.
                    Some(len)
                        if len == self.pos
                            && (validator.is_none() || validator == self.validator) =>
                    {
                        self.total = Some(len);
                        Ok(())
                    }
                    _ => {
                        self.pending = None;
                        Err(err(NetErrorKind::Changed))
                    }
                }
            }
            _ => Err(err(status_kind(status))),
        }
    }

    /// Connects, retrying transient failures per the backoff policy.
    fn connect_retrying(&mut self) -> Result<(), NetError> {
        loop {
            match self.connect() {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    self.stats.failures += 1;
                    self.pause(e)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps before the next attempt, or gives up with `e`.
    fn pause(&mut self, e: NetError) -> Result<(), NetError> {
        match self.backoff.next_delay() {
            Some(d) => {
                log::info!(
                    "{e}; retry {}/{} at byte {} in {} ms",
                    self.backoff.attempts(),
                    self.backoff.max_attempts,
                    self.pos,
                    d.as_millis()
                );
                std::thread::sleep(d);
                Ok(())
            }
            None => Err(NetError::new(
                &self.url,
                NetErrorKind::Transient(format!(
                    "gave up after {} retries at byte {}: {}",
                    self.backoff.max_attempts, self.pos, e.kind
                )),
            )),
        }
    }

    /// The minimum-progress rule ([`NetSettings::min_progress_bytes`] in
    /// [`NetSettings::min_progress_window`]; the window starts at the first
    /// read): a stall is a transient failure that ends this download, so
    /// the run ends, releases its lock and a later run resumes.
    ///
    /// [`NetSettings::min_progress_bytes`]: super::NetSettings::min_progress_bytes
    /// [`NetSettings::min_progress_window`]: super::NetSettings::min_progress_window
    fn check_progress(&mut self) -> Result<(), NetError> {
        let s = self.client.settings();
        if s.min_progress_bytes == 0 {
            return Ok(());
        }
        let now = Instant::now();
        // A consumer that asked for nothing for a whole window (suspended
        // on the control socket, slow flash) is no stalled network: the
        // window starts again with this read.
        if self
            .last_return
            .is_some_and(|t| now.duration_since(t) >= s.min_progress_window)
        {
            self.window = None;
        }
        let (start, got) = *self.window.get_or_insert((now, 0));
        if now.duration_since(start) < s.min_progress_window {
            return Ok(());
        }
        self.window = Some((now, 0));
        if got >= s.min_progress_bytes {
            return Ok(());
        }
        self.body = None;
        Err(NetError::new(
            &self.url,
            NetErrorKind::Transient(format!(
                "stalled at byte {}: {got} bytes in the last {} s, fewer than min_progress_bytes = {}; a later run resumes",
                self.pos,
                s.min_progress_window.as_secs(),
                s.min_progress_bytes
            )),
        ))
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.check_progress()?;
        loop {
            if self.total == Some(self.pos) || buf.is_empty() {
                return Ok(0);
            }
            if self.pending.is_some() {
                // The consumer ignored Changed: keep refusing.
                return Err(NetError::new(&self.url, NetErrorKind::Changed));
            }
            let Some(body) = self.body.as_mut() else {
                self.connect_retrying()?;
                continue;
            };
            let want = match self.total {
                Some(t) => buf
                    .len()
                    .min(usize::try_from(t - self.pos).unwrap_or(usize::MAX)),
                None => buf.len(),
            };
            match body.read(&mut buf[..want]) {
                Ok(0) => {
                    self.body = None;
                    if self.total.is_none() {
                        // No length was announced: a clean end is the end.
                        self.total = Some(self.pos);
                        return Ok(0);
                    }
                    if self.conn_read == 0 {
                        self.stats.failures += 1;
                        let e = NetError::new(
                            &self.url,
                            NetErrorKind::Transient("connection ended early".into()),
                        );
                        self.pause(e)?;
                    }
                }
                Ok(n) => {
                    self.pos += n as u64;
                    self.conn_read += n as u64;
                    self.stats.received += n as u64;
                    if let Some((_, got)) = &mut self.window {
                        *got += n as u64;
                    }
                    self.backoff.reset();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.body = None;
                    let e = classify_io(&self.url, e);
                    if !e.is_transient() {
                        return Err(e);
                    }
                    self.stats.failures += 1;
                    if self.conn_read == 0 {
                        self.pause(e)?;
                    } else {
                        log::debug!("{e}; resuming at byte {}", self.pos);
                    }
                }
            }
        }
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.read_inner(buf).map_err(io::Error::other);
        self.last_return = Some(Instant::now());
        r
    }
}

/// The [`NetError`] inside an I/O error from a [`Download`], if any.
pub fn net_error(e: &io::Error) -> Option<&NetError> {
    e.get_ref().and_then(|i| i.downcast_ref::<NetError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_and_refuses_nonsense() {
        let p = |s| parse_content_range(s);
        assert_eq!(
            p("bytes 100-199/1000"),
            Some(ContentRange {
                range: Some((100, 199)),
                len: Some(1000)
            })
        );
        assert_eq!(
            p("bytes */1000"),
            Some(ContentRange {
                range: None,
                len: Some(1000)
            })
        );
        assert_eq!(p("bytes 5-9/*").unwrap().len, None);
        for bad in [
            "bytes 200-100/1000",
            "bytes 0-1000/1000",
            "items 0-1/2",
            "bytes 0-1",
            "bytes -1-2/3",
            "bytes 0-x/3",
            "",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
