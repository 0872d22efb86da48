//! Why a bundle was refused ([`BundleError`]), and JSON parse errors that
//! name their field.

use super::bsdiff;

/// Why a bundle (or a part of one) was refused. Each message is one line.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The manifest is malformed; the message names the field.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The signature is malformed or no trusted key verifies it.
    #[error("manifest signature: {0}")]
    Signature(String),
    /// A key file is unusable.
    #[error("key {name}: {reason}")]
    Key {
        /// The key file.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The single-file bundle's framing is wrong.
    #[error("bundle file: {0}")]
    Container(String),
    /// The verified manifest is not for this device or not acceptable now.
    #[error("bundle refused: {0}")]
    Refused(String),
    /// A payload does not match its signed size or hash.
    #[error("payload {file}: {reason}")]
    Payload {
        /// The payload's file name.
        file: String,
        /// What does not match.
        reason: String,
    },
    /// The delta base (the booted slot's image) is not the one the patch needs.
    #[error("image {name}: delta base mismatch: {reason}")]
    Base {
        /// Partition name.
        name: String,
        /// What does not match.
        reason: String,
    },
    /// A BSDIFF40 patch could not be applied.
    #[error(transparent)]
    Patch(#[from] bsdiff::PatchError),
    /// The channel file is malformed.
    #[error("channel file: {0}")]
    Channel(String),
}

/// serde_json's type errors say "invalid value ... at line 9 column 24"
/// without the field; add the key found before that position so every
/// error names its field.
pub(crate) fn json_error(bytes: &[u8], e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if e.line() == 0 || msg.contains("field `") {
        return msg;
    }
    let text = String::from_utf8_lossy(bytes);
    let Some(line) = text.lines().nth(e.line() - 1) else {
        return msg;
    };
    let upto: String = line.chars().take(e.column()).collect();
    // The last `"key":` before the error column on that line.
    let key = upto.rfind("\":").and_then(|end| {
        let start = upto[..end].rfind('"')?;
        Some(&upto[start + 1..end])
    });
    match key {
        Some(k) => format!("field `{k}`: {msg}"),
        None => msg,
    }
}
