//! U-Boot environment images (placeholder: the implementation lands with the
//! Foundation issue).
#![forbid(unsafe_code)]

/// Errors of this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing is implemented yet.
    #[error("not implemented")]
    NotImplemented,
}
