//! Tests of `bootctl::android`.

use super::*;

fn mem(ctrl: &BootloaderControl) -> MemBlock {
    MemBlock {
        block: ctrl.build(),
        writes: 0,
    }
}

/// Both slots confirmed, a active: a device in service.
fn settled() -> BootloaderControl {
    let mut c = BootloaderControl::initial(0, 3);
    c.slots[0].successful = true;
    c.slots[1].successful = true;
    c
}

fn open(m: MemBlock, booted: Slot, dir: &tempfile::TempDir) -> Android<MemBlock> {
    Android::new(m, booted, 3, StateDir::new(dir.path()), false).unwrap()
}

#[test]
fn set_active_other_starts_a_counted_trial() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(mem(&settled()), Slot::A, &dir);
    a.set_active(Slot::B).unwrap();
    let c = BootloaderControl::parse(&a.misc().block).unwrap();
    assert_eq!(a.misc().writes, 1);
    assert_eq!((c.slots[1].priority, c.slots[1].tries_remaining), (15, 3));
    assert!(!c.slots[1].successful);
    assert_eq!(c.slots[0].priority, 14);
    assert_eq!(a.active_slot(), Slot::B);
    assert_eq!(
        StateDir::new(dir.path())
            .activation()
            .unwrap()
            .unwrap()
            .slot,
        Slot::B
    );
}

#[test]
fn trial_needs_a_confirmed_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = settled();
    c.slots[0].successful = false;
    let mut a = open(mem(&c), Slot::A, &dir);
    let e = a.set_active(Slot::B).unwrap_err().to_string();
    assert!(e.contains("slot a is not confirmed"), "{e}");
    assert_eq!(a.misc().writes, 0);
    a.mark_successful().unwrap();
    a.set_active(Slot::B).unwrap();
    assert_eq!(a.active_slot(), Slot::B);
}

#[test]
fn bad_block_is_reported_not_reinitialised() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settled().build();
    raw[12] ^= 0x10;
    let m = MemBlock {
        block: raw,
        writes: 0,
    };
    let e = Android::new(m.clone(), Slot::A, 3, StateDir::new(dir.path()), false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("android: ") && e.contains("bad crc") && e.contains("--reinit"),
        "{e}"
    );
    // With --reinit, the next write stores a fresh block.
    let mut a = Android::new(m, Slot::A, 3, StateDir::new(dir.path()), true).unwrap();
    a.set_active(Slot::A).unwrap();
    assert_eq!(a.misc().writes, 1);
    assert!(BootloaderControl::parse(&a.misc().block).is_ok());
}

#[test]
fn mark_successful_keeps_last_try_bootable() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = settled();
    c.slots[1] = SlotMeta {
        priority: 15,
        tries_remaining: 0,
        ..SlotMeta::default()
    };
    c.slots[0].priority = 14;
    // Running b on its last try (ab_select decremented to 0).
    let mut a = open(mem(&c), Slot::B, &dir);
    a.mark_successful().unwrap();
    assert!(a.is_successful(Slot::B) && a.is_bootable(Slot::B));
    assert_eq!(a.active_slot(), Slot::B);
}

#[test]
fn mark_bad_refuses_to_leave_no_bootable_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = settled();
    c.slots[1].tries_remaining = 0;
    c.slots[1].successful = false;
    let mut a = open(mem(&c), Slot::A, &dir);
    let e = a.mark_unbootable(Slot::A).unwrap_err().to_string();
    assert!(e.contains("no known-good slot"), "{e}");
    assert_eq!(a.misc().writes, 0);
}

#[test]
fn invalidated_activation_is_not_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(mem(&settled()), Slot::A, &dir);
    a.set_active(Slot::B).unwrap();
    // The installer starts over before any reboot.
    a.mark_unbootable(Slot::B).unwrap();
    assert_eq!(a.record_rollback().unwrap(), None);
    assert!(StateDir::new(dir.path()).rollbacks().unwrap().is_empty());
}

#[test]
fn activation_cut_before_its_block_write_is_not_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = settled();
    // The installer marked b unbootable, wrote it; then the power failed
    // after the activation record but before the block write.
    c.slots[1].tries_remaining = 0;
    c.slots[1].successful = false;
    let state = StateDir::new(dir.path());
    state
        .set_activation(Activation {
            time: 5,
            slot: Slot::B,
            from: Slot::A,
            committed: false,
        })
        .unwrap();
    let mut a = open(mem(&c), Slot::A, &dir);
    assert_eq!(a.record_rollback().unwrap(), None);
    assert!(state.rollbacks().unwrap().is_empty());
    assert_eq!(state.activation().unwrap(), None);
}

#[test]
fn rollback_detected_from_activation_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(mem(&settled()), Slot::A, &dir);
    a.set_active(Slot::B).unwrap();
    assert_eq!(a.record_rollback().unwrap(), None, "no reboot yet");
    let mut c = BootloaderControl::parse(&a.misc().block).unwrap();
    for _ in 0..3 {
        assert_eq!(c.boot_attempt(), Some(1));
    }
    assert_eq!(c.boot_attempt(), Some(0));
    let mut a = open(mem(&c), Slot::A, &dir);
    let r = a.record_rollback().unwrap().unwrap();
    assert_eq!(
        (r.from, r.to, r.reason.as_str()),
        (Slot::B, Slot::A, "bootlimit")
    );
    assert_eq!(a.record_rollback().unwrap(), None);
    assert_eq!(StateDir::new(dir.path()).rollbacks().unwrap().len(), 1);
}
