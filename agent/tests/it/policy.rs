//! Issue 18 items 1-2 end to end (docs/policy.md): the real `ota-agent`
//! against a channel and a release on nginx (127.0.0.1), a GPT disk image
//! with a U-Boot environment (sgdisk, mkenvimage, fw_printenv), and policy
//! hooks written as shell scripts.
//!
//! * Per phase (download, activate, reboot) and per answer (defer, refuse,
//!   timeout, crash): what `check` and `update` print, their exit status,
//!   and the state left behind (slot b unwritten / not activated / no
//!   reboot, `state_dir` records, the fleet report queue).
//! * A maintenance window, at a time faked with `OTA_AGENT_TEST_NOW`:
//!   `check` explains it, `update` downloads nothing (nginx's access log),
//!   and a `critical` release goes through the same closed window.
//!
//! Needs nginx, sgdisk, mkenvimage, fw_printenv, openssl
//! (scripts/install-deps); without them these tests fail, never skip.

use std::fs;
use std::process::{Command, Output};

use ota_agent::bundle::Urgency;

use crate::common::channel::{stderr, stdout, Device, Server, IMAGE_LEN};
use crate::common::tools::{text, AGENT};

/// The hook `10-policy`: logs each offer, then does `answer` in `phase`
/// and proceeds in the others.
fn hook_answering(dev: &Device, phase: &str, answer: &str) {
    dev.hook(
        "10-policy",
        &format!(
            "offer=$(cat)\nprintf '%s\\n' \"$offer\" >> {log}\n\
             case \"$offer\" in *'\"phase\":\"{phase}\"'*) {answer} ;; esac\nexit 0",
            log = dev.path("offers").display()
        ),
    );
}

/// What each answer does in the hook, and what the agent makes of it.
struct Answer {
    name: &'static str,
    script: &'static str,
    /// The agent's line for it (`{phase}` replaced), or its beginning.
    says: &'static str,
    exit: i32,
}

impl Answer {
    fn says(&self, phase: &str) -> String {
        self.says.replace("{phase}", phase)
    }
}

const ANSWERS: &[Answer] = &[
    Answer {
        name: "defer",
        script: "echo '600 cooking'; exit 10",
        says: "hook 10-policy deferred {phase}: cooking (until ",
        exit: 4,
    },
    Answer {
        name: "refuse",
        script: "echo 'not on this model'; exit 20",
        says: "hook 10-policy refused 1.1.0: not on this model",
        exit: 5,
    },
    Answer {
        name: "timeout",
        script: "sleep 30",
        says: "hook 10-policy is broken (did not finish within 1 s; killed); {phase} deferred",
        exit: 4,
    },
    Answer {
        name: "crash",
        script: "kill -SEGV $$",
        says: "hook 10-policy is broken (killed by a signal); {phase} deferred",
        exit: 4,
    },
];

const POLICY: &str = "policy_dir = \"{dir}/policy.d\"\npolicy_timeout_s = 1\n";

fn policy_device(server: &Server) -> Device {
    let dev = Device::new(server, "");
    let extra = POLICY.replace("{dir}", &dev.dir.path().display().to_string());
    let cfg = dev.path("ota-agent.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("{text}{extra}")).unwrap();
    dev
}

/// Checks what `update` printed (its last line) and returned for `a` in `phase`.
fn assert_stopped(o: &Output, phase: &str, a: &Answer) {
    assert_eq!(
        o.status.code(),
        Some(a.exit),
        "{phase}/{}: {}",
        a.name,
        text(o)
    );
    let line = stderr(o).lines().last().unwrap_or("").to_owned();
    let want = format!("ota-agent: {}", a.says(phase));
    assert!(
        line.starts_with(&want),
        "{phase}/{}: {line:?} vs {want:?}",
        a.name
    );
}

/// Checks that `check` explains `a` in `phase` (its second line) and exits
/// with the same status.
fn assert_explained(o: &Output, phase: &str, a: &Answer) {
    assert_eq!(
        o.status.code(),
        Some(a.exit),
        "check {phase}/{}: {}",
        a.name,
        text(o)
    );
    let want = format!("policy: {}", a.says(phase));
    let line = stdout(o).lines().nth(1).unwrap_or("").to_owned();
    assert!(
        line.starts_with(&want),
        "check {phase}/{}: {line:?} vs {want:?}",
        a.name
    );
}

#[test]
fn hooks_decide_each_phase() {
    let server = Server::start();
    let image = server.publish("1.1.0", Urgency::Normal, 11);
    for a in ANSWERS {
        // ---- download: nothing fetched, nothing written.
        let dev = policy_device(&server);
        hook_answering(&dev, "download", a.script);
        assert_explained(&dev.agent(&["check"]), "download", a);
        let before = server.requests("rootfs.img");
        let o = dev.agent(&["update"]);
        assert_stopped(&o, "download", a);
        assert_eq!(
            server.requests("rootfs.img"),
            before,
            "{}: payload fetched",
            a.name
        );
        assert_eq!(
            dev.slot_b(),
            vec![0u8; IMAGE_LEN],
            "{}: slot b written",
            a.name
        );
        assert_eq!(dev.var("ota_slot"), "a");
        assert!(!dev.journal());
        assert_eq!(dev.reboots(), 0);
        let offers = fs::read_to_string(dev.path("offers")).unwrap();
        assert!(offers.contains("\"check_only\":true") && offers.contains("\"check_only\":false"));
        if a.name == "refuse" {
            // Remembered: the release is not offered again, the hook not asked.
            let asked = offers.lines().count();
            let o = dev.agent(&["check"]);
            assert_eq!(o.status.code(), Some(3), "{}", text(&o));
            assert!(
                stdout(&o).contains("no update: 1.1.0 was refused by this device's policy (hook 10-policy refused 1.1.0: not on this model)"),
                "{}",
                text(&o)
            );
            assert_eq!(dev.agent(&["update"]).status.code(), Some(3));
            assert_eq!(
                fs::read_to_string(dev.path("offers"))
                    .unwrap()
                    .lines()
                    .count(),
                asked
            );
            assert!(
                dev.reports().contains("\"event\":\"failed\""),
                "{}",
                dev.reports()
            );
        } else {
            // A second deferred run (its hook names a later "until") adds
            // no second report: the reason leaves the time out.
            std::thread::sleep(std::time::Duration::from_millis(1100));
            assert_eq!(dev.agent(&["update"]).status.code(), Some(4));
            let reports = dev.reports();
            let deferred: Vec<&str> = reports
                .lines()
                .filter(|l| l.contains("\"event\":\"deferred\""))
                .collect();
            assert_eq!(deferred.len(), 1, "{reports}");
            let reason = a.says("download");
            let reason = reason.split(" (until ").next().unwrap();
            assert!(
                deferred[0].contains(&format!("\"reason\":\"{reason}")),
                "{reports}"
            );
            assert!(
                !dev.reports().contains("download-started"),
                "{}",
                dev.reports()
            );
        }

        // ---- activate: slot b written and read back, not activated.
        let dev = policy_device(&server);
        hook_answering(&dev, "activate", a.script);
        let o = dev.agent(&["check"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            stdout(&o).contains("policy: download may proceed now"),
            "{}",
            text(&o)
        );
        let o = dev.agent(&["update"]);
        assert_stopped(&o, "activate", a);
        assert_eq!(dev.slot_b(), image, "{}: slot b", a.name);
        assert_eq!(
            (dev.var("ota_slot"), dev.var("upgrade_available")),
            ("a".into(), "0".into())
        );
        assert_eq!(dev.reboots(), 0);
        if a.name != "refuse" {
            // The written slot waits: `check` now asks about the activation.
            assert!(dev.journal());
            assert_explained(&dev.agent(&["check"]), "activate", a);
            // Once the hook agrees, the next run reads the slot back
            // (no download), activates and reboots.
            let before = server.requests("rootfs.img");
            hook_answering(&dev, "none", "");
            let o = dev.agent(&["update"]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            assert_eq!(server.requests("rootfs.img"), before);
            assert_eq!(dev.var("ota_slot"), "b");
            assert_eq!(dev.reboots(), 1);
        }

        // ---- reboot: activated, no reboot until the hook agrees.
        let dev = policy_device(&server);
        hook_answering(&dev, "reboot", a.script);
        let o = dev.agent(&["update"]);
        assert_stopped(&o, "reboot", a);
        assert_eq!(dev.slot_b(), image);
        assert_eq!(
            (dev.var("ota_slot"), dev.var("upgrade_available")),
            ("b".into(), "1".into())
        );
        assert_eq!(dev.reboots(), 0, "{}: rebooted", a.name);
        if a.name != "refuse" {
            assert_explained(&dev.agent(&["check"]), "reboot", a);
            hook_answering(&dev, "none", "");
            let o = dev.agent(&["update"]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            assert_eq!(dev.reboots(), 1);
        }
    }
}

#[test]
fn a_closed_window_is_explained_and_downloads_nothing_unless_critical() {
    let server = Server::start();
    server.publish("1.1.0", Urgency::Normal, 21);
    let mut dev = Device::new(
        &server,
        "[windows]\ndownload = [\"Mon-Fri 01:00-05:00\"]\nreboot = [\"Sat,Sun 00:00-24:00\"]\nutc_offset = \"+01:00\"\n",
    );
    // Monday 2026-12-07 12:00 UTC = 13:00 at +01:00.
    dev.now = Some("2026-12-07T12:00:00Z");
    let o = dev.agent(&["check"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "update available: 1.1.0 (device bucket 100.00% is inside the rollout)\n\
         policy: download window closed until 2026-12-08T01:00+01:00\n"
            .replace("100.00%", &bucket_of(&o)),
    );
    let o = dev.agent(&["update"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        stderr(&o).ends_with("ota-agent: download window closed until 2026-12-08T01:00+01:00\n"),
        "{}",
        text(&o)
    );
    assert_eq!(server.requests("rootfs.img"), 0);
    assert_eq!(dev.slot_b(), vec![0u8; IMAGE_LEN]);
    // Inside the window (Tuesday 01:30 local) it downloads and installs; the
    // reboot window (weekends) holds the reboot.
    dev.now = Some("2026-12-08T00:30:00Z");
    let o = dev.agent(&["update"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        stderr(&o).ends_with("ota-agent: reboot window closed until 2026-12-12T00:00+01:00\n"),
        "{}",
        text(&o)
    );
    assert_eq!(dev.var("ota_slot"), "b");
    assert_eq!(dev.reboots(), 0);

    // A critical release ignores the closed download window (not the
    // reboot window) on a fresh device.
    server.publish("1.2.0", Urgency::Critical, 22);
    let mut dev = Device::new(
        &server,
        "[windows]\ndownload = [\"Mon-Fri 01:00-05:00\"]\nactivate = [\"Mon-Fri 01:00-05:00\"]\nreboot = [\"Sat,Sun 00:00-24:00\"]\n",
    );
    dev.now = Some("2026-12-07T12:00:00Z");
    let o = dev.agent(&["check"]);
    assert!(
        stdout(&o).contains("policy: download may proceed now"),
        "{}",
        text(&o)
    );
    let o = dev.agent(&["update"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        stderr(&o).ends_with("ota-agent: reboot window closed until 2026-12-12T00:00+00:00\n"),
        "{}",
        text(&o)
    );
    assert_eq!(dev.var("ota_slot"), "b");
    assert_eq!(dev.reboots(), 0);
    // Saturday: the reboot happens at the next run.
    dev.now = Some("2026-12-12T09:00:00Z");
    let o = dev.agent(&["update"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(dev.reboots(), 1);
}

/// The bucket text `check` printed (the device id fixes it; the test does
/// not restate the rollout formula, docs/channel.md).
fn bucket_of(o: &Output) -> String {
    let s = stdout(o);
    let start = s.find("bucket ").unwrap() + 7;
    let end = s[start..].find(' ').unwrap() + start;
    s[start..end].to_owned()
}

/// The example hooks shipped in `examples/policy.d/` (docs/policy.md),
/// run as the agent runs them: the offer on stdin, sysfs and procfs files
/// replaced by test files through their documented variables.
#[test]
fn example_hooks_answer_as_documented() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.d");
    let dir = tempfile::tempdir().unwrap();
    let run_hook = |name: &str, offer: &str, env: &[(&str, &std::path::Path)]| {
        let mut c = Command::new(examples.join(name));
        for (k, v) in env {
            c.env(k, v);
        }
        let o = crate::common::tools::output_with_stdin(&mut c, offer.as_bytes());
        (o.status.code(), stdout(&o))
    };
    let offer = |phase: &str, urgency: &str, mcu: &str| {
        format!("{{\"phase\":\"{phase}\",\"check_only\":false,\"product\":\"rice-cooker\",\"urgency\":\"{urgency}\",\"mcu\":{mcu}}}\n")
    };

    let idle = "10-appliance-idle";
    assert_eq!(
        run_hook(idle, &offer("reboot", "normal", "\"cooking\""), &[]),
        (Some(10), "600 the appliance is cooking\n".into())
    );
    assert_eq!(
        run_hook(idle, &offer("reboot", "normal", "\"idle\""), &[]).0,
        Some(0)
    );
    assert_eq!(
        run_hook(idle, &offer("download", "normal", "null"), &[]).0,
        Some(0)
    );

    let ac = dir.path().join("online");
    let missing = dir.path().join("missing");
    fs::write(&ac, "0\n").unwrap();
    let (code, out) = run_hook(
        "20-ac-power",
        &offer("activate", "critical", "null"),
        &[("AC_ONLINE", &ac)],
    );
    assert_eq!(code, Some(10));
    assert!(out.starts_with("1800 running on battery"), "{out}");
    fs::write(&ac, "1\n").unwrap();
    assert_eq!(
        run_hook(
            "20-ac-power",
            &offer("activate", "normal", "null"),
            &[("AC_ONLINE", &ac)]
        )
        .0,
        Some(0)
    );
    assert_eq!(
        run_hook(
            "20-ac-power",
            &offer("activate", "normal", "null"),
            &[("AC_ONLINE", &missing)]
        )
        .0,
        Some(0)
    );

    let route = dir.path().join("route");
    let table = |iface: &str| {
        format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 {iface}\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth1\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        )
    };
    let metered = "30-unmetered-download";
    fs::write(&route, table("wwan0")).unwrap();
    assert_eq!(
        run_hook(
            metered,
            &offer("download", "normal", "null"),
            &[("ROUTE_FILE", &route)]
        ),
        (Some(10), "3600 metered network (wwan0)\n".into())
    );
    // Critical releases and the other phases go ahead on a metered link.
    assert_eq!(
        run_hook(
            metered,
            &offer("download", "critical", "null"),
            &[("ROUTE_FILE", &route)]
        )
        .0,
        Some(0)
    );
    assert_eq!(
        run_hook(
            metered,
            &offer("reboot", "normal", "null"),
            &[("ROUTE_FILE", &route)]
        )
        .0,
        Some(0)
    );
    fs::write(&route, table("eth0")).unwrap();
    assert_eq!(
        run_hook(
            metered,
            &offer("download", "normal", "null"),
            &[("ROUTE_FILE", &route)]
        )
        .0,
        Some(0)
    );
    fs::write(&route, "Iface\tDestination\n").unwrap();
    assert_eq!(
        run_hook(
            metered,
            &offer("download", "normal", "null"),
            &[("ROUTE_FILE", &route)]
        ),
        (Some(10), "600 no default route\n".into())
    );
}

/// `daemon`: a deferred cycle is not a failure — no warning, exit 0 after
/// `--max-cycles`, nothing fetched or written, one `deferred` report.
#[test]
fn a_deferred_daemon_cycle_ends_quietly() {
    let server = Server::start();
    server.publish("1.1.0", Urgency::Normal, 31);
    let dev = policy_device(&server);
    hook_answering(&dev, "download", "echo 'on battery'; exit 10");
    let before = server.requests("rootfs.img");
    let o = dev.agent(&["daemon", "--max-cycles", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = stderr(&o);
    // Log lines look like `ota-agent: warn: …`; at the default level only
    // warnings and errors are printed, and there are none.
    assert_eq!(err, "", "{}", text(&o));
    assert_eq!(server.requests("rootfs.img"), before);
    assert_eq!(dev.slot_b(), vec![0u8; IMAGE_LEN]);
    // With -v the cycle says why.
    let mut c = Command::new(AGENT);
    c.arg("-v")
        .arg("--config")
        .arg(dev.path("ota-agent.toml"))
        .args(["--booted-slot", "a", "daemon", "--max-cycles", "1"]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stderr(&o).contains("cycle 1: deferred: hook 10-policy deferred download: on battery"),
        "{}",
        text(&o)
    );
    let reports = dev.reports();
    assert_eq!(
        reports.matches("\"event\":\"deferred\"").count(),
        1,
        "{reports}"
    );
}

/// The appliance's state reaches the hooks in the reboot phase: with the
/// simulated MCU cooking, the shipped `10-appliance-idle` defers the
/// reboot; the release stays activated and nothing reboots.
#[test]
fn the_appliance_state_is_in_the_reboot_offer() {
    use crate::common::mcu_sim::{Script, SimMcu};
    let server = Server::start();
    server.publish("1.1.0", Urgency::Normal, 41);
    let sim = SimMcu::start(Script::states(&[1])); // 1 = cooking
    let dev = policy_device(&server);
    let cfg = dev.path("ota-agent.toml");
    let text_cfg = fs::read_to_string(&cfg).unwrap();
    fs::write(
        &cfg,
        format!(
            "{text_cfg}[mcu]\nport = \"{}\"\nbaud = 9600\nreply_timeout_ms = 2000\n",
            sim.path().display()
        ),
    )
    .unwrap();
    dev.hook(
        "05-log",
        &format!("cat >> {}", dev.path("offers").display()),
    );
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policy.d/10-appliance-idle");
    fs::copy(&example, dev.path("policy.d/10-appliance-idle")).unwrap();
    let o = dev.agent(&["update"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "ota-agent: hook 10-appliance-idle deferred reboot: the appliance is cooking (until "
        ),
        "{}",
        text(&o)
    );
    let offers = fs::read_to_string(dev.path("offers")).unwrap();
    let reboot: Vec<&str> = offers
        .lines()
        .filter(|l| l.contains("\"phase\":\"reboot\""))
        .collect();
    assert_eq!(reboot.len(), 1, "{offers}");
    assert!(reboot[0].contains("\"mcu\":\"cooking\""), "{offers}");
    // The other phases do not ask the appliance.
    assert!(
        offers
            .lines()
            .filter(|l| !l.contains("\"phase\":\"reboot\""))
            .all(|l| l.contains("\"mcu\":null")),
        "{offers}"
    );
    assert_eq!(dev.var("ota_slot"), "b");
    assert_eq!(dev.reboots(), 0);
}
