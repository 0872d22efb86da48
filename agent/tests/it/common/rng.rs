//! A small deterministic PRNG (xorshift64*, Marsaglia 2003 / Vigna 2014),
//! seeded per run so a failure names the seed that reproduces it.

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `len` bytes of noise.
    pub fn noise(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// `len` bytes shaped like a filesystem image: noise (stands for
    /// binaries) and, one draw in `zero_one_in`, a run of up to
    /// `max_zero_run` zero bytes (free space).
    pub fn image(&mut self, len: usize, zero_one_in: u64, max_zero_run: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let x = self.next();
            if x.is_multiple_of(zero_one_in) {
                out.extend(std::iter::repeat_n(0u8, (x % max_zero_run) as usize));
            } else {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }
}

/// `len` bytes of noise from `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    Rng(seed | 1).noise(len)
}
