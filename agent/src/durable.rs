//! Durable writes to `state_dir`: the one routine every record goes
//! through, so a power cut leaves either the old or the new file.
//!
//! [`replace`] writes a temporary file beside the target, fsyncs it, renames
//! it over the target and fsyncs the directory (POSIX `rename(2)` is atomic;
//! the directory fsync makes the rename itself survive a cut).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Replaces `path` with `bytes` atomically and durably: temp file in the
/// same directory, fsync, rename over `path`, fsync the directory.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e| Error::io(p, e)
    };
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    // Make the rename itself durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}
