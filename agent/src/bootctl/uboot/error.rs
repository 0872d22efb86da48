//! The backend's name and the error its refusals carry.

use crate::Error;

pub(super) const BACKEND: &str = "uboot";

pub(super) fn err(reason: impl Into<String>) -> Error {
    Error::Bootctl {
        backend: BACKEND,
        reason: reason.into(),
    }
}
