//! How the installer tells its failures apart: content errors (the payload
//! is wrong: a resume would only repeat them, so the journal is cleared) are
//! `BundleError::Payload`; I/O errors (source, flash) keep the journal.

use std::io;
use std::path::PathBuf;

use crate::bundle::{BundleError, Image};
use crate::Error;

/// A content error of image `img`.
pub(super) fn refuse(img: &Image, reason: String) -> Error {
    BundleError::Payload {
        file: img.file.clone(),
        reason,
    }
    .into()
}

/// Keeps I/O errors as I/O (resumable); decoder/data errors are content.
pub(super) fn refuse_io(img: &Image, what: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            refuse(img, format!("{what}: {e}"))
        }
        _ => Error::io(format!("image {} payload {}", img.name, img.file), e),
    }
}

/// Why the checkpointing writer stopped, recorded where it happened so the
/// caller does not have to guess from an `io::Error` that passed through a
/// decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteFault {
    /// Writing or syncing the flash, or storing a checkpoint, failed
    /// (I/O: resumable).
    Flash,
    /// The payload produced more than the manifest's `result_size` (content).
    TooLong,
}

/// Why the installer refused before writing anything.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A target partition may not be written as a whole (outside the disk
    /// or the GPT's usable area, overlapping another partition or the
    /// bootloader's storage).
    #[error("refusing to install: {0}; nothing was written")]
    Layout(String),
    /// `state_dir` has not enough free space for what the install keeps
    /// there (downloaded delta patches, records).
    #[error(
        "refusing to install: {} has {free} bytes free, the install needs {need}; nothing was written",
        dir.display()
    )]
    NoSpace {
        /// The state directory (or its nearest existing parent).
        dir: PathBuf,
        /// Bytes needed.
        need: u64,
        /// Bytes free for the agent.
        free: u64,
    },
}
