//! Trial boots that survive being unplugged (`update::trial`), with the
//! real agent binary on a GPT disk image whose U-Boot environment the real
//! `fw_setenv` changes by U-Boot's boot-count rules at every simulated
//! power-on (`UbootDisk::uboot_power_on`: bootcount, bootlimit,
//! altbootcmd's fallback). Each power-on gets a new boot id
//! (`boot_id_file`), as the kernel gives one per boot.
//!
//! * A good release whose trial boots are cut (one before userspace, two
//!   after `ota-agent booted`): U-Boot falls back, the agent finds the
//!   trial was lost to power, `resume` activates it again, and the next
//!   trial commits; the reports say so.
//! * A release that never reaches userspace, and one that fails its health
//!   check, roll back within `bootlimit` boots and are never retried.
//! * Power lost on every round: two retries, then the rollback stands.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::device::agent_root;
use crate::common::disk::{UbootDisk, FACTORY_ENV, MIB, UBOOT_AB};
use crate::common::release::sign_bundle;
use crate::common::rng::Rng;
use crate::common::tools::{text, AGENT};

struct Device {
    _dir: tempfile::TempDir,
    root: PathBuf,
    disk: UbootDisk,
    config: PathBuf,
    booted: &'static str,
    boots: u32,
}

impl Device {
    fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let disk = UbootDisk::new(&root, 16 * MIB, UBOOT_AB);
        let extra = format!(
            "device_id = \"rc-1\"\nboot_id_file = \"{r}/boot_id\"\n\
             reboot_command = [\"true\"]\n",
            r = root.display()
        );
        let config = agent_root(&root, &disk.disk, &disk.fw_env, &extra);
        disk.mkenv(FACTORY_ENV);
        fs::write(root.join("boot_id"), "factory\n").unwrap();
        Device {
            _dir: dir,
            root,
            disk,
            config,
            booted: "a",
            boots: 0,
        }
    }

    fn agent(&self, args: &[&str]) -> Output {
        Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .args(["--booted-slot", self.booted])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.agent(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        text(&o)
    }

    /// Signs and installs `version` (a 2 MiB image) into slot b.
    fn install(&self, version: &str) {
        let img = self.root.join(format!("rootfs-{version}.img"));
        fs::write(&img, Rng(7).noise(2 * MIB as usize)).unwrap();
        let out = self.root.join(format!("b-{version}"));
        sign_bundle(&self.root, version, &img, &out);
        self.ok(&["install", out.to_str().unwrap()]);
    }

    /// Power on: U-Boot's rules pick the slot; a new boot id.
    fn power_on(&mut self, versions: [&str; 2]) -> &'static str {
        self.boots += 1;
        fs::write(self.root.join("boot_id"), format!("boot-{}\n", self.boots)).unwrap();
        let slot = self.disk.uboot_power_on();
        self.booted = if slot.suffix() == "_b" { "b" } else { "a" };
        let v = if self.booted == "b" {
            versions[1]
        } else {
            versions[0]
        };
        fs::write(self.root.join("os-release"), format!("VERSION_ID={v}\n")).unwrap();
        self.booted
    }

    /// The boot service of every boot: `mark-good`, then `resume`; true
    /// when resume asked for a reboot (exit 0).
    fn boot_service(&self) -> (bool, bool) {
        let good = self.agent(&["mark-good"]).status.success();
        let r = self.agent(&["resume"]);
        (good, r.status.code() == Some(0))
    }

    fn health(&self, exit: i32) {
        let p = self.root.join("health.d/50-app");
        fs::write(&p, format!("#!/bin/sh\nexit {exit}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn vars(&self) -> std::collections::BTreeMap<String, String> {
        self.disk.vars()
    }

    fn state(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.root.join("state").join(name)).ok()
    }

    /// Events of the queued reports, oldest first.
    fn events(&self) -> Vec<String> {
        let dir = self.root.join("state/reports");
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_else(|_| Vec::new());
        names.retain(|p: &PathBuf| p.extension().is_some_and(|e| e == "json"));
        names.sort();
        names
            .iter()
            .map(|p| {
                let v: serde_json::Value =
                    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap();
                match v["reason"].as_str() {
                    Some(r) => format!("{} ({r})", v["event"].as_str().unwrap()),
                    None => v["event"].as_str().unwrap().to_owned(),
                }
            })
            .collect()
    }
}

fn cut_before_userspace(dev: &mut Device) {
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "b");
}

fn cut_after_userspace(dev: &mut Device) {
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "b");
    let o = dev.ok(&["booted"]);
    assert!(o.contains("trial boot recorded"), "{o}");
    // Recorded once per boot.
    assert!(!dev.ok(&["booted"]).contains("trial boot recorded"));
}

#[test]
fn a_trial_cut_by_power_is_retried_and_commits() {
    let mut dev = Device::new();
    dev.install("2.0.0");
    cut_before_userspace(&mut dev);
    cut_after_userspace(&mut dev);
    cut_after_userspace(&mut dev);
    // The fourth power-on: U-Boot's tries are used up, it falls back.
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "a");
    let (good, reboot) = dev.boot_service();
    assert!(good && reboot, "resume did not activate the trial again");
    let v = dev.vars();
    assert_eq!(
        (v["ota_slot"].as_str(), v["upgrade_available"].as_str()),
        ("b", "1")
    );
    let rollbacks = dev.state("rollbacks.json").unwrap();
    assert!(
        rollbacks.contains("power lost during trial: 2 of 3 boots reached userspace"),
        "{rollbacks}"
    );
    // The new round: the trial boot reaches mark-good and commits.
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "b");
    let (good, reboot) = dev.boot_service();
    assert!(good && !reboot);
    let v = dev.vars();
    assert_eq!(
        (v["ota_slot"].as_str(), v["upgrade_available"].as_str()),
        ("b", "0")
    );
    assert_eq!(
        dev.state("trial.json"),
        None,
        "trial record left after the commit"
    );
    let ev = dev.events();
    assert_eq!(
        ev,
        [
            "installed".to_owned(),
            "rolled-back (power lost during trial: 2 of 3 boots reached userspace, none failed a health check; trying it again (1 of 2))".to_owned(),
            "installed".to_owned(),
            "committed".to_owned(),
        ],
        "{ev:?}"
    );
}

#[test]
fn never_reaching_userspace_or_failing_health_rolls_back_for_good() {
    // Three boots that never reach userspace (a kernel that panics).
    let mut dev = Device::new();
    dev.install("2.0.0");
    for _ in 0..3 {
        cut_before_userspace(&mut dev);
    }
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "a");
    let (good, reboot) = dev.boot_service();
    assert!(
        good && !reboot,
        "a release that never reached userspace was retried"
    );
    assert_eq!(dev.vars()["ota_slot"], "a");
    assert_eq!(dev.state("trial.json"), None);
    let st = dev.ok(&["status"]);
    assert!(
        st.contains("rollback cause: none of the 3 trial boots reached userspace"),
        "{st}"
    );

    // Every boot reaches userspace, the health check fails each time.
    let mut dev = Device::new();
    dev.install("2.0.0");
    dev.health(1);
    for _ in 0..3 {
        assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "b");
        dev.ok(&["booted"]);
        let (good, _) = dev.boot_service();
        assert!(!good);
    }
    dev.health(0);
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "a");
    let (good, reboot) = dev.boot_service();
    assert!(
        good && !reboot,
        "a release that failed its health check was retried"
    );
    assert_eq!(dev.vars()["ota_slot"], "a");
    let ev = dev.events();
    assert_eq!(
        ev.last().unwrap(),
        "rolled-back (health check 50-app failed)",
        "{ev:?}"
    );
}

#[test]
fn power_lost_on_every_round_is_retried_twice_then_stands() {
    let mut dev = Device::new();
    dev.install("2.0.0");
    let mut retries = 0;
    for round in 0..3 {
        for _ in 0..3 {
            cut_after_userspace(&mut dev);
        }
        assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "a", "round {round}");
        let (good, reboot) = dev.boot_service();
        assert!(good);
        if reboot {
            retries += 1;
        }
    }
    assert_eq!(retries, 2);
    assert_eq!(dev.vars()["ota_slot"], "a");
    let rollbacks = dev.state("rollbacks.json").unwrap();
    assert!(rollbacks.contains("no retry left (2 used)"), "{rollbacks}");
    // `resume` has nothing more to do.
    assert_eq!(dev.agent(&["resume"]).status.code(), Some(3));
}
