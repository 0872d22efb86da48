//! `ota-agent mcu status` through the real binary against the simulated MCU.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::mcu_sim::{Script, SimMcu};
use crate::common::tools::AGENT;

fn run_status(config: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ota-agent.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(AGENT)
        .arg("--config")
        .arg(&path)
        .args(["mcu", "status"])
        .output()
        .unwrap()
}

fn config_for(port: &Path, reply_timeout_ms: u64) -> String {
    format!(
        "product = \"rice-cooker\"\ndisk = \"/dev/null\"\n[mcu]\nport = \"{}\"\nbaud = 9600\nreply_timeout_ms = {reply_timeout_ms}\nretries = 2\n",
        port.display()
    )
}

#[test]
fn status_prints_the_state() {
    let sim = SimMcu::start(Script::states(&[1]));
    // A generous timeout: answered requests cost only the real latency.
    let out = run_status(&config_for(sim.path(), 3000));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "state: cooking\n");
    assert_eq!(out.status.code(), Some(0), "{:?}", out);
    assert_eq!(sim.finish(), [(0x01, vec![])]);
}

#[test]
fn status_of_a_silent_mcu_fails_in_one_line() {
    let mut script = Script::states(&[0]);
    script.silent = true;
    let sim = SimMcu::start(script);
    let out = run_status(&config_for(sim.path(), 100));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "mcu {}: no reply to get-state after 2 attempt(s) of 100 ms",
            sim.path().display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn status_without_mcu_section_is_an_error() {
    let out = run_status("product = \"p\"\ndisk = \"d\"\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no [mcu] section"), "{err}");
}

#[test]
fn mcu_usage_errors_exit_2() {
    let out = Command::new(AGENT)
        .args(["mcu", "reboot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
