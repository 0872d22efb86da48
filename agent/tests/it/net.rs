//! Downloads against a real nginx (Range, ETag, If-Range as nginx implements
//! them), through a fault-injecting proxy, over HTTPS with a CA made by
//! `openssl`, and the `check`/`update`/`daemon` commands end to end.
//!
//! Needs `nginx` (package nginx-light, with the ssl module) and `openssl`
//! (scripts/install-deps). Without them these tests fail; they never skip.
//! Everything listens on 127.0.0.1 on free ports; nginx runs in the
//! foreground from a temporary prefix and is killed when the test ends.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ota_agent::net::fetch::Stats;

use crate::common::disk::{UbootDisk, MIB, UBOOT_AB};
use crate::common::mcu_sim as sim;
use crate::common::nginx;
use crate::common::openssl;
use crate::common::ports::{free_port, free_ports};
use crate::common::release::{one_image_manifest, write_one_image_release};
use crate::common::rng::{pseudo_random, Rng};
use crate::common::tools::{run, text, AGENT};
use ota_agent::net::{
    fetch_to_file, Backoff, Client, Download, NetErrorKind, NetSettings, TlsFiles,
};

/// nginx in the foreground from a temporary prefix: `www/` is its root; an
/// http server, and with `tls` an https server (and an https server that
/// requires a client certificate signed by the CA).
struct Nginx {
    http: nginx::Nginx,
    tls_port: u16,
    mtls_port: u16,
}

/// The plain-HTTP server's port, `www()` and `url()`.
impl std::ops::Deref for Nginx {
    type Target = nginx::Nginx;
    fn deref(&self) -> &nginx::Nginx {
        &self.http
    }
}

/// Certificates made by openssl: a CA, a server cert for IP 127.0.0.1 and
/// DNS `ota.test`, an unrelated CA, and a client cert signed by the CA.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        fs::create_dir_all(dir).unwrap();
        let p = |n: &str| dir.join(n);
        for ca in ["ca", "other-ca"] {
            run(Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args(["-nodes", "-days", "2", "-subj"])
                .arg(format!("/CN=test {ca}"))
                .arg("-keyout")
                .arg(p(&format!("{ca}.key")))
                .arg("-out")
                .arg(p(&format!("{ca}.pem"))));
        }
        for (name, ext) in [
            ("server", "subjectAltName=IP:127.0.0.1,DNS:ota.test"),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            run(Command::new("openssl")
                .args([
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args(["-nodes", "-subj"])
                .arg(format!("/CN={name}"))
                .arg("-keyout")
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.csr"))));
            fs::write(p(&format!("{name}.ext")), format!("{ext}\n")).unwrap();
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(p(&format!("{name}.csr")))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-CAcreateserial")
                .arg("-extfile")
                .arg(p(&format!("{name}.ext")))
                .arg("-out")
                .arg(p(&format!("{name}.pem"))));
        }
        Pki {
            dir: dir.to_owned(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Nginx {
    /// Starts nginx; a port taken between picking and binding (another test
    /// or process got it first) means new ports and another try.
    fn start(pki: Option<&Pki>) -> Nginx {
        for attempt in 1.. {
            match Nginx::try_start(pki) {
                Ok(n) => return n,
                Err(e) if attempt < 5 && e.contains("Address already in use") => {
                    eprintln!("nginx: {e}; new ports");
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn try_start(pki: Option<&Pki>) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("www")).unwrap();
        let [port, tls_port, mtls_port] = free_ports::<3>();
        let mut servers = format!(
            "server {{ listen 127.0.0.1:{port}; root {0}/www; }}\n",
            d.display()
        );
        if let Some(pki) = pki {
            servers.push_str(&format!(
                "server {{ listen 127.0.0.1:{tls_port} ssl; root {www}/www;
                   ssl_certificate {crt}; ssl_certificate_key {key}; }}
                 server {{ listen 127.0.0.1:{mtls_port} ssl; root {www}/www;
                   ssl_certificate {crt}; ssl_certificate_key {key};
                   ssl_client_certificate {ca}; ssl_verify_client on; }}\n",
                www = d.display(),
                crt = pki.path("server.pem").display(),
                key = pki.path("server.key").display(),
                ca = pki.path("ca.pem").display(),
            ));
        }
        let http = format!(
            "types {{ application/octet-stream bin img; application/json json; }}\n{servers}"
        );
        Ok(Nginx {
            http: nginx::Nginx::start(dir, &http, port)?,
            tls_port,
            mtls_port,
        })
    }
}

fn settings(attempts: u32) -> NetSettings {
    NetSettings {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_millis(400),
        max_redirects: 3,
        backoff: Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(40),
            attempts,
        ),
        danger_allow_http: true,
        ..NetSettings::default()
    }
}

fn http_client(attempts: u32) -> Client {
    Client::new(&TlsFiles::default(), settings(attempts)).unwrap()
}

// ---------------------------------------------------------------- the proxy

/// One request as the proxy saw it: its `Range` and `If-Range` headers.
type Seen = (Option<String>, Option<String>);

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Pass,
    /// Answer 503 without asking nginx.
    Unavailable,
    /// Close (FIN) after this many body bytes.
    Cut(u64),
    /// Stop sending after this many body bytes and hold the connection
    /// longer than the client's read timeout.
    Stall(u64),
}

type Hook = Box<dyn FnMut(usize) + Send>;

/// A proxy plan: connection number `conn` is cut after `keep(body length)`
/// body bytes; every other connection passes.
fn cut_once(conn: usize, keep: fn(u64) -> u64) -> impl FnMut(usize, u64) -> Fault + Send + 'static {
    move |n, len| {
        if n == conn {
            Fault::Cut(keep(len))
        } else {
            Fault::Pass
        }
    }
}

/// A fault proxy: forwards to nginx one request per connection (it adds
/// `Connection: close`), counts the body bytes it delivers, records each
/// request's `Range`/`If-Range`, and applies a fault chosen by `plan`.
struct Proxy {
    port: u16,
    body_bytes: Arc<AtomicU64>,
    requests: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

impl Proxy {
    fn start(
        upstream: u16,
        mut plan: impl FnMut(usize, u64) -> Fault + Send + 'static,
        mut after_fault: Hook,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body_bytes = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let (bb, rq, fl) = (body_bytes.clone(), requests.clone(), faults.clone());
        thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(client) = conn else { return };
                // Connections are served one at a time: the client never
                // has two open, and the hook must run before the next one.
                let fault = serve(client, upstream, n, &bb, &rq, &mut plan);
                fl.lock().unwrap().push(fault);
                if !matches!(fault, Fault::Pass) {
                    after_fault(n);
                }
            }
        });
        Proxy {
            port,
            body_bytes,
            requests,
            faults,
        }
    }
    fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }
    fn cuts(&self) -> usize {
        self.faults
            .lock()
            .unwrap()
            .iter()
            .filter(|f| !matches!(f, Fault::Pass))
            .count()
    }
}

fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        head.push(b[0]);
    }
    Some(head)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    n: usize,
    body_bytes: &AtomicU64,
    requests: &Mutex<Vec<Seen>>,
    plan: &mut dyn FnMut(usize, u64) -> Fault,
) -> Fault {
    let Some(req) = read_head(&mut client) else {
        return Fault::Pass;
    };
    let req = String::from_utf8_lossy(&req).into_owned();
    requests
        .lock()
        .unwrap()
        .push((header(&req, "range"), header(&req, "if-range")));
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    let mut fwd: String = req
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    fwd.push_str("Connection: close\r\n\r\n");
    up.write_all(fwd.as_bytes()).unwrap();
    let Some(resp_head) = read_head(&mut up) else {
        return Fault::Pass;
    };
    let len: u64 = header(&String::from_utf8_lossy(&resp_head), "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fault = plan(n, len);
    if let Fault::Unavailable = fault {
        let _ = client.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return fault;
    }
    if client.write_all(&resp_head).is_err() {
        return fault;
    }
    let limit = match fault {
        Fault::Cut(k) | Fault::Stall(k) => k.min(len),
        _ => u64::MAX,
    };
    let mut sent = 0u64;
    let mut buf = [0u8; 16 * 1024];
    while sent < limit {
        let want = buf.len().min((limit - sent) as usize);
        let Ok(got) = up.read(&mut buf[..want]) else {
            break;
        };
        if got == 0 || client.write_all(&buf[..got]).is_err() {
            break;
        }
        sent += got as u64;
        body_bytes.fetch_add(got as u64, Ordering::SeqCst);
    }
    if let Fault::Stall(_) = fault {
        // Silent for longer than the client's read timeout (400 ms).
        thread::sleep(Duration::from_millis(900));
    }
    let _ = client.shutdown(Shutdown::Both);
    fault
}

// ---------------------------------------------------------------- tests

/// nginx really does what the downloader relies on: a strong ETag, 206 with
/// Content-Range for `Range`, 200 when `If-Range` does not match, 416 past
/// the end.
#[test]
fn nginx_serves_etag_range_and_if_range() {
    let nginx = Nginx::start(None);
    let data = pseudo_random(100_000, 1);
    fs::write(nginx.www().join("f.bin"), &data).unwrap();
    let client = http_client(0);
    let mut dl = Download::new(&client, &nginx.url("f.bin"), 0, None).unwrap();
    let mut got = Vec::new();
    dl.read_to_end(&mut got).unwrap();
    assert_eq!(got, data);
    let v = dl.validator().cloned().expect("nginx sends an ETag");
    assert!(matches!(v, ota_agent::net::Validator::Etag(_)), "{v:?}");
    // Resume from the middle with the right validator: exactly the tail.
    let mut dl = Download::new(&client, &nginx.url("f.bin"), 60_000, Some(v.clone())).unwrap();
    let mut tail = Vec::new();
    dl.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &data[60_000..]);
    assert_eq!(dl.stats().received, 40_000);
    // At the end: 416 → complete, nothing received.
    let mut dl = Download::new(&client, &nginx.url("f.bin"), 100_000, Some(v)).unwrap();
    assert_eq!(dl.read(&mut [0u8; 10]).unwrap(), 0);
    // A stale validator: nginx answers 200, the download reports Changed.
    let stale = ota_agent::net::Validator::Etag("\"0-0\"".into());
    let mut dl = Download::new(&client, &nginx.url("f.bin"), 50_000, Some(stale)).unwrap();
    let e = dl.read(&mut [0u8; 10]).unwrap_err();
    let ne = ota_agent::net::fetch::net_error(&e).unwrap();
    assert!(matches!(ne.kind, NetErrorKind::Changed), "{ne}");
    dl.restart();
    let mut all = Vec::new();
    dl.read_to_end(&mut all).unwrap();
    assert_eq!(all, data);
    // 404 is permanent: one request, no retries.
    let client = http_client(5);
    let mut dl = Download::new(&client, &nginx.url("missing.bin"), 0, None).unwrap();
    let e = dl.read(&mut [0u8; 10]).unwrap_err();
    let ne = ota_agent::net::fetch::net_error(&e).unwrap();
    assert!(matches!(ne.kind, NetErrorKind::Status(404)), "{ne}");
    assert_eq!(dl.stats().requests, 1);
}

/// Issue #7: 30 randomized runs through the fault proxy (cuts after random
/// byte counts, stalls past the read timeout, 503s). Each run must end with
/// exactly the served bytes, and the body bytes the proxy delivered must not
/// exceed the image size plus one read buffer per fault.
#[test]
fn fault_proxy_randomized_runs_end_with_exact_bytes() {
    const SIZE: usize = 3 << 20;
    const READ_BUFFER: u64 = 64 * 1024;
    let nginx = Nginx::start(None);
    let data = pseudo_random(SIZE, 7);
    fs::write(nginx.www().join("image.bin"), &data).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for run_no in 0..30u64 {
        let seed = 0x9E37_79B9_7F4A_7C15 ^ (run_no + 1).wrapping_mul(0x1234_5678_9abc_def1);
        let mut rng = Rng(seed);
        let proxy = Proxy::start(
            nginx.port,
            move |_, len| match rng.below(10) {
                0..=2 => Fault::Pass,
                3..=5 => Fault::Unavailable,
                6..=8 => Fault::Cut(rng.below(len + 1)),
                _ => Fault::Stall(rng.below(len + 1)),
            },
            Box::new(|_| {}),
        );
        let dest = out.path().join(format!("run{run_no}.bin"));
        let stats: Stats = fetch_to_file(
            &http_client(12),
            &proxy.url("image.bin"),
            &dest,
            None,
            &mut |_, _| Ok(()),
        )
        .unwrap_or_else(|e| panic!("run {run_no} (seed {seed:#x}): {e}"));
        let got = fs::read(&dest).unwrap();
        assert!(got == data, "run {run_no} (seed {seed:#x}): bytes differ");
        let delivered = proxy.body_bytes.load(Ordering::SeqCst);
        let cuts = proxy.cuts() as u64;
        assert!(
            delivered <= SIZE as u64 + cuts * READ_BUFFER,
            "run {run_no} (seed {seed:#x}): {delivered} body bytes for {SIZE} with {cuts} faults"
        );
        // Every resumed request asked for exactly the bytes not yet held.
        for (range, if_range) in proxy.requests.lock().unwrap().iter() {
            if range.is_some() {
                assert!(if_range.is_some(), "run {run_no}: Range without If-Range");
            }
        }
        report.push((cuts, delivered - SIZE as u64, stats.requests));
    }
    let faults: u64 = report.iter().map(|r| r.0).sum();
    let overhead: u64 = report.iter().map(|r| r.1).sum();
    eprintln!(
        "fault proxy: 30 runs of {SIZE} bytes, {faults} faults, {overhead} body bytes of overhead in total (max {} in one run)",
        report.iter().map(|r| r.1).max().unwrap_or(0)
    );
    assert!(faults >= 30, "the proxy injected only {faults} faults");
}

/// The file changes on the server mid-download (new ETag): the download
/// restarts from 0 and the result is exactly the new file, never a splice.
/// Also across a "power cut": a run that gives up leaves a checkpoint; the
/// next run resumes with If-Range, sees the change and starts over.
#[test]
fn file_changed_mid_download_restarts_never_splices() {
    let nginx = Nginx::start(None);
    let old = pseudo_random(1 << 20, 11);
    let new = pseudo_random((1 << 20) + 4096, 12);
    let path = nginx.www().join("image.bin");
    fs::write(&path, &old).unwrap();
    let out = tempfile::tempdir().unwrap();

    // In one run: the first connection is cut at 300,000 bytes, then the
    // file is replaced before the client reconnects.
    let (p, newc) = (path.clone(), new.clone());
    let proxy = Proxy::start(
        nginx.port,
        cut_once(0, |_| 300_000),
        Box::new(move |_| fs::write(&p, &newc).unwrap()),
    );
    let dest = out.path().join("a.bin");
    let stats = fetch_to_file(
        &http_client(3),
        &proxy.url("image.bin"),
        &dest,
        None,
        &mut |_, _| Ok(()),
    )
    .unwrap();
    assert!(fs::read(&dest).unwrap() == new, "spliced or stale image");
    assert_eq!(stats.restarts, 1);
    let reqs = proxy.requests.lock().unwrap().clone();
    assert_eq!(reqs[1].0.as_deref(), Some("bytes=300000-"), "{reqs:?}");

    // Across runs (one proxy, so the URL stays the same): run 1 gets
    // 200,000 bytes, then only 503s, and gives up.
    fs::write(&path, &old).unwrap();
    let mode = Arc::new(AtomicU64::new(0));
    let m = mode.clone();
    let mut cut_in = u64::MAX;
    let proxy = Proxy::start(
        nginx.port,
        move |_, _| match m.load(Ordering::SeqCst) {
            1 => Fault::Pass,
            phase if phase != cut_in => {
                cut_in = phase;
                Fault::Cut(200_000)
            }
            _ => Fault::Unavailable,
        },
        Box::new(|_| {}),
    );
    let url = proxy.url("image.bin");
    let dest = out.path().join("b.bin");
    let e = fetch_to_file(&http_client(2), &url, &dest, None, &mut |_, _| Ok(())).unwrap_err();
    assert!(e.to_string().contains("gave up"), "{e}");
    assert_eq!(
        fs::metadata(out.path().join("b.bin.part")).unwrap().len(),
        200_000
    );
    // Run 2, same file: resumes at the checkpoint and fetches only the tail.
    mode.store(1, Ordering::SeqCst);
    let first = proxy.requests.lock().unwrap().len();
    let stats = fetch_to_file(&http_client(2), &url, &dest, None, &mut |_, _| Ok(())).unwrap();
    assert!(fs::read(&dest).unwrap() == old);
    assert_eq!(stats.received, old.len() as u64 - 200_000);
    assert_eq!(
        proxy.requests.lock().unwrap()[first].0.as_deref(),
        Some("bytes=200000-")
    );
    // Run 1 again, then the file changes before run 2: a clean restart.
    fs::remove_file(&dest).unwrap();
    mode.store(2, Ordering::SeqCst);
    assert!(fetch_to_file(&http_client(1), &url, &dest, None, &mut |_, _| Ok(())).is_err());
    fs::write(&path, &new).unwrap();
    mode.store(1, Ordering::SeqCst);
    let first = proxy.requests.lock().unwrap().len();
    let stats = fetch_to_file(&http_client(2), &url, &dest, None, &mut |_, _| Ok(())).unwrap();
    assert!(
        fs::read(&dest).unwrap() == new,
        "spliced image after a restart"
    );
    assert_eq!(stats.restarts, 1);
    let reqs = proxy.requests.lock().unwrap()[first..].to_vec();
    assert_eq!(
        reqs.len(),
        1,
        "the 200 answer is used for the restart: {reqs:?}"
    );
    assert_eq!(reqs[0].0.as_deref(), Some("bytes=200000-"));
}

/// A payload whose bytes do not match the signed size/SHA-256 is deleted,
/// not renamed into place.
#[test]
fn expected_hash_mismatch_leaves_nothing() {
    let nginx = Nginx::start(None);
    let data = pseudo_random(50_000, 3);
    fs::write(nginx.www().join("p.bin"), &data).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("p.bin");
    let wrong = ota_agent::bundle::Blob {
        size: 50_000,
        sha256: ota_agent::bundle::Digest::of(b"something else"),
    };
    let fetch = |expected: &ota_agent::bundle::Blob| {
        fetch_to_file(
            &http_client(0),
            &nginx.url("p.bin"),
            &dest,
            Some(expected),
            &mut |_, _| Ok(()),
        )
    };
    let e = fetch(&wrong).unwrap_err();
    assert!(e.to_string().contains("SHA-256"), "{e}");
    assert!(!dest.exists() && !out.path().join("p.bin.part").exists());
    let right = ota_agent::bundle::Blob {
        size: 50_000,
        sha256: ota_agent::bundle::Digest::of(&data),
    };
    fetch(&right).unwrap();
    assert!(fs::read(&dest).unwrap() == data);
}

fn tls_client(pki: &Pki, ca: &str, client_cert: bool) -> Client {
    let tls = TlsFiles {
        ca_file: Some(pki.path(ca)),
        client_cert: client_cert.then(|| pki.path("client.pem")),
        client_key: client_cert.then(|| pki.path("client.key")),
    };
    let s = NetSettings {
        danger_allow_http: false,
        ..settings(0)
    };
    Client::new(&tls, s).unwrap()
}

/// HTTPS against nginx with a CA made by openssl: the right CA works, the
/// wrong CA and the wrong host name are refused, http:// is refused unless
/// allowed, and the mTLS server needs the client certificate.
#[test]
fn https_pins_the_ca_and_checks_the_name() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(pki_dir.path());
    let nginx = Nginx::start(Some(&pki));
    let data = pseudo_random(200_000, 5);
    fs::write(nginx.www().join("f.bin"), &data).unwrap();
    let url = format!("https://127.0.0.1:{}/f.bin", nginx.tls_port);
    let out = tempfile::tempdir().unwrap();

    let ok = tls_client(&pki, "ca.pem", false);
    fetch_to_file(&ok, &url, &out.path().join("ok.bin"), None, &mut |_, _| {
        Ok(())
    })
    .unwrap();
    assert!(fs::read(out.path().join("ok.bin")).unwrap() == data);
    assert_eq!(ok.get_small(&url, 1 << 20).unwrap(), data);

    let wrong_ca = tls_client(&pki, "other-ca.pem", false);
    let e = wrong_ca.get_small(&url, 1 << 20).unwrap_err();
    assert!(matches!(e.kind, NetErrorKind::Tls(_)), "{e}");
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");

    // `localhost` resolves to 127.0.0.1 but is not in the certificate.
    let wrong_name = format!("https://localhost:{}/f.bin", nginx.tls_port);
    let e = ok.get_small(&wrong_name, 1 << 20).unwrap_err();
    assert!(matches!(e.kind, NetErrorKind::Tls(_)), "{e}");
    assert!(e.to_string().contains("not valid for name"), "{e}");

    let e = ok.get_small(&nginx.url("f.bin"), 1 << 20).unwrap_err();
    assert!(e.to_string().contains("danger_allow_http"), "{e}");

    let mtls = format!("https://127.0.0.1:{}/f.bin", nginx.mtls_port);
    let e = ok.get_small(&mtls, 1 << 20).unwrap_err();
    assert!(matches!(e.kind, NetErrorKind::Status(400)), "{e}");
    let with_cert = tls_client(&pki, "ca.pem", true);
    assert_eq!(with_cert.get_small(&mtls, 1 << 20).unwrap(), data);
}

// ------------------------------------------------- check / update / daemon

fn sign(key: &Path, file: &Path) {
    let mut sig = file.as_os_str().to_owned();
    sig.push(".sig");
    openssl::sign(key, file, Path::new(&sig));
}

struct Device {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Device {
    fn new(server: &str, pki: &Pki, extra: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("keys")).unwrap();
        let key = d.join("release.key");
        openssl::p256_key(&key, &d.join("keys/release.pem"));
        fs::write(d.join("os-release"), "VERSION_ID=1.3.2\n").unwrap();
        fs::write(
            d.join("ota-agent.toml"),
            format!(
                "product = \"rice-cooker\"\ndisk = \"/dev/null\"\ndevice_id = \"rc-0001\"\n\
                 keys_dir = \"{0}/keys\"\nstate_dir = \"{0}/state\"\nversion_file = \"{0}/os-release\"\n\
                 server = \"{server}\"\nca_file = \"{1}\"\nretry_attempts = 0\nread_timeout_s = 5\n{extra}",
                d.display(),
                pki.path("ca.pem").display()
            ),
        )
        .unwrap();
        Device { dir, key }
    }
    /// Points the config (written with `disk = "/dev/null"`) at `disk`.
    fn use_disk(&self, disk: &Path) {
        let cfg = self.dir.path().join("ota-agent.toml");
        let text = fs::read_to_string(&cfg).unwrap().replace(
            "disk = \"/dev/null\"",
            &format!("disk = \"{}\"", disk.display()),
        );
        fs::write(&cfg, text).unwrap();
    }

    fn agent(&self, args: &[&str]) -> Output {
        Command::new(AGENT)
            .arg("--config")
            .arg(self.dir.path().join("ota-agent.toml"))
            .args(args)
            .output()
            .unwrap()
    }
}

/// Publishes release 1.4.0 (one full image) and the stable channel.
fn publish(www: &Path, key: &Path, percent: u8, paused: bool) -> Vec<u8> {
    use ota_agent::bundle::channel::{Channel, Rollout};
    let image = pseudo_random(300_000, 9);
    let m = write_one_image_release(
        &www.join("rice-cooker/releases/1.4.0"),
        key,
        "1.4.0",
        &image,
    );
    let c = Channel {
        product: "rice-cooker".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, 4, 0),
        manifest: "releases/1.4.0/manifest.json".into(),
        rollout: Rollout {
            percent,
            seed: "1.4.0".into(),
            paused,
            lease_until: None,
        },
        created: m.created,
        expires: m.expires,
        reports: None,
    };
    fs::write(www.join("rice-cooker/stable.json"), c.to_json()).unwrap();
    sign(key, &www.join("rice-cooker/stable.json"));
    image
}

/// The command exited with `code` and its stdout contains `needle`.
fn prints(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(needle),
        "{}",
        text(o)
    );
}

/// The command exited with `code` and its stderr contains `needle`.
fn complains(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(needle),
        "{}",
        text(o)
    );
}

/// `check` prints the decision (exit 0 / 3), `update` downloads and verifies
/// the release over HTTPS, a tampered channel file is refused, and `daemon`
/// survives a dead server for a bounded number of cycles.
#[test]
fn check_update_daemon_end_to_end() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(pki_dir.path());
    let nginx = Nginx::start(Some(&pki));
    let server = format!("https://127.0.0.1:{}", nginx.tls_port);
    let dev = Device::new(&server, &pki, "");
    let image = publish(&nginx.www(), &dev.key, 100, false);

    let o = dev.agent(&["check"]);
    prints(&o, 0, "update available: 1.4.0");

    let o = dev.agent(&["update", "--download-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let staged = dev.dir.path().join("state/download");
    assert!(fs::read(staged.join("rootfs.img")).unwrap() == image);
    assert!(staged.join("manifest.json.sig").exists());
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(dev.dir.path().join("state/update-status.json")).unwrap())
            .unwrap();
    assert_eq!(status["phase"], "downloaded", "{status:#}");
    assert_eq!(status["version"], "1.4.0", "{status:#}");
    assert_eq!(status["from_version"], "1.3.2", "{status:#}");
    assert_eq!(status["bytes_done"], image.len() as u64, "{status:#}");
    assert_eq!(status["bytes_total"], image.len() as u64, "{status:#}");
    assert_eq!(status["slot"], serde_json::Value::Null, "{status:#}");

    // Runs never overlap: while another process holds the lock, `update`
    // refuses with one line and changes nothing.
    {
        let f = fs::File::create(dev.dir.path().join("state/update.lock")).unwrap();
        let _held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .unwrap();
        let o = dev.agent(&["update"]);
        complains(&o, 1, "another update is running");
    }

    publish(&nginx.www(), &dev.key, 0, false);
    let o = dev.agent(&["check"]);
    prints(&o, 3, "rolled out to 0%");
    publish(&nginx.www(), &dev.key, 100, true);
    let o = dev.agent(&["check"]);
    prints(&o, 3, "paused");

    // A channel file changed after signing: refused, one line.
    let chan = nginx.www().join("rice-cooker/stable.json");
    let t = fs::read_to_string(&chan)
        .unwrap()
        .replace("\"paused\": true", "\"paused\": false");
    fs::write(&chan, t).unwrap();
    let o = dev.agent(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("channel file: signature"), "{}", text(&o));

    // The daemon against a server that is down: two failed cycles, exit 0.
    let dead = Device::new(
        &format!("https://127.0.0.1:{}", free_port()),
        &pki,
        "poll_interval_s = 1\n",
    );
    let o = dead.agent(&["-v", "daemon", "--max-cycles", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cycle 1 failed") && err.contains("cycle 2 failed"),
        "{}",
        text(&o)
    );
}

/// The installer's payload source: image bytes from the journal's offset,
/// through a cut connection; the validator survives in state_dir, and a
/// re-upload of the same bytes (new ETag) continues at the same offset.
#[test]
fn http_payloads_resume_at_the_installer_offset() {
    use ota_agent::net::payloads::HttpPayloads;
    use ota_agent::state::StateDir;
    let nginx = Nginx::start(None);
    let data = pseudo_random(700_000, 21);
    let rel = nginx.www().join("r");
    fs::create_dir(&rel).unwrap();
    let path = rel.join("rootfs.img");
    fs::write(&path, &data).unwrap();
    let manifest = one_image_manifest("p", semver::Version::new(1, 0, 0), 0, (0, 1), &data);
    let state_tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(state_tmp.path());
    let proxy = Proxy::start(nginx.port, cut_once(0, |_| 50_000), Box::new(|_| {}));
    let client = http_client(3);
    let murl = proxy.url("r/manifest.json");
    let mut p = HttpPayloads::new(&client, &murl, &manifest, Some(&state));
    let mut got = Vec::new();
    p.open_at(0, 100_000)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got == data[100_000..], "wrong bytes from offset 100000");
    let reqs = proxy.requests.lock().unwrap().clone();
    assert_eq!(reqs[0].0.as_deref(), Some("bytes=100000-"));
    assert_eq!(reqs[1].0.as_deref(), Some("bytes=150000-"));
    assert!(reqs[1].1.is_some(), "the resumed request carries If-Range");
    // Written in place at a fixed size (no rename on a vfat state_dir).
    let stored = fs::read(state.validators_path()).unwrap();
    assert_eq!(stored.len(), ota_agent::net::payloads::VALIDATORS_LEN);
    assert!(stored.ends_with(b" ") && stored.starts_with(b"{"));

    // "Power cut", then the same bytes are uploaded again (new mtime → new
    // ETag): a fresh HttpPayloads reads the stored validator, nginx answers
    // 200, and the reader continues at the asked offset.
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(100))
        .unwrap();
    drop(f);
    let mut p = HttpPayloads::new(&client, &murl, &manifest, Some(&state));
    let mut r = p.open_at(0, 300_000).unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert!(got == data[300_000..], "wrong bytes after the re-upload");
    assert_eq!(r.stats().restarts, 1, "{:?}", r.stats());
}

/// `install URL`: a bundle directory on a server (or its manifest.json) is
/// streamed into the inactive slot the way `update` streams a release.
#[test]
fn install_from_a_url_streams_into_the_inactive_slot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uboot = UbootDisk::new(d, 16 * MIB, UBOOT_AB);
    uboot.mkenv("ota_slot=a\nupgrade_available=0\nbootcount=0\nbootlimit=3\naltbootcmd=run swap\n");
    let disk = &uboot.disk;
    let slot_b = |len| uboot.read_at(uboot.offset("rootfs_b"), len);
    let pki = Pki::new(&d.join("pki"));
    let nginx = Nginx::start(None);
    let extra = format!(
        "danger_allow_http = true\nfw_env_config = \"{0}/fw_env.config\"\n\
         reboot_command = [\"sh\", \"-c\", \"echo rebooted >> {0}/reboots\"]\n",
        d.display()
    );
    let dev = Device::new(&format!("http://127.0.0.1:{}", nginx.port), &pki, &extra);
    dev.use_disk(disk);
    let image = publish(&nginx.www(), &dev.key, 100, false);
    let url = format!(
        "http://127.0.0.1:{}/rice-cooker/releases/1.4.0/",
        nginx.port
    );

    // Not a URL the configuration allows: refused before anything changes.
    let https = url.replace("http://", "https://");
    let o = dev.agent(&["--booted-slot", "a", "install", &https]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(slot_b(image.len()) != image);

    let o = dev.agent(&["--booted-slot", "a", "install", &url]);
    prints(&o, 0, "installed rice-cooker 1.4.0 into slot b");
    assert!(
        slot_b(image.len()) == image,
        "slot b does not hold the image"
    );
    assert!(!d.join("reboots").exists(), "rebooted without --reboot");
    // The manifest's own URL names the same bundle; --reboot reboots.
    let o = dev.agent(&[
        "--booted-slot",
        "a",
        "install",
        &format!("{url}manifest.json"),
        "--reboot",
    ]);
    prints(&o, 0, "installed rice-cooker 1.4.0 into slot b");
    assert_eq!(fs::read_to_string(d.join("reboots")).unwrap(), "rebooted\n");
}

/// `update` end to end over HTTP with a cut connection: check, manifest,
/// the payload streamed by the installer into the inactive slot of a GPT
/// disk made by sgdisk (U-Boot env by mkenvimage), activation, the reboot
/// command. Then the same release is not fetched again before the reboot.
#[test]
fn update_streams_into_the_inactive_slot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uboot = UbootDisk::new(d, 16 * MIB, UBOOT_AB);
    uboot.mkenv("ota_slot=a\nupgrade_available=0\nbootcount=0\nbootlimit=3\naltbootcmd=run swap\n");
    let disk = &uboot.disk;
    let pki = Pki::new(&d.join("pki"));
    let nginx = Nginx::start(None);
    // Issue 7: a snapshot of the status file taken by the proxy right
    // after it cut the payload connection (the agent waits for the next
    // connection then; the file is replaced atomically, so it is whole).
    let status_file: Arc<Mutex<Option<PathBuf>>> = Arc::default();
    let snapshot: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let (sf, snap) = (status_file.clone(), snapshot.clone());
    let proxy = Proxy::start(
        nginx.port,
        cut_once(4, |len| len / 2),
        Box::new(move |_| {
            let path = sf.lock().unwrap().clone().unwrap();
            *snap.lock().unwrap() = Some(fs::read(path).unwrap());
        }),
    );
    // The appliance: idle, accepts the reboot notice; it records every frame.
    let mcu = sim::SimMcu::start(sim::Script::states(&[0]));
    let extra = format!(
        "danger_allow_http = true\nfw_env_config = \"{0}/fw_env.config\"\n\
         reboot_command = [\"sh\", \"-c\", \"echo rebooted >> {0}/reboots\"]\n\
         [mcu]\nport = \"{1}\"\nreply_timeout_ms = 3000\n",
        d.display(),
        mcu.path().display()
    );
    let dev = Device::new(&format!("http://127.0.0.1:{}", proxy.port), &pki, &extra);
    dev.use_disk(disk);
    *status_file.lock().unwrap() = Some(dev.dir.path().join("state/update-status.json"));
    let image = publish(&nginx.www(), &dev.key, 100, false);

    let o = dev.agent(&["--booted-slot", "a", "update"]);
    prints(&o, 0, "into slot b");
    assert_eq!(fs::read_to_string(d.join("reboots")).unwrap(), "rebooted\n");
    // The image is in rootfs_b (the third partition, after boot and rootfs_a).
    let slot_b = uboot.read_at(4096 * 512 + MIB + 4 * MIB, image.len());
    assert!(slot_b == image, "slot b does not hold the image");
    assert!(proxy.cuts() >= 1, "the payload connection was not cut");
    // While the payload streamed in, the file said so: downloading into
    // slot b, at most the bytes the proxy let through.
    let snap: serde_json::Value =
        serde_json::from_slice(snapshot.lock().unwrap().as_ref().unwrap()).unwrap();
    assert_eq!(snap["phase"], "downloading", "{snap:#}");
    assert_eq!(snap["version"], "1.4.0", "{snap:#}");
    assert_eq!(snap["from_version"], "1.3.2", "{snap:#}");
    assert_eq!(snap["slot"], "b", "{snap:#}");
    assert_eq!(snap["image"], "rootfs", "{snap:#}");
    assert_eq!(snap["phase_bytes_total"], image.len() as u64, "{snap:#}");
    let done = snap["phase_bytes_done"].as_u64().unwrap();
    assert!(done <= image.len() as u64 / 2, "{snap:#}");
    // Afterwards `status --json` shows the release on its way to the reboot.
    let status = |dev: &Device| -> serde_json::Value {
        let o = dev.agent(&["--booted-slot", "a", "status", "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let st = status(&dev);
    assert_eq!(st["installed_version"], "1.3.2", "{st:#}");
    assert_eq!(st["update"]["phase"], "rebooting", "{st:#}");
    assert_eq!(st["update"]["version"], "1.4.0", "{st:#}");
    assert_eq!(st["update"]["bytes_done"], image.len() as u64, "{st:#}");
    // Installed, waiting for the reboot: the next run fetches nothing.
    let before = proxy.requests.lock().unwrap().len();
    let o = dev.agent(&["--booted-slot", "a", "update"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let after = proxy.requests.lock().unwrap().len();
    assert_eq!(after - before, 2, "only the channel file and its signature");
    // …and the pending update keeps its document (no `checking`/`idle`).
    assert_eq!(status(&dev)["update"], st["update"]);

    // The appliance display followed the same phases, download included
    // (0x02 payload: phase 0 downloading, 1 installing, 2 rebooting,
    // 3 done; percent): installing (verifying), downloading up to 100 %,
    // installing (read-back, activation), done; then the reboot gate.
    let frames = mcu.finish();
    let shown: Vec<(u8, u8)> = frames
        .iter()
        .filter(|(cmd, _)| *cmd == 0x02)
        .map(|(_, p)| (p[0], p[1]))
        .collect();
    let mut phases: Vec<u8> = shown.iter().map(|s| s.0).collect();
    phases.dedup();
    assert_eq!(phases, [1, 0, 1, 3, 2], "{shown:?}");
    let down: Vec<u8> = shown.iter().filter(|s| s.0 == 0).map(|s| s.1).collect();
    assert!(
        down.windows(2).all(|w| w[0] < w[1]) && down.last() == Some(&100),
        "{shown:?}"
    );
    assert_eq!(shown.last(), Some(&(2, 0)), "{shown:?}");
    assert!(
        frames.iter().any(|(cmd, p)| *cmd == 0x03 && p == &[0, 10]),
        "no reboot notice: {frames:?}"
    );

    // The new slot fails its trial boots and the bootloader falls back, as
    // the factory `altbootcmd` does (written with the real fw_setenv). The
    // device runs 1.3.2 again; 1.4.0 must not be installed again.
    let cfg = dev.dir.path().join("ota-agent.toml");
    let cfg_text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, cfg_text.split("[mcu]").next().unwrap()).unwrap();
    uboot.setenv("ota_slot=a\nupgrade_available=0\nbootcount=0\nota_rollback=b:bootlimit\n");
    let before = proxy.requests.lock().unwrap().len();
    let o = dev.agent(&["--booted-slot", "a", "update"]);
    complains(&o, 3, "went back to the old release");
    let after = proxy.requests.lock().unwrap().len();
    assert_eq!(after - before, 2, "only the channel file and its signature");
    assert_eq!(
        fs::read_to_string(dev.dir.path().join("state/rejected-release")).unwrap(),
        "1.4.0\n"
    );
    let st = status(&dev);
    assert_eq!(st["update"]["phase"], "failed", "{st:#}");
    assert_eq!(st["update"]["version"], "1.4.0", "{st:#}");
    assert!(
        st["update"]["error"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{st:#}"
    );
    assert_eq!(st["last_rollback"]["reason"], "bootlimit", "{st:#}");
    // `check` agrees, and later runs keep the failure on record.
    let o = dev.agent(&["--booted-slot", "a", "check"]);
    prints(&o, 3, "1.4.0 was rolled back on this device");
    let o = dev.agent(&["--booted-slot", "a", "update"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(status(&dev)["update"], st["update"]);
}

/// The minimum-progress rule measures the network, not the consumer: a
/// consumer that stops reading for longer than the window (suspended on
/// the control socket, slow flash) does not make the download "stalled";
/// the window starts again at its next read.
#[test]
fn a_paused_consumer_is_not_a_stalled_download() {
    let nginx = Nginx::start(None);
    let data = pseudo_random(4 << 20, 17);
    fs::write(nginx.www().join("big.bin"), &data).unwrap();
    let s = NetSettings {
        min_progress_bytes: 1 << 20,
        min_progress_window: Duration::from_secs(1),
        ..settings(2)
    };
    let client = Client::new(&TlsFiles::default(), s).unwrap();
    let url = nginx.url("big.bin");
    let mut dl = Download::new(&client, &url, 0, None).unwrap();
    let mut got = vec![0u8; 16 << 10];
    dl.read_exact(&mut got).unwrap();
    thread::sleep(Duration::from_millis(2500));
    dl.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("after a pause of the consumer: {e}"));
    assert!(got == data, "{} bytes differ", got.len());
}
