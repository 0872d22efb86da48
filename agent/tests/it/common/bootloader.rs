//! The bootloader, simulated from U-Boot's documented rules (not with the
//! agent's code): what a power-on does to the boot-control storage.

use std::collections::BTreeMap;

use ota_agent::slots::Slot;

pub fn slot_of(i: usize) -> Slot {
    if i == 0 {
        Slot::A
    } else {
        Slot::B
    }
}

/// U-Boot's boot-count rules (boot.cmd / CONFIG_BOOTCOUNT_LIMIT) on the
/// variables: while `upgrade_available=1` each boot adds 1 to `bootcount`;
/// past `bootlimit` altbootcmd swaps `ota_slot`, ends the trial and sets
/// `ota_rollback`; returns the slot booted and whether
/// altbootcmd fell back.
pub fn uboot_power_on(vars: &mut BTreeMap<String, String>) -> (Slot, bool) {
    let mut fell_back = false;
    let get = |v: &BTreeMap<String, String>, k: &str| v.get(k).cloned().unwrap_or_default();
    if get(vars, "upgrade_available") == "1" {
        let count = get(vars, "bootcount").parse::<u32>().unwrap_or(0) + 1;
        let limit = get(vars, "bootlimit").parse::<u32>().unwrap_or(3);
        if count > limit {
            fell_back = true;
            let (failed, other) = if get(vars, "ota_slot") == "b" {
                ("b", "a")
            } else {
                ("a", "b")
            };
            vars.insert("ota_rollback".into(), format!("{failed}:bootlimit"));
            vars.insert("ota_slot".into(), other.into());
            vars.insert("upgrade_available".into(), "0".into());
            vars.insert("bootcount".into(), "0".into());
        } else {
            vars.insert("bootcount".into(), count.to_string());
        }
        // saveenv after env import: empty values do not survive.
        vars.retain(|_, v| !v.is_empty());
    }
    let slot = if get(vars, "ota_slot") == "b" {
        Slot::B
    } else {
        Slot::A
    };
    (slot, fell_back)
}

/// U-Boot ab_select_slot on raw bytes (see boot/android_ab.c); also says
/// whether a higher-priority slot was skipped as unbootable (a fallback).
pub fn ab_power_on(b: &mut [u8; 32]) -> Option<(Slot, bool)> {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    assert_eq!(
        u32::from_le_bytes(b[28..32].try_into().unwrap()),
        crc.checksum(&b[..28]),
        "agent wrote a bad crc"
    );
    let key = |b: &[u8; 32], i: usize| {
        let x = b[12 + 2 * i];
        (x & 0x0f, x >> 7, (x >> 4) & 7)
    };
    let mut best: Option<usize> = None;
    for i in 0..usize::from(b[9] & 7) {
        if key(b, i).2 == 0 || b[13 + 2 * i] & 1 != 0 {
            continue;
        }
        if best.is_none_or(|j| key(b, i) > key(b, j)) {
            best = Some(i);
        }
    }
    let i = best?;
    let fell_back = (0..usize::from(b[9] & 7)).any(|j| j != i && key(b, j).0 > key(b, i).0);
    if b[12 + 2 * i] & 0x80 == 0 {
        b[12 + 2 * i] -= 0x10;
    }
    b[0..4].copy_from_slice(&[b'a' + i as u8, 0, 0, 0]);
    let c = crc.checksum(&b[..28]);
    b[28..32].copy_from_slice(&c.to_le_bytes());
    Some((slot_of(i), fell_back))
}
