//! nginx (the real server, from scripts/install-deps: nginx-light) in the
//! foreground from a temporary prefix, for the tests that fetch over HTTP.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

/// A running nginx whose prefix is a temporary directory with the
/// document root `www/`; killed on drop.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// Where its plain-HTTP server listens on 127.0.0.1.
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with prefix `dir` (one worker, temporary files in
    /// `dir/tmp`, access log `dir/access.log`, files served as
    /// `application/octet-stream` unless `http` says otherwise), `http`
    /// (`types` and `server` blocks) in its `http` block, and waits for it
    /// (see [`spawn`]); `port` is its plain-HTTP server's.
    pub fn start(dir: tempfile::TempDir, http: &str, port: u16) -> Result<Nginx, String> {
        let d = dir.path().display();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        let conf = format!(
            "worker_processes 1;
             pid {d}/nginx.pid;
             events {{ worker_connections 256; }}
             http {{
               access_log {d}/access.log;
               client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
               uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
               default_type application/octet-stream;
               {http}
             }}\n"
        );
        let child = spawn(dir.path(), &conf, port)?;
        Ok(Nginx { child, dir, port })
    }

    /// The document root.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// The plain-HTTP URL of `path` below the document root.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nginx with `conf` written to `prefix/nginx.conf` (its error log
/// is `prefix/error.log`), and waits (at most 5 s) until it accepts on
/// 127.0.0.1:`port`. The error says why it did not: nginx's error log when
/// it exited (the child is then reaped), or that it never listened (the
/// child is then killed).
fn spawn(prefix: &Path, conf: &str, port: u16) -> Result<Child, String> {
    fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new("nginx")
        .arg("-p")
        .arg(prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .args(["-g", "daemon off; master_process off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start nginx (scripts/install-deps: nginx-light): {e}"));
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "nginx exited {st}: {}",
                fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
            ));
        }
        thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("nginx did not listen on 127.0.0.1:{port}"))
}
