//! `/etc/ota-agent.toml`: the device configuration.
//!
//! Every key is optional except `product` and `disk`. Unknown keys are warned
//! about (a newer config on an older agent must still boot); a bad value is an
//! error that names the file, the key and the reason. The commented reference
//! file is `conf/ota-agent.toml`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub mod syntax;

use syntax::{Entry, Value};

/// Default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/ota-agent.toml";

/// Which boot-control backend the device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootloader {
    /// U-Boot environment variables (`ota_slot`, `bootcount`, …).
    Uboot,
    /// The Android `bootloader_control` block in the `misc` partition.
    Android,
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (messages name it; empty
    /// for a configuration built in code).
    pub source: PathBuf,
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
    /// Seconds each health check may run before it is killed (and fails).
    pub health_timeout_s: u64,
    /// Kernel command line to read the booted slot from.
    pub cmdline: PathBuf,
    /// This boot's unique id (Linux: `/proc/sys/kernel/random/boot_id`):
    /// tells the boots of a trial apart (`update::trial`).
    pub boot_id_file: PathBuf,
    /// Base URL of the release server.
    pub server: Option<String>,
    /// Report target overriding the channel file's `reports` (docs/fleet.md).
    pub report_url: Option<String>,
    /// Channel name (`<server>/<product>/<channel>.json`).
    pub channel: String,
    /// CA bundle the server's certificate must chain to.
    pub ca_file: PathBuf,
    /// Seconds between channel polls in `daemon`.
    pub poll_interval_s: u64,
    /// Allow plain `http://` server URLs: no server authentication, no
    /// confidentiality (signatures still protect the update's integrity).
    pub danger_allow_http: bool,
    /// PEM client certificate chain presented to the server (mTLS identity).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Retries of a transient network failure per run (backoff with jitter).
    pub retry_attempts: u32,
    /// Seconds a stalled connection may stay silent before it is dropped.
    pub read_timeout_s: u64,
    /// Seconds one channel, manifest or signature fetch may take in all
    /// (retries included) before the run gives up.
    pub fetch_deadline_s: u64,
    /// A payload download that receives fewer than this many bytes in
    /// `min_progress_window_s` is stalled: the run stops (transient
    /// failure, lock released) and a later run resumes. 0 = no rule.
    pub min_progress_bytes: u64,
    /// The window of the minimum-progress rule, in seconds.
    pub min_progress_window_s: u64,
    /// The appliance MCU link; absent = no appliance gate.
    pub mcu: Option<McuConfig>,
    /// Program and arguments run to reboot after an install (`--reboot`,
    /// `update`, `daemon`); tests point it at a harmless command.
    pub reboot_command: Vec<String>,
    /// `[hawkbit]`: poll a hawkBit DDI server instead of the channel file.
    pub hawkbit: Option<HawkbitConfig>,
    /// `policy_dir`, `policy_timeout_s`, `critical_defer_limit_h`,
    /// `[windows]`: when the device lets an update proceed (docs/policy.md).
    pub policy: crate::policy::PolicyConfig,
    /// `[control]`: the daemon's local control socket (docs/local-api.md);
    /// absent = no socket.
    pub control: Option<crate::control::ControlConfig>,
}

/// How the device authenticates to the hawkBit DDI server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HawkbitAuth {
    /// No DDI credential (the server allows anonymous targets).
    None,
    /// `Authorization: TargetToken <token>` (per-device token).
    TargetToken,
    /// `Authorization: GatewayToken <token>` (tenant-wide token).
    GatewayToken,
    /// The TLS client certificate of `client_cert`/`client_key` (mTLS).
    Mtls,
}

/// `[hawkbit]`: the hawkBit DDI server (docs/hawkbit.md).
#[derive(Debug, Clone)]
pub struct HawkbitConfig {
    /// Base URL (`https://host[:port]`), without the tenant.
    pub url: String,
    /// Tenant (`DEFAULT` on a stock server).
    pub tenant: String,
    /// Controller id; `None` = the device id.
    pub controller_id: Option<String>,
    /// Authentication.
    pub auth: HawkbitAuth,
    /// File whose first line is the target or gateway token.
    pub token_file: Option<PathBuf>,
    /// Never poll faster than this, whatever the server says (seconds).
    pub poll_floor_s: u64,
}

/// `[mcu]`: the serial link to the appliance's main controller (defined
/// beside the link it configures).
pub use crate::mcu::McuConfig;

impl Default for Config {
    fn default() -> Self {
        Config {
            source: PathBuf::new(),
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
            health_timeout_s: crate::health::HOOK_TIMEOUT.as_secs(),
            cmdline: "/proc/cmdline".into(),
            boot_id_file: "/proc/sys/kernel/random/boot_id".into(),
            server: None,
            report_url: None,
            channel: "stable".into(),
            ca_file: "/etc/ota/ca.pem".into(),
            poll_interval_s: 21600,
            danger_allow_http: false,
            client_cert: None,
            client_key: None,
            retry_attempts: 8,
            read_timeout_s: 30,
            fetch_deadline_s: 300,
            min_progress_bytes: 16 * 1024,
            min_progress_window_s: 60,
            mcu: None,
            hawkbit: None,
            control: None,
            policy: crate::policy::PolicyConfig::default(),
        }
    }
}

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
        let doc = syntax::parse(text).map_err(|e| bad(e.to_string()))?;
        for unknown in unknown_keys(&doc) {
            log::warn!(
                "config {}: unknown key `{}` ignored",
                path.display(),
                crate::error::quote(&unknown)
            );
        }
        let mut config = Config::from_document(&doc).map_err(bad)?;
        config.source = path.to_owned();
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
        if config.read_timeout_s == 0 {
            return Err(bad("key `read_timeout_s`: must not be 0".into()));
        }
        if config.fetch_deadline_s == 0 {
            return Err(bad("key `fetch_deadline_s`: must not be 0".into()));
        }
        if config.min_progress_window_s == 0 {
            return Err(bad("key `min_progress_window_s`: must not be 0".into()));
        }
        if config.policy.timeout_s == 0 {
            return Err(bad("key `policy_timeout_s`: must not be 0".into()));
        }
        if config.health_timeout_s == 0 {
            return Err(bad("key `health_timeout_s`: must not be 0".into()));
        }
        if config.client_cert.is_some() != config.client_key.is_some() {
            return Err(bad(
                "keys `client_cert` and `client_key` must be given together".into(),
            ));
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
        if let Some(h) = &config.hawkbit {
            if h.url.is_empty() {
                return Err(bad("key `hawkbit.url` is required in [hawkbit]".into()));
            }
            let needs_token =
                matches!(h.auth, HawkbitAuth::TargetToken | HawkbitAuth::GatewayToken);
            if needs_token != h.token_file.is_some() {
                return Err(bad(
                    "key `hawkbit.token_file` is required by, and only allowed with, auth = \"target_token\" or \"gateway_token\"".into(),
                ));
            }
            if h.auth == HawkbitAuth::Mtls && config.client_cert.is_none() {
                return Err(bad(
                    "key `hawkbit.auth` = \"mtls\" needs `client_cert` and `client_key`".into(),
                ));
            }
        }
        Ok(config)
    }

    /// Fills the defaults with the document's known keys; a value of the
    /// wrong type is an error naming the key and its line.
    fn from_document(doc: &syntax::Document) -> std::result::Result<Config, String> {
        let mut c = Config::default();
        for e in &doc.root {
            let f = Field { name: &e.key, e };
            match e.key.as_str() {
                "product" => c.product = f.string()?,
                "hardware" => c.hardware = Some(f.string()?),
                "device_id" => c.device_id = Some(f.string()?),
                "device_id_file" => c.device_id_file = f.path()?,
                "disk" => c.disk = f.path()?,
                "bootloader" => {
                    c.bootloader = match f.string()?.as_str() {
                        "uboot" => Bootloader::Uboot,
                        "android" => Bootloader::Android,
                        other => {
                            return Err(f.wrong(format!(
                                "unknown backend \"{}\", expected \"uboot\" or \"android\"",
                                crate::error::quote(other)
                            )))
                        }
                    }
                }
                "fw_env_config" => c.fw_env_config = f.path()?,
                "misc_partition" => c.misc_partition = f.string()?,
                "boot_tries" => c.boot_tries = f.int()?,
                "keys_dir" => c.keys_dir = f.path()?,
                "state_dir" => c.state_dir = f.path()?,
                "version_file" => c.version_file = f.path()?,
                "health_dir" => c.health_dir = f.path()?,
                "health_timeout_s" => c.health_timeout_s = f.int()?,
                "cmdline" => c.cmdline = f.path()?,
                "boot_id_file" => c.boot_id_file = f.path()?,
                "server" => c.server = Some(f.string()?),
                "report_url" => c.report_url = Some(f.string()?),
                "channel" => c.channel = f.string()?,
                "ca_file" => c.ca_file = f.path()?,
                "poll_interval_s" => c.poll_interval_s = f.int()?,
                "danger_allow_http" => c.danger_allow_http = f.boolean()?,
                "client_cert" => c.client_cert = Some(f.path()?),
                "client_key" => c.client_key = Some(f.path()?),
                "retry_attempts" => c.retry_attempts = f.int()?,
                "read_timeout_s" => c.read_timeout_s = f.int()?,
                "fetch_deadline_s" => c.fetch_deadline_s = f.int()?,
                "min_progress_bytes" => c.min_progress_bytes = f.int()?,
                "min_progress_window_s" => c.min_progress_window_s = f.int()?,
                "reboot_command" => c.reboot_command = f.strings()?,
                "policy_dir" => c.policy.dir = Some(f.path()?),
                "policy_timeout_s" => c.policy.timeout_s = f.int()?,
                "critical_defer_limit_h" => c.policy.critical_defer_limit_h = f.int()?,
                "mcu" => {
                    return Err(f.wrong(format!("expected a table [mcu], found {}", e.value.kind())))
                }
                _ => {}
            }
        }
        if let Some(section) = doc.sections.iter().find(|s| s.name == "mcu") {
            let mut m = McuConfig::default();
            for e in &section.entries {
                let name = format!("mcu.{}", e.key);
                let f = Field { name: &name, e };
                match e.key.as_str() {
                    "port" => m.port = f.path()?,
                    "baud" => m.baud = f.int()?,
                    "reply_timeout_ms" => m.reply_timeout_ms = f.int()?,
                    "retries" => m.retries = f.int()?,
                    "idle_poll_s" => m.idle_poll_s = f.int()?,
                    "reboot_deadline_s" => m.reboot_deadline_s = f.int()?,
                    _ => {}
                }
            }
            c.mcu = Some(m);
        }
        if let Some(section) = doc.sections.iter().find(|s| s.name == "windows") {
            use crate::policy::windows::{parse_utc_offset, Windows};
            for e in &section.entries {
                let name = format!("windows.{}", e.key);
                let f = Field { name: &name, e };
                let p = &mut c.policy;
                match e.key.as_str() {
                    "download" => {
                        p.download = Windows::parse(&f.strings()?).map_err(|w| f.wrong(w))?
                    }
                    "activate" => {
                        p.activate = Windows::parse(&f.strings()?).map_err(|w| f.wrong(w))?
                    }
                    "reboot" => p.reboot = Windows::parse(&f.strings()?).map_err(|w| f.wrong(w))?,
                    "utc_offset" => {
                        p.utc_offset_min = parse_utc_offset(&f.string()?).map_err(|w| f.wrong(w))?
                    }
                    _ => {}
                }
            }
        }
        if let Some(section) = doc.sections.iter().find(|s| s.name == "control") {
            let mut k = crate::control::ControlConfig::default();
            for e in &section.entries {
                let name = format!("control.{}", e.key);
                let f = Field { name: &name, e };
                match e.key.as_str() {
                    "socket" => k.socket = f.path()?,
                    "mode" => {
                        k.mode = u32::from_str_radix(&f.string()?, 8)
                            .ok()
                            .filter(|m| *m <= 0o777)
                            .ok_or_else(|| {
                                f.wrong("expected octal permissions such as \"0660\"".into())
                            })?
                    }
                    "group" => k.group = Some(f.string()?),
                    "consent" => {
                        k.consent = match f.string()?.as_str() {
                            "auto" => false,
                            "required" => true,
                            other => {
                                return Err(f.wrong(format!(
                                    "unknown consent \"{}\", expected \"auto\" or \"required\"",
                                    crate::error::quote(other)
                                )))
                            }
                        }
                    }
                    _ => {}
                }
            }
            c.control = Some(k);
        }
        if let Some(section) = doc.sections.iter().find(|s| s.name == "hawkbit") {
            let mut h = HawkbitConfig {
                url: String::new(),
                tenant: "DEFAULT".into(),
                controller_id: None,
                auth: HawkbitAuth::None,
                token_file: None,
                poll_floor_s: 60,
            };
            for e in &section.entries {
                let name = format!("hawkbit.{}", e.key);
                let f = Field { name: &name, e };
                match e.key.as_str() {
                    "url" => h.url = f.string()?,
                    "tenant" => h.tenant = f.string()?,
                    "controller_id" => h.controller_id = Some(f.string()?),
                    "token_file" => h.token_file = Some(f.path()?),
                    "poll_floor_s" => h.poll_floor_s = f.int()?,
                    "auth" => {
                        h.auth = match f.string()?.as_str() {
                            "none" => HawkbitAuth::None,
                            "target_token" => HawkbitAuth::TargetToken,
                            "gateway_token" => HawkbitAuth::GatewayToken,
                            "mtls" => HawkbitAuth::Mtls,
                            other => return Err(f.wrong(format!("unknown auth \"{other}\", expected \"none\", \"target_token\", \"gateway_token\" or \"mtls\""))),
                        }
                    }
                    _ => {}
                }
            }
            c.hawkbit = Some(h);
        }
        Ok(c)
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
    "health_timeout_s",
    "cmdline",
    "boot_id_file",
    "server",
    "report_url",
    "channel",
    "ca_file",
    "poll_interval_s",
    "danger_allow_http",
    "client_cert",
    "client_key",
    "retry_attempts",
    "read_timeout_s",
    "fetch_deadline_s",
    "min_progress_bytes",
    "min_progress_window_s",
    "reboot_command",
    "policy_dir",
    "policy_timeout_s",
    "critical_defer_limit_h",
];
const SECTIONS: &[&str] = &["mcu", "hawkbit", "windows", "control"];
const CONTROL_KEYS: &[&str] = &["socket", "mode", "group", "consent"];
const WINDOWS_KEYS: &[&str] = &["download", "activate", "reboot", "utc_offset"];
const HAWKBIT_KEYS: &[&str] = &[
    "url",
    "tenant",
    "controller_id",
    "auth",
    "token_file",
    "poll_floor_s",
];
const MCU_KEYS: &[&str] = &[
    "port",
    "baud",
    "reply_timeout_ms",
    "retries",
    "idle_poll_s",
    "reboot_deadline_s",
];

/// One key's value with the name messages use (`baud` in `[mcu]` is `mcu.baud`).
struct Field<'a> {
    name: &'a str,
    e: &'a Entry,
}

impl Field<'_> {
    fn wrong(&self, why: String) -> String {
        format!("key `{}` (line {}): {why}", self.name, self.e.line)
    }

    fn expected(&self, what: &str) -> String {
        self.wrong(format!("expected {what}, found {}", self.e.value.kind()))
    }

    fn string(&self) -> std::result::Result<String, String> {
        match &self.e.value {
            Value::String(s) => Ok(s.clone()),
            _ => Err(self.expected("a string")),
        }
    }

    fn path(&self) -> std::result::Result<PathBuf, String> {
        self.string().map(PathBuf::from)
    }

    fn boolean(&self) -> std::result::Result<bool, String> {
        match self.e.value {
            Value::Boolean(b) => Ok(b),
            _ => Err(self.expected("true or false")),
        }
    }

    /// An integer that must fit `T` (u8, u32, u64).
    fn int<T: TryFrom<i64>>(&self) -> std::result::Result<T, String> {
        match self.e.value {
            Value::Integer(n) => T::try_from(n).map_err(|_| {
                let bits = 8 * std::mem::size_of::<T>() as u32;
                let max = u64::MAX >> (64 - bits);
                self.wrong(format!("{n} is out of range 0 ..= {max}"))
            }),
            _ => Err(self.expected("an integer")),
        }
    }

    fn strings(&self) -> std::result::Result<Vec<String>, String> {
        let Value::Array(items) = &self.e.value else {
            return Err(self.expected("an array of strings"));
        };
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.wrong(format!(
                    "expected an array of strings, found {} in it",
                    other.kind()
                ))),
            })
            .collect()
    }
}

/// Keys and sections the agent does not know, as `key` or `mcu.key`.
fn unknown_keys(doc: &syntax::Document) -> Vec<String> {
    let mut out: Vec<String> = doc
        .root
        .iter()
        .filter(|e| !TOP_KEYS.contains(&e.key.as_str()) && !SECTIONS.contains(&e.key.as_str()))
        .map(|e| e.key.clone())
        .collect();
    for s in &doc.sections {
        if !SECTIONS.contains(&s.name.as_str()) {
            out.push(s.name.clone());
        } else {
            let known = match s.name.as_str() {
                "mcu" => MCU_KEYS,
                "windows" => WINDOWS_KEYS,
                "control" => CONTROL_KEYS,
                _ => HAWKBIT_KEYS,
            };
            out.extend(
                s.entries
                    .iter()
                    .filter(|e| !known.contains(&e.key.as_str()))
                    .map(|e| format!("{}.{}", s.name, e.key)),
            );
        }
    }
    out
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
        let e = parse("product = \"p\"\ndisk = \"d\"\nhealth_timeout_s = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("health_timeout_s"), "{e}");
        let c = parse("product = \"p\"\ndisk = \"d\"\nhealth_timeout_s = 900\n").unwrap();
        assert_eq!(c.health_timeout_s, 900);
    }

    #[test]
    fn hawkbit_section_defaults_and_checks() {
        let c = parse("product = \"p\"\ndisk = \"d\"\n[hawkbit]\nurl = \"https://h\"\n").unwrap();
        let h = c.hawkbit.unwrap();
        assert_eq!(
            (h.tenant.as_str(), h.auth, h.poll_floor_s),
            ("DEFAULT", HawkbitAuth::None, 60)
        );
        let e = parse("product = \"p\"\ndisk = \"d\"\n[hawkbit]\nurl = \"https://h\"\nauth = \"target_token\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hawkbit.token_file"), "{e}");
        let e = parse(
            "product = \"p\"\ndisk = \"d\"\n[hawkbit]\nurl = \"https://h\"\nauth = \"mtls\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("client_cert"), "{e}");
        let e = parse("product = \"p\"\ndisk = \"d\"\n[hawkbit]\nauth = \"none\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hawkbit.url"), "{e}");
        let e = parse(
            "product = \"p\"\ndisk = \"d\"\n[hawkbit]\nurl = \"https://h\"\nauth = \"psk\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("psk"), "{e}");
    }

    #[test]
    fn policy_keys_and_windows_parse_strictly() {
        let c = parse("product = \"p\"\ndisk = \"d\"\n").unwrap();
        assert!(!c.policy.is_active());
        let c = parse(
            "product = \"p\"\ndisk = \"d\"\npolicy_dir = \"/etc/ota/policy.d\"\npolicy_timeout_s = 5\n[windows]\ndownload = [\"Mon-Fri 01:00-05:00\", \"Sat,Sun 00:00-24:00\"]\nutc_offset = \"+01:00\"\n",
        )
        .unwrap();
        assert!(c.policy.is_active());
        assert_eq!(c.policy.timeout_s, 5);
        assert_eq!(c.policy.download.0.len(), 2);
        assert!(c.policy.reboot.0.is_empty());
        assert_eq!(c.policy.utc_offset_min, 60);
        for (bad, needle) in [
            (
                "[windows]\nreboot = [\"Mon-Fri 1:00-05:00\"]\n",
                "key `windows.reboot` (line 4): \"Mon-Fri 1:00-05:00\"",
            ),
            (
                "[windows]\nactivate = []\n",
                "key `windows.activate` (line 4): an empty list",
            ),
            (
                "[windows]\nutc_offset = \"CET\"\n",
                "key `windows.utc_offset`",
            ),
            (
                "[windows]\ndownload = \"01:00-05:00\"\n",
                "expected an array of strings",
            ),
            (
                "policy_timeout_s = 0\n",
                "key `policy_timeout_s`: must not be 0",
            ),
        ] {
            let e = parse(&format!("product = \"p\"\ndisk = \"d\"\n{bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn control_section_parses_strictly() {
        let base = "product = \"p\"\ndisk = \"d\"\n[control]\n";
        let c = parse(&format!(
            "{base}socket = \"/s\"\nmode = \"0600\"\nconsent = \"required\"\n"
        ))
        .unwrap()
        .control
        .unwrap();
        assert_eq!(
            (c.socket.to_str(), c.mode, c.consent),
            (Some("/s"), 0o600, true)
        );
        assert_eq!(parse(base).unwrap().control.unwrap().mode, 0o660);
        for (bad, names) in [
            ("mode = \"0680\"\n", "control.mode"),
            ("mode = \"1777\"\n", "control.mode"),
            ("mode = 660\n", "control.mode"),
            ("consent = \"maybe\"\n", "control.consent"),
        ] {
            let e = parse(&format!("{base}{bad}")).unwrap_err().to_string();
            assert!(e.contains(names), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_listed_not_fatal() {
        let text = "product = \"p\"\ndisk = \"d\"\ncolour = 1\n[mcu]\nspeed = 2\n";
        let doc = syntax::parse(text).unwrap();
        assert_eq!(unknown_keys(&doc), vec!["colour", "mcu.speed"]);
        assert!(parse(text).is_ok());
    }
}
