//! Canonical Huffman tables of a bzip2 block.

use std::io::{self, BufRead};

use super::bits::{bad, Bits, MAX_CODE_LEN};

/// 256 byte values + RUNA/RUNB + EOB - 1 (the front byte needs no symbol).
pub(super) const MAX_ALPHA: usize = 258;
/// Codes this short are decoded by one table lookup.
pub(super) const FAST_BITS: u32 = 10;

/// Canonical Huffman decoding table of one group.
pub(super) struct Table {
    /// Index by the next FAST_BITS bits: symbol << 8 | length, 0 = longer code.
    pub(super) fast: [u32; 1 << FAST_BITS],
    /// Per length: the first code of that length (left-aligned to
    /// MAX_CODE_LEN bits would do too; kept as plain numbers), how many codes,
    /// and where their symbols start in `perm`.
    pub(super) first: [u32; MAX_CODE_LEN as usize + 1],
    pub(super) count: [u32; MAX_CODE_LEN as usize + 1],
    pub(super) offset: [u16; MAX_CODE_LEN as usize + 1],
    pub(super) perm: [u16; MAX_ALPHA],
    pub(super) min_len: u32,
    pub(super) max_len: u32,
}

impl Table {
    pub(super) fn new(lens: &[u8]) -> io::Result<Table> {
        let mut t = Table {
            fast: [0; 1 << FAST_BITS],
            first: [0; MAX_CODE_LEN as usize + 1],
            count: [0; MAX_CODE_LEN as usize + 1],
            offset: [0; MAX_CODE_LEN as usize + 1],
            perm: [0; MAX_ALPHA],
            min_len: MAX_CODE_LEN,
            max_len: 0,
        };
        for &l in lens {
            t.count[l as usize] += 1;
            t.min_len = t.min_len.min(u32::from(l));
            t.max_len = t.max_len.max(u32::from(l));
        }
        // Canonical codes: by length, then by symbol number.
        let (mut code, mut at) = (0u32, 0u16);
        for len in 1..=MAX_CODE_LEN as usize {
            t.first[len] = code;
            t.offset[len] = at;
            code += t.count[len];
            at += t.count[len] as u16;
            if code > 1 << len {
                return Err(bad("bzip2 Huffman table is over-subscribed"));
            }
            code <<= 1;
        }
        let mut next = t.offset;
        for (sym, &l) in lens.iter().enumerate() {
            let l = l as usize;
            t.perm[next[l] as usize] = sym as u16;
            next[l] += 1;
        }
        for len in 1..=FAST_BITS as usize {
            for i in 0..t.count[len] {
                let code = t.first[len] + i;
                let sym = t.perm[t.offset[len] as usize + i as usize];
                let shift = FAST_BITS as usize - len;
                let from = (code as usize) << shift;
                for e in &mut t.fast[from..from + (1 << shift)] {
                    *e = (u32::from(sym) << 8) | len as u32;
                }
            }
        }
        Ok(t)
    }

    /// The next symbol.
    #[inline(always)]
    pub(super) fn decode<R: BufRead>(&self, bits: &mut Bits<R>) -> io::Result<u16> {
        bits.refill_ahead()?;
        let peek = ((bits.buf << (64 - bits.n)) >> (64 - MAX_CODE_LEN)) as u32;
        let e = self.fast[(peek >> (MAX_CODE_LEN - FAST_BITS)) as usize];
        if e != 0 {
            bits.n -= e & 0xff;
            return Ok((e >> 8) as u16);
        }
        for len in self.min_len.max(FAST_BITS + 1)..=self.max_len {
            let v = peek >> (MAX_CODE_LEN - len);
            let i = v.wrapping_sub(self.first[len as usize]);
            if i < self.count[len as usize] {
                bits.n -= len;
                return Ok(self.perm[self.offset[len as usize] as usize + i as usize]);
            }
        }
        Err(bad("bzip2 data holds an invalid Huffman code"))
    }
}
