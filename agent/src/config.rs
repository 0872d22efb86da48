//! `/etc/ota-agent.toml`: the device configuration (DESIGN.md "Configuration").
//!
//! Every key is optional except `product` and `disk`. Unknown keys are warned
//! about (a newer config on an older agent must still boot); a bad value is an
//! error that names the file, the key and the reason. The commented reference
//! file is `conf/ota-agent.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// Default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/ota-agent.toml";

/// Which boot-control backend the device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bootloader {
    /// U-Boot environment variables (`ota_slot`, `bootcount`, …).
    Uboot,
    /// The Android `bootloader_control` block in the `misc` partition.
    Android,
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Product id; must equal the manifest's `product`.
    pub product: String,
    /// Hardware revision; must be in the manifest's compatible list when it has one.
    pub hardware: Option<String>,
    /// Device id, literally. Takes precedence over `device_id_file`.
    pub device_id: Option<String>,
    /// File whose first line is the device id (feeds the rollout bucket).
    pub device_id_file: PathBuf,
    /// GPT disk (block device or image file) holding the slots.
    pub disk: PathBuf,
    /// Boot-control backend.
    pub bootloader: Bootloader,
    /// `fw_env.config` for the `uboot` backend.
    pub fw_env_config: PathBuf,
    /// GPT name of the partition holding the Android bootctrl block.
    pub misc_partition: String,
    /// Boot attempts of a trial slot (`bootlimit` / `tries_remaining`), 1..=7.
    pub boot_tries: u8,
    /// Directory of trusted public keys (`*.pem`).
    pub keys_dir: PathBuf,
    /// Journal, status file, stored minimum security version.
    pub state_dir: PathBuf,
    /// os-release file whose `VERSION_ID` is the installed release version.
    pub version_file: PathBuf,
    /// Executables run before `mark-good`; any failure blocks it.
    pub health_dir: PathBuf,
    /// Kernel command line to read the booted slot from.
    pub cmdline: PathBuf,
    /// Base URL of the release server.
    pub server: Option<String>,
    /// Channel name (`<server>/<product>/<channel>.json`).
    pub channel: String,
    /// CA bundle the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// Seconds between channel polls in `daemon`.
    pub poll_interval_s: u64,
    /// The appliance MCU link; absent = no appliance gate.
    pub mcu: Option<McuConfig>,
    /// Program and arguments run to reboot after an install (`--reboot`,
    /// `update`, `daemon`); tests point it at a harmless command.
    pub reboot_command: Vec<String>,
}

/// `[mcu]`: the serial link to the appliance's main controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct McuConfig {
    /// Serial device.
    pub port: PathBuf,
    /// Baud rate (8N1).
    pub baud: u32,
    /// How long to wait for one reply, in milliseconds.
    pub reply_timeout_ms: u64,
    /// Attempts per request before the MCU counts as silent.
    pub retries: u32,
    /// Seconds between "are you idle?" questions while the appliance is busy.
    pub idle_poll_s: u64,
    /// Seconds after which a deferred reboot is given up (the update stays pending).
    pub reboot_deadline_s: u64,
}

impl Default for McuConfig {
    fn default() -> Self {
        McuConfig {
            port: "/dev/ttyS1".into(),
            baud: 9600,
            reply_timeout_ms: 500,
            retries: 3,
            idle_poll_s: 60,
            reboot_deadline_s: 6 * 3600,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            product: String::new(),
            hardware: None,
            device_id: None,
            device_id_file: "/etc/machine-id".into(),
            disk: PathBuf::new(),
            bootloader: Bootloader::Uboot,
            fw_env_config: "/etc/fw_env.config".into(),
            misc_partition: "misc".into(),
            boot_tries: 3,
            keys_dir: "/etc/ota/keys".into(),
            reboot_command: vec!["reboot".into()],
            state_dir: "/var/lib/ota".into(),
            version_file: "/etc/os-release".into(),
            health_dir: "/etc/ota/health.d".into(),
            cmdline: "/proc/cmdline".into(),
            server: None,
            channel: "stable".into(),
            ca_file: "/etc/ota/ca.pem".into(),
            poll_interval_s: 21600,
            mcu: None,
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "product",
    "hardware",
    "device_id",
    "device_id_file",
    "disk",
    "bootloader",
    "fw_env_config",
    "misc_partition",
    "boot_tries",
    "keys_dir",
    "state_dir",
    "version_file",
    "health_dir",
    "cmdline",
    "server",
    "channel",
    "ca_file",
    "poll_interval_s",
    "mcu",
    "reboot_command",
];
const MCU_KEYS: &[&str] = &[
    "port",
    "baud",
    "reply_timeout_ms",
    "retries",
    "idle_poll_s",
    "reboot_deadline_s",
];

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::parse(&text, path)
    }

    /// Parses `text` (read from `path`, which is only used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let bad = |reason: String| Error::Config {
            path: path.to_owned(),
            reason,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| bad(one_line(&e)))?;
        for unknown in unknown_keys(&table) {
            log::warn!("config {}: unknown key `{unknown}` ignored", path.display());
        }
        let config: Config = toml::from_str(text).map_err(|e| bad(one_line(&e)))?;
        if config.product.is_empty() {
            return Err(bad("key `product` is required".into()));
        }
        if config.disk.as_os_str().is_empty() {
            return Err(bad("key `disk` is required".into()));
        }
        if !(1..=7).contains(&config.boot_tries) {
            return Err(bad(format!(
                "key `boot_tries`: {} is out of range 1..=7 (the Android bootctrl holds 3 bits)",
                config.boot_tries
            )));
        }
        if config.reboot_command.first().is_none_or(|p| p.is_empty()) {
            return Err(bad(
                "key `reboot_command`: must name a program (e.g. [\"reboot\"])".into(),
            ));
        }
        if let Some(mcu) = &config.mcu {
            if mcu.baud == 0 {
                return Err(bad("key `mcu.baud`: must not be 0".into()));
            }
            if !crate::mcu::serial::is_supported_baud(mcu.baud) {
                return Err(bad(format!(
                    "key `mcu.baud`: {} is not a standard rate (1200 … 921600)",
                    mcu.baud
                )));
            }
        }
        Ok(config)
    }
}

fn unknown_keys(table: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in table {
        if !TOP_KEYS.contains(&key.as_str()) {
            out.push(key.clone());
        } else if key == "mcu" {
            if let Some(mcu) = value.as_table() {
                out.extend(
                    mcu.keys()
                        .filter(|k| !MCU_KEYS.contains(&k.as_str()))
                        .map(|k| format!("mcu.{k}")),
                );
            }
        }
    }
    out
}

/// toml's messages span several lines (a source excerpt); keep the first
/// line and the key/position it names so every failure is one line.
fn one_line(e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    match e.span() {
        Some(span) => format!("{msg} (at byte {})", span.start),
        None => msg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("product = \"rice-cooker\"\ndisk = \"/dev/mmcblk0\"\n").unwrap();
        assert_eq!(c.product, "rice-cooker");
        assert_eq!(c.bootloader, Bootloader::Uboot);
        assert_eq!(c.boot_tries, 3);
        assert_eq!(c.fw_env_config, Path::new("/etc/fw_env.config"));
        assert!(c.mcu.is_none());
    }

    #[test]
    fn mcu_section_defaults_port_and_baud() {
        let c = parse("product = \"p\"\ndisk = \"d\"\n[mcu]\nbaud = 115200\n").unwrap();
        let mcu = c.mcu.unwrap();
        assert_eq!(mcu.baud, 115200);
        assert_eq!(mcu.port, Path::new("/dev/ttyS1"));
    }

    #[test]
    fn odd_mcu_baud_is_refused_naming_the_key() {
        let e = parse("product = \"p\"\ndisk = \"d\"\n[mcu]\nbaud = 12345\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mcu.baud") && e.contains("12345"), "{e}");
    }

    #[test]
    fn missing_product_names_key_and_file() {
        let e = parse("disk = \"d\"\n").unwrap_err().to_string();
        assert!(e.contains("test.toml") && e.contains("`product`"), "{e}");
    }

    #[test]
    fn bad_value_names_key_in_one_line() {
        let e = parse("product = \"p\"\ndisk = \"d\"\nbootloader = \"grub\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grub") && !e.contains('\n'), "{e}");
        let e = parse("product = \"p\"\ndisk = \"d\"\nboot_tries = 9\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("boot_tries"), "{e}");
    }

    #[test]
    fn unknown_keys_are_listed_not_fatal() {
        let text = "product = \"p\"\ndisk = \"d\"\ncolour = 1\n[mcu]\nspeed = 2\n";
        let table: toml::Table = toml::from_str(text).unwrap();
        assert_eq!(unknown_keys(&table), vec!["colour", "mcu.speed"]);
        assert!(parse(text).is_ok());
    }
}
