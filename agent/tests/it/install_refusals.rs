//! Every refusal the installer makes before its first write (issue 15,
//! docs/install.md "Refusals"), end to end through `ota-agent install`:
//! GPTs made by `sgdisk` (entries moved afterwards, CRCs fixed, where
//! sgdisk itself refuses the layout), the U-Boot environment by
//! `mkenvimage` in both copies of a redundant `fw_env.config`, bundles by
//! the real `ota-sign`. After each refusal the whole disk image (protective
//! MBR, both GPTs, both env copies, every partition) and every file in
//! `state_dir` are byte-identical to before — except `update-status.json`,
//! the update's status document, which records the failure by design
//! (docs/update-status.md) and is checked to say so.
//!
//! Needs sgdisk, mkenvimage, mkfifo (coreutils), and root for one tmpfs
//! mount (the free-space refusal); fails without them.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::disk::{UbootDisk, ENV_OFFSET, ENV_SIZE, MIB};
use crate::common::tools::{ota_sign_in, tool, AGENT};

const DISK: u64 = 16 * MIB;
const STATUS: &str = "update-status.json";
const FULL_ENV: &str = "ota_slot=a\nupgrade_available=0\nbootcount=0\nbootlimit=3\n\
                        altbootcmd=setenv ota_rollback ${ota_slot}:bootlimit; run swap\n";
/// The usual layout: boot at 2 MiB (after the env copies), two 2 MiB slots,
/// data to the end.
const LAYOUT: &[(&str, u32)] = &[
    ("boot", 1024),
    ("rootfs_a", 2048),
    ("rootfs_b", 2048),
    ("data", 0),
];

/// A device: disk image, env, config, key, and a signed 1 MiB full-image
/// bundle directory `bundle/` for version 2.0.0.
struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    disk: PathBuf,
    config: PathBuf,
}

impl Rig {
    /// `layout` as for `common::disk::gpt_image`; `sgdisk_args`, when given,
    /// partition the disk again by hand instead.
    fn new(layout: &[(&str, u32)], sgdisk_args: Option<&[&str]>, env: &str) -> Rig {
        Rig::with_config(layout, sgdisk_args, env, "")
    }

    /// [`Rig::new`] with `extra` lines appended to the config.
    fn with_config(
        layout: &[(&str, u32)],
        sgdisk_args: Option<&[&str]>,
        env: &str,
        extra: &str,
    ) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let ud = UbootDisk::new(&root, DISK, layout);
        if let Some(args) = sgdisk_args {
            let mut all = vec!["-o"];
            all.extend_from_slice(args);
            all.push(ud.disk.to_str().unwrap());
            tool("sgdisk", &all);
        }
        // Both env copies, as U-Boot's redundant environment has them.
        ud.mkenv(env);
        let first = ud.read_at(ENV_OFFSET, ENV_SIZE);
        ud.write_at(ENV_OFFSET + ENV_SIZE as u64, &first);
        let (disk, fw_env) = (ud.disk.clone(), ud.fw_env.clone());
        let d = disk.to_str().unwrap();
        for sub in ["keys", "state", "health.d"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        fs::write(root.join("os-release"), "VERSION_ID=1.0.0\n").unwrap();
        let config = root.join("ota-agent.toml");
        fs::write(
            &config,
            format!(
                "product = \"rice-cooker\"\ndisk = \"{d}\"\nfw_env_config = \"{}\"\n\
                 state_dir = \"{r}/state\"\nkeys_dir = \"{r}/keys\"\n\
                 version_file = \"{r}/os-release\"\nhealth_dir = \"{r}/health.d\"\n{extra}",
                fw_env.display(),
                r = root.display()
            ),
        )
        .unwrap();
        ota_sign_in(&root, &["keygen", "--out", "release"]);
        fs::rename(root.join("release.pub"), root.join("keys/release.pem")).unwrap();
        let img: Vec<u8> = (0..MIB as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        fs::write(root.join("v2.img"), img).unwrap();
        ota_sign_in(
            &root,
            &[
                "bundle",
                "--product",
                "rice-cooker",
                "--out",
                "bundle",
                "--key",
                "release.key",
                "--version",
                "2.0.0",
                "--image",
                "rootfs=v2.img",
            ],
        );
        Rig {
            _dir: dir,
            root,
            disk,
            config,
        }
    }

    /// `ota-agent ARGS` (booted slot a); must succeed.
    fn agent_ok(&self, args: &[&str]) {
        let out = Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .args(["--booted-slot", "a"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `install bundle` (booted slot a), killed after 30 s.
    fn install(&self) -> (Output, Duration) {
        let started = Instant::now();
        let mut child = Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .args(["--booted-slot", "a", "install"])
            .arg(self.root.join("bundle"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("install still running after 30 s (hang)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (child.wait_with_output().unwrap(), started.elapsed())
    }

    /// The disk and every state file but the status document and the
    /// lock file (it names the holder of the run: pid and start time).
    fn snapshot(&self) -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
        let mut files = BTreeMap::new();
        for e in fs::read_dir(self.root.join("state")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name != STATUS && name != "update.lock" {
                files.insert(name, fs::read(e.path()).unwrap());
            }
        }
        (fs::read(&self.disk).unwrap(), files)
    }

    /// Installs, expects one error line containing `needle`, and that
    /// nothing but the status document changed.
    fn refused(&self, needle: &str) -> String {
        let before = self.snapshot();
        let (out, took) = self.install();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "expected a refusal: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error:")).collect();
        assert_eq!(errors.len(), 1, "not one error line: {err}");
        assert!(errors[0].contains(needle), "{err:?} lacks {needle:?}");
        let after = self.snapshot();
        assert!(before.0 == after.0, "the disk changed ({needle})");
        assert_eq!(before.1, after.1, "state_dir changed ({needle})");
        // Refused by the installer: the status document says so. (A bundle
        // refused while it is opened never reaches the installer and
        // writes no status.)
        if let Ok(status) = fs::read_to_string(self.root.join("state").join(STATUS)) {
            assert!(status.contains("\"failed\""), "{status}");
        }
        eprintln!("refused in {took:?}: {}", errors[0]);
        errors[0].to_string()
    }
}

/// Moves GPT entry `name` of the primary table to LBAs `first..=last` and
/// fixes the entry-array and header CRCs (what sgdisk refuses to write).
fn move_entry(disk: &Path, name: &str, first: u64, last: u64) {
    const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut d = fs::read(disk).unwrap();
    let h = 512;
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let entries = le64(&d, h + 72) as usize * 512;
    let (count, size) = (le32(&d, h + 80) as usize, le32(&d, h + 84) as usize);
    let utf16: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let i = (0..count)
        .find(|i| d[entries + i * size + 56..].starts_with(&utf16))
        .unwrap_or_else(|| panic!("no GPT entry {name}"));
    let e = entries + i * size;
    d[e + 32..e + 40].copy_from_slice(&first.to_le_bytes());
    d[e + 40..e + 48].copy_from_slice(&last.to_le_bytes());
    let crc = CRC32.checksum(&d[entries..entries + count * size]);
    d[h + 88..h + 92].copy_from_slice(&crc.to_le_bytes());
    let hsize = le32(&d, h + 12) as usize;
    d[h + 16..h + 20].fill(0);
    let crc = CRC32.checksum(&d[h..h + hsize]);
    d[h + 16..h + 20].copy_from_slice(&crc.to_le_bytes());
    fs::write(disk, d).unwrap();
}

/// rootfs_b starts at 1 MiB, where the raw env copies are (sgdisk knows
/// nothing of them): both copies would have been overwritten.
#[test]
fn slot_over_the_env_copies_is_refused() {
    let layout = [
        "-n",
        "1:8192:+1M",
        "-c",
        "1:boot",
        "-n",
        "2:0:+2M",
        "-c",
        "2:rootfs_a",
        "-n",
        "3:2048:+2M",
        "-c",
        "3:rootfs_b",
        "-n",
        "4:0:0",
        "-c",
        "4:data",
    ];
    let rig = Rig::new(LAYOUT, Some(&layout), FULL_ENV);
    let e = rig.refused("overlaps the U-Boot env copy 1");
    assert!(
        e.contains("rootfs_b") && e.contains("nothing was written"),
        "{e}"
    );
}

/// rootfs_b moved over the start of `data`.
#[test]
fn slot_over_another_partition_is_refused() {
    let rig = Rig::new(LAYOUT, None, FULL_ENV);
    // Usual layout: rootfs_b is LBAs 10240..=14335, data starts at 14336.
    move_entry(&rig.disk, "rootfs_b", 12288, 16383);
    rig.refused("overlaps partition `data`");
}

/// rootfs_b over the primary GPT, and over the backup GPT at the disk's end.
#[test]
fn slot_over_a_gpt_area_is_refused() {
    let rig = Rig::new(LAYOUT, None, FULL_ENV);
    move_entry(&rig.disk, "rootfs_b", 1, 4096);
    rig.refused("outside the GPT's usable area");
    let rig = Rig::new(&LAYOUT[..3], None, FULL_ENV); // no data partition
    let last = DISK / 512 - 1;
    move_entry(&rig.disk, "rootfs_b", last - 4095, last);
    rig.refused("outside the GPT's usable area");
}

/// The android backend: rootfs_b moved over the start of `misc`, where the
/// bootloader_control block is (byte 2048).
#[test]
fn slot_over_the_bootctrl_block_is_refused() {
    let layout = &[
        ("boot", 1024),
        ("misc", 1024),
        ("rootfs_a", 2048),
        ("rootfs_b", 2048),
        ("data", 0),
    ];
    let rig = Rig::with_config(
        layout,
        None,
        FULL_ENV,
        "bootloader = \"android\"\nmisc_partition = \"misc\"\n",
    );
    rig.agent_ok(&["set-active", "a", "--reinit"]);
    // misc is LBAs 6144..=8191; rootfs_b moves there from 12288.
    move_entry(&rig.disk, "rootfs_b", 6144, 10239);
    rig.refused("overlaps the Android bootloader_control block");
}

/// A valid env (CRC right) without two contract variables.
#[test]
fn env_without_contract_variables_is_refused() {
    let rig = Rig::new(
        LAYOUT,
        None,
        "ota_slot=a\nupgrade_available=0\nbootcount=0\n",
    );
    let e = rig.refused("lacks bootlimit, altbootcmd");
    assert!(e.contains("ota_slot"), "names the whole contract: {e}");
}

/// A payload that is a FIFO: refused at once, not a hang.
#[test]
fn fifo_payload_is_refused_without_waiting() {
    let rig = Rig::new(LAYOUT, None, FULL_ENV);
    let payload = rig.root.join("bundle/rootfs.img");
    fs::remove_file(&payload).unwrap();
    tool("mkfifo", &[payload.to_str().unwrap()]);
    rig.refused("a FIFO, not a regular file");
}

/// A payload symlink leading out of the bundle directory.
#[test]
fn payload_link_out_of_the_bundle_is_refused() {
    let rig = Rig::new(LAYOUT, None, FULL_ENV);
    let payload = rig.root.join("bundle/rootfs.img");
    fs::rename(&payload, rig.root.join("outside.img")).unwrap();
    std::os::unix::fs::symlink("../outside.img", &payload).unwrap();
    rig.refused("leading out of the bundle");
    // A link inside the bundle is fine (refusals are not about links).
    fs::remove_file(&payload).unwrap();
    fs::rename(
        rig.root.join("outside.img"),
        rig.root.join("bundle/real.img"),
    )
    .unwrap();
    std::os::unix::fs::symlink("real.img", &payload).unwrap();
    let (out, _) = rig.install();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `state_dir` on a 64 KiB tmpfs: less than the install needs there.
#[test]
fn full_state_dir_is_refused() {
    let rig = Rig::new(LAYOUT, None, FULL_ENV);
    let state = rig.root.join("state");
    tool(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "ota-test",
            state.to_str().unwrap(),
        ],
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(state.clone());
    let e = rig.refused("bytes free, the install needs");
    assert!(e.contains("state"), "{e}");
}

/// The same rig installs when nothing is wrong (the refusals above are not
/// the rig's fault), and the local payload was hashed before slot b changed.
#[test]
fn the_rig_installs_when_nothing_is_wrong() {
    let rig = Rig::new(LAYOUT, None, FULL_ENV);
    let (out, _) = rig.install();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut f = fs::File::open(&rig.disk).unwrap();
    f.seek(SeekFrom::Start(10240 * 512)).unwrap();
    let mut slot = vec![0u8; MIB as usize];
    f.read_exact(&mut slot).unwrap();
    assert!(slot == fs::read(rig.root.join("v2.img")).unwrap());
}
