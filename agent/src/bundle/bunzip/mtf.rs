//! The move-to-front list of a bzip2 block.

/// The move-to-front list: byte `i` of the list is byte `i % 16` (little
/// end first) of word `i / 16`. Moving entry `i` to the front shifts the
/// words before it by one byte, with no byte loop and no `memmove`.
pub(super) struct Mtf(pub(super) [u128; 16]);

impl Mtf {
    pub(super) fn new(values: &[u8]) -> Mtf {
        let mut bytes = [0u8; 256];
        bytes[..values.len()].copy_from_slice(values);
        let mut w = [0u128; 16];
        for (i, c) in bytes.chunks_exact(16).enumerate() {
            w[i] = u128::from_le_bytes(c.try_into().expect("16 bytes"));
        }
        Mtf(w)
    }

    pub(super) fn front(&self) -> u8 {
        self.0[0] as u8
    }

    /// Entry `i` (< 256), moved to the front.
    #[inline(always)]
    pub(super) fn take(&mut self, i: usize) -> u8 {
        let w = &mut self.0;
        let (wi, bit) = (i >> 4, (i & 15) * 8);
        let x = w[wi];
        let v = (x >> bit) as u8;
        // Bytes 0..=b of the word: shifted up by one; above: kept.
        let upto = if bit == 120 {
            u128::MAX
        } else {
            (1u128 << (bit + 8)) - 1
        };
        let moved = (x & !upto) | ((x << 8) & upto);
        if wi == 0 {
            w[0] = moved | u128::from(v);
        } else {
            w[wi] = moved | (w[wi - 1] >> 120);
            for j in (1..wi).rev() {
                w[j] = (w[j] << 8) | (w[j - 1] >> 120);
            }
            w[0] = (w[0] << 8) | u128::from(v);
        }
        v
    }
}
