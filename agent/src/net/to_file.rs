//! [`fetch_to_file`]: a [`Download`] stored as a file with a power-cut-safe
//! checkpoint, so bytes already on storage are never fetched again.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fetch::{net_error, Stats};
use super::{Client, Download, NetError, NetErrorKind, Validator};
use crate::bundle::{Blob, BundleError};
use crate::{Error, Result};

/// The on-disk checkpoint of a partial file: how many bytes of `<file>.part`
/// are synced, and of which version of which URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    url: String,
    offset: u64,
    validator: Option<Validator>,
}

/// Bytes written between checkpoints (each costs an fsync of the data and
/// an atomic rewrite of the checkpoint). A power cut re-fetches at most
/// this much (docs/benchmarks.md "Download" has the cost of smaller values).
pub const CHECKPOINT_EVERY: u64 = 16 << 20;

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Downloads `url` into `dest`, resuming a previous partial download of the
/// same URL. The data goes to `<dest>.part`; `<dest>.part.ckpt` records how
/// many of its bytes are synced to storage and their version, so after a
/// power cut only the unsynced tail is fetched again. When `expected` is
/// given the finished file must have exactly that size and SHA-256 (else it
/// is deleted and the error names the mismatch). `progress` sees
/// (bytes held, total if known) after every write; its error stops the
/// download there (synced bytes kept for a later run) and is returned.
pub fn fetch_to_file(
    client: &Client,
    url: &str,
    dest: &Path,
    expected: Option<&Blob>,
    progress: &mut dyn FnMut(u64, Option<u64>) -> Result<()>,
) -> Result<Stats> {
    let part = with_suffix(dest, ".part");
    let ckpt_path = with_suffix(dest, ".part.ckpt");
    let io_err = |p: &Path| {
        let p = p.to_owned();
        move |e| Error::io(p, e)
    };
    let ckpt: Option<Checkpoint> = std::fs::read(&ckpt_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &Checkpoint| c.version == 1 && c.url == url);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&part)
        .map_err(io_err(&part))?;
    let held = file.metadata().map_err(io_err(&part))?.len();
    // Only synced bytes count; a longer file has an unsynced (maybe garbage) tail.
    let (offset, validator) = match ckpt {
        Some(c) if c.offset <= held => (c.offset, c.validator),
        _ => (0, None),
    };
    let mut dl = Download::new(client, url, offset, validator)?;
    let offset = dl.position();
    file.set_len(offset).map_err(io_err(&part))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_err(&part))?;
    if offset > 0 {
        log::info!("{url}: resuming at byte {offset}");
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut since_ckpt = 0u64;
    loop {
        let n = match dl.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => match net_error(&e) {
                Some(ne) if matches!(ne.kind, NetErrorKind::Changed) => {
                    log::warn!("{ne}");
                    // Drop everything: held bytes belong to the old version.
                    let _ = std::fs::remove_file(&ckpt_path);
                    file.set_len(0).map_err(io_err(&part))?;
                    file.seek(SeekFrom::Start(0)).map_err(io_err(&part))?;
                    dl.restart();
                    since_ckpt = 0;
                    continue;
                }
                Some(_) => {
                    // Keep what is synced for the next run.
                    checkpoint(&file, &ckpt_path, url, &dl)?;
                    let inner = e.into_inner().and_then(|b| b.downcast::<NetError>().ok());
                    return Err(match inner {
                        Some(ne) => Error::Net(*ne),
                        None => Error::io(&part, io::Error::other("download failed")),
                    });
                }
                None => return Err(Error::io(&part, e)),
            },
        };
        file.write_all(&buf[..n]).map_err(io_err(&part))?;
        since_ckpt += n as u64;
        if since_ckpt >= CHECKPOINT_EVERY {
            checkpoint(&file, &ckpt_path, url, &dl)?;
            since_ckpt = 0;
        }
        if let Err(e) = progress(dl.position(), dl.total()) {
            checkpoint(&file, &ckpt_path, url, &dl)?;
            return Err(e);
        }
    }
    file.sync_all().map_err(io_err(&part))?;
    let stats = dl.stats();
    if let Some(exp) = expected {
        file.seek(SeekFrom::Start(0)).map_err(io_err(&part))?;
        let got = crate::bundle::hash_reader(&mut file).map_err(io_err(&part))?;
        if got != *exp {
            let _ = std::fs::remove_file(&ckpt_path);
            let _ = std::fs::remove_file(&part);
            return Err(BundleError::Payload {
                file: url.to_owned(),
                reason: format!(
                    "downloaded {} bytes with SHA-256 {}, manifest says {} bytes with {}",
                    got.size, got.sha256, exp.size, exp.sha256
                ),
            }
            .into());
        }
    }
    drop(file);
    std::fs::rename(&part, dest).map_err(io_err(dest))?;
    let _ = std::fs::remove_file(&ckpt_path);
    if let Some(dir) = dest.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(stats)
}

/// Syncs the data, then records the synced length (data first, so the
/// checkpoint never claims bytes that are not on storage).
fn checkpoint(file: &File, path: &Path, url: &str, dl: &Download) -> Result<()> {
    file.sync_data().map_err(|e| Error::io(path, e))?;
    let c = Checkpoint {
        version: 1,
        url: url.to_owned(),
        offset: dl.position(),
        validator: dl.validator().cloned(),
    };
    let bytes = serde_json::to_vec(&c).map_err(|e| Error::State {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    crate::durable::replace(path, &bytes)
}
