//! The agent library's error type. The binary prints the chain once and maps it
//! to an exit status (`cli::exit_code`).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the agent, one variant per area. Messages are
/// lowercase and name what failed; the variant keeps the cause.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was wrong (exit status 2).
    #[error("usage: {0}")]
    Usage(String),
    /// The configuration file is unreadable or has a bad value.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// An I/O operation on a named file or device failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or device.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The U-Boot environment could not be read or written.
    #[error("uboot env: {0}")]
    Env(#[from] uboot_env::Error),
    /// The disk's partition table is unreadable or its slot layout is wrong.
    #[error("gpt {}: {reason}", path.display())]
    Gpt {
        /// The disk or image file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A slot name, or the booted slot, could not be determined.
    #[error("slot: {0}")]
    Slot(String),
    /// A boot-control backend refused or failed an operation.
    #[error("{backend}: {reason}")]
    Bootctl {
        /// `uboot` or `android`.
        backend: &'static str,
        /// What failed and why.
        reason: String,
    },
    /// A health check failed, so the slot was not marked good.
    #[error("health check {}: {reason}", hook.display())]
    Health {
        /// The executable that failed.
        hook: PathBuf,
        /// Exit status or spawn error.
        reason: String,
    },
    /// A file that describes this device (os-release `VERSION_ID`, the
    /// device id file) has no usable value.
    #[error("{}: {reason}", path.display())]
    DeviceFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        reason: String,
    },
    /// Another process holds `state_dir/update.lock` (install, update,
    /// mark-good, set-active, mark-bad and each daemon cycle take it).
    #[error("another update is running (pid {}, since {})",
        pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
        since.map_or_else(|| "unknown".to_owned(), crate::bundle::time::format_rfc3339_utc))]
    Busy {
        /// The holder's process id, as it recorded it.
        pid: Option<u32>,
        /// When the holder took the lock (seconds since the epoch).
        since: Option<i64>,
    },
    /// The device's policy (a maintenance window or a policy hook) defers
    /// this phase; a later run asks again (docs/policy.md).
    #[error("{why}")]
    Deferred {
        /// One line: which window or hook, and why.
        why: String,
        /// When to ask again (UTC seconds), if known.
        until: Option<i64>,
    },
    /// A policy hook refused this release (remembered in `state_dir`).
    #[error("{0}")]
    Refused(String),
    /// A local client stopped the download or write in progress (`cancel`
    /// on the control socket, docs/local-api.md). The inactive slot stays
    /// marked unbootable; the journal is cleared.
    #[error("cancelled on the local control socket")]
    Cancelled,
    /// A caller broke an API contract of the library (a bug, not bad input).
    #[error("internal error: {0}")]
    Internal(String),
    /// A record in `state_dir` is corrupt.
    #[error("state {}: {reason}", path.display())]
    State {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The appliance MCU link failed (port, timeout, bad reply).
    #[error("mcu {0}")]
    Mcu(#[from] crate::mcu::McuError),
    /// A bundle, manifest, signature, payload, patch or channel file was refused.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// A download or server request failed (the message names the URL).
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    /// The installer refused before writing anything (layout, free space).
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Most bytes of user input (a config key, a file name, a server's text) an
/// error line quotes.
pub const QUOTE_MAX: usize = 80;

/// `input` as an error line may quote it: control and non-ASCII characters
/// escaped (`\n`, `\u{202e}`), and at most [`QUOTE_MAX`] bytes of it, the
/// rest replaced by `…(+N bytes)`. Use it wherever user input is echoed, so
/// a 900 KB key makes a one-line, 100-byte message.
pub fn quote(input: &str) -> String {
    let mut cut = input.len().min(QUOTE_MAX);
    while !input.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out: String = input[..cut]
        .chars()
        .flat_map(|c| {
            let plain = c.is_ascii_graphic() || c == ' ';
            let escaped: Vec<char> = if plain {
                vec![c]
            } else {
                c.escape_default().collect()
            };
            escaped
        })
        .collect();
    if cut < input.len() {
        out.push_str(&format!("…(+{} bytes)", input.len() - cut));
    }
    out
}

/// The agent's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_bounds_and_escapes() {
        assert_eq!(quote("rootfs"), "rootfs");
        assert_eq!(quote("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
        let huge = "k".repeat(900_000);
        let q = quote(&huge);
        assert_eq!(q, format!("{}…(+{} bytes)", "k".repeat(80), 900_000 - 80));
        // Never cuts inside a character.
        let q = quote(&"é".repeat(100));
        assert!(q.ends_with("…(+120 bytes)"), "{q}");
        assert!(q.len() < 2 * QUOTE_MAX * 4);
    }
}
