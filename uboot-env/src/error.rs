//! The crate's one error type. Messages are lowercase, one line, and name what
//! failed (the variable, the config line, the device and offset) and why.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong reading, writing or configuring an environment.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A variable name is not acceptable (empty, contains `=` or NUL).
    #[error("invalid variable name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A variable value is not acceptable (contains NUL).
    #[error("invalid value for variable {name:?}: {reason}")]
    InvalidValue {
        /// The variable whose value was refused.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The variables do not fit into the environment area.
    #[error("environment too large: needs {needed} bytes of data, the area holds {capacity}")]
    TooLarge {
        /// Bytes the encoded variables need (including the terminating NUL).
        needed: usize,
        /// Bytes available for data (area size minus header).
        capacity: usize,
    },
    /// An image buffer has the wrong size for the configured area.
    #[error("environment image is {actual} bytes, expected {expected}")]
    ImageSize {
        /// Configured size.
        expected: usize,
        /// Size of the buffer handed in.
        actual: usize,
    },
    /// The CRC-32 stored in a copy does not match its data.
    #[error("bad crc: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC read from the header.
        stored: u32,
        /// CRC computed over the data area.
        computed: u32,
    },
    /// The data area passed its CRC but is not a valid variable list.
    #[error("corrupt environment data: {0}")]
    Corrupt(String),
    /// No copy of the environment is valid. Never papered over: a caller that
    /// wants to start from a default environment must ask for it explicitly
    /// (`EnvStore::read_or_default`).
    #[error("no valid environment: {0}")]
    NoValidCopy(String),
    /// `fw_env.config` (or a script / default env file) has a bad line.
    #[error("{origin} line {line}: {reason}")]
    Syntax {
        /// The file (or `fw_env.config` when parsed from text).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `fw_env.config` is well-formed but describes an unusable setup.
    #[error("{origin}: {reason}")]
    Config {
        /// The file (or `fw_env.config` when parsed from text).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The configured device cannot hold an environment (wrong kind, too small…).
    #[error("{}: {reason}", path.display())]
    Device {
        /// The device or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O operation on a device or file failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The device or file.
        path: PathBuf,
        /// What was being done (`read at 0x100000`, `fsync`, `MEMERASE`…).
        op: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, op: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op: op.into(),
            source,
        }
    }

    pub(crate) fn device(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Device {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
