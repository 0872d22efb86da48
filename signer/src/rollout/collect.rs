//! Reading the device registry and the report set, and sorting every report
//! into accepted or rejected (with the reason). Nothing rejected reaches the
//! statistics, so a forged, replayed, oversized or malformed report can
//! never change a decision.
//!
//! Registry (docs/fleet.md): one device per line, `<device id> <base64 of
//! the DER SubjectPublicKeyInfo>` (what `ota-agent identity --registry-line`
//! prints at the factory); `#` comments and blank lines are skipped.
//!
//! Report set: `<root>/<product>/<to>/<device>/<seq>.json` + `.json.sig`,
//! from a directory or from an HTTP server listing directories as nginx's
//! `autoindex_format json` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ota_agent::bundle::signature::parse_signature;
use ota_agent::bundle::PublicKey;
use ota_agent::net::{join_url, Client, NetSettings, TlsFiles};
use ota_agent::report::identity::base64_decode;
use ota_agent::report::record::{self, Report};

use crate::error::{Error, Result};

/// Why a report was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rejection {
    /// No signature, or it does not verify with the device's registered key.
    BadSignature,
    /// The device is not in the registry.
    UnknownDevice,
    /// A genuine report stored under another name (other device, release or
    /// sequence number): a replay.
    Replay,
    /// Not a report (JSON, fields, path).
    Malformed,
    /// Larger than a report can be.
    Oversized,
}

impl Rejection {
    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Rejection::BadSignature => "bad signature",
            Rejection::UnknownDevice => "unknown device",
            Rejection::Replay => "replay",
            Rejection::Malformed => "malformed",
            Rejection::Oversized => "oversized",
        }
    }
}

/// Registered devices: id → key.
pub type Registry = BTreeMap<String, PublicKey>;

/// Reads a registry file.
pub fn load_registry(path: &Path) -> Result<Registry> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Registry::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |m: &str| Error::Failed(format!("{}:{}: {m}", path.display(), n + 1));
        let (id, b64) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected `<device id> <base64 public key>`"))?;
        if !record::is_segment(id) {
            return Err(bad("device id must be [A-Za-z0-9._+-]+"));
        }
        let der = base64_decode(b64.trim()).ok_or_else(|| bad("the key is not base64"))?;
        let key = PublicKey::from_spki_der(id, &der).map_err(|e| bad(&e.to_string()))?;
        if out.insert(id.to_owned(), key).is_some() {
            return Err(bad(&format!("device {id} is listed twice")));
        }
    }
    Ok(out)
}

/// One file of the report set.
pub struct Raw {
    /// Path below the root, `/`-separated.
    pub path: String,
    /// The bytes (at most `record::MAX_LEN + 1`).
    pub json: Vec<u8>,
    /// The signature, if there is one.
    pub sig: Option<Vec<u8>>,
}

/// Where the reports are.
pub enum Source {
    /// A directory.
    Dir(PathBuf),
    /// An HTTP(S) base URL with JSON directory listings.
    Url(String),
}

impl Source {
    /// `DIR` or `http(s)://…`.
    pub fn parse(s: &str) -> Source {
        if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url(s.to_owned())
        } else {
            Source::Dir(PathBuf::from(s))
        }
    }

    /// Every `*.json` below the root (4 levels down), with its signature.
    pub fn read(&self, ca: Option<&Path>) -> Result<Vec<Raw>> {
        let mut out = Vec::new();
        match self {
            Source::Dir(root) => walk_dir(root, root, 0, &mut out)?,
            Source::Url(base) => {
                let client = Client::new(
                    &TlsFiles {
                        ca_file: ca.map(Path::to_owned),
                        ..TlsFiles::default()
                    },
                    // Reports are signed: plain http only costs privacy.
                    NetSettings {
                        danger_allow_http: true,
                        ..NetSettings::default()
                    },
                )
                .map_err(|e| Error::Failed(e.to_string()))?;
                walk_url(&client, base, "", 0, &mut out)?;
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut v = Vec::new();
    f.take(record::MAX_LEN as u64 + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io(path, e))?;
    Ok(v)
}

fn walk_dir(root: &Path, dir: &Path, depth: usize, out: &mut Vec<Raw>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let p = e.path();
        let ft = e.file_type().map_err(|e| Error::io(&p, e))?;
        if ft.is_dir() && depth < 3 {
            walk_dir(root, &p, depth + 1, out)?;
        } else if ft.is_file() && p.extension().is_some_and(|x| x == "json") {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let mut sig = p.as_os_str().to_owned();
            sig.push(".sig");
            let sig = PathBuf::from(sig);
            out.push(Raw {
                path: rel.join("/"),
                json: read_limited(&p)?,
                sig: sig.is_file().then(|| read_limited(&sig)).transpose()?,
            });
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct Listed {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

fn walk_url(
    client: &Client,
    base: &str,
    rel: &str,
    depth: usize,
    out: &mut Vec<Raw>,
) -> Result<()> {
    let net = |e: ota_agent::net::NetError| Error::Failed(e.to_string());
    let dir_url = format!("{}/", join_url(base, rel).trim_end_matches('/'));
    let listing = client.get_small(&dir_url, 16 << 20).map_err(net)?;
    let items: Vec<Listed> = serde_json::from_slice(&listing).map_err(|e| {
        Error::Failed(format!(
            "{dir_url}: not a JSON directory listing (nginx `autoindex_format json`): {e}"
        ))
    })?;
    for it in items {
        if it.name.contains('/') || it.name == ".." || it.name == "." {
            continue;
        }
        let path = if rel.is_empty() {
            it.name.clone()
        } else {
            format!("{rel}/{}", it.name)
        };
        if it.kind == "directory" && depth < 3 {
            walk_url(client, base, &path, depth + 1, out)?;
        } else if it.kind == "file" && it.name.ends_with(".json") {
            let url = join_url(base, &path);
            let json = match client.get_small(&url, record::MAX_LEN) {
                Ok(j) => j,
                // Over the limit: counted as oversized below.
                Err(_) => vec![b' '; record::MAX_LEN + 1],
            };
            let sig = client
                .get_small(
                    &format!("{url}.sig"),
                    ota_agent::bundle::signature::MAX_SIGNATURE_LEN,
                )
                .ok();
            out.push(Raw { path, json, sig });
        }
    }
    Ok(())
}

/// Sorts the raw files: accepted reports, and rejections with their path.
pub fn judge(raws: &[Raw], reg: &Registry) -> (Vec<Report>, Vec<(String, Rejection)>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for raw in raws {
        match judge_one(raw, reg) {
            Ok(r) => ok.push(r),
            Err(why) => bad.push((raw.path.clone(), why)),
        }
    }
    (ok, bad)
}

fn judge_one(raw: &Raw, reg: &Registry) -> Result<Report, Rejection> {
    if raw.json.len() > record::MAX_LEN {
        return Err(Rejection::Oversized);
    }
    let r = Report::parse(&raw.json).map_err(|_| Rejection::Malformed)?;
    let key = reg.get(&r.device).ok_or(Rejection::UnknownDevice)?;
    let sig = raw.sig.as_deref().ok_or(Rejection::BadSignature)?;
    let sig = parse_signature(sig).map_err(|_| Rejection::BadSignature)?;
    if !key.verify(&raw.json, &sig) {
        return Err(Rejection::BadSignature);
    }
    // The name must be the one the device gave it: a genuine report copied
    // to another device's, release's or sequence number's name is a replay.
    if raw.path != r.path() {
        return Err(Rejection::Replay);
    }
    Ok(r)
}
