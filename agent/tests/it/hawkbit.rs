//! hawkBit DDI mode (issue 19) against a REAL DDI server: goosebit from
//! PyPI, run by `tests/hawkbit/goosebit-server` (cached venv, settings and
//! SQLite in a temp dir, schema by `aerich upgrade`) on 127.0.0.1. Bundles
//! are registered through our test plugin (tests/hawkbit/ota_goosebit_plugin;
//! goosebit's own upload takes only SWU/RAUC), which also exposes goosebit's
//! own device and rollout records for the assertions.
//!
//! The device is a GPT image with a U-Boot environment (real fw_printenv /
//! fw_setenv), the boot is simulated with U-Boot's documented boot-count
//! rules (common::bootloader), the reboot command only records the call.
//!
//! Needs python3 (venv) and PyPI on the first run (scripts/install-deps
//! prepares the venv); fails without them.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::device::agent_root;
use crate::common::disk::{UbootDisk, FACTORY_ENV, MIB, UBOOT_AB};
use crate::common::ports::free_port;
use crate::common::rng::Rng;
use crate::common::tools::{ota_sign, text, AGENT};

const PART: u64 = 4 * MIB;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/hawkbit/goosebit-server")
}

/// One goosebit process with its own state directory; killed on drop.
struct Goosebit {
    _dir: tempfile::TempDir,
    child: Child,
    port: u16,
    log: PathBuf,
}

/// The venv is created once per test run (tests run in parallel).
static SETUP: Mutex<bool> = Mutex::new(false);

impl Goosebit {
    fn start() -> Goosebit {
        {
            let mut done = SETUP.lock().unwrap_or_else(|e| e.into_inner());
            if !*done {
                let o = Command::new(script()).arg("setup").output().unwrap();
                assert!(o.status.success(), "goosebit setup: {}", text(&o));
                *done = true;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("goosebit.log");
        let child = Command::new(script())
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(dir.path().join("goosebit.err")).unwrap())
            .spawn()
            .unwrap();
        let g = Goosebit {
            _dir: dir,
            child,
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The plugin answers 404 for an unknown device once goosebit is up.
            match ureq::get(&g.url("/plugins/ota_bundle/device/none")).call() {
                Err(ureq::Error::StatusCode(404)) => break,
                _ if Instant::now() > deadline => panic!("goosebit did not start: {}", g.logs()),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        g
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        let err = self.log.with_file_name("goosebit.err");
        format!(
            "{}{}",
            fs::read_to_string(&self.log).unwrap_or_default(),
            fs::read_to_string(err).unwrap_or_default()
        )
    }

    /// Registers `file` as software `version` with a rollout; returns the
    /// software id (goosebit's action id).
    fn upload(&self, file: &Path, version: &str) -> u64 {
        let body = fs::read(file).unwrap();
        let url = self.url(&format!(
            "/plugins/ota_bundle/software?version={version}&filename=bundle-{version}.otab&hw_model=rice-cooker"
        ));
        let mut r = ureq::post(&url).send(&body[..]).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["software_id"].as_u64().unwrap()
    }

    /// goosebit's own records of the device (and the rollouts).
    fn device(&self, id: &str) -> serde_json::Value {
        let mut r = ureq::get(&self.url(&format!("/plugins/ota_bundle/device/{id}")))
            .call()
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }
}

impl Drop for Goosebit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device polling `server` (goosebit or the cutting proxy in front of it).
struct Device {
    _dir: tempfile::TempDir,
    root: PathBuf,
    disk: UbootDisk,
    config: PathBuf,
    slot_offset: [u64; 2],
    booted: &'static str,
}

const ID: &str = "rc-hawkbit-1";

impl Device {
    fn new(server: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let disk = UbootDisk::new(&root, 16 * MIB, UBOOT_AB);
        let slot_offset = [disk.offset("rootfs_a"), disk.offset("rootfs_b")];
        fs::write(root.join("token"), "t0ken-rc-1\n").unwrap();
        // The device trusts a release key made by ota-sign.
        let config = agent_root(
            &root,
            &disk.disk,
            &disk.fw_env,
            &format!(
                "device_id = \"{ID}\"\n\
                 reboot_command = [\"sh\", \"-c\", \"echo rebooted >> {r}/reboots\"]\n\
                 danger_allow_http = true\nretry_attempts = 6\nread_timeout_s = 10\n\
                 [hawkbit]\nurl = \"{server}\"\ntenant = \"DEFAULT\"\n\
                 auth = \"target_token\"\ntoken_file = \"{r}/token\"\npoll_floor_s = 1\n",
                r = root.display()
            ),
        );
        disk.mkenv(FACTORY_ENV);
        Device {
            _dir: dir,
            root,
            disk,
            config,
            slot_offset,
            booted: "a",
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn sign(&self, args: &[&str]) {
        let o = Command::new(ota_sign())
            .current_dir(&self.root)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "ota-sign {args:?}: {}", text(&o));
    }

    /// A single-file bundle of `version` with `image` as rootfs, signed with `key`.
    fn bundle(&self, version: &str, image: &[u8], key: &str) -> PathBuf {
        let img = format!("rootfs-{version}.img");
        fs::write(self.file(&img), image).unwrap();
        let out = format!("b-{version}-{key}");
        let single = format!("{out}.otab");
        self.sign(&[
            "bundle",
            "--key",
            key,
            "--product",
            "rice-cooker",
            "--version",
            version,
            "--security-version",
            "1",
            "--image",
            &format!("rootfs={img}"),
            "--out",
            &out,
            "--single-file",
            &single,
        ]);
        self.file(&single)
    }

    fn agent(&self, args: &[&str]) -> Output {
        Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .args(["--booted-slot", self.booted])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `daemon --max-cycles n`; returns its stderr (the log).
    fn daemon(&self, n: u32) -> String {
        let o = self.agent(&["-v", "daemon", "--max-cycles", &n.to_string()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn slot(&self, i: usize) -> Vec<u8> {
        self.disk.read_at(self.slot_offset[i], PART as usize)
    }

    fn vars(&self) -> BTreeMap<String, String> {
        self.disk.vars()
    }

    fn reboots(&self) -> usize {
        fs::read_to_string(self.file("reboots"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// One power-on under U-Boot's rules; the slot booted becomes `booted`
    /// and its release the os-release `VERSION_ID`.
    fn power_on(&mut self, versions: [&str; 2]) -> &'static str {
        let slot = self.disk.uboot_power_on();
        let (name, v) = if slot.suffix() == "_b" {
            ("b", versions[1])
        } else {
            ("a", versions[0])
        };
        self.booted = name;
        fs::write(self.file("os-release"), format!("VERSION_ID={v}\n")).unwrap();
        name
    }

    fn health(&self, name: &str, exit: i32) {
        let p = self.file("health.d").join(name);
        fs::write(
            &p,
            format!("#!/bin/sh\necho {name} says no >&2\nexit {exit}\n"),
        )
        .unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn image(seed: u64) -> Vec<u8> {
    Rng(seed.wrapping_mul(2_654_435_761) | 1).image(3 * MIB as usize, 7, 3000)
}

fn prefix_eq(slot: &[u8], image: &[u8]) -> bool {
    slot.len() >= image.len() && slot[..image.len()] == *image
}

/// A TCP proxy in front of goosebit that cuts the first `cuts` connections
/// which carry more than `limit` response bytes (only artifact downloads
/// are that large); records what the device asked.
struct CutProxy {
    port: u16,
    requests: Arc<Mutex<String>>,
    to_client: Arc<AtomicUsize>,
}

impl CutProxy {
    fn start(upstream: u16, cuts: usize, limit: usize) -> CutProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(String::new()));
        let to_client = Arc::new(AtomicUsize::new(0));
        let cut_count = Arc::new(AtomicUsize::new(0));
        let (req2, tc2) = (requests.clone(), to_client.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(client) = c else { return };
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_r, mut up_w) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                let reqs = req2.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_r.read(&mut buf) {
                        if n == 0 || up_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        reqs.lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                    let _ = up_w.shutdown(std::net::Shutdown::Write);
                });
                let (mut up_r, mut c_w) = (up, client);
                let (tc, cc) = (tc2.clone(), cut_count.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    let mut sent = 0usize;
                    while let Ok(n) = up_r.read(&mut buf) {
                        if n == 0 || c_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                        tc.fetch_add(n, Ordering::SeqCst);
                        if sent > limit && cc.load(Ordering::SeqCst) < cuts {
                            cc.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                    }
                    let _ = c_w.shutdown(std::net::Shutdown::Both);
                    let _ = up_r.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CutProxy {
            port,
            requests,
            to_client,
        }
    }
}

/// Polls `daemon` one cycle at a time until goosebit's record of the
/// device satisfies `done` (bounded).
fn until(
    dev: &Device,
    gb: &Goosebit,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> String {
    let mut log = String::new();
    for _ in 0..8 {
        log += &dev.daemon(1);
        let d = gb.device(ID);
        if done(&d) {
            return log;
        }
    }
    panic!(
        "{what} never happened; goosebit: {:#}\nagent:\n{log}",
        gb.device(ID)
    );
}

/// A rollout installs over a download cut three times (resumed with
/// Range, never restarted), reports progress, waits for the reboot and for
/// mark-good, and only then reports success: goosebit shows the new
/// version, state Finished and the rollout's success count.
#[test]
fn rollout_installs_resumes_cuts_and_reports_success_only_after_mark_good() {
    let gb = Goosebit::start();
    let proxy = CutProxy::start(gb.port, 3, 700_000);
    let mut dev = Device::new(&format!("http://127.0.0.1:{}", proxy.port));
    let v2 = image(2);
    let bundle = dev.bundle("2.0.0", &v2, "release.key");
    let a_before = dev.slot(0);

    // Registration: goosebit asks for configData first.
    let log = dev.daemon(1);
    assert!(log.contains("configData sent"), "{log}");
    let d = gb.device(ID);
    assert_eq!(d["sw_version"], "1.0.0", "{d:#}");
    assert_eq!(d["last_state"], "REGISTERED", "{d:#}");

    let id = gb.upload(&bundle, "2.0.0");
    let log = until(&dev, &gb, "the install", |_| dev.reboots() > 0);
    assert!(prefix_eq(&dev.slot(1), &v2), "slot b is not 2.0.0\n{log}");
    assert!(dev.slot(0) == a_before, "the booted slot changed");
    let env = dev.vars();
    assert_eq!(
        (env["ota_slot"].as_str(), env["upgrade_available"].as_str()),
        ("b", "1")
    );
    // Three cuts, resumed where they stopped: the bytes sent stay near one copy.
    let size = fs::metadata(&bundle).unwrap().len() as usize;
    let reqs = proxy.requests.lock().unwrap().clone();
    assert!(
        reqs.matches("Range: bytes=").count() >= 3 || reqs.matches("range: bytes=").count() >= 3,
        "{reqs}"
    );
    let sent = proxy.to_client.load(Ordering::SeqCst);
    assert!(
        sent < size + size / 4,
        "{sent} bytes sent for a {size}-byte artifact: restarted?"
    );
    assert!(
        reqs.contains("Authorization: TargetToken t0ken-rc-1")
            || reqs.contains("authorization: TargetToken t0ken-rc-1"),
        "{reqs}"
    );
    // Installed and activated, not yet confirmed: goosebit must not see success.
    let d = gb.device(ID);
    assert_eq!(d["last_state"], "RUNNING", "{d:#}");
    assert_eq!(d["sw_version"], "1.0.0", "{d:#}");
    let log_text = d["last_log"].as_str().unwrap_or("");
    // goosebit reads progress only from `Downloaded N%` detail lines.
    let steps = log_text
        .lines()
        .filter(|l| l.starts_with("Downloaded "))
        .count();
    assert!(steps >= 5 && log_text.contains("Downloaded 100%"), "{d:#}");
    assert!(
        log_text.contains("Writing rootfs") && log_text.contains("Reading back rootfs"),
        "{d:#}"
    );
    assert_eq!(d["progress"], 100, "{d:#}");

    // The reboot: slot b runs 2.0.0 on trial; still no success before mark-good.
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "b");
    let log = dev.daemon(1);
    assert!(log.contains("waiting for mark-good"), "{log}");
    assert_eq!(gb.device(ID)["last_state"], "RUNNING");
    let o = dev.agent(&["mark-good"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = until(&dev, &gb, "success", |d| d["last_state"] == "FINISHED");
    assert!(
        log.contains(&format!("action {id}: closed success queued"))
            && log.contains("1 queued feedback document(s) sent"),
        "{log}"
    );
    let d = gb.device(ID);
    assert_eq!(d["sw_version"], "2.0.0", "{d:#}");
    assert_eq!(d["rollouts"][0]["success_count"], 1, "{d:#}");
    assert_eq!(d["rollouts"][0]["failure_count"], 0, "{d:#}");
    assert!(
        d["last_log"]
            .as_str()
            .unwrap()
            .contains("confirmed by mark-good"),
        "{d:#}"
    );
    // Nothing more to do: no second install, no second reboot.
    dev.daemon(1);
    assert_eq!(dev.reboots(), 1);
}

/// A failing health check blocks mark-good; the bootloader's tries run out
/// and the device comes back on slot a: the failure, with the reason, is
/// reported from the old slot (goosebit: Error, old version, failure count).
#[test]
fn failing_health_check_reports_failure_after_the_rollback() {
    let gb = Goosebit::start();
    let mut dev = Device::new(&gb.url(""));
    let bundle = dev.bundle("2.0.0", &image(3), "release.key");
    dev.daemon(1);
    gb.upload(&bundle, "2.0.0");
    until(&dev, &gb, "the install", |_| dev.reboots() > 0);
    dev.health("50-app", 1);
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "b");
    let o = dev.agent(&["mark-good"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(dev.daemon(1).contains("waiting for mark-good"));
    assert_eq!(gb.device(ID)["last_state"], "RUNNING");
    // The watchdog resets: U-Boot counts boots until it falls back.
    let mut n = 0;
    while dev.power_on(["1.0.0", "2.0.0"]) == "b" {
        n += 1;
        assert!(n < 5, "never fell back");
    }
    // Slot a boots: its boot service confirms it first (as on the QEMU
    // device), which records the rollback and settles the fleet report;
    // the hawkBit feedback sent afterwards must still name the cause.
    // (Slot a's own health check passes: it is the old release.)
    dev.health("50-app", 0);
    let o = dev.agent(&["mark-good"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = until(&dev, &gb, "the failure", |d| d["last_state"] == "ERROR");
    assert!(log.contains("rolled back"), "{log}");
    let d = gb.device(ID);
    assert_eq!(d["sw_version"], "1.0.0", "{d:#}");
    assert_eq!(d["rollouts"][0]["failure_count"], 1, "{d:#}");
    assert_eq!(d["rollouts"][0]["success_count"], 0, "{d:#}");
    let l = d["last_log"].as_str().unwrap();
    assert!(
        l.contains("rolled back") && l.contains("bootlimit"),
        "{d:#}"
    );
    // The reason names the health check that failed (noted by mark-good).
    assert!(l.contains("health check 50-app failed"), "{d:#}");
}

/// An artifact signed by a key the device does not trust: `failure` with
/// the reason, nothing written, nothing activated, no reboot.
#[test]
fn bundle_not_signed_by_a_trusted_key_fails_and_writes_nothing() {
    let gb = Goosebit::start();
    let dev = Device::new(&gb.url(""));
    dev.sign(&["keygen", "--out", "stranger"]);
    let bundle = dev.bundle("2.0.0", &image(4), "stranger.key");
    let (a, b, env) = (dev.slot(0), dev.slot(1), dev.vars());
    dev.daemon(1);
    gb.upload(&bundle, "2.0.0");
    let log = until(&dev, &gb, "the failure", |d| d["last_state"] == "ERROR");
    assert!(
        dev.slot(0) == a && dev.slot(1) == b,
        "a slot changed\n{log}"
    );
    assert_eq!(dev.vars(), env);
    assert_eq!(dev.reboots(), 0);
    let d = gb.device(ID);
    assert!(
        d["last_log"].as_str().unwrap().contains("signature"),
        "{d:#}"
    );
    assert_eq!(d["rollouts"][0]["failure_count"], 1, "{d:#}");
    // The downloaded file is not kept.
    assert!(
        fs::read_dir(dev.file("state/hawkbit/download")).map_or(true, |mut d| d.next().is_none())
    );
}

// ------------------------------------------------------------------------
// DDI fixture: a small server replaying the hawkBit DDI JSON documented by
// Eclipse hawkBit ("DDI API": root resource, deploymentBase, cancelAction)
// for what goosebit does not implement: cancelAction, download-only and the
// maintenance window. Labelled as a fixture; goosebit remains the server for
// everything it implements (above).

/// What the fixture serves; the test changes it between cycles.
#[derive(Clone, Default)]
struct Script {
    /// `deploymentBase` JSON of action 7, if linked.
    deployment: Option<String>,
    /// `cancelAction` 9 stopping action 7 is linked.
    cancel: bool,
    /// Answer the root resource with this status and body instead.
    root_override: Option<(u16, String)>,
    /// Answer every POST/PUT with this status (not recorded as received).
    feedback_status: Option<u16>,
}

struct Fixture {
    port: u16,
    script: Arc<Mutex<Script>>,
    /// (path, body) of every POST/PUT received.
    received: Arc<Mutex<Vec<(String, String)>>>,
}

fn read_request(s: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 || head.len() > 65536 {
            return None;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

impl Fixture {
    /// Serves `artifact` as `bundle.otab`.
    fn start(artifact: Vec<u8>) -> Fixture {
        Fixture::serve(vec![("bundle.otab".into(), artifact)])
    }

    /// Serves each `(name, bytes)` as artifact `name`.
    fn serve(artifacts: Vec<(String, Vec<u8>)>) -> Fixture {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script::default()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (sc, rc) = (script.clone(), received.clone());
        let base = format!("http://127.0.0.1:{port}/DEFAULT/controller/v1/{ID}");
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut s) = c else { return };
                let Some((method, path, body)) = read_request(&mut s) else {
                    continue;
                };
                let sc = sc.lock().unwrap().clone();
                if method != "GET" && sc.feedback_status.is_none() {
                    rc.lock()
                        .unwrap()
                        .push((path.clone(), String::from_utf8_lossy(&body).into_owned()));
                }
                let root_path = format!("/DEFAULT/controller/v1/{ID}");
                let (status, body): (u16, Vec<u8>) = if method != "GET" {
                    (sc.feedback_status.unwrap_or(200), b"{}".to_vec())
                } else if path == root_path {
                    if let Some((st, b)) = sc.root_override {
                        (st, b.into_bytes())
                    } else {
                        let mut links = Vec::new();
                        if sc.deployment.is_some() {
                            links.push(format!(
                                "\"deploymentBase\":{{\"href\":\"{base}/deploymentBase/7?c=-2129030598\"}}"
                            ));
                        }
                        if sc.cancel {
                            links.push(format!(
                                "\"cancelAction\":{{\"href\":\"{base}/cancelAction/9\"}}"
                            ));
                        }
                        let j = format!(
                            "{{\"config\":{{\"polling\":{{\"sleep\":\"00:00:01\"}}}},\"_links\":{{{}}}}}",
                            links.join(",")
                        );
                        (200, j.into_bytes())
                    }
                } else if path.starts_with(&format!("{root_path}/deploymentBase/7")) {
                    match sc.deployment {
                        Some(d) => (200, d.into_bytes()),
                        None => (404, Vec::new()),
                    }
                } else if path == format!("{root_path}/cancelAction/9") {
                    (200, br#"{"id":"9","cancelAction":{"stopId":"7"}}"#.to_vec())
                } else if let Some((_, a)) = artifacts
                    .iter()
                    .find(|(n, _)| path.ends_with(&format!("/artifacts/{n}")))
                {
                    (200, a.clone())
                } else {
                    (404, Vec::new())
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            }
        });
        Fixture {
            port,
            script,
            received,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The documented deploymentBase of action 7 with this artifact.
    fn deployment(
        &self,
        artifact: &[u8],
        download: &str,
        update: &str,
        window: Option<&str>,
    ) -> String {
        self.deployment_of(&[("bundle.otab", artifact)], download, update, window)
    }

    /// The documented deploymentBase of action 7 with these artifacts
    /// (one chunk).
    fn deployment_of(
        &self,
        artifacts: &[(&str, &[u8])],
        download: &str,
        update: &str,
        window: Option<&str>,
    ) -> String {
        let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let arts: Vec<String> = artifacts
            .iter()
            .map(|(name, data)| {
                let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
                let sha1 = hex(
                    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref(),
                );
                format!(
                    r#"{{"filename":"{name}","hashes":{{"sha1":"{sha1}","md5":"0","sha256":"{sha256}"}},
                    "size":{},"_links":{{"download-http":{{"href":"{}/DEFAULT/controller/v1/{ID}/softwaremodules/1/artifacts/{name}"}}}}}}"#,
                    data.len(),
                    self.url()
                )
            })
            .collect();
        let window = window.map_or(String::new(), |w| format!(",\"maintenanceWindow\":\"{w}\""));
        format!(
            r#"{{"id":"7","deployment":{{"download":"{download}","update":"{update}"{window},
            "chunks":[{{"part":"os","version":"2.0.0","name":"rice-os","artifacts":[{}]}}]}},
            "actionHistory":{{"status":"RUNNING","messages":[]}}}}"#,
            arts.join(",")
        )
    }

    fn set(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.script.lock().unwrap());
    }

    /// Feedback documents posted to `path_end`, as `execution/finished`.
    fn feedback(&self, path_end: &str) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.ends_with(path_end))
            .map(|(_, b)| {
                let v: serde_json::Value = serde_json::from_str(b).unwrap();
                format!(
                    "{}/{}",
                    v["status"]["execution"].as_str().unwrap(),
                    v["status"]["result"]["finished"].as_str().unwrap()
                )
            })
            .collect()
    }
}

/// Fixture: download-only is downloaded and verified (`downloaded`), never
/// written; a closed maintenance window downloads and reports `scheduled`,
/// and installs once the window opens; a cancel before activation is
/// accepted, one after activation refused.
#[test]
fn fixture_download_only_maintenance_window_and_cancel() {
    let probe = Device::new("http://127.0.0.1:1");
    let bundle = fs::read(probe.bundle("2.0.0", &image(5), "release.key")).unwrap();
    let fx = Fixture::start(bundle.clone());
    let mut dev = Device::new(&fx.url());
    // The device must trust the key the bundle was signed with.
    fs::copy(probe.file("keys/release.pem"), dev.file("keys/release.pem")).unwrap();
    let (a, b, env) = (dev.slot(0), dev.slot(1), dev.vars());

    // Cancel of an action the device has not started: accepted.
    fx.set(|s| s.cancel = true);
    dev.daemon(1);
    assert_eq!(fx.feedback("/cancelAction/9/feedback"), ["closed/success"]);
    fx.set(|s| s.cancel = false);

    // Download only.
    let d = fx.deployment(&bundle, "forced", "skip", None);
    fx.set(|s| s.deployment = Some(d));
    dev.daemon(1);
    let fb = fx.feedback("/deploymentBase/7/feedback");
    assert_eq!(
        fb.last().map(String::as_str),
        Some("downloaded/none"),
        "{fb:?}"
    );
    assert!(!fb.iter().any(|f| f.starts_with("closed")), "{fb:?}");
    assert!(
        dev.slot(0) == a && dev.slot(1) == b && dev.vars() == env,
        "download-only wrote"
    );

    // Maintenance window unavailable: scheduled, nothing written.
    let d = fx.deployment(&bundle, "forced", "forced", Some("unavailable"));
    fx.set(|s| s.deployment = Some(d));
    dev.daemon(1);
    let fb = fx.feedback("/deploymentBase/7/feedback");
    assert_eq!(
        fb.last().map(String::as_str),
        Some("scheduled/none"),
        "{fb:?}"
    );
    assert!(dev.slot(1) == b && dev.vars() == env && dev.reboots() == 0);

    // The window opens: installed, activated, rebooting.
    let d = fx.deployment(&bundle, "forced", "forced", Some("available"));
    fx.set(|s| s.deployment = Some(d));
    dev.daemon(1);
    assert_eq!(dev.reboots(), 1);
    assert!(prefix_eq(&dev.slot(1), &image(5)));
    assert_eq!(dev.vars()["ota_slot"], "b");

    // Cancel after activation: refused; the action goes on.
    fx.set(|s| s.cancel = true);
    dev.daemon(1);
    assert_eq!(
        fx.feedback("/cancelAction/9/feedback"),
        ["closed/success", "rejected/none"]
    );
    assert_eq!(dev.vars()["ota_slot"], "b");
    assert_eq!(dev.power_on(["1.0.0", "2.0.0"]), "b");
    assert!(dev.agent(&["mark-good"]).status.success());
    fx.set(|s| s.cancel = false);

    // The server refuses feedback for now (503): the final success waits
    // in the device's one report queue, named by its action, counted by
    // `ota-agent report`; the cycle fails and takes nothing new.
    fx.set(|s| s.feedback_status = Some(503));
    let cfg = fs::read_to_string(&dev.config)
        .unwrap()
        .replace("retry_attempts = 6", "retry_attempts = 0");
    fs::write(&dev.config, cfg).unwrap();
    let log = dev.daemon(1);
    assert!(log.contains("hawkbit cycle 1 failed"), "{log}");
    // (The fleet reports of the install wait beside it: this device has
    // no report target.)
    let queued = || -> Vec<String> {
        fs::read_dir(dev.file("state/reports"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect()
    };
    let before = queued();
    let ddi: Vec<_> = before.iter().filter(|n| n.contains("@ddi@")).collect();
    assert_eq!(ddi.len(), 1, "{before:?}");
    assert!(ddi[0].ends_with("@ddi@7.json"), "{before:?}");
    let o = dev.agent(&["report"]);
    let counted = format!("queued {},", before.len());
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with(&counted),
        "{o:?}"
    );
    assert!(!fx
        .feedback("/deploymentBase/7/feedback")
        .contains(&"closed/success".to_owned()));

    // The server is back (and, as hawkBit does once it has the outcome,
    // no longer links the action): the next cycle sends the queued
    // success, once, and no feedback is left queued.
    fx.set(|s| {
        s.feedback_status = None;
        s.deployment = None;
    });
    let log = dev.daemon(1);
    let fb = fx.feedback("/deploymentBase/7/feedback");
    assert_eq!(
        fb.last().map(String::as_str),
        Some("closed/success"),
        "{fb:?}\n{log}"
    );
    assert_eq!(
        fb.iter().filter(|f| *f == "closed/success").count(),
        1,
        "{fb:?}"
    );
    assert!(
        !queued().iter().any(|n| n.contains("@ddi@")),
        "{:?}",
        queued()
    );
    assert_eq!(queued().len(), before.len() - 1);
}

/// Fixture: a bundle directory offered as one chunk of three artifacts
/// (manifest, signature, payload) is downloaded into one directory and
/// installed like `ota-agent install DIR`; the same chunk without the
/// signature is refused with `failure`, nothing written.
#[test]
fn fixture_bundle_directory_as_several_artifacts() {
    let probe = Device::new("http://127.0.0.1:1");
    probe.bundle("2.0.0", &image(6), "release.key");
    let dir = probe.file("b-2.0.0-release.key");
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let fx = Fixture::serve(files.clone());
    let dev = Device::new(&fx.url());
    fs::copy(probe.file("keys/release.pem"), dev.file("keys/release.pem")).unwrap();
    let (a, b, env) = (dev.slot(0), dev.slot(1), dev.vars());

    // Without manifest.json.sig: refused before any download.
    let unsigned: Vec<(&str, &[u8])> = files
        .iter()
        .filter(|(n, _)| n != "manifest.json.sig")
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    fx.set(|s| s.deployment = Some(fx.deployment_of(&unsigned, "forced", "forced", None)));
    let log = dev.daemon(1);
    let fb = fx.feedback("/deploymentBase/7/feedback");
    assert_eq!(
        fb.last().map(String::as_str),
        Some("closed/failure"),
        "{fb:?}\n{log}"
    );
    assert!(log.contains("no manifest.json.sig"), "{log}");
    assert!(dev.slot(0) == a && dev.slot(1) == b && dev.vars() == env && dev.reboots() == 0);

    // The whole directory: installed and activated.
    let all: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    fx.set(|s| s.deployment = Some(fx.deployment_of(&all, "forced", "forced", None)));
    let log = dev.daemon(1);
    assert_eq!(dev.reboots(), 1, "{log}");
    assert!(prefix_eq(&dev.slot(1), &image(6)));
    assert_eq!(dev.vars()["ota_slot"], "b");
    assert!(
        !dev.file("state/hawkbit/download/bundle-7").exists(),
        "download directory left behind"
    );
}

/// A server answering 500 and then garbage: each cycle fails with one
/// log line, the daemon goes on, nothing is written.
#[test]
fn fixture_server_errors_and_garbage_change_nothing() {
    let fx = Fixture::start(Vec::new());
    let dev = Device::new(&fx.url());
    let cfg = fs::read_to_string(&dev.config)
        .unwrap()
        .replace("retry_attempts = 6", "retry_attempts = 0");
    fs::write(&dev.config, cfg).unwrap();
    let (a, b, env) = (dev.slot(0), dev.slot(1), dev.vars());
    fx.set(|s| s.root_override = Some((500, "oops".into())));
    let log = dev.daemon(1);
    assert!(
        log.contains("hawkbit cycle 1 failed") && log.contains("500"),
        "{log}"
    );
    fx.set(|s| s.root_override = Some((200, "{\"_links\": [garbage".into())));
    let log = dev.daemon(1);
    let failed: Vec<_> = log
        .lines()
        .filter(|l| l.contains("cycle 1 failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(failed[0].contains("root resource"), "{log}");
    assert!(dev.slot(0) == a && dev.slot(1) == b && dev.vars() == env);
}
