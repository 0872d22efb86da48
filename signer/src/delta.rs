//! Delta creation (`qbsdiff`, byte-compatible with Debian's `bsdiff` 4.3) and
//! application through the agent's streaming BSDIFF40 code, so a patch is
//! only ever shipped after the device's own code reproduced the target.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use ota_agent::bundle::{bsdiff, Blob, Digest, HashingWriter};

use crate::error::{Error, Result};
use crate::progress::{Counting, Progress};

/// Computes the BSDIFF40 patch turning `old` into `new`.
pub fn diff(old: &[u8], new: &[u8], progress: &Progress) -> Result<Vec<u8>> {
    if old.len() > qbsdiff::bsdiff::MAX_LENGTH {
        return Err(Error::Failed(format!(
            "delta: the old image ({} bytes) is larger than qbsdiff can index",
            old.len()
        )));
    }
    progress.phase("computing the delta (suffix sort + match)", 0);
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(old, new)
        .compare(std::io::Cursor::new(&mut patch))
        .map_err(|e| Error::Failed(format!("delta: {e}")))?;
    Ok(patch)
}

/// Applies `patch` to the file `old` with the agent's code and returns the
/// size and SHA-256 of the result, writing it to `out` when given.
pub fn apply_file<P: bsdiff::ReadAt + ?Sized>(
    old: &Path,
    patch: &P,
    out: Option<&Path>,
    progress: &Progress,
) -> Result<Blob> {
    let mut old_f = File::open(old).map_err(|e| Error::io(old, e))?;
    let total = bsdiff::read_header(patch).map(|h| h.new_size).unwrap_or(0);
    progress.phase("applying the patch", total);
    let sink: Box<dyn Write> = match out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| Error::io(p, e))?,
        )),
        None => Box::new(std::io::sink()),
    };
    let mut w = HashingWriter::new(Counting {
        inner: sink,
        progress,
    });
    bsdiff::apply(patch, &mut old_f, &mut w).map_err(ota_agent::bundle::BundleError::from)?;
    let (blob, mut inner) = w.finish();
    if let Some(p) = out {
        inner.flush().map_err(|e| Error::io(p, e))?;
    }
    Ok(blob)
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Checks that applying `patch` to `old` reproduces `want`.
pub fn check_reproduces<P: bsdiff::ReadAt + ?Sized>(
    old: &Path,
    patch: &P,
    want: Blob,
    progress: &Progress,
) -> Result<()> {
    let got = apply_file(old, patch, None, progress)?;
    if got != want {
        return Err(Error::Failed(format!(
            "patch applied to {} gives {} bytes {}, not the image's {} bytes {}",
            old.display(),
            got.size,
            got.sha256,
            want.size,
            want.sha256
        )));
    }
    Ok(())
}

/// Size and SHA-256 of a byte slice.
pub fn blob(bytes: &[u8]) -> Blob {
    Blob {
        size: bytes.len() as u64,
        sha256: Digest::of(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn apply_mem(old: &[u8], patch: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        bsdiff::apply(patch, &mut std::io::Cursor::new(old), &mut out).unwrap();
        out
    }

    /// NEW derived from OLD by edits (so there is something to match) or
    /// unrelated, including empty inputs and zero runs.
    fn pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let old = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..3000),
            proptest::collection::vec(0u8..3, 0..3000),
        ];
        old.prop_flat_map(|old| {
            let edits = proptest::collection::vec(
                (
                    any::<usize>(),
                    0usize..40,
                    proptest::collection::vec(any::<u8>(), 0..40),
                ),
                0..8,
            );
            (
                Just(old),
                edits,
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..500),
            )
        })
        .prop_map(|(old, edits, unrelated, other)| {
            if unrelated {
                return (old, other);
            }
            let mut new = old.clone();
            for (at, del, ins) in edits {
                let at = if new.is_empty() { 0 } else { at % new.len() };
                let del = del.min(new.len() - at);
                new.splice(at..at + del, ins);
            }
            (old, new)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn delta_then_apply_reproduces_new((old, new) in pair()) {
            let p = Progress::start("test");
            let patch = diff(&old, &new, &p).unwrap();
            prop_assert_eq!(&patch[..8], b"BSDIFF40");
            prop_assert_eq!(apply_mem(&old, &patch), new);
        }
    }
}
