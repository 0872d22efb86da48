//! Network side of updates (issue #7): a blocking HTTP(S) client pinned to the
//! device's CA, resumable downloads, the channel check and the poll loop.
//!
//! ```text
//!  Client (ureq + rustls/ring, CA file, optional client cert, timeouts, redirect cap)
//!    ├── get_small ─► channel.json / .sig / manifest.json / .sig (size-limited, retried)
//!    └── Download (io::Read) ─► Range: bytes=N- + If-Range: <ETag|Last-Modified>
//!          │  206 → continue at N (Content-Range must start at N)
//!          │  200 → the file changed or no range support → Restart (consumer discards
//!          │        its unverified bytes and reads from 0 again); never spliced
//!          │  416 → complete if N == length, else changed
//!          │  403/404/410/other 4xx → permanent, no retry
//!          │  5xx/408/429/timeouts/resets → transient: backoff with jitter, bounded
//!          └── fetch_to_file: `<file>.part` + checkpoint (synced offset + validator),
//!                so bytes on flash are never fetched again after a power cut
//! ```
//!
//! There are no built-in web roots: the server certificate must chain to the
//! PEM bundle in the config key `ca_file`. Plain `http://` is refused unless
//! `danger_allow_http = true` (then nothing authenticates the server; the
//! signed manifest and channel still protect integrity, not confidentiality
//! or freshness beyond the signed expiry).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod backoff;
pub mod check;
pub mod fetch;
pub mod payloads;
pub mod tls;
pub mod to_file;

pub use backoff::Backoff;
pub use fetch::{Download, Validator};
pub use to_file::fetch_to_file;

/// Why a network operation failed. Each message is one line naming the URL.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {kind}")]
pub struct NetError {
    /// The URL concerned (no credentials are ever put in URLs).
    pub url: String,
    /// What went wrong.
    pub kind: NetErrorKind,
}

/// The failure classes the retry logic distinguishes.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NetErrorKind {
    /// The server answered with a status that retrying will not change
    /// (403, 404, 410, other 4xx, unexpected 3xx).
    #[error("server answered {0} (permanent, not retried)")]
    Status(u16),
    /// A transient failure (5xx, 408, 429, timeout, reset, refused) that
    /// outlasted the attempts allowed for this run; a later run resumes.
    #[error("{0}")]
    Transient(String),
    /// The file on the server changed under a resumed download (new ETag or
    /// Last-Modified, or `200` to a range request): the consumer must drop
    /// unverified bytes and start again from 0.
    #[error("the file changed on the server; restarting from the beginning")]
    Changed,
    /// The server broke the protocol (bad `Content-Range`, too large, too
    /// many redirects, malformed response).
    #[error("{0}")]
    Protocol(String),
    /// TLS failed: certificate not trusted by `ca_file`, wrong host name,
    /// handshake error. Not retried within a run.
    #[error("tls: {0}")]
    Tls(String),
    /// The request is not allowed by the configuration (e.g. `http://`
    /// without `danger_allow_http`), or the CA/client-cert files are bad.
    #[error("{0}")]
    Config(String),
}

impl NetError {
    pub(crate) fn new(url: &str, kind: NetErrorKind) -> NetError {
        NetError {
            url: url.to_owned(),
            kind,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, NetErrorKind::Transient(_))
    }
}

/// Timeouts, retry policy and limits of one client.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// TCP connect + TLS handshake.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response (a stalled server).
    pub read_timeout: Duration,
    /// Redirects followed per request.
    pub max_redirects: u32,
    /// Retry policy for transient failures.
    pub backoff: Backoff,
    /// Allow `http://` URLs (config `danger_allow_http`).
    pub danger_allow_http: bool,
    /// Longest time one [`Client::get_small`] may take in all, retries
    /// included (config `fetch_deadline_s`).
    pub fetch_deadline: Duration,
    /// Minimum-progress rule of a [`Download`]: fewer than this many bytes
    /// in [`NetSettings::min_progress_window`] is a stall (0 = no rule).
    pub min_progress_bytes: u64,
    /// The window of the minimum-progress rule.
    pub min_progress_window: Duration,
}

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(30),
            max_redirects: 5,
            backoff: Backoff::default(),
            danger_allow_http: false,
            fetch_deadline: Duration::from_secs(300),
            min_progress_bytes: 16 * 1024,
            min_progress_window: Duration::from_secs(60),
        }
    }
}

/// Where the TLS trust and identity come from.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM bundle of the CA certificates the server must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (mTLS device identity).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// A configured HTTP(S) client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    settings: NetSettings,
    // hawkbit: the DDI `Authorization` header (target/gateway token) sent with every request.
    authorization: Option<Arc<str>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.settings)
            .finish()
    }
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|e| {
        NetError::new(
            "tls",
            NetErrorKind::Config(format!("{what} {}: {e}", path.display())),
        )
    })
}

impl Client {
    /// Builds a client. Without a CA file every `https://` request fails
    /// (there are no built-in roots).
    pub fn new(tls: &TlsFiles, settings: NetSettings) -> Result<Client, NetError> {
        let cfg_err = |m: String| NetError::new("tls", NetErrorKind::Config(m));
        let mut roots = Vec::new();
        if let Some(ca) = &tls.ca_file {
            // The CA file is optional as long as only http:// is used.
            match std::fs::read(ca) {
                Ok(pem) => {
                    for item in ureq::tls::parse_pem(&pem) {
                        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                            roots.push(c);
                        }
                    }
                    if roots.is_empty() {
                        return Err(cfg_err(format!(
                            "ca_file {}: no PEM certificate in it",
                            ca.display()
                        )));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    log::debug!("ca_file {} absent: https is unavailable", ca.display())
                }
                Err(e) => return Err(cfg_err(format!("ca_file {}: {e}", ca.display()))),
            }
        }
        let client_cert = match (&tls.client_cert, &tls.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let cert_pem = read_pem(cert, "client_cert")?;
                let chain: Vec<_> = ureq::tls::parse_pem(&cert_pem)
                    .filter_map(|i| match i {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                let key_pem = read_pem(key, "client_key")?;
                let key_file = key;
                let key = ureq::tls::PrivateKey::from_pem(&key_pem)
                    .map_err(|e| cfg_err(format!("client_key {}: {e}", key_file.display())))?;
                tls::check_client_key(&key_pem)
                    .map_err(|e| cfg_err(format!("client_key {}: {e}", key_file.display())))?;
                if chain.is_empty() {
                    return Err(cfg_err(format!(
                        "client_cert {}: no PEM certificate in it",
                        cert.display()
                    )));
                }
                Some(ureq::tls::ClientCert::new_with_certs(&chain, key))
            }
            _ => {
                return Err(cfg_err(
                    "client_cert and client_key must be given together".into(),
                ))
            }
        };
        let tls_config = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .client_cert(client_cert)
            .unversioned_rustls_crypto_provider(Arc::new(tls::provider()))
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls_config)
            .http_status_as_error(false)
            .https_only(!settings.danger_allow_http)
            .max_redirects(settings.max_redirects)
            .max_redirects_will_error(true)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_per_read(Some(settings.read_timeout))
            .timeout_recv_response(Some(settings.read_timeout))
            .timeout_per_write(Some(settings.read_timeout))
            .user_agent(concat!("ota-agent/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            settings,
            authorization: None, // hawkbit:
        })
    }

    /// A client for the device configuration.
    pub fn from_config(c: &crate::config::Config) -> Result<Client, NetError> {
        let tls = TlsFiles {
            ca_file: Some(c.ca_file.clone()),
            client_cert: c.client_cert.clone(),
            client_key: c.client_key.clone(),
        };
        let defaults = NetSettings::default();
        let settings = NetSettings {
            danger_allow_http: c.danger_allow_http,
            read_timeout: Duration::from_secs(c.read_timeout_s),
            fetch_deadline: Duration::from_secs(c.fetch_deadline_s),
            min_progress_bytes: c.min_progress_bytes,
            min_progress_window: Duration::from_secs(c.min_progress_window_s),
            backoff: Backoff::new(
                defaults.backoff.base,
                defaults.backoff.cap,
                c.retry_attempts,
            ),
            ..defaults
        };
        Client::new(&tls, settings)
    }

    // hawkbit: a client that sends `Authorization: <value>` with every request.
    /// The same client sending `Authorization: value` with every request
    /// (hawkBit DDI target or gateway token).
    pub fn with_authorization(mut self, value: &str) -> Client {
        self.authorization = Some(value.into());
        self
    }

    // hawkbit: GET with the configured Authorization header.
    pub(crate) fn get_request(
        &self,
        url: &str,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let req = self.agent.get(url);
        match &self.authorization {
            Some(a) => req.header("Authorization", &**a),
            None => req,
        }
    }

    // hawkbit: PUT/POST of a small JSON document (DDI configData, feedback).
    /// Sends `body` as JSON with `method` (`PUT` or `POST`); any 2xx is
    /// success. Not retried: the caller's queue retries.
    pub fn send_json(&self, method: &str, url: &str, body: &[u8]) -> Result<(), NetError> {
        self.check_scheme(url)?;
        let req = if method == "PUT" {
            self.agent.put(url)
        } else {
            self.agent.post(url)
        };
        let req = match &self.authorization {
            Some(a) => req.header("Authorization", &**a),
            None => req,
        };
        let resp = req
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| classify(url, e))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(NetError::new(url, status_kind(status)));
        }
        Ok(())
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &NetSettings {
        &self.settings
    }

    /// Refuses `http://` unless allowed; other schemes always.
    pub(crate) fn check_scheme(&self, url: &str) -> Result<(), NetError> {
        if url.starts_with("https://") {
            return Ok(());
        }
        if url.starts_with("http://") {
            if self.settings.danger_allow_http {
                return Ok(());
            }
            return Err(NetError::new(
                url,
                NetErrorKind::Config(
                    "plain http is refused (set danger_allow_http = true to allow it)".into(),
                ),
            ));
        }
        Err(NetError::new(
            url,
            NetErrorKind::Config("only https:// (and http:// when allowed) URLs".into()),
        ))
    }

    /// GETs a small file whole (channel, manifest, signature), refusing one
    /// larger than `limit` bytes. Transient failures are retried per the
    /// backoff policy, all within [`NetSettings::fetch_deadline`]: a server
    /// that trickles bytes or keeps failing ends the run with a transient
    /// error once the deadline has passed.
    pub fn get_small(&self, url: &str, limit: usize) -> Result<Vec<u8>, NetError> {
        self.check_scheme(url)?;
        let mut backoff = self.settings.backoff.clone();
        let budget = self.settings.fetch_deadline;
        let deadline = Instant::now() + budget;
        let late = |e: NetError| {
            NetError::new(
                url,
                NetErrorKind::Transient(format!(
                    "no complete answer within the fetch deadline of {} s (fetch_deadline_s); last: {}",
                    budget.as_secs(),
                    e.kind
                )),
            )
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.get_small_once(url, limit, left) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => match backoff.next_delay() {
                    Some(d) if Instant::now() + d < deadline => {
                        log::info!("{e}; retrying in {} ms", d.as_millis());
                        std::thread::sleep(d);
                    }
                    Some(_) => return Err(late(e)),
                    None if Instant::now() >= deadline => return Err(late(e)),
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    fn get_small_once(&self, url: &str, limit: usize, left: Duration) -> Result<Vec<u8>, NetError> {
        if left.is_zero() {
            return Err(NetError::new(
                url,
                NetErrorKind::Transient("timeout (global)".into()),
            ));
        }
        let resp = self
            .get_request(url) // hawkbit: auth header
            .config()
            .timeout_global(Some(left))
            .build()
            .call()
            .map_err(|e| classify(url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(NetError::new(url, status_kind(status)));
        }
        let mut body = Vec::new();
        let mut reader = resp
            .into_body()
            .into_with_config()
            .limit(limit as u64 + 1)
            .reader();
        std::io::Read::read_to_end(&mut reader, &mut body).map_err(|e| classify_io(url, e))?;
        if body.len() > limit {
            return Err(NetError::new(
                url,
                NetErrorKind::Protocol(format!("larger than the limit of {limit} bytes")),
            ));
        }
        Ok(body)
    }
}

impl Client {
    /// PUTs `body` to `url` once (the caller retries; used by device reports,
    /// `report::deliver`). Success is any 2xx; the response body is never
    /// read (the device takes no data from a report target).
    pub fn put_once(&self, url: &str, body: &[u8]) -> Result<(), NetError> {
        self.check_scheme(url)?;
        let resp = self
            .agent
            .put(url)
            .send(body)
            .map_err(|e| classify(url, e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            s => Err(NetError::new(url, status_kind(s))),
        }
    }
}

/// The class of an HTTP status that is not the one expected.
pub(crate) fn status_kind(status: u16) -> NetErrorKind {
    match status {
        408 | 429 | 500..=599 => NetErrorKind::Transient(format!("server answered {status}")),
        _ => NetErrorKind::Status(status),
    }
}

/// Sorts a ureq error into the retry classes.
pub(crate) fn classify(url: &str, e: ureq::Error) -> NetError {
    use ureq::Error as E;
    let kind = match e {
        E::Io(io) => return classify_io(url, io),
        E::Timeout(t) => NetErrorKind::Transient(format!("timeout ({t})")),
        E::ConnectionFailed | E::HostNotFound => NetErrorKind::Transient(e.to_string()),
        E::Tls(m) => NetErrorKind::Tls(m.to_string()),
        E::Rustls(r) => NetErrorKind::Tls(r.to_string()),
        E::TooManyRedirects | E::RedirectFailed => NetErrorKind::Protocol(e.to_string()),
        E::RequireHttpsOnly(_) => NetErrorKind::Config(
            "plain http is refused (set danger_allow_http = true to allow it)".into(),
        ),
        E::StatusCode(s) => status_kind(s),
        other => NetErrorKind::Protocol(other.to_string()),
    };
    NetError::new(url, kind)
}

/// An I/O error while talking to the server: TLS alerts are permanent,
/// everything else (reset, refused, timeout, early EOF) is transient.
pub(crate) fn classify_io(url: &str, e: std::io::Error) -> NetError {
    if let Some(inner) = e.get_ref() {
        if let Some(r) = inner.downcast_ref::<rustls::Error>() {
            return NetError::new(url, NetErrorKind::Tls(r.to_string()));
        }
        if inner.downcast_ref::<ureq::Error>().is_some() {
            // ureq wraps its own errors into io::Error inside body readers.
            if let Ok(u) = e
                .into_inner()
                .unwrap_or_else(|| "".into())
                .downcast::<ureq::Error>()
            {
                return classify(url, *u);
            }
            return NetError::new(url, NetErrorKind::Transient("read failed".into()));
        }
    }
    NetError::new(url, NetErrorKind::Transient(e.to_string()))
}

/// Joins a base URL and a relative path with exactly one `/`.
pub fn join_url(base: &str, rel: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
}

/// The URL of the directory holding `url` (everything up to the last `/`).
pub fn dir_url(url: &str) -> &str {
    match url.rfind('/') {
        Some(i) => &url[..i],
        None => url,
    }
}
