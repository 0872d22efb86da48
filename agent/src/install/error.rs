//! How the installer tells its failures apart: content errors (the payload
//! is wrong: a resume would only repeat them, so the journal is cleared) are
//! `BundleError::Payload`; I/O errors (source, flash) keep the journal.

use std::io;

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
