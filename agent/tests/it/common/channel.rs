//! A release server and a device for end-to-end runs of the real agent:
//! nginx on 127.0.0.1 serving a `stable` channel published with the real
//! `ota-sign publish`, and a device on release 1.0.0 (slot a) with a GPT
//! disk image and a U-Boot environment (sgdisk, mkenvimage, fw_printenv).
//! Used by the policy and control-socket tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use ota_agent::bundle::Urgency;

use super::disk::{UbootDisk, FACTORY_ENV, MIB, UBOOT_AB};
use super::nginx::Nginx;
use super::openssl;
use super::ports::free_port;
use super::release::one_image_manifest;
use super::rng::pseudo_random;
use super::tools::{ota_sign, run, AGENT};

/// The image size of [`Server::publish`].
pub const IMAGE_LEN: usize = 64 * 1024;

/// nginx serving `www/`, a release key, and releases published on the
/// `stable` channel with the real `ota-sign publish`.
pub struct Server {
    /// The web server.
    pub nginx: Nginx,
    key: PathBuf,
    public: PathBuf,
    _keys: tempfile::TempDir,
}

impl Server {
    /// nginx on a free loopback port.
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// Like [`Server::start`], with `extra` nginx directives in the server
    /// block (`limit_rate 256k;`).
    pub fn start_with(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("www/rice-cooker")).unwrap();
        let port = free_port();
        let http = format!(
            "types {{ application/json json; }}
             server {{ listen 127.0.0.1:{port}; root {}/www; {extra} }}",
            dir.path().display()
        );
        let nginx = Nginx::start(dir, &http, port).unwrap_or_else(|e| panic!("{e}"));
        let keys = tempfile::tempdir().unwrap();
        let (key, public) = (
            keys.path().join("release.key"),
            keys.path().join("release.pem"),
        );
        openssl::p256_key(&key, &public);
        Server {
            nginx,
            key,
            public,
            _keys: keys,
        }
    }

    /// Release `version` (one full image made from `seed`) with `urgency`,
    /// signed, and the channel offering it to every device. Returns the image.
    pub fn publish(&self, version: &str, urgency: Urgency, seed: u64) -> Vec<u8> {
        self.publish_len(version, urgency, seed, IMAGE_LEN)
    }

    /// Like [`Server::publish`] with an image of `len` bytes.
    pub fn publish_len(&self, version: &str, urgency: Urgency, seed: u64, len: usize) -> Vec<u8> {
        let rel = self
            .nginx
            .www()
            .join(format!("rice-cooker/releases/{version}"));
        fs::create_dir_all(&rel).unwrap();
        let image = pseudo_random(len, seed);
        fs::write(rel.join("rootfs.img"), &image).unwrap();
        let now = ota_agent::bundle::time::now();
        let mut m = one_image_manifest(
            "rice-cooker",
            version.parse().unwrap(),
            1,
            (now - 60, now + 86400),
            &image,
        );
        m.urgency = urgency;
        fs::write(rel.join("manifest.json"), m.to_json()).unwrap();
        openssl::sign(
            &self.key,
            &rel.join("manifest.json"),
            &rel.join("manifest.json.sig"),
        );
        run(Command::new(ota_sign())
            .args(["publish", "--key"])
            .arg(&self.key)
            .args(["--channel", "stable", "--manifest"])
            .arg(rel.join("manifest.json"))
            .args(["--rollout", "100", "--out"])
            .arg(self.nginx.www().join("rice-cooker")));
        image
    }

    /// Requests nginx has logged so far for `path`.
    pub fn requests(&self, path: &str) -> usize {
        let log = self.nginx.www().with_file_name("access.log");
        fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(path))
            .count()
    }
}

/// A device on release 1.0.0, slot a, with `policy.d/` and `extra` config.
pub struct Device {
    /// Its directory (config, keys, state, disk image).
    pub dir: tempfile::TempDir,
    /// The disk image.
    pub disk: UbootDisk,
    /// The policy clock (`OTA_AGENT_TEST_NOW`), if faked.
    pub now: Option<&'static str>,
}

impl Device {
    pub fn new(server: &Server, extra: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let disk = UbootDisk::new(p, 12 * MIB, UBOOT_AB);
        disk.mkenv(FACTORY_ENV);
        for sub in ["keys", "policy.d"] {
            fs::create_dir(p.join(sub)).unwrap();
        }
        fs::copy(&server.public, p.join("keys/release.pem")).unwrap();
        fs::write(p.join("os-release"), "VERSION_ID=1.0.0\n").unwrap();
        fs::write(
            p.join("ota-agent.toml"),
            format!(
                "product = \"rice-cooker\"\ndisk = \"{0}/disk.img\"\nfw_env_config = \"{0}/fw_env.config\"\n\
                 device_id = \"dev-1\"\nkeys_dir = \"{0}/keys\"\nstate_dir = \"{0}/state\"\n\
                 version_file = \"{0}/os-release\"\nhealth_dir = \"{0}/health.d\"\n\
                 server = \"{1}\"\ndanger_allow_http = true\nretry_attempts = 1\n\
                 reboot_command = [\"sh\", \"-c\", \"echo rebooted >> {0}/reboots\"]\n{extra}",
                p.display(),
                server.nginx.url(""),
            ),
        )
        .unwrap();
        Device {
            dir,
            disk,
            now: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn hook(&self, name: &str, body: &str) {
        let p = self.path("policy.d").join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn agent(&self, args: &[&str]) -> Output {
        let mut c = Command::new(AGENT);
        c.arg("--config")
            .arg(self.path("ota-agent.toml"))
            .args(["--booted-slot", "a"])
            .args(args)
            .env_remove(ota_agent::update::FAKE_NOW_ENV);
        if let Some(t) = self.now {
            c.env(ota_agent::update::FAKE_NOW_ENV, t);
        }
        c.output().unwrap()
    }

    pub fn slot_b(&self) -> Vec<u8> {
        self.slot_b_len(IMAGE_LEN)
    }

    /// The first `len` bytes of slot b.
    pub fn slot_b_len(&self, len: usize) -> Vec<u8> {
        self.disk.read_at(self.disk.offset("rootfs_b"), len)
    }

    pub fn var(&self, name: &str) -> String {
        self.disk.vars().get(name).cloned().unwrap_or_default()
    }

    pub fn reboots(&self) -> usize {
        fs::read_to_string(self.path("reboots"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    pub fn journal(&self) -> bool {
        ota_agent::install::journal::Journal::new(&self.path("state"))
            .load()
            .is_some()
    }

    /// The fleet reports queued in `state_dir` (the signed JSON lines).
    pub fn reports(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = fs::read_dir(self.path("state/reports")) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "json") {
                    all.push_str(&fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        all
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
