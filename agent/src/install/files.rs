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

/// The single-file install journal of older agents (temp file + rename);
/// read when the record pair is empty, removed at the next store.
pub const JOURNAL: &str = "install-journal";
/// The two checkpoint record files.
pub const JOURNAL_RECORDS: [&str; 2] = ["install-journal.0", "install-journal.1"];
/// The security version to store once the new slot is confirmed (`mark-good`).
pub const PENDING_SECURITY: &str = "pending-security-version";
/// Prefix of kept delta patches.
pub const PATCH_PREFIX: &str = "delta-";
/// Suffix of kept delta patches.
pub const PATCH_SUFFIX: &str = ".bsdiff";

/// The kept patch of image `index` of the manifest tagged `tag`.
pub fn patch_file(state_dir: &Path, tag: &str, index: usize) -> PathBuf {
    state_dir.join(format!("{PATCH_PREFIX}{tag}-{index}{PATCH_SUFFIX}"))
}

/// Whether `name` is a kept patch; `Some(true)` when it belongs to `tag`.
pub fn is_patch_of(name: &str, tag: &str) -> Option<bool> {
    (name.starts_with(PATCH_PREFIX) && name.ends_with(PATCH_SUFFIX))
        .then(|| !tag.is_empty() && name.starts_with(&format!("{PATCH_PREFIX}{tag}-")))
}
