//! Disk images as a device has them, made and read by the real tools: a GPT
//! partitioned by `sgdisk`, read back by `sfdisk --json` (an oracle
//! independent of the agent's GPT reader), and a redundant U-Boot
//! environment before the first partition written by `mkenvimage`, read and
//! changed by libubootenv's `fw_printenv`/`fw_setenv` (conf/fw_env.config
//! layout: two 16 KiB copies at 1 MiB, first partition at 2 MiB).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::tools::tool;

pub const MIB: u64 = 1 << 20;
/// Where the first environment copy starts, and the size of each copy.
pub const ENV_OFFSET: u64 = 0x100000;
pub const ENV_SIZE: usize = 0x4000;

/// The smallest U-Boot A/B layout: (partition name, KiB; 0 = the rest).
pub const UBOOT_AB: &[(&str, u32)] = &[
    ("boot", 1024),
    ("rootfs_a", 4096),
    ("rootfs_b", 4096),
    ("data", 0),
];

/// Partitions `path`, a new image of `size` bytes, with `sgdisk`: `parts`
/// are (name, size in KiB; 0 = the rest) in order, the first one at sector
/// 4096 (2 MiB, after the environment).
pub fn gpt_image(path: &Path, size: u64, parts: &[(&str, u32)]) {
    fs::File::create(path).unwrap().set_len(size).unwrap();
    let mut args = vec!["-o".to_string()];
    for (i, (name, kib)) in parts.iter().enumerate() {
        let n = i + 1;
        let start = if i == 0 { "4096" } else { "0" };
        let end = if *kib == 0 {
            "0".to_string()
        } else {
            format!("+{kib}K")
        };
        args.push("-n".into());
        args.push(format!("{n}:{start}:{end}"));
        args.push("-c".into());
        args.push(format!("{n}:{name}"));
    }
    args.push(path.to_str().unwrap().into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("sgdisk", &args);
}

/// One partition as `sfdisk --json` reports it (byte units).
pub struct Partition {
    pub number: u32,
    pub name: String,
    pub start: u64,
    pub size: u64,
    pub uuid: String,
}

/// The partition table of `disk` per `sfdisk --json`, parsed with serde_json.
pub fn sfdisk(disk: &Path) -> Vec<Partition> {
    let text = tool("sfdisk", &["--json", disk.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["partitiontable"]["sectorsize"], 512);
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let number = node.trim_start_matches(disk.to_str().unwrap());
            Partition {
                number: number.parse().unwrap(),
                name: p["name"].as_str().unwrap().into(),
                start: p["start"].as_u64().unwrap() * 512,
                size: p["size"].as_u64().unwrap() * 512,
                uuid: p["uuid"].as_str().unwrap().to_lowercase(),
            }
        })
        .collect()
}

/// A GPT disk image with a U-Boot environment and its `fw_env.config`, in
/// a directory the caller owns.
pub struct UbootDisk {
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub fw_env: PathBuf,
}

impl UbootDisk {
    /// `dir/disk.img` (`size` bytes, `parts` as for [`gpt_image`]) and
    /// `dir/fw_env.config` naming both environment copies; the environment
    /// area is left empty (see [`UbootDisk::mkenv`]).
    pub fn new(dir: &Path, size: u64, parts: &[(&str, u32)]) -> UbootDisk {
        let disk = dir.join("disk.img");
        gpt_image(&disk, size, parts);
        let fw_env = dir.join("fw_env.config");
        let d = disk.display();
        fs::write(
            &fw_env,
            format!(
                "{d} {ENV_OFFSET:#x} {ENV_SIZE:#x}\n{d} {:#x} {ENV_SIZE:#x}\n",
                ENV_OFFSET + ENV_SIZE as u64
            ),
        )
        .unwrap();
        UbootDisk {
            dir: dir.to_owned(),
            disk,
            fw_env,
        }
    }

    /// Where partition `name` starts, in bytes, per sfdisk.
    pub fn offset(&self, name: &str) -> u64 {
        sfdisk(&self.disk)
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no partition {name}"))
            .start
    }

    /// Writes the environment `text` (`name=value` lines) with
    /// `mkenvimage -r` as the first copy, as a factory image does.
    pub fn mkenv(&self, text: &str) {
        let src = self.dir.join("env.txt");
        let bin = self.dir.join("env.bin");
        fs::write(&src, text).unwrap();
        tool(
            "mkenvimage",
            &[
                "-r",
                "-s",
                &format!("{ENV_SIZE:#x}"),
                "-o",
                bin.to_str().unwrap(),
                src.to_str().unwrap(),
            ],
        );
        let image = fs::read(&bin).unwrap();
        assert_eq!(image.len(), ENV_SIZE);
        self.write_at(ENV_OFFSET, &image);
    }

    /// `fw_printenv` output.
    pub fn printenv(&self) -> String {
        tool("fw_printenv", &["-c", self.fw_env.to_str().unwrap()])
    }

    /// The environment per `fw_printenv`.
    pub fn vars(&self) -> BTreeMap<String, String> {
        self.printenv()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Applies `script` (libubootenv `name=value` lines; an empty value
    /// deletes) with `fw_setenv -s`, as the bootloader's scripts would.
    pub fn setenv(&self, script: &str) {
        let s = self.dir.join("boot.script");
        fs::write(&s, script).unwrap();
        tool(
            "fw_setenv",
            &[
                "-c",
                self.fw_env.to_str().unwrap(),
                "-s",
                s.to_str().unwrap(),
            ],
        );
    }

    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut f = fs::File::open(&self.disk).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut b = vec![0u8; len];
        f.read_exact(&mut b).unwrap();
        b
    }

    pub fn write_at(&self, offset: u64, bytes: &[u8]) {
        let mut f = fs::OpenOptions::new().write(true).open(&self.disk).unwrap();
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(bytes).unwrap();
    }
}
