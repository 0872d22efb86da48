//! Deadlines and the update lock (issue 15 item 4), against a server that
//! answers at once and then sends its body one byte per second (a tiny
//! loopback TCP server in this file):
//!
//! * `check` ends with one clear error line within `fetch_deadline_s`;
//! * a payload download under the minimum-progress rule stops with a
//!   transient "stalled" error;
//! * while one `install` runs (held up by that server), a second is
//!   refused with `another update is running (pid N, since T)`, N being
//!   the first one's pid.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ota_agent::net::{Client, Download, NetSettings, TlsFiles};

use crate::common::openssl;
use crate::common::tools::{text, AGENT};

/// Serves every request with `200`, a `Content-Length` of 1 MB, and then one
/// body byte per second until the client goes away or the test ends.
struct Trickle {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Trickle {
    fn start() -> Trickle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let flag = flag.clone();
                        std::thread::spawn(move || trickle(s, &flag));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Trickle { port, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn trickle(mut s: TcpStream, stop: &AtomicBool) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The request head (bounded).
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
    // At most a minute of trickle per connection.
    for _ in 0..60 {
        if stop.load(Ordering::Relaxed) || s.write_all(b"x").is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A device directory: a config for `server`, one trusted key (made by
/// openssl), an os-release, a state directory.
struct Device {
    dir: tempfile::TempDir,
}

impl Device {
    fn new(server: &str, extra: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir(p.join("keys")).unwrap();
        openssl::p256_key(&p.join("signing.key"), &p.join("keys/release.pem"));
        std::fs::write(p.join("os-release"), "VERSION_ID=1.3.2\n").unwrap();
        let config = format!(
            "product = \"rice-cooker\"\n\
             disk = \"{p}/disk.img\"\n\
             keys_dir = \"{p}/keys\"\n\
             state_dir = \"{p}/state\"\n\
             version_file = \"{p}/os-release\"\n\
             device_id = \"dev-1\"\n\
             server = \"{server}\"\n\
             danger_allow_http = true\n\
             retry_attempts = 1\n\
             {extra}",
            p = p.display()
        );
        std::fs::write(p.join("ota-agent.toml"), config).unwrap();
        Device { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ota-agent.toml")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(AGENT);
        c.arg("--config").arg(self.config()).args(args);
        c
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }
}

/// A channel server that sends one byte per second: `check` gives up with
/// one line naming the deadline, after the deadline and well before the
/// trickle would have ended.
#[test]
fn slow_channel_server_ends_within_the_fetch_deadline() {
    let server = Trickle::start();
    let dev = Device::new(&server.url(""), "fetch_deadline_s = 3\n");
    let t0 = Instant::now();
    let o = dev.cmd(&["check"]).output().unwrap();
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stable.json: no complete answer within the fetch deadline of 3 s"),
        "{}",
        text(&o)
    );
    assert_eq!(err.lines().count(), 1, "{}", text(&o));
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(15),
        "took {took:?}"
    );
}

/// A payload download that gets 1 byte/s against a rule of 1000 bytes per
/// 2 s stops with a transient "stalled" error after about one window.
#[test]
fn payload_download_below_minimum_progress_stalls() {
    let server = Trickle::start();
    let settings = NetSettings {
        danger_allow_http: true,
        min_progress_bytes: 1000,
        min_progress_window: Duration::from_secs(2),
        ..NetSettings::default()
    };
    let client = Client::new(&TlsFiles::default(), settings).unwrap();
    let mut dl = Download::new(&client, &server.url("rootfs.img"), 0, None).unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let e = dl.read_to_end(&mut got).unwrap_err();
    let took = t0.elapsed();
    let ne = ota_agent::net::fetch::net_error(&e).expect("a NetError");
    assert!(ne.is_transient(), "{ne}");
    let msg = ne.to_string();
    assert!(
        msg.contains("stalled at byte") && msg.contains("fewer than min_progress_bytes = 1000"),
        "{msg}"
    );
    assert!(!got.is_empty() && got.len() < 10, "{} bytes", got.len());
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "took {took:?}"
    );
}

/// Two installs at once: the second is refused with one line naming the
/// first one's pid and start time, and the first goes on (it ends at its
/// own fetch deadline against the slow server).
#[test]
fn second_install_is_refused_while_one_runs() {
    let server = Trickle::start();
    let dev = Device::new(&server.url(""), "fetch_deadline_s = 6\n");
    let url = server.url("releases/1.4.0/");
    let mut first = dev
        .cmd(&["install", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    // Wait (bounded) until the first holds the lock and wrote its record.
    let lock = dev.state().join("state/update.lock");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.starts_with(&format!("{pid} "))) {
        assert!(t0.elapsed() < Duration::from_secs(5), "no lock record");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = dev.cmd(&["install", &url]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "error: another update is running (pid {pid}, since 20"
        )),
        "{}",
        text(&o)
    );
    assert_eq!(err.lines().count(), 1, "{}", text(&o));
    // The first is still running, then ends at its deadline.
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first install ended"
    );
    let o = first.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("manifest.json: no complete answer"),
        "{}",
        text(&o)
    );
    // The lock is free again.
    let o = dev
        .cmd(&["install", "/nonexistent-bundle"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("another update is running"),
        "{}",
        text(&o)
    );
}
