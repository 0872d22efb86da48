//! Boot control end to end: the built `ota-agent` binary on a GPT disk image
//! made by `sgdisk`, with the U-Boot environment written by `mkenvimage` and
//! read back by libubootenv's `fw_printenv`, and a `misc` partition whose
//! bootctrl bytes are dumped raw. Between agent commands the test plays the
//! bootloader: U-Boot's boot-count rules (boot.cmd / CONFIG_BOOTCOUNT_LIMIT)
//! through the real `fw_setenv`, and `ab_select`'s rules on the raw 32 bytes
//! (re-implemented here from the U-Boot source description, not with the
//! agent's code).
//!
//! Each scenario's transcript (commands, exit statuses, outputs, environment
//! after each transition) is compared with a golden file in `tests/golden/`.
//! Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p ota-agent --test it bootctl_cli::`
//! and review the diff. A missing tool FAILS (scripts/install-deps).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::bootloader::ab_power_on;
use crate::common::disk::{UbootDisk, MIB};
use crate::common::tools::AGENT;

/// Replaces timestamps (they depend on the clock) with `<time>`.
fn scrub_times(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        // 2026-11-26T00:34:56Z
        while let Some(pos) = l.find('T').and_then(|t| {
            let start = t.checked_sub(10)?;
            let cand = l.get(start..start + 20)?;
            (cand.ends_with('Z') && cand.as_bytes()[4] == b'-' && cand.as_bytes()[13] == b':')
                .then_some(start)
        }) {
            l.replace_range(pos..pos + 20, "<time>");
        }
        if let Some(p) = l.find("\"time\": ") {
            let end = l[p + 8..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(l.len(), |e| p + 8 + e);
            l.replace_range(p + 8..end, "<time>");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    if expected != actual {
        let (mut line, mut shown) = (0, String::new());
        for (e, a) in expected.lines().zip(actual.lines()) {
            line += 1;
            if e != a {
                shown = format!("line {line}:\n  expected: {e}\n  actual:   {a}");
                break;
            }
        }
        panic!(
            "{} differs from the golden file {}\n{shown}\n--- actual ---\n{actual}",
            name,
            path.display()
        );
    }
}

/// A device: disk image, configs, state and health directories.
struct Device {
    _dir: tempfile::TempDir,
    root: PathBuf,
    disk: UbootDisk,
    config: PathBuf,
    cmdline: PathBuf,
    misc_offset: u64,
    log: String,
}

impl Device {
    fn new(bootloader: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        // conf/fw_env.config layout: env before the first partition, at 2 MiB.
        let disk = UbootDisk::new(
            &root,
            28 * MIB,
            &[
                ("boot", 2048),
                ("misc", 1024),
                ("rootfs_a", 8192),
                ("rootfs_b", 8192),
                ("data", 0),
            ],
        );
        // Where misc starts, from sfdisk (not from the agent's GPT reader).
        let misc_offset = disk.offset("misc");
        let d = disk.disk.display();
        let fw_env = disk.fw_env.display();
        let health = root.join("health.d");
        fs::create_dir(&health).unwrap();
        let cmdline = root.join("cmdline");
        let config = root.join("ota-agent.toml");
        // The installed release `status` reports (not the host's os-release).
        let os_release = root.join("os-release");
        fs::write(&os_release, "NAME=\"Rice OS\"\nVERSION_ID=1.0.0\n").unwrap();
        fs::write(
            &config,
            format!(
                "product = \"rice-cooker\"\ndisk = \"{d}\"\nbootloader = \"{bootloader}\"\n\
                 fw_env_config = \"{fw_env}\"\nboot_tries = 3\nstate_dir = \"{}\"\n\
                 health_dir = \"{}\"\ncmdline = \"{}\"\nversion_file = \"{}\"\n",
                root.join("state").display(),
                health.display(),
                cmdline.display(),
                os_release.display()
            ),
        )
        .unwrap();
        Device {
            _dir: dir,
            root,
            disk,
            config,
            cmdline,
            misc_offset,
            log: String::new(),
        }
    }

    fn health(&self, name: &str, exit: i32) {
        let p = self.root.join("health.d").join(name);
        fs::write(&p, format!("#!/bin/sh\nexit {exit}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.log, "## {text}");
    }

    /// Runs the agent and logs the transcript; returns the exit status.
    fn agent(&mut self, args: &[&str]) -> i32 {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = Command::new(AGENT).args(&all).output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let _ = writeln!(self.log, "$ ota-agent {}", args.join(" "));
        self.log += &String::from_utf8_lossy(&out.stdout);
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            // The temp dir differs per run.
            let line = line.replace(self.root.to_str().unwrap(), "<dir>");
            let _ = writeln!(self.log, "stderr: {line}");
        }
        let _ = writeln!(self.log, "[exit {code}]");
        code
    }

    // ---- U-Boot environment (real tools) ----

    fn mkenv(&self, text: &str) {
        self.disk.mkenv(text);
    }

    fn printenv(&self) -> String {
        self.disk.printenv()
    }

    fn log_env(&mut self) {
        let env = self.printenv();
        self.log += "-- fw_printenv (without altbootcmd):\n";
        for line in env.lines().filter(|l| !l.starts_with("altbootcmd=")) {
            let _ = writeln!(self.log, "   {line}");
        }
    }

    /// One power-on under U-Boot's boot-count rules (boot.cmd): returns the
    /// slot it boots and writes the kernel command line for it.
    fn boot_uboot(&mut self) -> char {
        let slot = self.disk.uboot_power_on();
        let slot = slot.suffix().chars().nth(1).unwrap();
        fs::write(
            &self.cmdline,
            format!("console=ttyAMA0 root=PARTLABEL=rootfs_{slot} ota.slot={slot} quiet\n"),
        )
        .unwrap();
        let _ = writeln!(self.log, "## power on: U-Boot boots slot {slot}");
        slot
    }

    // ---- Android bootctrl (raw bytes) ----

    fn bootctrl(&self) -> [u8; 32] {
        let b = self.disk.read_at(self.misc_offset + 2048, 32);
        b.try_into().unwrap()
    }

    fn log_bootctrl(&mut self) {
        let b = self.bootctrl();
        let hex: Vec<String> = b
            .chunks(4)
            .map(|c| c.iter().map(|x| format!("{x:02x}")).collect())
            .collect();
        let _ = writeln!(self.log, "-- misc+2048: {}", hex.join(" "));
    }

    /// One power-on under U-Boot `ab_select` rules, applied to the raw bytes.
    fn boot_android(&mut self) -> Option<char> {
        let mut b = self.bootctrl();
        let slot = ab_power_on(&mut b);
        self.disk.write_at(self.misc_offset + 2048, &b);
        match slot {
            Some((slot, _)) => {
                let c = slot.suffix().chars().nth(1).unwrap();
                fs::write(
                    &self.cmdline,
                    format!("root=PARTLABEL=rootfs_{c} androidboot.slot_suffix=_{c}\n"),
                )
                .unwrap();
                let _ = writeln!(self.log, "## power on: ab_select boots slot {c}");
                Some(c)
            }
            None => {
                let _ = writeln!(self.log, "## power on: ab_select finds no bootable slot");
                None
            }
        }
    }
}

const FACTORY_ENV: &str = "\
ota_slot=a
upgrade_available=0
bootcount=0
bootlimit=3
altbootcmd=if test \"${ota_slot}\" = b; then setenv ota_rollback b:bootlimit; setenv ota_slot a; else setenv ota_rollback a:bootlimit; setenv ota_slot b; fi; setenv upgrade_available 0; setenv bootcount 0
";

#[test]
fn uboot_update_confirm_rollback_transcript() {
    let mut d = Device::new("uboot");
    d.mkenv(FACTORY_ENV);
    d.health("10-ok", 0);
    d.note("factory image");
    d.log_env();
    assert_eq!(d.boot_uboot(), 'a');
    assert_eq!(d.agent(&["status"]), 0);
    d.note("the new slot can only be tried with a confirmed fallback; a is trusted (factory env)");
    assert_eq!(d.agent(&["set-active", "other"]), 0);
    d.log_env();
    assert_eq!(d.agent(&["status"]), 0);
    assert_eq!(d.boot_uboot(), 'b');
    assert_eq!(d.agent(&["status", "--json"]), 0);
    assert_eq!(d.agent(&["mark-good"]), 0);
    d.log_env();
    assert_eq!(d.agent(&["status"]), 0);
    d.note("a broken update into a: three trial boots, then altbootcmd falls back");
    assert_eq!(d.agent(&["set-active", "a"]), 0);
    d.log_env();
    for _ in 0..3 {
        assert_eq!(d.boot_uboot(), 'a');
    }
    d.log_env();
    assert_eq!(d.boot_uboot(), 'b', "{}", d.log);
    d.log_env();
    assert_eq!(d.agent(&["status"]), 0);
    d.log_env();
    d.note("a is bad now: marking b bad would leave nothing known-good");
    assert_eq!(d.agent(&["mark-bad"]), 1);
    assert_eq!(d.agent(&["status", "--json"]), 0);
    check_golden("uboot-transcript.txt", &scrub_times(&d.log));
}

/// A health check that hangs is killed after `health_timeout_s` and counts
/// as failed: `mark-good` refuses, the trial stays unconfirmed.
#[test]
fn uboot_hanging_health_check_times_out_and_blocks_mark_good() {
    let mut d = Device::new("uboot");
    d.mkenv(FACTORY_ENV);
    assert_eq!(d.boot_uboot(), 'a');
    assert_eq!(d.agent(&["set-active", "b"]), 0);
    assert_eq!(d.boot_uboot(), 'b');
    let mut cfg = fs::read_to_string(&d.config).unwrap();
    cfg.push_str("health_timeout_s = 1\n");
    fs::write(&d.config, cfg).unwrap();
    let hook = d.root.join("health.d/10-hangs");
    fs::write(&hook, "#!/bin/sh\nsleep 600\n").unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(d.agent(&["mark-good"]), 1, "{}", d.log);
    assert!(
        d.log.contains("10-hangs") && d.log.contains("did not finish within 1 s"),
        "{}",
        d.log
    );
    let env = d.printenv();
    assert!(env.contains("upgrade_available=1"), "{env}");
}

#[test]
fn uboot_mark_bad_falls_back_and_is_recorded() {
    let mut d = Device::new("uboot");
    d.mkenv(FACTORY_ENV);
    assert_eq!(d.boot_uboot(), 'a');
    assert_eq!(d.agent(&["set-active", "b"]), 0);
    assert_eq!(d.boot_uboot(), 'b');
    d.note("the trial slot fails its health check: mark-bad");
    d.health("10-fails", 3);
    assert_eq!(d.agent(&["mark-good"]), 1);
    let before = d.printenv();
    assert!(before.contains("upgrade_available=1"), "{before}");
    assert_eq!(d.agent(&["mark-bad"]), 0);
    d.log_env();
    assert_eq!(d.boot_uboot(), 'a');
    assert_eq!(d.agent(&["status"]), 0);
    d.log_env();
    check_golden("uboot-mark-bad.txt", &scrub_times(&d.log));
}

#[test]
fn failed_health_check_changes_nothing() {
    let mut d = Device::new("uboot");
    d.mkenv(FACTORY_ENV);
    assert_eq!(d.boot_uboot(), 'a');
    assert_eq!(d.agent(&["set-active", "b"]), 0);
    assert_eq!(d.boot_uboot(), 'b');
    d.health("50-broken", 7);
    let before = fs::read(&d.disk.disk).unwrap();
    assert_eq!(d.agent(&["mark-good"]), 1);
    assert!(
        d.log.contains("50-broken") && d.log.contains("status 7"),
        "{}",
        d.log
    );
    assert!(
        fs::read(&d.disk.disk).unwrap() == before,
        "mark-good changed the disk"
    );
}

#[test]
fn cmdline_disagreement_is_refused_and_override_works() {
    let mut d = Device::new("uboot");
    d.mkenv(FACTORY_ENV);
    fs::write(&d.cmdline, "ota.slot=a root=PARTLABEL=rootfs_b\n").unwrap();
    assert_eq!(d.agent(&["status"]), 1);
    assert!(d.log.contains("disagrees"), "{}", d.log);
    assert_eq!(d.agent(&["--booted-slot", "b", "status", "--json"]), 0);
    assert!(d.log.contains("\"booted\": \"b\""), "{}", d.log);
    assert_eq!(d.agent(&["--booted-slot", "c", "status"]), 2);
}

#[test]
fn android_update_confirm_rollback_transcript() {
    let mut d = Device::new("android");
    d.health("10-ok", 0);
    d.note("a blank misc partition is reported, not silently initialised");
    fs::write(
        &d.cmdline,
        "root=PARTLABEL=rootfs_a androidboot.slot_suffix=_a\n",
    )
    .unwrap();
    assert_eq!(d.agent(&["status"]), 1);
    d.log_bootctrl();
    assert_eq!(d.bootctrl(), [0u8; 32]);
    assert_eq!(d.agent(&["set-active", "a", "--reinit"]), 0);
    d.log_bootctrl();
    assert_eq!(d.agent(&["status"]), 0);
    assert_eq!(d.agent(&["set-active", "other"]), 0);
    d.log_bootctrl();
    assert_eq!(d.boot_android(), Some('b'));
    d.log_bootctrl();
    assert_eq!(d.agent(&["status", "--json"]), 0);
    assert_eq!(d.agent(&["mark-good"]), 0);
    d.log_bootctrl();
    d.note("a broken update into a: ab_select spends a's tries, then boots b");
    assert_eq!(d.agent(&["set-active", "a"]), 0);
    d.log_bootctrl();
    for _ in 0..3 {
        assert_eq!(d.boot_android(), Some('a'));
    }
    d.log_bootctrl();
    assert_eq!(d.boot_android(), Some('b'));
    d.log_bootctrl();
    assert_eq!(d.agent(&["status"]), 0);
    d.note("a is unbootable: marking b bad is refused");
    assert_eq!(d.agent(&["mark-bad"]), 1);
    d.log_bootctrl();
    check_golden("android-transcript.txt", &scrub_times(&d.log));
}

#[test]
fn android_corrupt_crc_is_reported_and_untouched() {
    let mut d = Device::new("android");
    fs::write(&d.cmdline, "androidboot.slot_suffix=_a\n").unwrap();
    assert_eq!(d.agent(&["set-active", "a", "--reinit"]), 0);
    d.disk.write_at(d.misc_offset + 2048 + 12, &[0x00]);
    let before = d.bootctrl();
    for cmd in [
        &["status"][..],
        &["mark-good"],
        &["set-active", "b"],
        &["mark-bad"],
    ] {
        assert_eq!(d.agent(cmd), 1, "{cmd:?}");
    }
    assert!(d.log.contains("bad crc"), "{}", d.log);
    assert_eq!(d.bootctrl(), before);
}

#[test]
fn reference_config_parses_with_its_documented_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/ota-agent.toml");
    let text = fs::read_to_string(&path).unwrap();
    let c = ota_agent::config::Config::parse(&text, &path).unwrap();
    assert_eq!(c.product, "rice-cooker");
    assert_eq!(c.disk, Path::new("/dev/mmcblk0"));
    assert_eq!(c.bootloader, ota_agent::config::Bootloader::Uboot);
    assert_eq!((c.boot_tries, c.misc_partition.as_str()), (3, "misc"));
    assert_eq!(c.cmdline, Path::new("/proc/cmdline"));
    // Every commented-out key is a real key: uncommented, it still parses.
    let all: String = text
        .lines()
        .map(|l| {
            l.strip_prefix('#')
                .filter(|r| !r.starts_with(' ') && !r.is_empty())
                .unwrap_or(l)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let c = ota_agent::config::Config::parse(&all, &path).unwrap();
    assert_eq!(c.mcu.unwrap().baud, 9600);
    assert_eq!(
        c.control,
        Some(ota_agent::control::ControlConfig {
            socket: "/run/ota-agent/control.sock".into(),
            mode: 0o660,
            group: Some("appliance".into()),
            consent: false,
        })
    );
}

/// Every field `status --json` prints is documented in docs/status-json.md
/// (the embedded `update` document's fields in docs/update-status.md), and
/// every documented field is printed.
#[test]
fn status_json_fields_match_the_documentation() {
    fn paths(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.push(p.clone());
                    paths(x, &p, out);
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    paths(x, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut d = Device::new("uboot");
    let mut env = FACTORY_ENV.to_string();
    env += "ota_rollback=b:bootlimit\n";
    d.mkenv(&env);
    assert_eq!(d.boot_uboot(), 'a');
    // An update in progress, written by hand (not by the agent).
    fs::create_dir_all(d.root.join("state")).unwrap();
    fs::write(
        d.root.join("state/update-status.json"),
        r#"{"format": 1, "phase": "writing", "version": "1.1.0", "from_version": "1.0.0",
            "slot": "b", "image": "rootfs", "phase_bytes_done": 5, "phase_bytes_total": 10,
            "bytes_done": 5, "bytes_total": 10, "percent": 50, "rate_bps": null,
            "eta_s": null, "error": null, "time": 1795564800}"#,
    )
    .unwrap();
    let out = Command::new(AGENT)
        .args(["--config", d.config.to_str().unwrap(), "status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["update"]["phase"], "writing", "{v:#}");
    let mut printed = Vec::new();
    paths(&v, "", &mut printed);
    let (mut update, mut printed): (Vec<String>, Vec<String>) =
        printed.into_iter().partition(|p| p.starts_with("update."));
    printed.sort();
    printed.dedup();
    let mut update: Vec<String> = update
        .drain(..)
        .map(|p| p["update.".len()..].to_string())
        .collect();
    update.sort();
    // The rows of a doc's field table (`## Fields` up to the next heading).
    let documented = |name: &str| -> Vec<String> {
        let doc = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../docs")
                .join(name),
        )
        .unwrap();
        let table = doc.split("\n## Fields\n").nth(1).unwrap();
        let table = table.split("\n## ").next().unwrap();
        let mut fields: Vec<String> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_string)
            .collect();
        fields.sort();
        fields
    };
    assert_eq!(printed, documented("status-json.md"));
    assert_eq!(update, documented("update-status.md"));
}
