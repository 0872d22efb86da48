//! bzip2's CRC-32 (most significant bit first).

/// CRC-32 as bzip2 uses it: polynomial 0x04C11DB7, most significant bit
/// first, initial value and final XOR 0xFFFFFFFF.
pub(super) const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[inline(always)]
pub(super) fn crc_byte(crc: u32, b: u8) -> u32 {
    (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize]
}
