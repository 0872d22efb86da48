//! Our own bzip2 decoder: every byte of a compressed payload or BSDIFF40 block
//! goes through it, so it is written for speed on the device, with memory
//! bounded by the stream's block size (4 bytes per block byte: 3.6 MB at
//! `-9`), never by the payload.
//!
//! Written from the format as it is publicly described (the bzip2 file format:
//! "BZh" + level, blocks of Huffman-coded MTF/RLE2 symbols over a
//! Burrows–Wheeler transform of RLE1-coded data, CRC-32 per block and per
//! stream). Not derived from libbzip2's or libbz2-rs-sys's code. Why not
//! libbz2-rs-sys (which the `bzip2` crate wraps, and `ota-sign` still uses
//! for compressing): its move-to-front step shifts the list with `memmove`,
//! which musl implements as a plain byte loop; that call was ~47 % of a
//! bzip2 install with the static musl agent (docs/benchmarks.md). Here the
//! 256-entry MTF list is sixteen `u128` words and a move-to-front is a few
//! shifts (`Mtf::take`).
//!
//! Layout of a stream (bit-packed, most significant bit first):
//!
//! ```text
//!  "BZh" '1'..'9'                 block size = level x 100,000 bytes (RLE1 data)
//!  per block:
//!   48  0x314159265359            block magic (pi)
//!   32  CRC-32 of the block's output
//!    1  randomised (only bzip2 0.9.0 wrote 1: refused here)
//!   24  origPtr                   row of the original string in the BWT
//!   16 + 16 x 16                  which of the 256 byte values occur
//!    3  nGroups (2..=6)           Huffman tables
//!   15  nSelectors                one table choice per 50 symbols,
//!       selectors, unary + MTF    each as j one-bits and a zero
//!       per table: 5-bit start length, then per symbol delta-coded lengths
//!       symbols: RUNA/RUNB (bijective base-2 run of the front byte),
//!                MTF index + 1, EOB
//!  48  0x177245385090             end of stream (sqrt(pi))
//!  32  combined CRC               rotl(c, 1) ^ block CRC, over the blocks
//!      padding to a byte boundary
//! ```
//!
//! [`Decoder`] reads one stream from a [`BufRead`] and consumes exactly its
//! bytes (the installer checkpoints at stream ends); [`MultiDecoder`] reads
//! concatenated streams (`ota-sign`, pbzip2).

use std::io::{self, BufRead, BufReader, Read};

mod bits;
mod crc;
mod huffman;
mod mtf;

use bits::{bad, Bits, MAX_CODE_LEN};
use crc::crc_byte;
use huffman::{Table, MAX_ALPHA};
use mtf::Mtf;

const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const END_MAGIC: u64 = 0x1772_4538_5090;
/// Symbols per selector.
const GROUP_SIZE: usize = 50;
/// Tables per block at most, and the most selectors a 900 kB block can use
/// (2 + 900,000 / 50); a header may declare more (up to 32767), which are
/// read and ignored.
const MAX_GROUPS: usize = 6;
const MAX_SELECTORS: usize = 18_002;

/// One bzip2 stream from a [`BufRead`]; consumes exactly the stream's bytes.
pub struct Decoder<R> {
    bits: Bits<R>,
    /// The block's BWT vector: low byte = the byte, high 24 bits = the link.
    tt: Vec<u32>,
    max_block: usize,
    state: State,
    /// Output of the current block: next link, bytes left.
    pos: u32,
    left: u32,
    /// RLE1: the last byte, how many times in a row, copies still owed.
    last: u8,
    run: u8,
    owed: u32,
    crc: u32,
    block_crc: u32,
    combined: u32,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Header,
    Block,
    Done,
}

impl<R: BufRead> Decoder<R> {
    /// Reads the stream at the reader's position (nothing is read yet).
    pub fn new(r: R) -> Decoder<R> {
        Decoder {
            bits: Bits { r, buf: 0, n: 0 },
            tt: Vec::new(),
            max_block: 0,
            state: State::Header,
            pos: 0,
            left: 0,
            last: 0,
            run: 0,
            owed: 0,
            crc: 0,
            block_crc: 0,
            combined: 0,
        }
    }

    /// The reader, positioned after the stream once it is read to its end.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.bits.r
    }

    /// Gets ready for another stream at the reader's position.
    fn restart(&mut self) {
        self.state = State::Header;
        self.bits.n = 0;
    }

    fn stream_header(&mut self) -> io::Result<()> {
        let magic = self.bits.get(24)?;
        if magic != 0x42_5a_68 {
            return Err(bad("not a bzip2 stream (no \"BZh\" header)"));
        }
        let level = self.bits.get(8)?;
        if !(u32::from(b'1')..=u32::from(b'9')).contains(&level) {
            return Err(bad("bzip2 header has a bad block size"));
        }
        self.max_block = (level - u32::from(b'0')) as usize * 100_000;
        self.combined = 0;
        Ok(())
    }

    /// Reads the next block into `tt`, or the stream's end (→ Done).
    fn next_block(&mut self) -> io::Result<()> {
        let b = &mut self.bits;
        let magic = (u64::from(b.get(24)?) << 24) | u64::from(b.get(24)?);
        if magic == END_MAGIC {
            let stored = b.get(32)?;
            b.align();
            if stored != self.combined {
                return Err(bad("bzip2 stream CRC mismatch"));
            }
            self.state = State::Done;
            return Ok(());
        }
        if magic != BLOCK_MAGIC {
            return Err(bad("bzip2 data is corrupt (no block magic)"));
        }
        self.block_crc = b.get(32)?;
        if b.bit()? {
            return Err(bad(
                "bzip2 randomised blocks (bzip2 0.9.0) are not supported",
            ));
        }
        let orig_ptr = b.get(24)? as usize;

        // The byte values in use, in order: the MTF list starts as them.
        let used16 = b.get(16)?;
        let mut values = [0u8; 256];
        let mut n_used = 0;
        for i in 0..16 {
            if used16 & (0x8000 >> i) != 0 {
                let used = b.get(16)?;
                for j in 0..16 {
                    if used & (0x8000 >> j) != 0 {
                        values[n_used] = (i * 16 + j) as u8;
                        n_used += 1;
                    }
                }
            }
        }
        if n_used == 0 {
            return Err(bad("bzip2 block uses no byte values"));
        }
        let alpha = n_used + 2;

        let n_groups = b.get(3)? as usize;
        if !(2..=MAX_GROUPS).contains(&n_groups) {
            return Err(bad("bzip2 block has a bad number of Huffman tables"));
        }
        let n_selectors = b.get(15)? as usize;
        if n_selectors == 0 {
            return Err(bad("bzip2 block has no selectors"));
        }
        let mut selectors = vec![0u8; n_selectors.min(MAX_SELECTORS)];
        let mut order: [u8; MAX_GROUPS] = [0, 1, 2, 3, 4, 5];
        for i in 0..n_selectors {
            let mut j = 0;
            while b.bit()? {
                j += 1;
                if j >= n_groups {
                    return Err(bad("bzip2 selector out of range"));
                }
            }
            let g = order[j];
            order.copy_within(0..j, 1);
            order[0] = g;
            if let Some(s) = selectors.get_mut(i) {
                *s = g;
            }
        }

        let mut tables = Vec::with_capacity(n_groups);
        let mut lens = [0u8; MAX_ALPHA];
        for _ in 0..n_groups {
            let mut len = b.get(5)?;
            for l in &mut lens[..alpha] {
                loop {
                    if !(1..=MAX_CODE_LEN).contains(&len) {
                        return Err(bad("bzip2 code length out of range"));
                    }
                    if !b.bit()? {
                        break;
                    }
                    if b.bit()? {
                        len -= 1;
                    } else {
                        len += 1;
                    }
                }
                *l = len as u8;
            }
            tables.push(Table::new(&lens[..alpha])?);
        }

        // Symbols → MTF/RLE2 decoding straight into tt's low bytes.
        let eob = (alpha - 1) as u16;
        let max = self.max_block;
        self.tt.clear();
        self.tt.reserve(max);
        let mut counts = [0u32; 256];
        let mut mtf = Mtf::new(&values[..n_used]);
        let (mut run, mut weight) = (0usize, 1usize);
        let mut group = 0usize;
        let mut left_in_group = 0usize;
        let mut table = &tables[0];
        loop {
            if left_in_group == 0 {
                let sel = *selectors
                    .get(group)
                    .ok_or_else(|| bad("bzip2 block needs more selectors than it has"))?;
                table = &tables[sel as usize];
                group += 1;
                left_in_group = GROUP_SIZE;
            }
            left_in_group -= 1;
            let sym = table.decode(b)?;
            if sym <= 1 {
                // RUNA (1) / RUNB (2) digits of the run length, least first.
                run += weight << sym;
                weight <<= 1;
                if run > max {
                    return Err(bad("bzip2 block is longer than its block size"));
                }
                continue;
            }
            if run > 0 {
                if self.tt.len() + run > max {
                    return Err(bad("bzip2 block is longer than its block size"));
                }
                let v = mtf.front();
                counts[v as usize] += run as u32;
                self.tt.extend(std::iter::repeat_n(u32::from(v), run));
                run = 0;
                weight = 1;
            }
            if sym == eob {
                break;
            }
            if self.tt.len() >= max {
                return Err(bad("bzip2 block is longer than its block size"));
            }
            let v = mtf.take(usize::from(sym - 1));
            counts[v as usize] += 1;
            self.tt.push(u32::from(v));
        }
        let n = self.tt.len();
        if orig_ptr >= n {
            return Err(bad("bzip2 block's origPtr is out of range"));
        }

        // Inverse BWT: link each position to the next one of the output.
        let mut start = [0u32; 256];
        let mut sum = 0;
        for (s, c) in start.iter_mut().zip(counts) {
            *s = sum;
            sum += c;
        }
        for i in 0..n {
            let v = (self.tt[i] & 0xff) as usize;
            let at = start[v] as usize;
            self.tt[at] |= (i as u32) << 8;
            start[v] += 1;
        }
        self.pos = self.tt[orig_ptr] >> 8;
        self.left = n as u32;
        self.run = 0;
        self.owed = 0;
        self.crc = 0xffff_ffff;
        self.state = State::Block;
        Ok(())
    }

    /// Output of the current block (RLE1 undone) into `out`.
    fn emit(&mut self, out: &mut [u8]) -> usize {
        let (mut pos, mut left, mut last, mut run, mut owed, mut crc) = (
            self.pos, self.left, self.last, self.run, self.owed, self.crc,
        );
        let tt = &self.tt[..];
        let mut o = 0;
        while o < out.len() {
            if owed > 0 {
                let k = (owed as usize).min(out.len() - o);
                for slot in &mut out[o..o + k] {
                    *slot = last;
                    crc = crc_byte(crc, last);
                }
                o += k;
                owed -= k as u32;
                continue;
            }
            if left == 0 {
                break;
            }
            let t = tt[pos as usize];
            let v = t as u8;
            pos = t >> 8;
            left -= 1;
            if run == 4 {
                owed = u32::from(v);
                run = 0;
                continue;
            }
            if run > 0 && v == last {
                run += 1;
            } else {
                last = v;
                run = 1;
            }
            out[o] = v;
            crc = crc_byte(crc, v);
            o += 1;
        }
        (
            self.pos, self.left, self.last, self.run, self.owed, self.crc,
        ) = (pos, left, last, run, owed, crc);
        o
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    self.stream_header()?;
                    self.next_block()?;
                }
                State::Block => {
                    let n = self.emit(out);
                    if n > 0 {
                        return Ok(n);
                    }
                    if !self.crc != self.block_crc {
                        return Err(bad("bzip2 block CRC mismatch"));
                    }
                    self.combined = self.combined.rotate_left(1) ^ self.block_crc;
                    self.next_block()?;
                }
            }
        }
    }
}

/// Concatenated bzip2 streams (what `ota-sign` and pbzip2 write) as one.
pub struct MultiDecoder<R> {
    inner: Decoder<BufReader<R>>,
}

impl<R: Read> MultiDecoder<R> {
    /// Reads the streams from `r` (through a 64 KiB buffer).
    pub fn new(r: R) -> MultiDecoder<R> {
        MultiDecoder {
            inner: Decoder::new(BufReader::with_capacity(64 << 10, r)),
        }
    }
}

impl<R: Read> Read for MultiDecoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.inner.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            if self.inner.get_mut().fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.inner.restart();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// bzip2 by libbz2-rs-sys (the `bzip2` crate, as `ota-sign` writes it).
    fn bz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn unbz(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        MultiDecoder::new(data).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Runs, noise, text: what exercises RUNA/RUNB, RLE1 counts, long MTF moves.
    fn sample(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let n = (x >> 24) as usize % 700;
            match x % 5 {
                0 => out.extend(std::iter::repeat_n((x >> 8) as u8, n)),
                1 => out.extend((0..n).map(|i| (x as usize ^ (i * 7919)) as u8)),
                2 => out.extend(b"the rice cooker boots slot b; ".iter().cycle().take(n)),
                3 => out.extend((0..n).map(|i| (i as u8).wrapping_mul(x as u8))),
                _ => out.extend(std::iter::repeat_n(0u8, n * 20)),
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn decodes_what_libbz2_rs_writes_at_every_level() {
        for level in [1, 5, 9] {
            for (seed, len) in [(1, 0), (2, 1), (3, 4), (4, 5), (5, 256), (6, 150_000)] {
                let data = sample(seed, len);
                assert_eq!(
                    unbz(&bz(&data, level)).unwrap(),
                    data,
                    "level {level} len {len}"
                );
            }
        }
        // Several blocks in one stream. (Sizes are modest: the 32-bit build
        // runs these under qemu-arm, unoptimised.)
        let data = sample(7, 350_000);
        assert_eq!(unbz(&bz(&data, 1)).unwrap(), data, "4 blocks");
    }

    #[test]
    fn decodes_what_the_bzip2_tool_writes() {
        // Debian's bzip2 (libbzip2): an independent encoder.
        let data = sample(11, 400_000);
        for level in ["-1", "-9"] {
            let mut child = Command::new("bzip2")
                .args(["-c", level])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("bzip2 (scripts/install-deps)");
            let mut stdin = child.stdin.take().unwrap();
            let input = data.clone();
            let feeder = std::thread::spawn(move || stdin.write_all(&input).unwrap());
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap();
            assert!(out.status.success());
            assert_eq!(unbz(&out.stdout).unwrap(), data, "bzip2 {level}");
        }
    }

    #[test]
    fn runs_of_every_length_and_all_byte_values() {
        // RLE1: runs of 1..=300 (4 + count bytes, count 0..=255, then again).
        let mut data = Vec::new();
        for n in 1..=300usize {
            data.extend(std::iter::repeat_n((n % 251) as u8, n));
        }
        data.extend((0..=255u8).cycle().take(5000));
        assert_eq!(unbz(&bz(&data, 1)).unwrap(), data);
        // One byte value only (an alphabet of 3 symbols), and a long zero run.
        let zeros = vec![0u8; 3_000_000];
        assert_eq!(unbz(&bz(&zeros, 9)).unwrap(), zeros);
    }

    #[test]
    fn concatenated_streams_are_one_output() {
        let (a, b) = (sample(21, 120_000), sample(22, 1000));
        let mut cat = bz(&a, 1);
        cat.extend(bz(&[], 9));
        cat.extend(bz(&b, 3));
        assert_eq!(unbz(&cat).unwrap(), [a, b].concat());
    }

    #[test]
    fn one_stream_consumes_exactly_its_bytes() {
        let data = sample(31, 200_000);
        let mut input = bz(&data, 2);
        let len = input.len();
        input.extend_from_slice(b"NEXT");
        // A small buffer: refills happen right at the stream's end too.
        for cap in [1, 7, 64, 1 << 16] {
            let mut r = io::BufReader::with_capacity(cap, &input[..]);
            let mut out = Vec::new();
            Decoder::new(&mut r).read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "buffer {cap}");
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"NEXT", "buffer {cap}: stream was {len} bytes");
        }
    }

    #[test]
    fn corruption_is_an_error_never_wrong_output() {
        let data = sample(41, 100_000);
        let good = bz(&data, 1);
        // Every CRC and structure field region: flip one bit at many places.
        for at in (0..good.len())
            .step_by(97)
            .chain([4, 10, 14, good.len() - 5])
        {
            let mut b = good.clone();
            b[at] ^= 0x10;
            match unbz(&b) {
                Err(e) => assert!(
                    matches!(
                        e.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    ),
                    "byte {at}: {e}"
                ),
                Ok(out) => panic!(
                    "byte {at} flipped: decoded {} bytes without an error",
                    out.len()
                ),
            }
        }
        // Truncated anywhere: an error.
        for cut in [0, 3, 4, 20, good.len() / 2, good.len() - 1] {
            assert!(unbz(&good[..cut]).is_err() || cut == 0, "cut at {cut}");
        }
        assert_eq!(
            unbz(b"BZh0").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            unbz(b"PK\x03\x04").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn move_to_front_matches_a_plain_list() {
        let values: Vec<u8> = (0..=255u8).rev().collect();
        let mut mtf = Mtf::new(&values);
        let mut plain = values.clone();
        let mut x = 12345u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = ((x >> 16) as usize % 256) >> ((x >> 8) % 8);
            let v = plain.remove(i);
            plain.insert(0, v);
            assert_eq!(mtf.take(i), v);
            assert_eq!(mtf.front(), plain[0]);
        }
        let mut all = [0u8; 256];
        for (i, w) in mtf.0.iter().enumerate() {
            all[i * 16..][..16].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&all[..], &plain[..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn round_trips(data in proptest::collection::vec(prop_oneof![Just(0u8), Just(7u8), any::<u8>()], 0..20_000),
                       level in 1u32..=9) {
            prop_assert_eq!(unbz(&bz(&data, level)).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000), flip in any::<usize>()) {
            let mut b = bz(&data, 1);
            let at = flip % b.len();
            b[at] = b[at].wrapping_add((flip >> 16) as u8 | 1);
            let _ = unbz(&b);
        }
    }
}
