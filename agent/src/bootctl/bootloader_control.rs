//! The Android A/B `bootloader_control` block: 32 bytes at offset 2048 of the
//! `misc` partition (the `slot_suffix` field of `bootloader_message_ab`), as
//! read and written by AOSP `libboot_control` and U-Boot `ab_select`
//! (CONFIG_ANDROID_AB). Layout per AOSP `boot_control_definition.h` and
//! U-Boot `include/android_bootloader_message.h`, little-endian, GCC
//! bit-fields allocated from the least significant bit:
//!
//! ```text
//!  0  slot_suffix[4]   NUL-terminated active suffix ("a" or "_a"), informative
//!  4  magic u32        0x42414342 ("BCAB" in memory)
//!  8  version u8       1
//!  9  bits 0-2 nb_slot, 3-5 recovery_tries_remaining, 6-7 (+ byte 10 bit 0)
//!     merge_status in newer AOSP; byte 10..12 reserved0
//! 12  slot_info[4], 2 bytes each:
//!       byte 0: bits 0-3 priority, 4-6 tries_remaining, 7 successful_boot
//!       byte 1: bit 0 verity_corrupted, bits 1-7 reserved
//! 20  reserved1[8]
//! 28  crc32_le u32     CRC-32 (IEEE, as zlib crc32) of bytes 0..28
//! ```
//!
//! Parsing and building work on `[u8; 32]` without I/O. Bytes this module
//! does not interpret (recovery tries, merge status, reserved, slots 2-3) are
//! kept as read, so a write changes only what the agent meant to change.

/// Byte offset of the block in the `misc` partition.
pub const OFFSET: u64 = 2048;
/// Size of the block.
pub const SIZE: usize = 32;
/// `BOOT_CTRL_MAGIC`.
pub const MAGIC: u32 = 0x4241_4342;
/// `BOOT_CTRL_VERSION`.
pub const VERSION: u8 = 1;
/// Highest priority (`kActivePriority`).
pub const MAX_PRIORITY: u8 = 15;
/// Largest `tries_remaining` the 3-bit field holds.
pub const MAX_TRIES: u8 = 7;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
const SLOT_INFO: usize = 12;
const CRC_AT: usize = 28;

// The block must stay exactly the size of bootloader_message_ab.slot_suffix.
const _: () = assert!(SIZE == 32 && CRC_AT + 4 == SIZE && SLOT_INFO + 4 * 2 + 8 == CRC_AT);

/// One `slot_metadata` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotMeta {
    /// 0..=15; 15 is the active slot.
    pub priority: u8,
    /// 0..=7; 0 means unbootable.
    pub tries_remaining: u8,
    /// The slot was confirmed.
    pub successful: bool,
    /// dm-verity found corruption; the bootloader skips the slot.
    pub verity_corrupted: bool,
    /// Bits 1-7 of the second byte, kept as read.
    pub reserved: u8,
}

impl SlotMeta {
    fn decode(b: [u8; 2]) -> SlotMeta {
        SlotMeta {
            priority: b[0] & 0x0f,
            tries_remaining: (b[0] >> 4) & 0x07,
            successful: b[0] & 0x80 != 0,
            verity_corrupted: b[1] & 0x01 != 0,
            reserved: b[1] >> 1,
        }
    }

    fn encode(&self) -> [u8; 2] {
        [
            (self.priority & 0x0f)
                | ((self.tries_remaining & 0x07) << 4)
                | (u8::from(self.successful) << 7),
            u8::from(self.verity_corrupted) | (self.reserved << 1),
        ]
    }

    /// Bootable as U-Boot `ab_select` decides it: not corrupted and tries
    /// left (a successful slot keeps `tries_remaining >= 1`).
    pub fn bootable(&self) -> bool {
        !self.verity_corrupted && self.tries_remaining > 0
    }
}

/// Why a block was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The magic is not `0x42414342` (never initialised, or another format).
    Magic(u32),
    /// The CRC does not match (torn or corrupted write).
    Crc {
        /// Stored value.
        stored: u32,
        /// Computed over bytes 0..28.
        computed: u32,
    },
    /// A newer format version.
    Version(u8),
    /// `nb_slot` is not 2..=4.
    SlotCount(u8),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Magic(m) => write!(f, "bad magic {m:#010x} (expected {MAGIC:#010x})"),
            Invalid::Crc { stored, computed } => {
                write!(
                    f,
                    "bad crc (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Invalid::Version(v) => write!(f, "unsupported version {v}"),
            Invalid::SlotCount(n) => write!(f, "nb_slot {n} is not 2..4"),
        }
    }
}

/// The decoded block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootloaderControl {
    raw: [u8; SIZE],
    /// Per-slot metadata (index 0 = a, 1 = b, 2/3 unused by us).
    pub slots: [SlotMeta; 4],
}

impl BootloaderControl {
    /// Parses and checks a block. Magic is checked before the CRC so that a
    /// never-initialised (all zero / erased) block says so.
    pub fn parse(raw: &[u8; SIZE]) -> Result<BootloaderControl, Invalid> {
        let magic = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        if magic != MAGIC {
            return Err(Invalid::Magic(magic));
        }
        let stored = u32::from_le_bytes([raw[28], raw[29], raw[30], raw[31]]);
        let computed = CRC32.checksum(&raw[..CRC_AT]);
        if stored != computed {
            return Err(Invalid::Crc { stored, computed });
        }
        if raw[8] > VERSION {
            return Err(Invalid::Version(raw[8]));
        }
        let nb_slot = raw[9] & 0x07;
        if !(2..=4).contains(&nb_slot) {
            return Err(Invalid::SlotCount(nb_slot));
        }
        let mut slots = [SlotMeta::default(); 4];
        for (i, s) in slots.iter_mut().enumerate() {
            let at = SLOT_INFO + 2 * i;
            *s = SlotMeta::decode([raw[at], raw[at + 1]]);
        }
        Ok(BootloaderControl { raw: *raw, slots })
    }

    /// A fresh block like U-Boot's `ab_control_default` (both slots priority
    /// 15, `tries` tries, unconfirmed), except that `active` gets priority 15
    /// and the other slot 14, so the choice does not rest on a tie-break.
    pub fn initial(active: usize, tries: u8) -> BootloaderControl {
        let mut raw = [0u8; SIZE];
        raw[0] = b'a' + active as u8;
        raw[4..8].copy_from_slice(&MAGIC.to_le_bytes());
        raw[8] = VERSION;
        raw[9] = 2;
        let mut slots = [SlotMeta::default(); 4];
        for (i, s) in slots.iter_mut().take(2).enumerate() {
            *s = SlotMeta {
                priority: if i == active {
                    MAX_PRIORITY
                } else {
                    MAX_PRIORITY - 1
                },
                tries_remaining: tries.min(MAX_TRIES),
                ..SlotMeta::default()
            };
        }
        BootloaderControl { raw, slots }
    }

    /// `nb_slot`.
    pub fn slot_count(&self) -> usize {
        usize::from(self.raw[9] & 0x07)
    }

    /// The slot U-Boot `ab_select` picks: the highest priority among bootable
    /// slots; ties go to the successful one, then to more tries, then to the
    /// lower index. `None` when no slot is bootable.
    pub fn select(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for i in 0..self.slot_count().min(4) {
            let s = &self.slots[i];
            if !s.bootable() {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let b = &self.slots[b];
                    (s.priority, s.successful, s.tries_remaining)
                        > (b.priority, b.successful, b.tries_remaining)
                }
            };
            if better {
                best = Some(i);
            }
        }
        best
    }

    /// What U-Boot does on a boot: select, then spend one try of an
    /// unconfirmed slot and store the suffix. Used by the model test and
    /// for documentation; the agent never calls it.
    pub fn boot_attempt(&mut self) -> Option<usize> {
        let slot = self.select()?;
        if !self.slots[slot].successful {
            self.slots[slot].tries_remaining -= 1;
        }
        self.raw[0..4].copy_from_slice(&[b'a' + slot as u8, 0, 0, 0]);
        Some(slot)
    }

    /// Serialises with a fresh CRC. Uninterpreted bytes are kept.
    pub fn build(&self) -> [u8; SIZE] {
        let mut raw = self.raw;
        for (i, s) in self.slots.iter().enumerate() {
            let at = SLOT_INFO + 2 * i;
            raw[at..at + 2].copy_from_slice(&s.encode());
        }
        let crc = CRC32.checksum(&raw[..CRC_AT]);
        raw[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A block U-Boot's `ab_control_default` would write (slot_suffix "a",
    /// both slots priority 15, tries 7): bytes derived by hand from the
    /// layout above; the CRC was checked with Python's `zlib.crc32` of the
    /// first 28 bytes (0x672a9d0f → 0f 9d 2a 67).
    const UBOOT_DEFAULT: [u8; 32] = [
        b'a', 0, 0, 0, 0x42, 0x43, 0x41, 0x42, 1, 2, 0, 0, 0x7f, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0x0f, 0x9d, 0x2a, 0x67,
    ];

    #[test]
    fn parses_a_uboot_default_block() {
        let b = BootloaderControl::parse(&UBOOT_DEFAULT).unwrap();
        assert_eq!(b.slot_count(), 2);
        assert_eq!(b.slots[0].priority, 15);
        assert_eq!(b.slots[1].tries_remaining, 7);
        assert!(!b.slots[0].successful);
        assert_eq!(b.build(), UBOOT_DEFAULT);
        assert_eq!(b.select(), Some(0));
    }

    #[test]
    fn rejects_magic_crc_version_and_slot_count() {
        assert_eq!(BootloaderControl::parse(&[0; 32]), Err(Invalid::Magic(0)));
        let mut torn = UBOOT_DEFAULT;
        torn[13] = 0x01;
        assert!(matches!(
            BootloaderControl::parse(&torn),
            Err(Invalid::Crc { .. })
        ));
        let mut newer = BootloaderControl::parse(&UBOOT_DEFAULT).unwrap();
        newer.raw[8] = 2;
        assert_eq!(
            BootloaderControl::parse(&newer.build()),
            Err(Invalid::Version(2))
        );
        let mut one = BootloaderControl::parse(&UBOOT_DEFAULT).unwrap();
        one.raw[9] = 1;
        assert_eq!(
            BootloaderControl::parse(&one.build()),
            Err(Invalid::SlotCount(1))
        );
    }

    #[test]
    fn bitfields_land_where_uboot_reads_them() {
        let mut b = BootloaderControl::initial(1, 3);
        b.slots[1].successful = true;
        b.slots[0].verity_corrupted = true;
        let raw = b.build();
        // slot a: priority 14, tries 3 → 0x3e; verity → byte 13 = 1.
        assert_eq!((raw[12], raw[13]), (0x3e, 0x01));
        // slot b: priority 15, tries 3, successful → 0xbf.
        assert_eq!((raw[14], raw[15]), (0xbf, 0x00));
    }

    #[test]
    fn selection_follows_ab_select() {
        let mut b = BootloaderControl::initial(0, 2);
        assert_eq!(b.boot_attempt(), Some(0));
        assert_eq!(b.boot_attempt(), Some(0));
        assert_eq!(b.slots[0].tries_remaining, 0);
        // Slot a is spent; b (priority 14) is next.
        assert_eq!(b.boot_attempt(), Some(1));
        b.slots[1].tries_remaining = 0;
        assert_eq!(b.select(), None);
        // Same priority: the successful slot wins.
        let mut t = BootloaderControl::initial(0, 2);
        t.slots[1].priority = 15;
        t.slots[1].successful = true;
        assert_eq!(t.select(), Some(1));
    }

    proptest! {
        #[test]
        fn round_trip_keeps_every_byte(bytes in proptest::array::uniform28(any::<u8>())) {
            let mut raw = [0u8; 32];
            raw[..28].copy_from_slice(&bytes);
            raw[4..8].copy_from_slice(&MAGIC.to_le_bytes());
            raw[8] = 1;
            raw[9] = (raw[9] & !7) | 2;
            let crc = CRC32.checksum(&raw[..28]);
            raw[28..].copy_from_slice(&crc.to_le_bytes());
            let parsed = BootloaderControl::parse(&raw).unwrap();
            prop_assert_eq!(parsed.build(), raw);
        }

        #[test]
        fn any_single_bit_flip_is_detected(bit in 0usize..256) {
            let mut raw = BootloaderControl::initial(0, 3).build();
            raw[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(BootloaderControl::parse(&raw).is_err());
        }
    }
}
