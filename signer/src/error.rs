//! The host tool's error type: usage mistakes, everything the shared agent
//! library refuses, and the tool's own failures. Messages are one line.

use std::io;
use std::path::PathBuf;

/// Everything `ota-sign` can fail with.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was wrong (exit status 2).
    #[error("usage: {0}")]
    Usage(String),
    /// The shared library refused something (manifest, signature, payload, patch).
    #[error(transparent)]
    Agent(#[from] ota_agent::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Anything else, already phrased as one line.
    #[error("{0}")]
    Failed(String),
}

impl From<ota_agent::bundle::BundleError> for Error {
    fn from(e: ota_agent::bundle::BundleError) -> Self {
        Error::Agent(e.into())
    }
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

/// The tool's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a lexopt error into a usage error.
pub fn usage(e: lexopt::Error) -> Error {
    Error::Usage(e.to_string())
}
