//! Payloads straight from the server for the installer: image `index` from
//! byte `offset` (the first byte the install journal has not verified on
//! flash), as a resuming `io::Read`. Nothing is staged on the data
//! partition for a full image.
//!
//! The ETag/Last-Modified of each payload URL is kept in
//! `<state_dir>/payload-validators.json` ([`StateDir::validators_path`]), so a resume after a power cut
//! still sends `If-Range`. The file is rewritten in place at a fixed size
//! ([`VALIDATORS_LEN`], padded with spaces), never renamed, and holds only
//! the current release's URLs. Because the installer checks every byte against
//! the signed SHA-256 (and reads the slot back before switching), a resume
//! without a validator, or across a change on the server, is allowed here:
//! the reader continues at the asked offset in the new `200` body. A
//! re-upload of the same bytes (new ETag, same content) then costs nothing;
//! different bytes fail the installer's hash check and are never activated.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;

use super::fetch::net_error;
use super::{dir_url, join_url, Client, Download, NetErrorKind, Validator};
use crate::bundle::Manifest;
use crate::state::StateDir;

/// Size of `payload-validators.json` (JSON padded with spaces).
pub const VALIDATORS_LEN: usize = 8192;

/// The payloads of one release on the server.
#[derive(Debug)]
pub struct HttpPayloads {
    client: Client,
    urls: Vec<String>,
    sizes: Vec<u64>,
    store: Option<PathBuf>,
    validators: BTreeMap<String, Validator>,
}

impl HttpPayloads {
    /// The payloads of `manifest`, fetched at URLs relative to `manifest_url`.
    pub fn new(
        client: &Client,
        manifest_url: &str,
        manifest: &Manifest,
        state: Option<&StateDir>,
    ) -> HttpPayloads {
        let base = dir_url(manifest_url);
        let store = state.map(StateDir::validators_path);
        let validators = store
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HttpPayloads {
            client: client.clone(),
            urls: manifest
                .images
                .iter()
                .map(|i| join_url(base, &i.file))
                .collect(),
            sizes: manifest.images.iter().map(|i| i.payload.size).collect(),
            store,
            validators,
        }
    }

    /// A reader of payload `index` from byte `offset` to its signed end.
    pub fn open_at(&mut self, index: usize, offset: u64) -> io::Result<PayloadReader<'_>> {
        let url = self
            .urls
            .get(index)
            .ok_or_else(|| io::Error::other(format!("no payload number {index}")))?
            .clone();
        let size = self.sizes.get(index).copied().unwrap_or(0);
        let validator = self.validators.get(&url).cloned();
        let dl = Download::new_verified_by_consumer(&self.client, &url, offset, validator)
            .map_err(io::Error::other)?;
        Ok(PayloadReader {
            owner: self,
            url,
            dl,
            left: size.saturating_sub(offset),
            changes: 0,
        })
    }

    fn remember(&mut self, url: &str, v: &Validator) {
        if self.validators.get(url) == Some(v) {
            return;
        }
        self.validators.insert(url.to_owned(), v.clone());
        // Only this release's payloads: the file stays small (and bounded).
        let urls = &self.urls;
        self.validators.retain(|u, _| urls.contains(u));
        if let Some(path) = &self.store {
            if let Ok(bytes) = serde_json::to_vec(&self.validators) {
                // In place at a fixed size: this runs while the slot is
                // written, and a rename on a vfat `state_dir` cut by a power
                // failure left the FAT inconsistent (issue 15). A torn file
                // does not parse and only costs the `If-Range` of a resume.
                if let Err(e) = crate::durable::overwrite_fixed(path, &bytes, VALIDATORS_LEN) {
                    log::warn!("cannot record the payload validator: {e}");
                }
            }
        }
    }
}

/// One payload stream; see [`HttpPayloads::open_at`].
#[derive(Debug)]
pub struct PayloadReader<'a> {
    owner: &'a mut HttpPayloads,
    url: String,
    dl: Download,
    left: u64,
    changes: u32,
}

impl PayloadReader<'_> {
    /// Download counters.
    pub fn stats(&self) -> super::fetch::Stats {
        self.dl.stats()
    }
}

impl Read for PayloadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        loop {
            match self.dl.read(&mut buf[..want]) {
                Ok(n) => {
                    if let Some(v) = self.dl.validator().cloned() {
                        self.owner.remember(&self.url, &v);
                    }
                    self.left -= n as u64;
                    return Ok(n);
                }
                Err(e) => match net_error(&e) {
                    // A file that keeps changing under us: give up this run.
                    Some(ne) if matches!(ne.kind, NetErrorKind::Changed) && self.changes < 3 => {
                        self.changes += 1;
                        // Not `{ne}`: its text ("restarting from the
                        // beginning") is what other consumers do, not this one.
                        log::warn!(
                            "{}: the file changed on the server; continuing at byte {} (the installer checks the result against the signed hash)",
                            ne.url,
                            self.dl.position()
                        );
                        self.dl.skip_on_change();
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}

impl crate::install::Payloads for HttpPayloads {
    fn open_at(&mut self, index: usize, offset: u64) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(HttpPayloads::open_at(self, index, offset)?))
    }
}
