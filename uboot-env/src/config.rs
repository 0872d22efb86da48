//! `fw_env.config`: where the environment lives (no I/O except [`FwEnvConfig::load`]).
//!
//! One line per copy (one line = single environment, two = redundant):
//!
//! ```text
//! # device     offset     size     [sector-size [sector-count]]
//! /dev/mmcblk0 0x100000   0x4000
//! /dev/mmcblk0 0x104000   0x4000
//! ```
//!
//! Numbers are read exactly as libubootenv and U-Boot's `tools/env` read them
//! (`sscanf("%ms %lli %lx %lx %lx")`), so one file means the same to every
//! tool: the *offset* is a C integer (`0x…` hex, `0…` octal, else decimal; a
//! negative offset counts back from the end of the device); *size*,
//! *sector size* and *sector count* are always hexadecimal, with or without
//! `0x` (`4000` is 16 KiB). Blank lines and `#` comments (whole line, or after
//! whitespace at the end of a line) are ignored. Unlike the C tools, a line that
//! is neither is an error naming the line, not silently skipped.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One environment copy's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvDevice {
    /// Device or file holding the copy.
    pub path: PathBuf,
    /// Byte offset in the device; negative = from the end of the device.
    pub offset: i64,
    /// Size of the copy in bytes (header included).
    pub size: usize,
    /// Erase-block size (MTD); `None` = the device's own erase size.
    pub sector_size: Option<u64>,
    /// Number of erase blocks reserved for the copy (NAND bad-block skipping).
    pub sector_count: Option<u64>,
}

/// A parsed `fw_env.config`: one device (single environment) or two (redundant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwEnvConfig {
    devices: Vec<EnvDevice>,
}

const TEXT_ORIGIN: &str = "fw_env.config";

impl FwEnvConfig {
    /// Parses the text of an `fw_env.config`.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_named(text, TEXT_ORIGIN)
    }

    /// Reads and parses the file at `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
        Self::parse_named(&text, &path.display().to_string())
    }

    /// A configuration from devices given directly (one or two).
    pub fn from_devices(devices: Vec<EnvDevice>) -> Result<Self> {
        Self::check(devices, TEXT_ORIGIN)
    }

    /// The configured copies, in file order (copy 0, copy 1).
    pub fn devices(&self) -> &[EnvDevice] {
        &self.devices
    }

    /// True when two copies are configured.
    pub fn is_redundant(&self) -> bool {
        self.devices.len() == 2
    }

    /// Size of one copy.
    pub fn env_size(&self) -> usize {
        // `check` guarantees at least one device.
        self.devices.first().map_or(0, |d| d.size)
    }

    fn parse_named(text: &str, origin: &str) -> Result<Self> {
        let mut devices = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let syntax = |reason: String| Error::Syntax {
                origin: origin.to_owned(),
                line,
                reason,
            };
            let fields: Vec<&str> = raw
                .split_whitespace()
                .take_while(|f| !f.starts_with('#'))
                .collect();
            if fields.is_empty() {
                continue;
            }
            if fields.len() < 3 {
                return Err(syntax(
                    "expected `device offset size [sector-size [sector-count]]`".into(),
                ));
            }
            if fields.len() > 5 {
                return Err(syntax(format!(
                    "unexpected `{}` after the sector count",
                    fields[5]
                )));
            }
            if devices.len() == 2 {
                return Err(syntax(
                    "a third environment device (at most two copies are supported)".into(),
                ));
            }
            let offset = parse_c_integer(fields[1])
                .ok_or_else(|| syntax(format!("bad offset `{}`", fields[1])))?;
            let hex = |what: &str, s: &str| {
                parse_hex(s).ok_or_else(|| syntax(format!("bad {what} `{s}` (hexadecimal)")))
            };
            let size = hex("size", fields[2])?;
            if !fields[2].starts_with("0x") && !fields[2].starts_with("0X") && size > 0xff {
                log::warn!(
                    "{origin} line {line}: size `{}` is hexadecimal (0x{size:x} = {size} bytes), \
                     as fw_printenv reads it",
                    fields[2]
                );
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| syntax(format!("size `{}` is zero or too large", fields[2])))?;
            let sector_size = fields
                .get(3)
                .map(|s| hex("sector size", s))
                .transpose()?
                .filter(|&s| s != 0);
            let sector_count = fields
                .get(4)
                .map(|s| hex("sector count", s))
                .transpose()?
                .filter(|&s| s != 0);
            devices.push(EnvDevice {
                path: PathBuf::from(fields[0]),
                offset,
                size,
                sector_size,
                sector_count,
            });
        }
        Self::check(devices, origin)
    }

    fn check(devices: Vec<EnvDevice>, origin: &str) -> Result<Self> {
        let config = |reason: &str| Error::Config {
            origin: origin.to_owned(),
            reason: reason.to_owned(),
        };
        match devices.as_slice() {
            [] => Err(config("no environment device configured")),
            [_] => Ok(FwEnvConfig { devices }),
            [a, b] if a.size != b.size => {
                Err(config("the two environment copies have different sizes"))
            }
            [a, b] if a.path == b.path && overlaps(a, b) => {
                Err(config("the two environment copies overlap"))
            }
            [_, _] => Ok(FwEnvConfig { devices }),
            _ => Err(config("more than two environment devices")),
        }
    }
}

fn overlaps(a: &EnvDevice, b: &EnvDevice) -> bool {
    // Only comparable when both count from the same end of the device.
    if (a.offset < 0) != (b.offset < 0) {
        return false;
    }
    let size = i128::try_from(a.size).unwrap_or(i128::MAX);
    let (x, y) = (i128::from(a.offset), i128::from(b.offset));
    x < y + size && y < x + size
}

/// A C `%lli` integer: optional sign, then `0x` hex, `0` octal or decimal.
fn parse_c_integer(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    let value = i64::try_from(magnitude).ok()?;
    // `from_str_radix` accepts a sign of its own; refuse "--1" and "0x+1".
    if digits.starts_with(['+', '-']) || digits.get(2..).is_some_and(|d| d.starts_with(['+', '-']))
    {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// A C `%lx` number: hexadecimal digits with an optional `0x` prefix.
fn parse_hex(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_redundant() {
        let c = FwEnvConfig::parse("/dev/vda 0x100000 0x4000\n").unwrap();
        assert!(!c.is_redundant());
        assert_eq!(
            c.devices(),
            [EnvDevice {
                path: "/dev/vda".into(),
                offset: 0x100000,
                size: 0x4000,
                sector_size: None,
                sector_count: None
            }]
        );
        let c = FwEnvConfig::parse(
            "# comment\n\n  # indented comment\n/dev/mtd1 0 4000 10000 2 # trailing\n\
             /dev/mtd2\t0x0\t0x4000\t0x10000\n",
        )
        .unwrap();
        assert!(c.is_redundant());
        assert_eq!(c.env_size(), 0x4000);
        assert_eq!(c.devices()[0].sector_size, Some(0x10000));
        assert_eq!(c.devices()[0].sector_count, Some(2));
        assert_eq!(c.devices()[1].path, Path::new("/dev/mtd2"));
    }

    #[test]
    fn numbers_read_like_sscanf() {
        assert_eq!(parse_c_integer("4096"), Some(4096));
        assert_eq!(parse_c_integer("0x1000"), Some(4096));
        assert_eq!(parse_c_integer("010"), Some(8));
        assert_eq!(parse_c_integer("0"), Some(0));
        assert_eq!(parse_c_integer("-0x4000"), Some(-0x4000));
        assert_eq!(parse_c_integer("--1"), None);
        assert_eq!(parse_c_integer("0x-1"), None);
        assert_eq!(parse_c_integer("08"), None);
        assert_eq!(parse_c_integer("12k"), None);
        assert_eq!(parse_hex("4000"), Some(0x4000));
        assert_eq!(parse_hex("0X20"), Some(0x20));
        assert_eq!(parse_hex("+20"), None);
        assert_eq!(parse_hex("0x"), None);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("/dev/vda 0x100000\n", 1, "expected `device offset size"),
            ("\n# c\n/dev/vda zz 0x4000\n", 3, "bad offset `zz`"),
            ("/dev/vda 0 0x40g0\n", 1, "bad size `0x40g0`"),
            ("/dev/vda 0 0\n", 1, "size `0` is zero"),
            ("/dev/vda 0 1 2 3 4\n", 1, "unexpected `4`"),
            ("a 0 10\nb 0 10\nc 0 10\n", 3, "a third environment device"),
        ];
        for (text, line, reason) in cases {
            match FwEnvConfig::parse(text) {
                Err(Error::Syntax {
                    line: l, reason: r, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(r.starts_with(reason), "{text:?}: {r}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let err = FwEnvConfig::parse("/dev/vda 0 x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "fw_env.config line 1: bad size `x` (hexadecimal)"
        );
    }

    #[test]
    fn inconsistent_setups_are_refused() {
        for text in [
            "",
            "# only comments\n",
            "a 0 0x4000\na 0x4000 0x2000\n",
            "a 0 0x4000\na 0x2000 0x4000\n",
        ] {
            assert!(
                matches!(FwEnvConfig::parse(text), Err(Error::Config { .. })),
                "{text:?}"
            );
        }
        assert!(FwEnvConfig::parse("a 0 0x4000\na 0x4000 0x4000\n").is_ok());
    }
}
