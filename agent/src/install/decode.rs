//! Decode phase: payload bytes → image bytes. A full image streams through
//! no decoder or bzip2 (one stream at a time, so a later run can re-enter at
//! a stream start); a delta applies its BSDIFF40 patch against the booted
//! slot's image. Either way the bytes go to the [`CheckpointWriter`].

use std::io::{self, BufRead, Read};

use sha2::Digest as _;

use super::error::{refuse, refuse_io, WriteFault};
use super::progress::Bookkeeping;
use super::readback::{check_blob, hash_prefix};
use super::source::Payloads;
use super::storage::{Disk, SlotReader, SlotWriter};
use super::write::{CheckpointWriter, ImageJob, RestartPoints};
use crate::bundle::bsdiff::{self, ReadAt};
use crate::bundle::{Blob, BundleError, Compression, Digest, Kind};
use crate::update_status::Phase;
use crate::{Error, Result};

/// Where a resumed image continues, as the journal recorded it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResumePoint {
    /// Image bytes durable on flash.
    pub offset: u64,
    /// Payload byte to continue reading from.
    pub payload_offset: u64,
    /// SHA-256 of the image prefix as written.
    pub prefix: Digest,
    /// The checkpoint's sequence number (for the log).
    pub seq: u64,
}

/// Hashes and counts everything read through it (the payload under a
/// decoder), and remembers whether the source itself failed.
struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
    /// The source itself failed (I/O, resumable), not the data.
    source_failed: bool,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.source_failed = true)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Writes full image `job` from `payloads`, continuing at `from` when the
/// flash still holds that prefix.
pub(super) fn write_full<D: Disk + ?Sized>(
    job: &ImageJob<'_>,
    writer: &SlotWriter<'_, D>,
    from: Option<ResumePoint>,
    payloads: &mut dyn Payloads,
    books: &mut Bookkeeping<'_>,
) -> Result<()> {
    let img = job.img;
    let bzip2 = img.compression == Compression::Bzip2;
    // Resume: the prefix on flash must still hash to what was written, and
    // the payload must be re-entered where that prefix ends (for bzip2 a
    // stream start; a journal without one restarts the image).
    let usable = |r: &ResumePoint| {
        let (o, p) = (r.offset, r.payload_offset);
        o > 0
            && o <= img.result.size
            && if bzip2 {
                p > 0 && p <= img.payload.size
            } else {
                p == o
            }
    };
    let (hasher, offset, payload_start) = verified_prefix(job, writer, from.filter(usable))?;
    // Streamed from the server, the download is what the user waits for;
    // from a local bundle, the flash.
    let phase = if payloads.local(job.index).is_some() {
        Phase::Writing
    } else {
        Phase::Downloading
    };
    books.phase(
        phase,
        &img.name,
        Some(img.result.size),
        job.done_before + offset,
    );
    books.progress.advance(offset, job.done_before + offset);
    let points = if bzip2 {
        RestartPoints::StreamEnds
    } else {
        RestartPoints::Anywhere
    };
    let mut sink = CheckpointWriter::new(writer, job, books, offset, hasher, points);
    let payload_left = img.payload.size;
    let got = match img.compression {
        Compression::None => {
            let src = payloads
                .open_at(job.index, offset)
                .map_err(|e| refuse_io(img, "opening the payload", e))?;
            io::copy(&mut src.take(payload_left - offset + 1), &mut sink)
                .map_err(|e| refuse_io(img, "writing", e))?;
            sink.finish().map_err(|e| refuse_io(img, "writing", e))?
        }
        Compression::Bzip2 => {
            let src = payloads
                .open_at(job.index, payload_start)
                .map_err(|e| refuse_io(img, "opening the payload", e))?;
            let counted = HashingReader {
                inner: src.take(payload_left - payload_start + 1),
                hasher: sha2::Sha256::new(),
                count: payload_start,
                source_failed: false,
            };
            // One bzip2 stream at a time (a payload may hold many, as
            // `ota-sign` and pbzip2 write them): a stream end is a byte
            // offset in the payload where decoding can start again, so a
            // checkpoint there lets a later run continue without fetching
            // the payload's beginning again.
            let mut input = io::BufReader::with_capacity(64 << 10, counted);
            loop {
                let at_end = match input.fill_buf() {
                    Ok(more) => more.is_empty(),
                    Err(e) => return Err(refuse_io(img, "reading the payload", e)),
                };
                if at_end {
                    break;
                }
                let mut dec = crate::bundle::bunzip::Decoder::new(&mut input);
                if let Err(e) = io::copy(&mut dec, &mut sink) {
                    return Err(match sink.fault() {
                        // Flash I/O stays resumable, too much data is content.
                        Some(WriteFault::Flash | WriteFault::TooLong) => {
                            refuse_io(img, "writing", e)
                        }
                        None if input.get_ref().source_failed => {
                            refuse_io(img, "reading the payload", e)
                        }
                        // Data errors are content errors whatever kind the
                        // decoder uses.
                        None => refuse(img, format!("bzip2: {e}")),
                    });
                }
                let at = input.get_ref().count - input.buffer().len() as u64;
                sink.stream_end(at)
                    .map_err(|e| refuse_io(img, "writing", e))?;
            }
            let blob = sink.finish().map_err(|e| refuse_io(img, "writing", e))?;
            let counted = input.into_inner();
            if payload_start == 0 {
                check_blob(
                    img,
                    "payload",
                    Blob {
                        size: counted.count,
                        sha256: Digest(counted.hasher.finalize().into()),
                    },
                    img.payload,
                )?;
            } else if counted.count != img.payload.size {
                return Err(refuse(
                    img,
                    format!(
                        "payload is {} bytes, the manifest says {}",
                        counted.count, img.payload.size
                    ),
                ));
            }
            // A resumed payload's SHA-256 cannot be completed without its
            // first bytes; what counts is checked anyway: the decoded image
            // against the signed `result` hash, here and read back from flash.
            blob
        }
    };
    check_blob(img, "written image", got, img.result)
}

/// The hash state, image offset and payload offset to continue from: the
/// resume point when the first `offset` bytes on flash (re-read, the cut
/// may have torn them) hash to the checkpoint's prefix, else the start.
fn verified_prefix<D: Disk + ?Sized>(
    job: &ImageJob<'_>,
    writer: &SlotWriter<'_, D>,
    from: Option<ResumePoint>,
) -> Result<(sha2::Sha256, u64, u64)> {
    let img = job.img;
    let Some(at) = from else {
        return Ok((sha2::Sha256::new(), 0, 0));
    };
    let (off, poff) = (at.offset, at.payload_offset);
    let (h, n) = hash_prefix(writer, off, &mut |_| {})
        .map_err(|e| Error::io(writer.partition().name.clone(), e))?;
    if n == off && Digest(h.clone().finalize().into()) == at.prefix {
        log::info!(
            "resuming slot {} at byte {off} (checkpoint seq {}): image {} of {} bytes, payload byte {poff}; prefix verified on flash",
            job.target,
            at.seq,
            img.name,
            img.result.size
        );
        return Ok((h, off, poff));
    }
    log::warn!(
        "image {}: the first {off} bytes on flash do not match checkpoint seq {}; writing the image from byte 0",
        img.name,
        at.seq
    );
    Ok((sha2::Sha256::new(), 0, 0))
}

/// Applies delta image `job`'s `patch` to the booted slot's image `base`,
/// continuing at `from` when the flash still holds that prefix (the patch
/// is decoded again from its start, the bytes before `from` not written).
pub(super) fn write_delta<D: Disk + ?Sized>(
    job: &ImageJob<'_>,
    writer: &SlotWriter<'_, D>,
    base: SlotReader<'_, D>,
    patch: &dyn ReadAt,
    from: Option<ResumePoint>,
    books: &mut Bookkeeping<'_>,
) -> Result<()> {
    let img = job.img;
    let Kind::Bsdiff { base: want } = img.kind else {
        return Err(refuse(img, "not a delta".into()));
    };
    let usable = |r: &ResumePoint| {
        r.offset > 0 && r.offset <= img.result.size && r.payload_offset == r.offset
    };
    let (hasher, offset, _) = verified_prefix(job, writer, from.filter(usable))?;
    books.phase(
        Phase::Writing,
        &img.name,
        Some(img.result.size),
        job.done_before + offset,
    );
    books.progress.advance(offset, job.done_before + offset);
    // Checkpoints name the image offset (payload offset = image offset):
    // a resumed run decodes the patch again and writes from there.
    let mut sink =
        CheckpointWriter::new(writer, job, books, offset, hasher, RestartPoints::Anywhere);
    let mut old = bsdiff::Window::new(base, want.size);
    bsdiff::apply_from(patch, &mut old, &mut sink, offset).map_err(BundleError::from)?;
    let got = sink.finish().map_err(|e| refuse_io(img, "writing", e))?;
    check_blob(img, "patched image", got, img.result)
}
