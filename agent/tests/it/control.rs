//! Issue 18 item 3 end to end (docs/local-api.md): the real `ota-agent
//! daemon` with its control socket, updating from nginx on 127.0.0.1 into a
//! GPT disk image with a U-Boot environment, driven by a test client that
//! speaks the protocol over `UnixStream`, by `ota-agent ctl` and by `socat`.
//!
//! The release is 1 MiB served at 256 KiB/s (nginx `limit_rate`), so a
//! download is in progress for about four seconds: long enough to suspend,
//! resume and cancel it from outside.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ota_agent::bundle::Urgency;
use serde_json::Value;

use crate::common::channel::{stderr, stdout, Device, Server};
use crate::common::tools::{text, AGENT};

const LEN: usize = 1 << 20;
const SLOW: &str = "limit_rate 256k;";

/// `ota-agent daemon` in the background (killed when dropped), its log in
/// `daemon.log`.
struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(dev: &Device) -> Daemon {
        Daemon::start_with(dev, &[])
    }

    /// Like [`Daemon::start`], with more `daemon` arguments.
    fn start_with(dev: &Device, args: &[&str]) -> Daemon {
        let log = dev.path("daemon.log");
        let child = Command::new(AGENT)
            .arg("-v")
            .arg("--config")
            .arg(dev.path("ota-agent.toml"))
            .args(["--booted-slot", "a", "daemon"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            socket: dev.path("control.sock"),
            log,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&d.socket).is_err() {
            assert!(Instant::now() < until, "no socket: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn client(&self) -> Client {
        Client::open(&self.socket)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device whose daemon serves `control.sock`; `control` is more of its
/// `[control]` section.
fn device(server: &Server, control: &str) -> Device {
    let dev = Device::new(server, "poll_interval_s = 3600\n");
    let cfg = dev.path("ota-agent.toml");
    let t = fs::read_to_string(&cfg).unwrap();
    let sock = dev.path("control.sock");
    fs::write(
        &cfg,
        format!("{t}[control]\nsocket = \"{}\"\n{control}", sock.display()),
    )
    .unwrap();
    dev
}

/// The test client: the protocol over a `UnixStream`.
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Events read while waiting for a reply.
    events: Vec<Value>,
}

impl Client {
    fn open(path: &Path) -> Client {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Client {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
            next_id: 1,
            events: Vec::new(),
        };
        let hello = c.line();
        assert_eq!(hello["event"], "hello", "{hello}");
        assert_eq!(hello["protocol"], 1, "{hello}");
        c
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        let n = self.reader.read_line(&mut l).unwrap();
        assert!(n > 0, "the daemon closed the connection");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
    }

    /// Sends `{"cmd":…, more}` and returns the reply (its `id` checked).
    fn ask(&mut self, cmd: &str, more: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let sep = if more.is_empty() { "" } else { "," };
        writeln!(self.writer, "{{\"id\":{id},\"cmd\":\"{cmd}\"{sep}{more}}}").unwrap();
        loop {
            let v = self.line();
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            assert_eq!(v["id"], id, "{v}");
            return v;
        }
    }

    fn ok(&mut self, cmd: &str, more: &str) -> Value {
        let v = self.ask(cmd, more);
        assert_eq!(v["ok"], true, "{cmd}: {v}");
        v
    }

    /// Sends a request that must be refused with an error containing `says`.
    fn refused(&mut self, cmd: &str, more: &str, says: &str) {
        let v = self.ask(cmd, more);
        assert_eq!(v["ok"], false, "{cmd}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains(says), "{cmd}: {e:?} lacks {says:?}");
    }

    /// The next event (those read during `ask` first).
    fn event(&mut self) -> Value {
        if !self.events.is_empty() {
            return self.events.remove(0);
        }
        self.line()
    }

    /// Events up to and including the next `outcome`.
    fn until_outcome(&mut self) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let e = self.event();
            let done = e["event"] == "outcome";
            all.push(e);
            if done {
                return all;
            }
        }
    }

    /// Polls `status` until `done` holds for it (at most 20 s).
    fn status_until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.ok("status", "");
            if done(&s) {
                return s;
            }
            assert!(Instant::now() < until, "never {what}: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the loop sleeps between cycles (the first cycle is over).
    fn sleeping(&mut self) -> Value {
        self.status_until("sleeping", |s| {
            s["state"] == "idle" && !s["next_check_s"].is_null()
        })
    }

    /// Waits for a `progress` event in `phase` with some bytes done.
    fn until_progress(&mut self, phase: &str) -> Value {
        loop {
            let e = self.event();
            assert_ne!(e["event"], "outcome", "ended before {phase}: {e}");
            if e["event"] == "progress"
                && e["update"]["phase"] == phase
                && e["update"]["bytes_done"].as_u64() > Some(0)
            {
                return e;
            }
        }
    }
}

fn outcome(events: &[Value]) -> &Value {
    events.last().unwrap()
}

fn ctl(dev: &Device, args: &[&str]) -> Output {
    Command::new(AGENT)
        .arg("--config")
        .arg(dev.path("ota-agent.toml"))
        .arg("ctl")
        .args(args)
        .output()
        .unwrap()
}

/// Without a running daemon `ctl` says so in one line; without `[control]`
/// it names the config; a bad command is a usage error.
#[test]
fn ctl_without_a_daemon_says_so() {
    let server = Server::start();
    let dev = device(&server, "");
    let o = ctl(&dev, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("control.sock") && err.contains("the ota-agent daemon is not running"),
        "{err}"
    );
    let plain = Device::new(&server, "");
    let o = Command::new(AGENT)
        .arg("--config")
        .arg(plain.path("ota-agent.toml"))
        .args(["ctl", "status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("no [control] socket is configured"),
        "{}",
        text(&o)
    );
    for bad in [&["reboot"][..], &["accept"], &["release", "x"], &[]] {
        let o = ctl(&dev, bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
    }
}

/// A subscriber sees every phase of a streamed install, rate-limited
/// progress with a measured rate, and the outcome; the device is then
/// switched to slot b with the release's bytes.
#[test]
fn a_subscriber_follows_an_install_to_its_outcome() {
    let server = Server::start_with(SLOW);
    let dev = device(&server, "");
    let daemon = Daemon::start(&dev);
    let mut c = daemon.client();
    // The first cycle found nothing; subscribe, publish, check now.
    let first = c.sleeping();
    assert_eq!(first["state"], "idle", "{first}");
    assert_eq!(first["consent"], "auto", "{first}");
    // Longer than the 256 KiB chunks take at 256 KiB/s, so the limit binds.
    c.ok("subscribe", "\"interval_ms\":2000");
    let image = server.publish_len("1.1.0", Urgency::Normal, 5, LEN);
    let t0 = Instant::now();
    c.ok("check-now", "");
    let events = c.until_outcome();
    let took = t0.elapsed();
    let o = outcome(&events);
    assert_eq!(o["result"], "installed", "{o} {}", daemon.log());
    assert_eq!(o["version"], "1.1.0", "{o}");
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "phase")
        .filter_map(|e| e["update"]["phase"].as_str())
        .collect();
    for want in [
        "checking",
        "downloading",
        "reading-back",
        "activating",
        "installed",
    ] {
        assert!(phases.contains(&want), "{want} missing from {phases:?}");
    }
    let progress: Vec<&Value> = events.iter().filter(|e| e["event"] == "progress").collect();
    assert!(!progress.is_empty(), "no progress in {events:?}");
    // At most one progress event per interval (plus the first).
    let most = (took.as_millis() / 2000) as usize + 1;
    assert!(
        progress.len() <= most,
        "{} progress events in {took:?}",
        progress.len()
    );
    let rates = progress
        .iter()
        .filter(|e| e["update"]["phase"] == "downloading")
        .filter_map(|e| e["update"]["rate_bps"].as_u64())
        .collect::<Vec<_>>();
    assert!(!rates.is_empty(), "no rate in {progress:?}");
    let done: Vec<u64> = progress
        .iter()
        .filter(|e| e["update"]["phase"] == "downloading")
        .filter_map(|e| e["update"]["bytes_done"].as_u64())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert_eq!(dev.slot_b_len(LEN), image);
    assert_eq!(dev.var("ota_slot"), "b");
    assert_eq!(dev.reboots(), 1);
    let after = c.ok("status", "");
    assert_eq!(after["update"]["phase"], "installed", "{after}");
}

/// `cancel` during the download into slot b: the run ends `cancelled`,
/// slot b stays marked bad and unfinished, the device stays on slot a, no
/// reboot, and the journal is gone (the next install starts over).
#[test]
fn cancel_during_the_write_leaves_slot_b_bad_and_the_device_on_slot_a() {
    let server = Server::start_with(SLOW);
    let image = server.publish_len("1.1.0", Urgency::Normal, 6, LEN);
    let dev = device(&server, "");
    // Published before the start: the first cycle installs at once.
    let daemon = Daemon::start(&dev);
    let mut c = daemon.client();
    c.ok("subscribe", "\"interval_ms\":100");
    c.until_progress("downloading");
    let r = c.ok("cancel", "");
    assert_eq!(r["ok"], true);
    let events = c.until_outcome();
    let o = outcome(&events);
    assert_eq!(o["result"], "cancelled", "{o} {}", daemon.log());
    assert_eq!(o["detail"], "cancelled on the local control socket", "{o}");
    assert_eq!(dev.var("ota_slot"), "a");
    assert!(
        dev.var("ota_bad").contains('b'),
        "ota_bad={:?}",
        dev.var("ota_bad")
    );
    assert_ne!(dev.slot_b_len(LEN), image);
    assert_eq!(dev.reboots(), 0);
    assert!(!dev.journal(), "the journal of a cancelled install is kept");
    // Nothing resumes a cancelled install (the next boot's `resume`).
    let o = dev.agent(&["resume"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "resume after cancel: {}",
        text(&o)
    );
    let s = c.ok("status", "");
    assert_eq!(s["state"], "idle", "{s}");
    assert_eq!(s["update"]["phase"], "failed", "{s}");
    // Nothing is left to cancel.
    c.refused("cancel", "", "nothing to cancel");
}

/// `suspend` holds the write between chunks (no byte moves while
/// suspended), `resume` finishes it; each is announced as a `state` event.
#[test]
fn suspend_holds_the_write_and_resume_finishes_it() {
    let server = Server::start_with(SLOW);
    let image = server.publish_len("1.1.0", Urgency::Normal, 7, LEN);
    let dev = device(&server, "");
    let daemon = Daemon::start(&dev);
    let mut c = daemon.client();
    c.ok("subscribe", "\"interval_ms\":100");
    c.until_progress("downloading");
    c.ok("suspend", "");
    let mut other = daemon.client();
    // Let the chunk in flight land, then nothing may move for 3 s.
    std::thread::sleep(Duration::from_millis(1500));
    let a = other.ok("status", "");
    std::thread::sleep(Duration::from_secs(3));
    let b = other.ok("status", "");
    assert_eq!(a["state"], "suspended", "{a}");
    assert_eq!(
        a["update"]["bytes_done"], b["update"]["bytes_done"],
        "bytes moved while suspended: {a} {b}"
    );
    assert!(a["update"]["bytes_done"].as_u64() < Some(LEN as u64), "{a}");
    other.ok("resume", "");
    let events = c.until_outcome();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "state" && e["state"] == "suspended"),
        "{events:?}"
    );
    assert_eq!(outcome(&events)["result"], "installed", "{}", daemon.log());
    assert_eq!(dev.slot_b_len(LEN), image);
    assert_eq!(dev.var("ota_slot"), "b");
    other.refused("resume", "", "nothing to resume");
}

/// An inhibit defers the download (the policy's message names it, nothing
/// is fetched); releasing it wakes the loop, which installs at once.
#[test]
fn an_inhibit_defers_until_it_is_released() {
    let server = Server::start_with(SLOW);
    let dev = device(&server, "");
    let daemon = Daemon::start(&dev);
    let mut c = daemon.client();
    c.sleeping();
    c.ok("subscribe", "\"interval_ms\":1000");
    // ctl takes the inhibit (the lease lives in the daemon, not the connection).
    let o = ctl(&dev, &["inhibit", "cooking rice", "--lease", "600"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let reply: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let id = reply["inhibit"].as_u64().unwrap();
    let s = c.ok("status", "");
    assert_eq!(s["inhibits"][0]["reason"], "cooking rice", "{s}");
    assert!(s["inhibits"][0]["left_s"].as_u64() > Some(590), "{s}");
    let image = server.publish_len("1.1.0", Urgency::Normal, 8, LEN);
    let before = server.requests("rootfs.img");
    c.ok("check-now", "");
    let events = c.until_outcome();
    let o = outcome(&events);
    assert_eq!(o["result"], "deferred", "{o}");
    let detail = o["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "local control deferred download: inhibit {id} (cooking rice) (until "
        )),
        "{detail}"
    );
    assert_eq!(server.requests("rootfs.img"), before);
    let o = ctl(&dev, &["release", &id.to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let events = c.until_outcome();
    assert_eq!(outcome(&events)["result"], "installed", "{}", daemon.log());
    assert_eq!(dev.slot_b_len(LEN), image);
    let o = ctl(&dev, &["release", &id.to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("no inhibit"), "{}", text(&o));
}

/// `consent = "required"`: the offer is announced and waits; a wrong
/// version is refused; `accept` starts the install. A `decline`d release
/// is remembered and not offered again.
#[test]
fn consent_waits_for_accept_and_decline_is_remembered() {
    let server = Server::start();
    let dev = device(&server, "consent = \"required\"\n");
    let daemon = Daemon::start(&dev);
    let mut c = daemon.client();
    c.sleeping();
    c.ok("subscribe", "");
    let image = server.publish_len("1.1.0", Urgency::Security, 9, 64 << 10);
    c.ok("check-now", "");
    let events = c.until_outcome();
    let offer = events
        .iter()
        .find(|e| e["event"] == "offer")
        .unwrap_or_else(|| panic!("no offer in {events:?}"));
    assert_eq!(offer["offer"]["to_version"], "1.1.0", "{offer}");
    assert_eq!(offer["offer"]["urgency"], "security", "{offer}");
    assert_eq!(offer["offer"]["download_bytes"], 64 << 10, "{offer}");
    let o = outcome(&events);
    assert_eq!(o["result"], "deferred", "{o}");
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .contains("waiting for consent to 1.1.0"),
        "{o}"
    );
    assert_eq!(dev.slot_b_len(64 << 10), vec![0u8; 64 << 10]);
    let s = c.ok("status", "");
    assert_eq!(s["consent"], "required", "{s}");
    assert_eq!(s["offer"]["to_version"], "1.1.0", "{s}");
    c.refused(
        "accept",
        "\"version\":\"9.9.9\"",
        "offered release is 1.1.0",
    );
    c.ok("accept", "\"version\":\"1.1.0\"");
    let events = c.until_outcome();
    assert_eq!(outcome(&events)["result"], "installed", "{}", daemon.log());
    assert_eq!(dev.slot_b_len(64 << 10), image);
    drop(daemon);

    // Declined: refused, remembered in state_dir, not installed.
    let dev = device(&server, "consent = \"required\"\n");
    let daemon = Daemon::start(&dev);
    let mut c = daemon.client();
    let s = c.status_until("offered", |s| !s["offer"].is_null());
    assert_eq!(s["offer"]["to_version"], "1.1.0", "{s} {}", daemon.log());
    // The cycle that offered it is over before the answer's cycle begins.
    c.sleeping();
    c.ok("subscribe", "");
    c.ok("decline", "\"version\":\"1.1.0\"");
    let events = c.until_outcome();
    assert_eq!(outcome(&events)["result"], "refused", "{events:?}");
    let refused = fs::read_to_string(dev.path("state/policy-refused")).unwrap();
    assert!(refused.starts_with("1.1.0\n"), "{refused}");
    assert!(
        refused.contains("declined on the control socket"),
        "{refused}"
    );
    c.ok("check-now", "");
    let events = c.until_outcome();
    assert_eq!(outcome(&events)["result"], "up-to-date", "{events:?}");
    assert_eq!(dev.slot_b_len(64 << 10), vec![0u8; 64 << 10]);
}

/// Malformed and oversized lines, too many clients, and a client that never
/// reads its replies: each gets its answer (or is dropped), the others and
/// the install go on.
#[test]
fn bad_clients_do_not_harm_the_update_or_each_other() {
    let server = Server::start_with(SLOW);
    let image = server.publish_len("1.1.0", Urgency::Normal, 10, LEN);
    let dev = device(&server, "");
    let daemon = Daemon::start(&dev);
    let mut watcher = daemon.client();
    watcher.ok("subscribe", "\"interval_ms\":200");

    // Malformed: an error reply, the connection stays usable.
    let mut c = daemon.client();
    writeln!(c.writer, "{{\"cmd\":").unwrap();
    let e = c.line();
    assert_eq!(e["ok"], false, "{e}");
    assert!(
        e["error"].as_str().unwrap().starts_with("not a request"),
        "{e}"
    );
    c.ok("status", "");

    // Deeply nested JSON (serde_json stops at 128 levels) on the server
    // thread's small stack: an error reply, the daemon lives.
    let deep = format!("{{\"cmd\":{}}}", "[".repeat(4000));
    writeln!(c.writer, "{}", &deep[..4000]).unwrap();
    let e = c.line();
    assert_eq!(e["ok"], false, "{e}");
    c.ok("status", "");

    // Oversized: one error line, then the connection is closed.
    let mut big = daemon.client();
    big.writer.write_all(&vec![b'x'; 5000]).unwrap();
    let e = big.line();
    assert!(
        e["error"].as_str().unwrap().contains("longer than 4096"),
        "{e}"
    );
    let mut rest = String::new();
    assert_eq!(big.reader.read_line(&mut rest).unwrap(), 0, "{rest}");

    // A client that asks and never reads its replies: once its replies fill
    // the socket, the daemon stops reading it, so its writes block (no
    // memory, no CPU spent on it); it is not dropped, and the others are
    // served meanwhile.
    let hog = UnixStream::connect(&daemon.socket).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let burst = "{\"cmd\":\"status\"}\n".repeat(200);
    let mut sent = 0usize;
    let blocked = loop {
        match (&hog).write(burst.as_bytes()) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
        assert!(
            sent < 64 << 20,
            "the daemon read {sent} bytes of requests unanswered"
        );
    };
    assert!(
        matches!(
            blocked.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{blocked}"
    );
    c.ok("status", "");
    assert!(
        !daemon.log().contains("dropped a client"),
        "{}",
        daemon.log()
    );

    // The limit on clients: the 17th is told and closed; the others work.
    // Connected: the watcher, c and the hog (big was closed).
    let mut many: Vec<Client> = (0..13).map(|_| daemon.client()).collect();
    let extra = UnixStream::connect(&daemon.socket).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&extra).read_line(&mut line).unwrap();
    assert!(line.contains("too many clients (16)"), "{line}");
    for m in &mut many {
        m.ok("status", "");
    }
    drop(many);

    let events = watcher.until_outcome();
    assert_eq!(outcome(&events)["result"], "installed", "{}", daemon.log());
    assert_eq!(dev.slot_b_len(LEN), image);
}

/// Concurrent clients on their own threads: every reply reaches the client
/// that asked, with its id, while inhibits come and go.
#[test]
fn concurrent_clients_each_get_their_own_replies() {
    let server = Server::start();
    let dev = device(&server, "");
    let daemon = Daemon::start(&dev);
    let socket = daemon.socket.clone();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = Client::open(&socket);
                for i in 0..50 {
                    let r = c.ok(
                        "inhibit",
                        &format!("\"reason\":\"client {t} round {i}\",\"lease_s\":60"),
                    );
                    let id = r["inhibit"].as_u64().unwrap();
                    c.ok("status", "");
                    c.ok("release", &format!("\"inhibit\":{id}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = daemon.client().ok("status", "");
    assert_eq!(s["inhibits"], serde_json::json!([]), "{s}");
}

/// `socat` as the client: the documented one-liners work.
#[test]
fn socat_speaks_the_protocol() {
    let server = Server::start();
    let dev = device(&server, "");
    let daemon = Daemon::start(&dev);
    daemon.client().sleeping();
    let mut p = Command::new("socat")
        .args(["-t", "2", "-"])
        .arg(format!("UNIX-CONNECT:{}", daemon.socket.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("socat (scripts/install-deps)");
    p.stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\":1,\"cmd\":\"status\"}\n{\"id\":2,\"cmd\":\"inhibit\",\"reason\":\"demo\",\"lease_s\":30}\n")
        .unwrap();
    let o = p.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["event"], "hello", "{out}");
    assert_eq!(
        (lines[1]["id"].clone(), lines[1]["ok"].clone()),
        (1.into(), true.into()),
        "{out}"
    );
    assert_eq!(lines[1]["state"], "idle", "{out}");
    assert_eq!(lines[2]["inhibit"], 1, "{out}");
    let s = daemon.client().ok("status", "");
    assert_eq!(s["inhibits"][0]["reason"], "demo", "{s}");
}

/// The socket's permissions are exactly `mode` and its group `group`; a
/// second daemon on the same socket, an unknown group and a missing
/// directory are each one error line and exit 1; a socket file left by a
/// killed daemon is replaced.
#[test]
fn the_socket_has_its_permissions_and_bad_setups_are_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let server = Server::start();
    let dev = device(&server, "mode = \"0640\"\ngroup = \"nogroup\"\n");
    let mut first = Daemon::start(&dev);
    let md = fs::metadata(&first.socket).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o640);
    assert_eq!(md.gid(), 65534, "nogroup");
    let daemon = |d: &Device| {
        Command::new(AGENT)
            .arg("--config")
            .arg(d.path("ota-agent.toml"))
            .args(["--booted-slot", "a", "daemon", "--max-cycles", "1"])
            .output()
            .unwrap()
    };
    let o = daemon(&dev);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("another ota-agent daemon answers on this socket"),
        "{err}"
    );
    // Killed: its socket file stays and is replaced by the next daemon.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(first.socket.exists());
    let again = Daemon::start(&dev);
    again.client().ok("status", "");
    drop(again);
    for (extra, says) in [
        (
            "group = \"no-such-group\"\n",
            "[control] group \"no-such-group\" does not exist",
        ),
        (
            "socket = \"/nonexistent/dir/control.sock\"\n",
            "/nonexistent/dir/control.sock",
        ),
    ] {
        let d = Device::new(&server, "");
        let cfg = d.path("ota-agent.toml");
        let t = fs::read_to_string(&cfg).unwrap();
        let sock = d.path("control.sock");
        let extra = if extra.starts_with("socket") {
            extra.to_owned()
        } else {
            format!("socket = \"{}\"\n{extra}", sock.display())
        };
        fs::write(&cfg, format!("{t}[control]\n{extra}")).unwrap();
        let o = daemon(&d);
        assert_eq!(o.status.code(), Some(1), "{extra}: {}", text(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!sock.exists());
    }
}

/// A subscriber that never reads is dropped once 64 KiB of events wait for
/// it (here: the events of many short cycles), logged once; the others go on.
#[test]
fn a_subscriber_that_never_reads_is_dropped() {
    let server = Server::start();
    let dev = device(&server, "");
    let daemon = Daemon::start(&dev);
    let mut c = daemon.client();
    c.sleeping();
    let mut deaf = daemon.client();
    deaf.ok("subscribe", "\"interval_ms\":100");
    c.ok("subscribe", "\"interval_ms\":60000");
    // Each cycle (nothing published: the check fails) is ~1.5 KB of events.
    let until = Instant::now() + Duration::from_secs(60);
    let mut cycles = 0;
    while !daemon.log().contains("dropped a client that does not read") {
        assert!(Instant::now() < until, "not dropped after {cycles} cycles");
        c.ok("check-now", "");
        c.until_outcome();
        cycles += 1;
    }
    assert_eq!(daemon.log().matches("dropped a client").count(), 1);
    // Its connection is closed once what it left unread is read.
    deaf.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut deaf.reader, &mut rest).unwrap();
    c.ok("status", "");
}

/// `daemon --max-cycles 1` lets its subscribers have the last outcome
/// before it exits.
#[test]
fn the_last_outcome_reaches_the_subscriber_before_the_daemon_exits() {
    let server = Server::start_with(SLOW);
    server.publish_len("1.1.0", Urgency::Normal, 11, LEN);
    let dev = device(&server, "");
    let mut daemon = Daemon::start_with(&dev, &["--max-cycles", "1"]);
    let mut c = daemon.client();
    c.ok("subscribe", "");
    let events = c.until_outcome();
    assert_eq!(outcome(&events)["result"], "installed", "{events:?}");
    assert!(daemon.child.wait().unwrap().success());
}
