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
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p ota-agent --test bootctl_cli`
//! and review the diff. A missing tool FAILS (scripts/install-deps).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_ota-agent");
const ENV_OFFSET: u64 = 0x100000;
const ENV_SIZE: usize = 0x4000;
const SECTOR: u64 = 512;

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}); run scripts/install-deps"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

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
    disk: PathBuf,
    fw_env: PathBuf,
    config: PathBuf,
    cmdline: PathBuf,
    misc_offset: u64,
    log: String,
}

impl Device {
    fn new(bootloader: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let disk = root.join("disk.img");
        fs::File::create(&disk).unwrap().set_len(28 << 20).unwrap();
        // docs/contract.md layout: env before the first partition, which starts at 2 MiB.
        let d = disk.to_str().unwrap();
        tool(
            "sgdisk",
            &[
                "-o",
                "-n",
                "1:4096:+2M",
                "-c",
                "1:boot",
                "-n",
                "2:0:+1M",
                "-c",
                "2:misc",
                "-n",
                "3:0:+8M",
                "-c",
                "3:rootfs_a",
                "-n",
                "4:0:+8M",
                "-c",
                "4:rootfs_b",
                "-n",
                "5:0:0",
                "-c",
                "5:data",
                d,
            ],
        );
        // Where misc starts, from sfdisk (not from the agent's GPT reader).
        let dump = tool("sfdisk", &["--dump", d]);
        let misc_line = dump.lines().find(|l| l.contains("name=\"misc\"")).unwrap();
        let start: u64 = misc_line
            .split("start=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let fw_env = root.join("fw_env.config");
        fs::write(
            &fw_env,
            format!("{d} 0x100000 0x4000\n{d} 0x104000 0x4000\n"),
        )
        .unwrap();
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
                 fw_env_config = \"{}\"\nboot_tries = 3\nstate_dir = \"{}\"\n\
                 health_dir = \"{}\"\ncmdline = \"{}\"\nversion_file = \"{}\"\n",
                fw_env.display(),
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
            fw_env,
            config,
            cmdline,
            misc_offset: start * SECTOR,
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
        let src = self.root.join("env.txt");
        let bin = self.root.join("env.bin");
        fs::write(&src, text).unwrap();
        tool(
            "mkenvimage",
            &[
                "-r",
                "-s",
                "0x4000",
                "-o",
                bin.to_str().unwrap(),
                src.to_str().unwrap(),
            ],
        );
        let image = fs::read(&bin).unwrap();
        assert_eq!(image.len(), ENV_SIZE);
        let mut f = fs::OpenOptions::new().write(true).open(&self.disk).unwrap();
        f.seek(SeekFrom::Start(ENV_OFFSET)).unwrap();
        f.write_all(&image).unwrap();
    }

    fn printenv(&self) -> String {
        tool("fw_printenv", &["-c", self.fw_env.to_str().unwrap()])
    }

    fn vars(&self) -> BTreeMap<String, String> {
        self.printenv()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
        let vars = self.vars();
        let mut slot = vars.get("ota_slot").map_or("a", |s| s.as_str()).to_string();
        let mut script = String::new();
        if vars.get("upgrade_available").map(String::as_str) == Some("1") {
            let count: u32 = vars.get("bootcount").map_or(0, |c| c.parse().unwrap()) + 1;
            let limit: u32 = vars.get("bootlimit").map_or(3, |c| c.parse().unwrap());
            if count > limit {
                // altbootcmd: swap, end the trial, report.
                let other = if slot == "b" { "a" } else { "b" };
                script += &format!(
                    "ota_rollback={slot}:bootlimit\nota_slot={other}\nupgrade_available=0\nbootcount=0\n"
                );
                slot = other.into();
            } else {
                script += &format!("bootcount={count}\n");
            }
            // libubootenv 0.3 scripts are `name=value` lines.
            let s = self.root.join("boot.script");
            fs::write(&s, &script).unwrap();
            tool(
                "fw_setenv",
                &[
                    "-c",
                    self.fw_env.to_str().unwrap(),
                    "-s",
                    s.to_str().unwrap(),
                ],
            );
        }
        if slot != "b" {
            slot = "a".into();
        }
        fs::write(
            &self.cmdline,
            format!("console=ttyAMA0 root=PARTLABEL=rootfs_{slot} ota.slot={slot} quiet\n"),
        )
        .unwrap();
        let _ = writeln!(self.log, "## power on: U-Boot boots slot {slot}");
        slot.chars().next().unwrap()
    }

    // ---- Android bootctrl (raw bytes) ----

    fn bootctrl(&self) -> [u8; 32] {
        let mut f = fs::File::open(&self.disk).unwrap();
        f.seek(SeekFrom::Start(self.misc_offset + 2048)).unwrap();
        let mut b = [0u8; 32];
        f.read_exact(&mut b).unwrap();
        b
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
        let slot = ab_select(&mut b);
        let mut f = fs::OpenOptions::new().write(true).open(&self.disk).unwrap();
        f.seek(SeekFrom::Start(self.misc_offset + 2048)).unwrap();
        f.write_all(&b).unwrap();
        match slot {
            Some(i) => {
                let c = (b'a' + i as u8) as char;
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

/// U-Boot `ab_select_slot` (boot/android_ab.c) on the raw block: among slots
/// with tries left and no verity error, the highest (priority, successful,
/// tries) wins, lower index on ties; an unconfirmed winner loses one try.
fn ab_select(b: &mut [u8; 32]) -> Option<usize> {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    assert_eq!(
        u32::from_le_bytes(b[28..32].try_into().unwrap()),
        crc.checksum(&b[..28])
    );
    let key = |b: &[u8; 32], i: usize| {
        let x = b[12 + 2 * i];
        (x & 0x0f, x >> 7, (x >> 4) & 7)
    };
    let mut best: Option<usize> = None;
    for i in 0..usize::from(b[9] & 7) {
        let (_, _, tries) = key(b, i);
        if tries == 0 || b[13 + 2 * i] & 1 != 0 {
            continue;
        }
        if best.is_none_or(|j| key(b, i) > key(b, j)) {
            best = Some(i);
        }
    }
    let i = best?;
    if b[12 + 2 * i] & 0x80 == 0 {
        b[12 + 2 * i] -= 0x10;
    }
    b[0..4].copy_from_slice(&[b'a' + i as u8, 0, 0, 0]);
    let c = crc.checksum(&b[..28]);
    b[28..32].copy_from_slice(&c.to_le_bytes());
    Some(i)
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
    let before = fs::read(&d.disk).unwrap();
    assert_eq!(d.agent(&["mark-good"]), 1);
    assert!(
        d.log.contains("50-broken") && d.log.contains("status 7"),
        "{}",
        d.log
    );
    assert!(
        fs::read(&d.disk).unwrap() == before,
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
    let mut f = fs::OpenOptions::new().write(true).open(&d.disk).unwrap();
    f.seek(SeekFrom::Start(d.misc_offset + 2048 + 12)).unwrap();
    f.write_all(&[0x00]).unwrap();
    drop(f);
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
