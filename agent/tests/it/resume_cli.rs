//! `ota-agent resume`: an install killed (SIGKILL) in the middle of writing
//! slot b is continued from the source it was started from, with nobody
//! naming it again, at the journal's checkpoint (a byte > 0).
//!
//! The release is a bundle directory made by the real `ota-sign`, served
//! over HTTP on 127.0.0.1 by a small server in this file that can stall the
//! payload after a number of bytes: the agent is killed while it waits for
//! more, after its journal (read with the library) holds a checkpoint past
//! byte 0 — no timing guess. The server answers `Range: bytes=N-` with 206,
//! so the resumed download is seen to start where the slot left off.
//!
//! Needs sgdisk, mkenvimage, fw_printenv (scripts/install-deps).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ota_agent::install::journal::Journal;

use crate::common::device::agent_root;
use crate::common::disk::{UbootDisk, FACTORY_ENV, MIB};
use crate::common::release::sign_bundle;
use crate::common::rng::Rng;
use crate::common::tools::AGENT;

const LAYOUT: &[(&str, u32)] = &[
    ("boot", 1024),
    ("rootfs_a", 16 * 1024),
    ("rootfs_b", 16 * 1024),
    ("data", 0),
];
const IMAGE: usize = 12 * MIB as usize;
/// The first payload response stops here (after the 4 MiB checkpoint).
const STALL_AT: usize = 6 * MIB as usize;

struct Device {
    _dir: tempfile::TempDir,
    root: PathBuf,
    disk: UbootDisk,
    config: PathBuf,
}

impl Device {
    fn new(extra_config: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let disk = UbootDisk::new(&root, 40 * MIB, LAYOUT);
        let reboot = format!(
            "reboot_command = [\"sh\", \"-c\", \"echo rebooted >> {}/reboots\"]\n{extra_config}",
            root.display()
        );
        let config = agent_root(&root, &disk.disk, &disk.fw_env, &reboot);
        disk.mkenv(FACTORY_ENV);
        Device {
            _dir: dir,
            root,
            disk,
            config,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(AGENT);
        c.arg("--config")
            .arg(&self.config)
            .args(["--booted-slot", "a"])
            .args(args);
        c
    }

    fn agent(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    fn slot_b(&self, len: usize) -> Vec<u8> {
        self.disk.read_at(self.disk.offset("rootfs_b"), len)
    }
}

/// What the server saw: (path, first byte asked for) per request.
type Seen = Arc<Mutex<Vec<(String, u64)>>>;

/// Serves `root` on 127.0.0.1, one request per connection. The first
/// response for `stall_path` stops after [`STALL_AT`] bytes and holds the
/// connection until `release` is dropped.
fn serve(root: PathBuf, stall_path: String, release: mpsc::Receiver<()>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let release = Mutex::new(Some(release));
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some((path, from)) = request(&conn) else {
                continue;
            };
            log.lock().unwrap().push((path.clone(), from));
            let Ok(body) = fs::read(root.join(path.trim_start_matches('/'))) else {
                let _ = conn.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let from = (from as usize).min(body.len());
            let head = if from > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{}\r\n",
                    body.len() - 1,
                    body.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\n".to_owned()
            };
            let head = format!(
                "{head}Content-Length: {}\r\nETag: \"v2\"\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                body.len() - from
            );
            if conn.write_all(head.as_bytes()).is_err() {
                continue;
            }
            if path == stall_path {
                if let Some(rx) = release.lock().unwrap().take() {
                    let _ = conn.write_all(&body[from..STALL_AT]);
                    let _ = conn.flush();
                    let _ = rx.recv(); // until the test lets go
                    continue;
                }
            }
            let _ = conn.write_all(&body[from..]);
        }
    });
    (port, seen)
}

/// The request line's path and the `Range: bytes=N-` start (0 without).
fn request(conn: &TcpStream) -> Option<(String, u64)> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut from = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            from = v.trim().trim_end_matches('-').parse().ok()?;
        }
    }
    Some((path, from))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn bundle(dev: &Device, image: &Path) -> PathBuf {
    let out = dev.root.join("www/v2");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    sign_bundle(&dev.root, "2.0.0", image, &out);
    out
}

#[test]
fn an_install_killed_mid_slot_is_resumed_from_its_source_by_resume() {
    let dev = Device::new("danger_allow_http = true\n");
    let v2 = Rng(77).image(IMAGE, 7, 3000);
    let img = dev.root.join("v2.img");
    fs::write(&img, &v2).unwrap();
    let out = bundle(&dev, &img);
    let payload = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| !n.starts_with("manifest.json"))
        .expect("a payload file");
    assert_eq!(fs::read(out.join(&payload)).unwrap(), v2, "uncompressed");
    let (tx, rx) = mpsc::channel();
    let (port, seen) = serve(dev.root.join("www"), format!("/v2/{payload}"), rx);
    let url = format!("http://127.0.0.1:{port}/v2/");

    // Nothing recorded: nothing to resume.
    let o = dev.agent(&["resume"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");

    let mut child = dev
        .command(&["install", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = Journal::new(&dev.state());
    wait_for("a checkpoint past byte 0", || {
        assert!(child.try_wait().unwrap().is_none(), "install ended early");
        journal.load().is_some_and(|r| r.offset > 0)
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let checkpoint = journal.load().unwrap().offset;
    drop(tx); // the stalled response ends
    let src = fs::read_to_string(dev.state().join("install-source")).unwrap();
    assert!(
        src.contains(&format!("source {url}manifest.json\n")),
        "{src}"
    );
    assert_eq!(dev.disk.vars()["ota_slot"], "a");

    // Nobody names the bundle again.
    let o = dev.agent(&["-v", "resume", "--reboot"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("resuming slot b at byte "))
        .unwrap_or_else(|| panic!("no resume line: {err}"));
    let at: u64 = line
        .split("at byte ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        at > 0 && at == checkpoint,
        "resumed at {at}, checkpoint {checkpoint}"
    );
    assert_eq!(dev.slot_b(IMAGE), v2, "slot b holds the image");
    let vars = dev.disk.vars();
    assert_eq!(vars["ota_slot"], "b");
    assert_eq!(vars["upgrade_available"], "1");
    assert_eq!(
        fs::read_to_string(dev.root.join("reboots")).unwrap(),
        "rebooted\n"
    );
    // The resumed download asked for the payload from the checkpoint on.
    let requests = seen.lock().unwrap().clone();
    let payload_requests: Vec<u64> = requests
        .iter()
        .filter(|(p, _)| p.ends_with(&payload))
        .map(|(_, f)| *f)
        .collect();
    assert_eq!(payload_requests, vec![0, checkpoint], "{requests:?}");
    assert!(!dev.state().join("install-source").exists());
    let o = dev.agent(&["resume"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
}

#[test]
fn a_corrupt_source_record_or_status_file_is_set_aside_with_one_warning() {
    let dev = Device::new("");
    fs::write(dev.state().join("install-source"), b"\x00garbage\n").unwrap();
    fs::write(dev.state().join("update-status.json"), b"{not json").unwrap();
    let o = dev.agent(&["resume"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert_eq!(err.lines().count(), 2, "one warning per file: {err}");
    assert!(
        err.contains("install-source: not a valid record; set aside"),
        "{err}"
    );
    assert!(err.contains("update-status.json"), "{err}");
    for name in ["install-source", "update-status.json"] {
        assert!(!dev.state().join(name).exists(), "{name}");
        assert!(
            dev.state().join(format!("{name}.corrupt")).exists(),
            "{name}"
        );
    }
    // Reported once: the next run is quiet.
    let o = dev.agent(&["resume"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}
