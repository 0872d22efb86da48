//! The report record: one small JSON object per event, signed detached by
//! the device key. These fields and nothing else leave the device (the
//! privacy statement in docs/fleet.md): no addresses, no logs, no user data.
//!
//! ```json
//! {"format":1,"product":"rice-cooker","device":"rc-0001","hardware":"rev-b",
//!  "from":"1.3.2","to":"1.4.0","event":"rolled-back",
//!  "reason":"health check 50-app failed","boot_attempts":3,
//!  "agent":"0.1.0","time":"2026-12-06T20:00:00Z","seq":7}
//! ```
//!
//! Parsed strictly (unknown fields refused) by both the device (its own
//! queue) and `ota-sign rollout` (every report it counts).

use serde::Deserialize;

use crate::bundle::time::{format_rfc3339_utc, parse_rfc3339_utc};

/// The only report format this code writes and reads.
pub const FORMAT: u32 = 1;
/// Largest report accepted (a real one is ~300 bytes).
pub const MAX_LEN: usize = 2048;
/// Longest `reason` kept (longer error lines are cut at a char boundary).
pub const MAX_REASON: usize = 300;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The device starts fetching the release.
    DownloadStarted,
    /// Written and activated; the next boot tries it.
    Installed,
    /// `mark-good` confirmed the new slot.
    Committed,
    /// The device went back to the old release (reason says why); sent
    /// from the old slot after the reboot.
    RolledBack,
    /// The update stopped with an error (`reason` = `phase: error line`).
    Failed,
    /// The device waits (`reason` says why: reboot refused by the
    /// appliance, rollout lease expired).
    Deferred,
}

impl Kind {
    /// The kebab-case name used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::DownloadStarted => "download-started",
            Kind::Installed => "installed",
            Kind::Committed => "committed",
            Kind::RolledBack => "rolled-back",
            Kind::Failed => "failed",
            Kind::Deferred => "deferred",
        }
    }

    /// Whether this ends a device's attempt at a release.
    pub fn is_final(self) -> bool {
        matches!(self, Kind::Committed | Kind::RolledBack | Kind::Failed)
    }
}

/// One report. Written by hand ([`Report::to_json`]: serde's serializer
/// would cost the device binary several KB); read with serde (host side).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// Product id (config `product`).
    pub product: String,
    /// Device id.
    pub device: String,
    /// Hardware revision (config `hardware`), if configured.
    pub hardware: Option<String>,
    /// The release the device ran when the attempt began, if known.
    pub from: Option<String>,
    /// The release the event is about.
    pub to: String,
    /// The event.
    pub event: Kind,
    /// Why (rolled-back, failed, deferred), else null.
    pub reason: Option<String>,
    /// Boots the new slot used (committed, rolled-back), if known.
    pub boot_attempts: Option<u32>,
    /// The agent's version.
    pub agent: String,
    /// When, by the device's clock (`YYYY-MM-DDTHH:MM:SSZ`).
    pub time: String,
    /// The device's report sequence number, never reused.
    pub seq: u64,
}

/// Whether `s` is usable as one path segment of a report URL.
pub fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-+".contains(&c))
}

impl Report {
    /// Compact JSON, fields in declaration order, with a trailing
    /// newline: the signed bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut o = format!("{{\"format\":{}", self.format);
        for (k, v) in [
            ("product", Some(&self.product)),
            ("device", Some(&self.device)),
            ("hardware", self.hardware.as_ref()),
            ("from", self.from.as_ref()),
            ("to", Some(&self.to)),
        ] {
            field(&mut o, k, v.map(String::as_str));
        }
        field(&mut o, "event", Some(self.event.name()));
        field(&mut o, "reason", self.reason.as_deref());
        match self.boot_attempts {
            Some(n) => o.push_str(&format!(",\"boot_attempts\":{n}")),
            None => o.push_str(",\"boot_attempts\":null"),
        }
        field(&mut o, "agent", Some(&self.agent));
        field(&mut o, "time", Some(&self.time));
        o.push_str(&format!(",\"seq\":{}}}\n", self.seq));
        o.into_bytes()
    }

    /// Parses and checks report bytes (verify the signature as well).
    pub fn parse(bytes: &[u8]) -> Result<Report, String> {
        if bytes.len() > MAX_LEN {
            return Err(format!(
                "{} bytes is over the limit of {MAX_LEN}",
                bytes.len()
            ));
        }
        let r: Report = serde_json::from_slice(bytes).map_err(|e| format!("not a report: {e}"))?;
        if r.format != FORMAT {
            return Err(format!("`format` {} is not {FORMAT}", r.format));
        }
        for (field, v) in [
            ("product", &r.product),
            ("device", &r.device),
            ("to", &r.to),
        ] {
            if !is_segment(v) {
                return Err(format!("`{field}` {v:?} is not [A-Za-z0-9._+-]+"));
            }
        }
        if parse_rfc3339_utc(&r.time).is_none() {
            return Err(format!("`time` {:?} is not an RFC 3339 UTC time", r.time));
        }
        if r.reason.as_ref().is_some_and(|s| s.len() > MAX_REASON) {
            return Err("`reason` is too long".into());
        }
        Ok(r)
    }

    /// Seconds since the epoch of `time` (checked by `parse`).
    pub fn unix_time(&self) -> i64 {
        parse_rfc3339_utc(&self.time).unwrap_or(0)
    }

    /// The path below the report target: `<product>/<to>/<device>/<seq>.json`.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}.json",
            self.product, self.to, self.device, self.seq
        )
    }
}

/// Appends `,"k":v` with `v` a JSON string (RFC 8259 section 7) or null.
fn field(o: &mut String, k: &str, v: Option<&str>) {
    o.push_str(",\"");
    o.push_str(k);
    o.push_str("\":");
    match v {
        Some(v) => o.push_str(&crate::json::string(v)),
        None => o.push_str("null"),
    }
}

/// `time` formatted for a report.
pub fn time_string(unix: i64) -> String {
    format_rfc3339_utc(unix)
}

/// `s` cut to [`MAX_REASON`] bytes at a char boundary, on one line.
pub fn one_line(s: &str) -> String {
    let s = s.lines().next().unwrap_or("").trim();
    let mut end = s.len().min(MAX_REASON);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            format: FORMAT,
            product: "rice-cooker".into(),
            device: "rc-0001".into(),
            hardware: None,
            from: Some("1.3.2".into()),
            to: "1.4.0".into(),
            event: Kind::RolledBack,
            reason: Some("boot attempts exhausted".into()),
            boot_attempts: Some(3),
            agent: "0.1.0".into(),
            time: "2026-12-06T20:00:00Z".into(),
            seq: 7,
        }
    }

    #[test]
    fn round_trip_strict_and_path() {
        let r = sample();
        let j = r.to_json();
        assert_eq!(Report::parse(&j).unwrap(), r);
        assert_eq!(r.path(), "rice-cooker/1.4.0/rc-0001/7.json");
        let s = String::from_utf8(j).unwrap();
        assert!(s.contains("\"event\":\"rolled-back\""), "{s}");
        let e = Report::parse(
            s.replace("\"seq\":7", "\"seq\":7,\"ip\":\"1.2.3.4\"")
                .as_bytes(),
        )
        .unwrap_err();
        assert!(e.contains("unknown field `ip`"), "{e}");
        let e = Report::parse(s.replace("rc-0001", "../x").as_bytes()).unwrap_err();
        assert!(e.contains("`device`"), "{e}");
        assert!(Report::parse(&vec![b' '; MAX_LEN + 1]).is_err());
        assert_eq!(one_line("a\nb"), "a");
        // Escapes survive the round trip through serde's parser.
        let mut odd = sample();
        odd.reason = Some("quote \" backslash \\ tab \t bell \u{7} é".into());
        odd.hardware = Some("rev-b".into());
        odd.from = None;
        odd.boot_attempts = None;
        assert_eq!(Report::parse(&odd.to_json()).unwrap(), odd);
        assert_eq!(one_line(&"é".repeat(200)).len(), 300);
    }
}
