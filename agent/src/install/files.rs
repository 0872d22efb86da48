//! Every file the installer keeps in `state_dir`, named once.
//!
//! | name | written by | meaning |
//! | --- | --- | --- |
//! | [`JOURNAL_RECORDS`] | write phase | how far the write of the inactive slot got: two alternating checkpoint records (`journal.rs`, `durable::RecordPair`) |
//! | [`JOURNAL`] | — | the single-file journal of older agents: read once, removed |
//! | [`PENDING_SECURITY`] | activate phase | security version to store once the new slot is confirmed |
//! | `delta-<tag>-<n>.bsdiff` ([`patch_file`]) | source phase | a downloaded delta patch, kept until the install ends |
//!
//! `writing-<slot>` belongs to `state.rs` (boot control reads it too).

use std::path::{Path, PathBuf};

// The names themselves are defined once, with every other state_dir
// name, in `crate::state`.
pub use crate::state::{
    INSTALL_JOURNAL_FILE as JOURNAL, INSTALL_JOURNAL_RECORDS as JOURNAL_RECORDS, PATCH_PREFIX,
    PATCH_SUFFIX, PENDING_SECURITY_FILE as PENDING_SECURITY,
};

/// The kept patch of image `index` of the manifest tagged `tag`.
pub fn patch_file(state_dir: &Path, tag: &str, index: usize) -> PathBuf {
    state_dir.join(format!("{PATCH_PREFIX}{tag}-{index}{PATCH_SUFFIX}"))
}

/// Whether `name` is a kept patch; `Some(true)` when it belongs to `tag`.
pub fn is_patch_of(name: &str, tag: &str) -> Option<bool> {
    (name.starts_with(PATCH_PREFIX) && name.ends_with(PATCH_SUFFIX))
        .then(|| !tag.is_empty() && name.starts_with(&format!("{PATCH_PREFIX}{tag}-")))
}
