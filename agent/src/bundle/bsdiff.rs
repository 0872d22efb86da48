//! Classic `BSDIFF40` patches (Colin Percival's bsdiff 4.x, the format Debian's
//! `bsdiff`/`bspatch` 4.3 read and write), applied as a stream.
//!
//! ```text
//!  offset  size  field
//!       0     8  magic "BSDIFF40"
//!       8     8  X = length of the bzip2'd control block   (offtin encoding)
//!      16     8  Y = length of the bzip2'd diff block      (offtin encoding)
//!      24     8  size of the new file                      (offtin encoding)
//!      32     X  control block: triples (add, copy, seek), each 3 x offtin
//!    32+X     Y  diff block: bytes added to old bytes
//!  32+X+Y   ...  extra block: bytes copied verbatim (to the end of the file)
//! ```
//!
//! `offtin` is a 64-bit sign-magnitude little-endian integer (bit 63 = sign).
//! Each block is one bzip2 stream. For every control triple the patcher adds
//! `add` diff bytes to the old bytes at the old position, copies `copy` extra
//! bytes, then moves the old position by `seek`.
//!
//! [`apply`] reads the old image through `Read + Seek`, writes the new image
//! sequentially and reads the three blocks through positioned reads
//! ([`ReadAt`]), so memory stays constant (three bzip2 decoders plus 64 KiB
//! buffers) whatever the image size. Unlike `bspatch`, which silently treats
//! old bytes outside the old file as zero, every control triple is checked: a
//! patch that would read outside the old image or write past the declared new
//! size is refused before any byte of that triple is used; all arithmetic is
//! overflow-checked.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// The first 8 bytes of every BSDIFF40 patch.
pub const MAGIC: &[u8; 8] = b"BSDIFF40";
/// Length of the fixed header.
pub const HEADER_LEN: usize = 32;

const CHUNK: usize = 64 * 1024;

/// Why a patch could not be applied.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch is malformed or hostile (bad header, bad bzip2, out-of-range
    /// control values, truncated block).
    #[error("patch: {0}")]
    Corrupt(String),
    /// Reading the old image or the patch, or writing the new image, failed.
    #[error("patch: {what}: {source}")]
    Io {
        /// Which stream failed ("reading the old image", ...).
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

fn corrupt(msg: impl Into<String>) -> PatchError {
    PatchError::Corrupt(msg.into())
}

/// The fixed 32-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Length of the bzip2'd control block.
    pub ctrl_len: u64,
    /// Length of the bzip2'd diff block.
    pub diff_len: u64,
    /// Size of the new file the patch produces.
    pub new_size: u64,
}

impl Header {
    /// Parses the header at the start of `bytes` (at least [`HEADER_LEN`]).
    pub fn parse(bytes: &[u8]) -> Result<Header, PatchError> {
        let Some(head) = bytes.get(..HEADER_LEN) else {
            return Err(corrupt(format!(
                "truncated header ({} of {HEADER_LEN} bytes)",
                bytes.len()
            )));
        };
        if &head[..8] != MAGIC {
            return Err(corrupt("bad magic (not a BSDIFF40 patch)"));
        }
        let field = |at: usize, name: &str| -> Result<u64, PatchError> {
            let v = offtin(&head[at..at + 8]);
            u64::try_from(v).map_err(|_| corrupt(format!("negative {name} {v} in header")))
        };
        Ok(Header {
            ctrl_len: field(8, "control block length")?,
            diff_len: field(16, "diff block length")?,
            new_size: field(24, "new size")?,
        })
    }

    /// Encodes the header (as bsdiff writes it).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        for (i, v) in [self.ctrl_len, self.diff_len, self.new_size]
            .into_iter()
            .enumerate()
        {
            // Lengths come from in-memory sizes; saturate rather than wrap.
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&offtout(v));
        }
        out
    }
}

/// Decodes bsdiff's sign-magnitude little-endian integer. `bytes` is 8 long.
pub fn offtin(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    let raw = u64::from_le_bytes(b);
    // The magnitude is 63 bits, so it always fits in i64.
    let magnitude = (raw & !(1 << 63)) as i64;
    if raw >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

/// Encodes bsdiff's sign-magnitude little-endian integer.
pub fn offtout(v: i64) -> [u8; 8] {
    let mut raw = v.unsigned_abs();
    if v < 0 {
        raw |= 1 << 63;
    }
    raw.to_le_bytes()
}

/// Positioned reads, so the three blocks of one patch file can be decoded
/// side by side without three file handles or any shared cursor.
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; 0 means end of data.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Total length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// True when empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(<[u8]>::len(self));
        let n = buf.len().min(<[u8]>::len(self) - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// One block of the patch file: a `Read` over `[pos, end)` of a [`ReadAt`].
struct Section<'a, P: ReadAt + ?Sized> {
    src: &'a P,
    pos: u64,
    end: u64,
}

impl<P: ReadAt + ?Sized> Read for Section<'_, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.src.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

type Block<'a, P> = super::bunzip::Decoder<io::BufReader<Section<'a, P>>>;

/// Reads exactly `buf.len()` decompressed bytes of block `name`, mapping
/// decoder errors to one clear message.
fn read_block<R: Read>(r: &mut R, buf: &mut [u8], name: &str) -> Result<(), PatchError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            corrupt(format!("{name} block ends early (truncated patch)"))
        }
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::Other => {
            corrupt(format!("{name} block is not valid bzip2: {e}"))
        }
        _ => PatchError::Io {
            what: "reading the patch",
            source: e,
        },
    })
}

/// Control triples that produce no byte (add = copy = 0) allowed in a row.
/// `bsdiff` writes at most one (at the very end); a run of them is how a
/// few KB of patch (bzip2 of zeros) would make the patcher spin for seconds.
pub const MAX_IDLE_TRIPLES: u32 = 8;

/// Control triples allowed per byte of output: at most one per
/// [`MIN_BYTES_PER_TRIPLE`] bytes of the new image, plus a few. `bsdiff`
/// starts a new triple only where a match beats the current one by more
/// than 8 bytes, so its triples cover more than 8 bytes each (measured:
/// 16–65 bytes for blocks shuffled or bytes inserted every 16–64 bytes,
/// hundreds to millions for ordinary edits). Bounds the CPU a patch can
/// cost by its output size.
pub const MIN_BYTES_PER_TRIPLE: u64 = 8;

/// The most control triples a patch for `new_size` bytes may hold.
pub fn max_triples(new_size: u64) -> u64 {
    new_size / MIN_BYTES_PER_TRIPLE + 16
}

/// Applies the BSDIFF40 `patch` to `old`, writing the new image to `new`.
/// Returns the number of bytes written (the header's new size).
///
/// Memory is constant; `old` is read with seeks only where the patch jumps.
/// `new` receives exactly `Header::new_size` bytes on success; on error some
/// prefix may have been written (callers write to a scratch slot and verify).
pub fn apply<P, O, W>(patch: &P, old: &mut O, new: &mut W) -> Result<u64, PatchError>
where
    P: ReadAt + ?Sized,
    O: Read + Seek,
    W: Write,
{
    apply_from(patch, old, new, 0)
}

/// Like [`apply`], but the first `skip` bytes of the new image are not
/// written (nor their old bytes read): `new` receives bytes `skip..` only.
/// This is how an interrupted delta install resumes at its last checkpoint:
/// the patch blocks are decoded again up to there (CPU only; bzip2 streams
/// cannot be entered in the middle), the flash is not written again.
pub fn apply_from<P, O, W>(
    patch: &P,
    old: &mut O,
    new: &mut W,
    skip: u64,
) -> Result<u64, PatchError>
where
    P: ReadAt + ?Sized,
    O: Read + Seek,
    W: Write,
{
    let io_patch = |source| PatchError::Io {
        what: "reading the patch",
        source,
    };
    let io_new = |source| PatchError::Io {
        what: "writing the new image",
        source,
    };

    let mut head = [0u8; HEADER_LEN];
    let got = read_full_at(patch, &mut head, 0).map_err(io_patch)?;
    let header = Header::parse(&head[..got])?;
    let file_len = patch.len().map_err(io_patch)?;
    let body = file_len.saturating_sub(HEADER_LEN as u64);
    let ctrl_end = (HEADER_LEN as u64)
        .checked_add(header.ctrl_len)
        .filter(|_| header.ctrl_len <= body)
        .ok_or_else(|| {
            corrupt(format!(
                "control block length {} exceeds the patch",
                header.ctrl_len
            ))
        })?;
    let diff_end = ctrl_end
        .checked_add(header.diff_len)
        .filter(|&e| e <= file_len)
        .ok_or_else(|| {
            corrupt(format!(
                "diff block length {} exceeds the patch (truncated patch)",
                header.diff_len
            ))
        })?;
    let section = |pos, end| Section {
        src: patch,
        pos,
        end,
    };
    let mut ctrl: Block<P> =
        super::bunzip::Decoder::new(io::BufReader::new(section(HEADER_LEN as u64, ctrl_end)));
    let mut diff: Block<P> =
        super::bunzip::Decoder::new(io::BufReader::new(section(ctrl_end, diff_end)));
    let mut extra: Block<P> =
        super::bunzip::Decoder::new(io::BufReader::new(section(diff_end, file_len)));

    let mut old = OldReader::new(old)?;
    let old_size = old.size;
    let mut buf = vec![0u8; CHUNK];
    let mut dbuf = vec![0u8; CHUNK];
    let mut new_pos: u64 = 0;
    let mut old_pos: u64 = 0;
    let new_size = header.new_size;
    let (mut triples, mut idle) = (0u64, 0u32);
    let most = max_triples(new_size);

    while new_pos < new_size {
        let mut triple = [0u8; 24];
        read_block(&mut ctrl, &mut triple, "control")?;
        let (add, copy, seek) = (
            offtin(&triple[0..8]),
            offtin(&triple[8..16]),
            offtin(&triple[16..24]),
        );
        // Formatted only when a triple is refused (millions of triples).
        let triple_at = new_pos;
        let at = move || format!("control triple at new offset {triple_at}");
        triples += 1;
        if triples > most {
            return Err(corrupt(format!(
                "{}: more than {most} control triples for {new_size} bytes of output",
                at()
            )));
        }
        let add = u64::try_from(add)
            .map_err(|_| corrupt(format!("{}: negative add length {add}", at())))?;
        let copy = u64::try_from(copy)
            .map_err(|_| corrupt(format!("{}: negative copy length {copy}", at())))?;
        if add == 0 && copy == 0 {
            idle += 1;
            if idle > MAX_IDLE_TRIPLES {
                return Err(corrupt(format!(
                    "{}: {idle} control triples in a row produce no byte",
                    at()
                )));
            }
        } else {
            idle = 0;
        }
        let add_end = new_pos
            .checked_add(add)
            .filter(|&e| e <= new_size)
            .ok_or_else(|| {
                corrupt(format!(
                    "{}: add length {add} runs past the new size {new_size}",
                    at()
                ))
            })?;
        if add > 0 {
            if old_pos.checked_add(add).is_none_or(|e| e > old_size) {
                return Err(corrupt(format!(
                    "{}: reads old bytes {old_pos}..+{add} outside the old image of {old_size} bytes",
                    at()
                )));
            }
            let mut left = add;
            let mut pos = new_pos;
            let mut from = old_pos;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                read_block(&mut diff, &mut dbuf[..n], "diff")?;
                let end = pos + n as u64;
                if end > skip {
                    old.read(from, &mut buf[..n])?;
                    for (o, d) in buf[..n].iter_mut().zip(&dbuf[..n]) {
                        *o = o.wrapping_add(*d);
                    }
                    let keep = usize::try_from(skip.saturating_sub(pos)).unwrap_or(n);
                    new.write_all(&buf[keep..n]).map_err(io_new)?;
                }
                left -= n as u64;
                pos = end;
                from += n as u64;
            }
            old_pos += add;
        }
        let copy_end = add_end
            .checked_add(copy)
            .filter(|&e| e <= new_size)
            .ok_or_else(|| {
                corrupt(format!(
                    "{}: copy length {copy} runs past the new size {new_size}",
                    at()
                ))
            })?;
        let mut left = copy;
        let mut pos = add_end;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            read_block(&mut extra, &mut buf[..n], "extra")?;
            let end = pos + n as u64;
            if end > skip {
                let keep = usize::try_from(skip.saturating_sub(pos)).unwrap_or(n);
                new.write_all(&buf[keep..n]).map_err(io_new)?;
            }
            left -= n as u64;
            pos = end;
        }
        new_pos = copy_end;
        // `bsdiff` only seeks to positions inside the old image (or to its
        // end); anything else is a hostile patch, refused right here.
        old_pos = old_pos
            .checked_add_signed(seek)
            .filter(|&p| p <= old_size)
            .ok_or_else(|| {
                corrupt(format!(
                    "{}: seek {seek} from old offset {old_pos} lands outside the old image of {old_size} bytes",
                    at()
                ))
            })?;
    }
    new.flush().map_err(io_new)?;
    Ok(new_size)
}

/// The old image read through one buffer of [`CHUNK`] bytes, so patches
/// with many short triples cost a copy, not a system call, per triple.
struct OldReader<'o, O> {
    inner: &'o mut O,
    size: u64,
    /// Where the reader is positioned.
    at: u64,
    buf: Vec<u8>,
    /// Old offset of `buf[0]`.
    buf_start: u64,
}

impl<'o, O: Read + Seek> OldReader<'o, O> {
    fn new(inner: &'o mut O) -> Result<Self, PatchError> {
        let size = inner.seek(SeekFrom::End(0)).map_err(io_old)?;
        Ok(OldReader {
            inner,
            size,
            at: size,
            buf: Vec::with_capacity(CHUNK),
            buf_start: 0,
        })
    }

    /// Fills `out` with old bytes at `from` (the caller checked the range).
    fn read(&mut self, from: u64, out: &mut [u8]) -> Result<(), PatchError> {
        let end = from + out.len() as u64;
        let buffered = self.buf_start..self.buf_start + self.buf.len() as u64;
        if !(buffered.contains(&from) && end <= buffered.end) {
            if out.len() >= CHUNK {
                self.seek_to(from)?;
                self.inner.read_exact(out).map_err(io_old)?;
                self.at = end;
                return Ok(());
            }
            let len = usize::try_from(self.size - from)
                .unwrap_or(CHUNK)
                .min(CHUNK);
            self.seek_to(from)?;
            self.buf.resize(len, 0);
            self.inner.read_exact(&mut self.buf).map_err(io_old)?;
            self.at = from + len as u64;
            self.buf_start = from;
        }
        let off = (from - self.buf_start) as usize;
        out.copy_from_slice(&self.buf[off..off + out.len()]);
        Ok(())
    }

    fn seek_to(&mut self, to: u64) -> Result<(), PatchError> {
        if self.at != to {
            self.inner.seek(SeekFrom::Start(to)).map_err(io_old)?;
            self.at = to;
        }
        Ok(())
    }
}

fn io_old(source: io::Error) -> PatchError {
    PatchError::Io {
        what: "reading the old image",
        source,
    }
}

fn read_full_at<P: ReadAt + ?Sized>(src: &P, buf: &mut [u8], mut offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match src.read_at(&mut buf[done..], offset) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The first `len` bytes of a seekable reader as a reader of its own: a slot
/// partition is larger than the image written to it, and a patch must see
/// exactly the base image (its end is the end of the old data).
pub struct Window<R> {
    inner: R,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Window<R> {
    /// The first `len` bytes of `inner` (positioned at its start on first use).
    pub fn new(inner: R, len: u64) -> Self {
        Window {
            inner,
            len,
            pos: u64::MAX,
        }
    }
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == u64::MAX {
            self.seek(SeekFrom::Start(0))?;
        }
        let left = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self.inner.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<R: Read + Seek> Seek for Window<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let cur = if self.pos == u64::MAX { 0 } else { self.pos };
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => cur.checked_add_signed(d),
        }
        .filter(|&t| t != u64::MAX)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek outside the window"))?;
        self.inner.seek(SeekFrom::Start(target))?;
        self.pos = target;
        Ok(target)
    }
}

/// Reads only the header of a patch (e.g. to compare its new size with the
/// manifest before applying anything).
pub fn read_header<P: ReadAt + ?Sized>(patch: &P) -> Result<Header, PatchError> {
    let mut head = [0u8; HEADER_LEN];
    let got = read_full_at(patch, &mut head, 0).map_err(|source| PatchError::Io {
        what: "reading the patch",
        source,
    })?;
    Header::parse(&head[..got])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn bz(data: &[u8]) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Builds a patch from explicit control triples (independent of any diff
    /// algorithm), so hostile values can be expressed directly.
    fn build(triples: &[(i64, i64, i64)], diff: &[u8], extra: &[u8], new_size: i64) -> Vec<u8> {
        let mut ctrl = Vec::new();
        for &(a, b, c) in triples {
            ctrl.extend_from_slice(&offtout(a));
            ctrl.extend_from_slice(&offtout(b));
            ctrl.extend_from_slice(&offtout(c));
        }
        let (c, d, e) = (bz(&ctrl), bz(diff), bz(extra));
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&offtout(c.len() as i64));
        out.extend_from_slice(&offtout(d.len() as i64));
        out.extend_from_slice(&offtout(new_size));
        out.extend(c);
        out.extend(d);
        out.extend(e);
        out
    }

    fn run(patch: &[u8], old: &[u8]) -> Result<Vec<u8>, PatchError> {
        let mut out = Vec::new();
        apply(patch, &mut Cursor::new(old), &mut out)?;
        Ok(out)
    }

    #[test]
    fn offtin_matches_bsdiff_sign_magnitude() {
        assert_eq!(offtin(&[5, 0, 0, 0, 0, 0, 0, 0]), 5);
        assert_eq!(offtin(&[5, 0, 0, 0, 0, 0, 0, 0x80]), -5);
        assert_eq!(offtout(-5), [5, 0, 0, 0, 0, 0, 0, 0x80]);
        assert_eq!(offtout(0x0102), [2, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn hand_built_patch_applies() {
        // new = (old[0..3] + 1) ++ "XY" ++ old[1..2] + 0
        let old = b"abcdef";
        let p = build(&[(3, 2, -2), (1, 0, 0)], &[1, 1, 1, 0], b"XY", 6);
        assert_eq!(run(&p, old).unwrap(), b"bcdXYb");
    }

    fn expect_err(p: &[u8], old: &[u8], needle: &str) {
        let e = run(p, old).unwrap_err().to_string();
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn hostile_control_values_are_refused() {
        let old = b"abcdef";
        expect_err(
            &build(&[(-1, 0, 0)], &[], &[], 4),
            old,
            "negative add length",
        );
        expect_err(
            &build(&[(0, -1, 0)], &[], &[], 4),
            old,
            "negative copy length",
        );
        expect_err(
            &build(&[(5, 0, 0)], &[0; 5], &[], 4),
            old,
            "runs past the new size",
        );
        expect_err(
            &build(&[(0, 5, 0)], &[], &[0; 5], 4),
            old,
            "runs past the new size",
        );
        expect_err(
            &build(&[(7, 0, 0)], &[0; 7], &[], 7),
            old,
            "outside the old image",
        );
        expect_err(
            &build(&[(0, 0, -1), (1, 0, 0)], &[0], &[], 1),
            old,
            "outside the old image",
        );
        expect_err(
            &build(&[(0, 0, i64::MAX), (0, 0, i64::MAX)], &[], &[], 1),
            old,
            "seek 9223372036854775807 from old offset 0 lands outside",
        );
        expect_err(&build(&[(0, 0, 7)], &[], &[], 1), old, "lands outside");
        expect_err(
            &build(&[(i64::MAX, 0, 0)], &[], &[], i64::MAX),
            old,
            "outside the old image",
        );
        // The control block ends before the new size is reached.
        expect_err(
            &build(&[(2, 0, 0)], &[0, 0], &[], 4),
            old,
            "control block ends early",
        );
        // The diff block holds fewer bytes than the triple adds.
        expect_err(
            &build(&[(4, 0, 0)], &[0, 0], &[], 4),
            old,
            "diff block ends early",
        );
    }

    #[test]
    fn idle_and_excess_triples_are_refused() {
        let old = b"abcdef";
        let idle = vec![(0, 0, 0); MAX_IDLE_TRIPLES as usize + 1];
        expect_err(&build(&idle, &[], &[], 1), old, "in a row produce no byte");
        // MAX_IDLE_TRIPLES in a row, then progress: accepted.
        let mut ok = vec![(0, 0, 0); MAX_IDLE_TRIPLES as usize];
        ok.push((1, 0, 0));
        assert_eq!(run(&build(&ok, &[0], &[], 1), old).unwrap(), b"a");
        // One-byte triples: more than new_size / 8 + 16 of them.
        let new_size = 200i64;
        let many = vec![(0, 1, 0); new_size as usize];
        expect_err(
            &build(&many, &[], &[7; 200], new_size),
            old,
            "more than 41 control triples for 200 bytes",
        );
    }

    #[test]
    fn apply_from_writes_exactly_the_tail() {
        let old: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let diff: Vec<u8> = (0..150_000u32).map(|i| (i % 3) as u8).collect();
        let extra: Vec<u8> = (0..70_000u32).map(|i| (i % 13) as u8).collect();
        let p = build(
            &[(100_000, 30_000, 5_000), (50_000, 40_000, -120_000)],
            &diff,
            &extra,
            220_000,
        );
        let whole = run(&p, &old).unwrap();
        for skip in [
            0u64, 1, 65_535, 65_536, 99_999, 100_000, 129_999, 150_000, 219_999, 220_000,
        ] {
            let mut out = Vec::new();
            apply_from(&p[..], &mut Cursor::new(&old), &mut out, skip).unwrap();
            assert_eq!(out, whole[skip as usize..], "skip {skip}");
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = build(&[(3, 0, 0)], &[0; 3], &[], 3);
        expect_err(&good[..20], b"abc", "truncated header");
        let mut bad = good.clone();
        bad[0] = b'X';
        expect_err(&bad, b"abc", "bad magic");
        let mut bad = good.clone();
        bad[15] = 0x80;
        expect_err(&bad, b"abc", "negative control block length");
        let mut bad = good.clone();
        bad[8..16].copy_from_slice(&offtout(1 << 40));
        expect_err(&bad, b"abc", "exceeds the patch");
        let mut bad = good.clone();
        let ctrl_len = offtin(&good[8..16]) as usize;
        bad.truncate(HEADER_LEN + ctrl_len + 3);
        expect_err(&bad, b"abc", "truncated patch");
        let mut bad = good.clone();
        bad[HEADER_LEN + 4] ^= 0xff;
        expect_err(&bad, b"abc", "control block");
    }

    #[test]
    fn window_hides_bytes_past_the_image() {
        // The patch reads old[4..6]; with the window at 5 bytes that is out of range.
        let p = build(&[(2, 0, 1)], &[0, 0], &[], 2);
        let p2 = build(&[(0, 0, 4), (2, 0, 0)], &[0, 0], &[], 2);
        let mut out = Vec::new();
        apply(
            &p[..],
            &mut Window::new(Cursor::new(b"abcdefgh"), 5),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"ab");
        let e = apply(
            &p2[..],
            &mut Window::new(Cursor::new(b"abcdefgh"), 5),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("outside the old image of 5 bytes"),
            "{e}"
        );
        let mut out = Vec::new();
        apply(
            &p2[..],
            &mut Window::new(Cursor::new(b"abcdefgh"), 8),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"ef");
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            ctrl_len: 1,
            diff_len: 2,
            new_size: 3,
        };
        assert_eq!(Header::parse(&h.encode()).unwrap(), h);
    }
}
