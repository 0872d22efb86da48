//! `ota-agent verify PATH [--reinstall]`: every check `install` makes before
//! writing flash, without writing anything (diagnostics, USB sticks).
//!
//! PATH is a bundle directory or a single-file bundle. Checked in order:
//! manifest signature (trusted keys from `keys_dir`), product, hardware,
//! security version (against `state_dir/min-security-version`), version
//! (against `VERSION_ID` in `version_file`), expiry (with the clock sanity
//! rule of `bundle::check_policy`), then every payload's size and SHA-256 and
//! what it produces. The first failure is the one error line.

use std::ffi::OsString;
use std::path::PathBuf;

use super::args::{string, usage, Globals};
use crate::bundle::{time, Compression, Kind};
use crate::{Error, Result};

const USAGE: &str = "\
usage: ota-agent verify PATH [--reinstall]

Verifies a bundle (directory or single file) without installing it.
  --reinstall   accept a version equal to the installed one
";

/// `ota-agent verify …`
pub fn run(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut path: Option<PathBuf> = None;
    let mut reinstall = false;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("reinstall") => reinstall = true,
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(0);
            }
            Value(v) if path.is_none() => path = Some(v.into()),
            other => return Err(usage(other.unexpected())),
        }
    }
    let path = path.ok_or_else(|| Error::Usage("verify needs a bundle PATH".into()))?;
    let b = crate::update::verify(&globals.device()?, &path, reinstall)?;
    let m = &b.manifest;
    println!(
        "{}: ok: {} {} (security version {}), signed by {}, expires {}",
        string(path.into_os_string()).unwrap_or_default(),
        m.product,
        m.version,
        m.security_version,
        b.key,
        time::format_rfc3339_utc(m.expires)
    );
    for img in &m.images {
        let how = match (img.kind, img.compression) {
            (Kind::Full, Compression::None) => "full".to_owned(),
            (Kind::Full, Compression::Bzip2) => "full, bzip2".to_owned(),
            (Kind::Bsdiff { base }, _) => {
                format!("bsdiff against {} bytes {}", base.size, base.sha256)
            }
        };
        println!(
            "  {}: {} ({}, {} bytes) -> {} bytes {}",
            img.name, img.file, how, img.payload.size, img.result.size, img.result.sha256
        );
    }
    Ok(0)
}
