//! Read-back phase: what is on flash, hashed after the cached pages were
//! dropped — the written prefix before a resume, the whole image after it
//! was written.

use std::io::{self, Read};

use sha2::Digest as _;

use super::error::refuse;
use super::progress::Bookkeeping;
use super::storage::{Disk, SlotWriter};
use super::write::ImageJob;
use crate::bundle::{Blob, Digest, Image};
use crate::update_status::Phase;
use crate::{Error, Result};

/// Re-hashes the first `len` bytes of the target partition.
pub(super) fn hash_prefix<D: Disk + ?Sized>(
    writer: &SlotWriter<'_, D>,
    len: u64,
    report: &mut dyn FnMut(u64),
) -> io::Result<(sha2::Sha256, u64)> {
    let mut hasher = sha2::Sha256::new();
    let mut r = writer.read_back(len).take(len);
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        n += got as u64;
        report(n);
    }
    Ok((hasher, n))
}

/// Compares size and SHA-256 of `got` with the manifest's `want`.
pub(super) fn check_blob(img: &Image, what: &str, got: Blob, want: Blob) -> Result<()> {
    if got.size != want.size {
        return Err(refuse(
            img,
            format!(
                "{what} is {} bytes, the manifest says {}",
                got.size, want.size
            ),
        ));
    }
    if got.sha256 != want.sha256 {
        return Err(refuse(
            img,
            format!(
                "{what} SHA-256 {} does not match the manifest's {}",
                got.sha256, want.sha256
            ),
        ));
    }
    Ok(())
}

/// fsync, drop the cache, read the image back from flash and compare.
pub(super) fn check_on_flash<D: Disk + ?Sized>(
    job: &ImageJob<'_>,
    writer: &SlotWriter<'_, D>,
    books: &mut Bookkeeping<'_>,
) -> Result<()> {
    let img = job.img;
    writer
        .sync()
        .map_err(|e| Error::io(writer.partition().name.clone(), e))?;
    let overall = job.done_before + img.result.size;
    books.phase(
        Phase::ReadingBack,
        &img.name,
        Some(img.result.size),
        overall,
    );
    let (h, n) = hash_prefix(writer, img.result.size, &mut |n| {
        books.progress.advance(n, overall)
    })
    .map_err(|e| Error::io(writer.partition().name.clone(), e))?;
    check_blob(
        img,
        &format!("image read back from `{}`", writer.partition().name),
        Blob {
            size: n,
            sha256: Digest(h.finalize().into()),
        },
        img.result,
    )
}
