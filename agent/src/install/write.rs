//! Write phase: the one path from decoded bytes to the slot —
//! [`CheckpointWriter`], sequential buffered writes through the
//! [`SlotWriter`] with an inline SHA-256 and periodic checkpoints (fsync,
//! then a journal record naming the durable prefix).

use std::io::{self, Write};
use std::time::Instant;

use sha2::Digest as _;

use super::error::WriteFault;
use super::journal::{self, Record};
use super::progress::Bookkeeping;
use super::storage::{Disk, SlotWriter};
use super::{Approved, Options};
use crate::bundle::{Blob, Digest, Image};
use crate::slots::Slot;

/// One image being written: what the write phase needs to know about it.
pub(super) struct ImageJob<'m> {
    /// Image index (manifest order).
    pub index: usize,
    /// The image.
    pub img: &'m Image,
    /// Bytes of the images before this one (overall progress).
    pub done_before: u64,
    /// Tuning.
    pub options: Options,
    /// The manifest being installed (the journal's key).
    pub approved: &'m Approved,
    /// The slot written.
    pub target: Slot,
}

/// Where a [`CheckpointWriter`] may put durable restart points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RestartPoints {
    /// At any output offset (uncompressed payload or delta: payload offset
    /// = image offset).
    Anywhere,
    /// Only where a bzip2 stream ends ([`CheckpointWriter::stream_end`]).
    StreamEnds,
}

/// Sequential, buffered, bounded writes into the slot with an inline hash
/// and periodic checkpoints (fsync + journal).
pub(super) struct CheckpointWriter<'w, 'd, 'r, 'p, D: Disk + ?Sized> {
    writer: &'w SlotWriter<'d, D>,
    buf: Vec<u8>,
    /// Bytes of the image already handed to the disk.
    pos: u64,
    hasher: sha2::Sha256,
    limit: u64,
    next_checkpoint: u64,
    last_checkpoint: Instant,
    last_checkpoint_pos: u64,
    restart_points: RestartPoints,
    /// Why writing stopped, when it was the writer's doing.
    fault: Option<WriteFault>,
    job: &'w ImageJob<'w>,
    books: &'r mut Bookkeeping<'p>,
}

impl<'w, 'd, 'r, 'p, D: Disk + ?Sized> CheckpointWriter<'w, 'd, 'r, 'p, D> {
    /// Writes image `job` from byte `pos`, `hasher` holding the hash of the
    /// bytes before it.
    pub fn new(
        writer: &'w SlotWriter<'d, D>,
        job: &'w ImageJob<'w>,
        books: &'r mut Bookkeeping<'p>,
        pos: u64,
        hasher: sha2::Sha256,
        restart_points: RestartPoints,
    ) -> Self {
        CheckpointWriter {
            writer,
            buf: Vec::with_capacity(job.options.chunk.max(4096)),
            pos,
            hasher,
            limit: job.img.result.size,
            next_checkpoint: pos + job.options.checkpoint,
            last_checkpoint: Instant::now(),
            last_checkpoint_pos: pos,
            restart_points,
            fault: None,
            job,
            books,
        }
    }

    /// Why the writer failed, if it did (else the error came from the source
    /// or the decoder).
    pub fn fault(&self) -> Option<WriteFault> {
        self.fault
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.writer.write_at(&self.buf, self.pos) {
            self.fault = Some(WriteFault::Flash);
            return Err(e);
        }
        self.hasher.update(&self.buf);
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        self.books
            .progress
            .advance(self.pos, self.job.done_before + self.pos);
        // A local suspend waits here, a cancel stops here: between chunks,
        // with the journal one checkpoint behind at most.
        self.books.go_on()?;
        if self.checkpoint_due() {
            match self.restart_points {
                RestartPoints::Anywhere => self.checkpoint(self.pos)?,
                // Mid-stream, a bzip2 decoder cannot be restarted: wait for
                // `stream_end`.
                RestartPoints::StreamEnds => {}
            }
        }
        Ok(())
    }

    /// A bzip2 stream ended with the payload read up to `payload_pos`: a
    /// place where a later run can start decoding again.
    pub fn stream_end(&mut self, payload_pos: u64) -> io::Result<()> {
        self.flush_buf()?;
        if self.checkpoint_due() {
            self.checkpoint(payload_pos)?;
        }
        Ok(())
    }

    /// `options.checkpoint` bytes or `options.checkpoint_time` since the
    /// last checkpoint (and something new to record).
    fn checkpoint_due(&self) -> bool {
        self.pos >= self.next_checkpoint
            || (self.pos > self.last_checkpoint_pos
                && self.last_checkpoint.elapsed() >= self.job.options.checkpoint_time)
    }

    /// A durable restart point: fsync, then a journal record (image offset
    /// `pos`, payload offset `payload_pos`, SHA-256 of the prefix).
    fn checkpoint(&mut self, payload_pos: u64) -> io::Result<()> {
        self.next_checkpoint = self.pos + self.job.options.checkpoint;
        self.last_checkpoint = Instant::now();
        self.last_checkpoint_pos = self.pos;
        if let Err(e) = self.writer.sync() {
            self.fault = Some(WriteFault::Flash);
            return Err(e);
        }
        let prefix = Digest(self.hasher.clone().finalize().into());
        let stored = self.books.journal.store(&Record {
            manifest: self.job.approved.digest(),
            slot: self.job.target,
            phase: journal::Phase::Writing,
            image: self.job.index as u16,
            offset: self.pos,
            payload_offset: payload_pos,
            prefix,
        });
        match stored {
            Ok(seq) => {
                log::debug!(
                    "checkpoint seq {seq}: slot {} image {} byte {}",
                    self.job.target,
                    self.job.img.name,
                    self.pos
                );
                Ok(())
            }
            Err(e) => {
                self.fault = Some(WriteFault::Flash);
                Err(io::Error::other(e))
            }
        }
    }

    /// Writes what is buffered, syncs, and returns size and SHA-256 of the
    /// whole image as written.
    pub fn finish(mut self) -> io::Result<Blob> {
        self.flush_buf()?;
        self.writer.sync()?;
        Ok(Blob {
            size: self.pos,
            sha256: Digest(self.hasher.finalize().into()),
        })
    }
}

impl<D: Disk + ?Sized> Write for CheckpointWriter<'_, '_, '_, '_, D> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let written = self.pos + self.buf.len() as u64;
        if written + data.len() as u64 > self.limit {
            self.fault = Some(WriteFault::TooLong);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the payload produces more than result_size {} bytes",
                    self.limit
                ),
            ));
        }
        let cap = self.job.options.chunk.max(4096);
        let n = data.len().min(cap - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == cap {
            self.flush_buf()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
