//! The bit reader of the bzip2 decoder and its error constructor.

use std::io::{self, BufRead};

/// The longest code length the format allows.
pub(super) const MAX_CODE_LEN: u32 = 20;

pub(super) fn bad(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Bits from a [`BufRead`], most significant first. Consumes whole bytes
/// from the reader only as bits are asked for, so a stream's end leaves the
/// reader at the first byte after it (see [`Bits::refill_ahead`]).
pub(super) struct Bits<R> {
    pub(super) r: R,
    /// The low `n` bits are unread, oldest highest.
    pub(super) buf: u64,
    pub(super) n: u32,
}

impl<R: BufRead> Bits<R> {
    /// Makes at least `want` (≤ 57) bits available, reading no byte more
    /// than needed.
    pub(super) fn need(&mut self, want: u32) -> io::Result<()> {
        while self.n < want {
            let avail = self.r.fill_buf()?;
            if avail.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "bzip2 stream ends early",
                ));
            }
            let k = (((want - self.n) as usize).div_ceil(8)).min(avail.len());
            for &b in &avail[..k] {
                self.buf = (self.buf << 8) | u64::from(b);
            }
            self.n += 8 * k as u32;
            self.r.consume(k);
        }
        Ok(())
    }

    /// Fills the buffer up to 57..=64 bits. Only inside a block's symbol
    /// data: at least 80 bits (the next block's or the stream end's magic
    /// and CRC) follow any symbol, so this never reads past the stream.
    #[inline(always)]
    pub(super) fn refill_ahead(&mut self) -> io::Result<()> {
        while self.n <= 56 {
            let avail = self.r.fill_buf()?;
            let k = (((64 - self.n) / 8) as usize).min(avail.len());
            if k == 0 {
                break;
            }
            for &b in &avail[..k] {
                self.buf = (self.buf << 8) | u64::from(b);
            }
            self.n += 8 * k as u32;
            self.r.consume(k);
        }
        // At the reader's end what is held must do (or it ends early).
        self.need(MAX_CODE_LEN)
    }

    /// The next `count` (≤ 32) bits as a number, consumed.
    pub(super) fn get(&mut self, count: u32) -> io::Result<u32> {
        self.need(count)?;
        self.n -= count;
        Ok(((self.buf >> self.n) & ((1u64 << count) - 1)) as u32)
    }

    pub(super) fn bit(&mut self) -> io::Result<bool> {
        Ok(self.get(1)? == 1)
    }

    /// Drops the bits up to the next byte boundary (the stream's padding).
    pub(super) fn align(&mut self) {
        self.n -= self.n % 8;
    }
}
