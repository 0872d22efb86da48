//! Helpers both command files use: argument conversion, `NAME=FILE` pairs,
//! and the signing time (kept here so `build.rs` and `commands.rs` depend
//! on this file, not on each other).

use std::ffi::OsString;
use std::path::PathBuf;

use ota_agent::bundle::time;

use crate::error::{Error, Result};

/// An argument as UTF-8, or a usage error.
pub(crate) fn string(v: OsString) -> Result<String> {
    v.into_string()
        .map_err(|v| Error::Usage(format!("argument {v:?} is not valid UTF-8")))
}

/// `v`, or a usage error naming `what` as missing.
pub(crate) fn need<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::Usage(format!("missing {what} (try --help)")))
}

/// Parses `NAME=FILE`.
pub(crate) fn name_eq_file(v: OsString) -> Result<(String, PathBuf)> {
    let s = string(v)?;
    match s.split_once('=') {
        Some((n, f)) if !n.is_empty() && !f.is_empty() => Ok((n.to_owned(), PathBuf::from(f))),
        _ => Err(Error::Usage(format!("{s:?} is not NAME=FILE"))),
    }
}

/// Seconds since the epoch: `SOURCE_DATE_EPOCH` if set, else the clock.
pub(crate) fn now() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(time::now)
}
