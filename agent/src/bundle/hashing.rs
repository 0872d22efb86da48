//! Readers and writers that hash and count what passes through them.

use std::io::{self, Read, Write};

use sha2::Digest as _;

use super::digest::Digest;
use super::manifest::Blob;

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }
    /// Reads to the end, then returns the size and hash of everything read.
    pub fn finish(mut self) -> io::Result<Blob> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(Blob {
            size: self.count,
            sha256: Digest(self.hasher.finalize().into()),
        })
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }
    /// Size and hash of everything written, and the inner writer.
    pub fn finish(self) -> (Blob, W) {
        (
            Blob {
                size: self.count,
                sha256: Digest(self.hasher.finalize().into()),
            },
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Size and SHA-256 of everything `r` yields.
pub fn hash_reader<R: Read>(r: R) -> io::Result<Blob> {
    HashingReader::new(r).finish()
}
