//! Tests of `bootctl::uboot`.

use super::*;

fn env(pairs: &[(&str, &str)]) -> MemEnv {
    MemEnv {
        vars: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        writes: 0,
    }
}

fn factory() -> MemEnv {
    env(&[
        ("ota_slot", "a"),
        ("upgrade_available", "0"),
        ("bootcount", "0"),
        ("bootlimit", "3"),
        ("altbootcmd", "run fallback"),
    ])
}

fn open(e: MemEnv, booted: Slot, dir: &tempfile::TempDir) -> Uboot<MemEnv> {
    Uboot::new(e, booted, 3, StateDir::new(dir.path())).unwrap()
}

#[test]
fn set_active_other_is_one_write_of_all_trial_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut u = open(factory(), Slot::A, &dir);
    u.set_active(Slot::B).unwrap();
    let e = u.env();
    assert_eq!(e.writes, 1);
    assert_eq!(e.vars["ota_slot"], "b");
    assert_eq!(e.vars["upgrade_available"], "1");
    assert_eq!(e.vars["bootcount"], "0");
    assert_eq!(e.vars["bootlimit"], "3");
    assert_eq!(u.active_slot(), Slot::B);
    assert!(!u.is_successful(Slot::B) && u.is_bootable(Slot::B));
}

#[test]
fn set_active_refuses_without_altbootcmd_or_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = factory();
    e.vars.remove("altbootcmd");
    let mut u = open(e, Slot::A, &dir);
    let msg = u.set_active(Slot::B).unwrap_err().to_string();
    assert!(msg.starts_with("uboot: altbootcmd"), "{msg}");
    assert_eq!(u.env().writes, 0);

    let mut u = open(factory(), Slot::A, &dir);
    StateDir::new(dir.path()).begin_write(Slot::B).unwrap();
    assert!(u
        .set_active(Slot::B)
        .unwrap_err()
        .to_string()
        .contains("being written"));
    assert_eq!(u.env().writes, 0);
}

#[test]
fn mark_successful_ends_only_the_booted_trial() {
    let dir = tempfile::tempdir().unwrap();
    // Pending switch to b, still running a: a is confirmed, the switch stays.
    let mut u = open(factory(), Slot::A, &dir);
    u.set_active(Slot::B).unwrap();
    u.mark_successful().unwrap();
    assert_eq!(u.env().vars["upgrade_available"], "1");
    assert_eq!(u.env().vars["ota_good"], "a");
    // Booted b on trial (U-Boot counted one boot): confirmation ends it.
    let mut e = u.env().clone();
    e.vars.insert("bootcount".into(), "1".into());
    let mut u = open(e, Slot::B, &dir);
    u.mark_successful().unwrap();
    assert_eq!(u.env().vars["upgrade_available"], "0");
    assert_eq!(u.env().vars["bootcount"], "0");
    assert!(u.is_successful(Slot::B) && u.is_successful(Slot::A));
    // Idempotent: no second write.
    let writes = u.env().writes;
    u.mark_successful().unwrap();
    assert_eq!(u.env().writes, writes);
}

#[test]
fn trial_needs_a_confirmed_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = factory();
    e.vars.insert("ota_good".into(), "none".into());
    let mut u = open(e, Slot::A, &dir);
    let msg = u.set_active(Slot::B).unwrap_err().to_string();
    assert!(msg.contains("slot a is not confirmed"), "{msg}");
    assert_eq!(u.env().writes, 0);
    u.mark_successful().unwrap();
    u.set_active(Slot::B).unwrap();
    assert_eq!(u.env().vars["ota_good"], "a");
}

#[test]
fn exhausted_trial_makes_the_fallback_active() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = factory();
    e.vars.insert("ota_slot".into(), "b".into());
    e.vars.insert("upgrade_available".into(), "1".into());
    e.vars.insert("bootcount".into(), "3".into());
    let u = open(e, Slot::B, &dir);
    assert_eq!(u.active_slot(), Slot::A);
    assert!(!u.is_bootable(Slot::B));
}

#[test]
fn mark_bad_falls_back_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = factory();
    e.vars.insert("ota_good".into(), "a".into());
    e.vars.insert("ota_slot".into(), "b".into());
    e.vars.insert("upgrade_available".into(), "1".into());
    e.vars.insert("bootcount".into(), "1".into());
    let mut u = open(e, Slot::B, &dir);
    u.mark_unbootable(Slot::B).unwrap();
    let v = &u.env().vars;
    assert_eq!(
        (v["ota_slot"].as_str(), v["upgrade_available"].as_str()),
        ("a", "0")
    );
    assert_eq!(v["ota_rollback"], "b:mark-bad");
    assert_eq!(u.env().writes, 1);
    assert_eq!(u.active_slot(), Slot::A);
    // Now on a, with b bad: marking a bad must be refused.
    let mut u = open(u.env().clone(), Slot::A, &dir);
    let msg = u.mark_unbootable(Slot::A).unwrap_err().to_string();
    assert!(msg.contains("no known-good slot"), "{msg}");
    assert_eq!(u.env().writes, 1);
}

#[test]
fn rollback_is_recorded_once_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = factory();
    e.vars.insert("ota_rollback".into(), "b:bootlimit".into());
    e.vars.insert("ota_good".into(), "a".into());
    let mut u = open(e, Slot::A, &dir);
    assert!(!u.is_bootable(Slot::B));
    assert_eq!(
        u.status().unrecorded_rollback.as_deref(),
        Some("b:bootlimit")
    );
    let r = u.record_rollback().unwrap().unwrap();
    assert_eq!(
        (r.from, r.to, r.reason.as_str()),
        (Slot::B, Slot::A, "bootlimit")
    );
    assert!(!u.env().vars.contains_key("ota_rollback"));
    assert_eq!(u.env().vars["ota_bad"], "b");
    assert_eq!(u.record_rollback().unwrap(), None);
    let all = StateDir::new(dir.path()).rollbacks().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].uncleared, None);
}

#[test]
fn power_cut_between_record_and_clear_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    state
        .push_rollback(Rollback {
            time: 1,
            from: Slot::B,
            to: Slot::A,
            reason: "bootlimit".into(),
            uncleared: Some("b:bootlimit".into()),
            cause: None,
        })
        .unwrap();
    let mut e = factory();
    e.vars.insert("ota_rollback".into(), "b:bootlimit".into());
    let mut u = open(e, Slot::A, &dir);
    assert_eq!(u.record_rollback().unwrap(), None);
    let all = state.rollbacks().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].uncleared, None);
    assert!(!u.env().vars.contains_key("ota_rollback"));
}

/// Storage that another writer (a `fw_setenv` in a script) changes
/// between the agent's first read and its update.
struct Racy(MemEnv);

impl EnvAccess for Racy {
    fn load(&mut self) -> Result<BTreeMap<String, String>> {
        self.0.load()
    }
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool> {
        self.0.vars.insert("user_var".into(), "1".into());
        self.0.vars.insert("ota_slot".into(), "b".into());
        self.0.update(edit)
    }
}

#[test]
fn changes_are_planned_on_what_the_update_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut u = Uboot::new(Racy(factory()), Slot::A, 3, StateDir::new(dir.path())).unwrap();
    u.mark_successful().unwrap();
    let v = &u.env().0.vars;
    // The other writer's variable survives, and the plan saw its
    // ota_slot=b: the factory rule then trusts b, and mark_successful
    // adds a. A plan made on the stale first read would give "a".
    assert_eq!(v["user_var"], "1");
    assert_eq!(v["ota_slot"], "b");
    assert_eq!(v["ota_good"], "ab");
}

#[test]
fn odd_values_follow_the_boot_script() {
    let v = View::parse(
        &env(&[
            ("ota_slot", "c"),
            ("bootcount", "zz"),
            ("upgrade_available", "1"),
        ])
        .vars,
    );
    assert_eq!(v.slot, Slot::A);
    assert!(v.exhausted());
    assert_eq!(number("0xA"), Some(10));
    assert_eq!(View::parse(&BTreeMap::new()).limit, 3);
}
