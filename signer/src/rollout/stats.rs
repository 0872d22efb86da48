//! Per-release statistics from accepted reports: each device's latest report
//! (highest sequence number) for the release is its state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ota_agent::bundle::channel::{bucket, Channel};
use ota_agent::bundle::time::format_rfc3339_utc;
use ota_agent::report::record::{Kind, Report};
use serde::Serialize;

use super::collect::{Registry, Rejection};

/// Bucket ranges (percent) for "offered by bucket".
pub const BUCKET_EDGES: [u8; 6] = [1, 5, 10, 25, 50, 100];

/// One bucket range.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BucketRow {
    /// Lower bound, percent (inclusive).
    pub from_percent: u8,
    /// Upper bound, percent (exclusive).
    pub to_percent: u8,
    /// Registered devices in the range.
    pub devices: usize,
    /// Of those, offered now.
    pub offered: usize,
    /// Started (any report).
    pub started: usize,
    /// Committed.
    pub committed: usize,
}

/// One point of the outcome curve.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Point {
    /// Seconds since the epoch.
    pub time: i64,
    /// Cumulative committed.
    pub committed: usize,
    /// Cumulative rolled back.
    pub rolled_back: usize,
    /// Cumulative failed.
    pub failed: usize,
}

/// What is known about one release.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Release {
    /// Product.
    pub product: String,
    /// Version.
    pub version: String,
    /// Devices offered the release by the channel file given (if any).
    pub offered: Option<usize>,
    /// Offered by bucket range.
    pub by_bucket: Vec<BucketRow>,
    /// Devices with any report for the release.
    pub started: usize,
    /// Devices whose latest report is `committed`.
    pub committed: usize,
    /// Their ids.
    #[serde(skip)]
    pub committed_devices: BTreeSet<String>,
    /// Latest `rolled-back`, by reason.
    pub rolled_back: BTreeMap<String, usize>,
    /// Latest `failed`, by phase.
    pub failed: BTreeMap<String, usize>,
    /// Latest `installed`, `download-started` or `deferred`, recently.
    pub in_progress: usize,
    /// Started, no final outcome, and nothing heard for longer than the
    /// silence limit.
    pub silent: usize,
    /// Cumulative final outcomes over time.
    pub timeline: Vec<Point>,
}

impl Release {
    /// Rolled back plus failed.
    pub fn failures(&self) -> usize {
        self.rolled_back.values().sum::<usize>() + self.failed.values().sum::<usize>()
    }
}

/// The whole status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// When it was computed.
    pub time: String,
    /// Per release.
    pub releases: Vec<Release>,
    /// Rejected reports by reason.
    pub rejected: BTreeMap<&'static str, usize>,
    /// Each rejected file and why (for the operator to look at).
    pub rejected_files: Vec<(String, Rejection)>,
}

/// Builds the status. `channel` (verified by the caller) gives `offered`
/// for its release; `silent_after` is in seconds.
pub fn compute(
    reports: &[Report],
    rejected: &[(String, Rejection)],
    reg: &Registry,
    channel: Option<&Channel>,
    now: i64,
    silent_after: i64,
) -> Status {
    // (product, to) → device → reports.
    let mut by_rel: BTreeMap<(String, String), BTreeMap<String, Vec<&Report>>> = BTreeMap::new();
    for r in reports {
        by_rel
            .entry((r.product.clone(), r.to.clone()))
            .or_default()
            .entry(r.device.clone())
            .or_default()
            .push(r);
    }
    if let Some(c) = channel {
        by_rel
            .entry((c.product.clone(), c.version.to_string()))
            .or_default();
    }
    let mut releases = Vec::new();
    for ((product, version), devices) in by_rel {
        let mut rel = Release {
            product: product.clone(),
            version: version.clone(),
            offered: None,
            by_bucket: Vec::new(),
            started: devices.len(),
            committed: 0,
            committed_devices: BTreeSet::new(),
            rolled_back: BTreeMap::new(),
            failed: BTreeMap::new(),
            in_progress: 0,
            silent: 0,
            timeline: Vec::new(),
        };
        let mut finals: Vec<(i64, Kind)> = Vec::new();
        let mut latest_kind: BTreeMap<&str, Kind> = BTreeMap::new();
        for (dev, rs) in &devices {
            let Some(last) = rs.iter().max_by_key(|r| r.seq) else {
                continue;
            };
            latest_kind.insert(dev.as_str(), last.event);
            match last.event {
                Kind::Committed => {
                    rel.committed += 1;
                    rel.committed_devices.insert(dev.clone());
                }
                Kind::RolledBack => {
                    *rel.rolled_back
                        .entry(last.reason.clone().unwrap_or_else(|| "unknown".into()))
                        .or_default() += 1
                }
                Kind::Failed => {
                    let phase = last
                        .reason
                        .as_deref()
                        .and_then(|r| r.split_once(':'))
                        .map_or("unknown", |(p, _)| p);
                    *rel.failed.entry(phase.to_owned()).or_default() += 1
                }
                _ if now - last.unix_time() > silent_after => rel.silent += 1,
                _ => rel.in_progress += 1,
            }
            if last.event.is_final() {
                finals.push((last.unix_time(), last.event));
            }
        }
        finals.sort();
        let mut p = Point {
            time: 0,
            committed: 0,
            rolled_back: 0,
            failed: 0,
        };
        for (t, k) in finals {
            p.time = t;
            match k {
                Kind::Committed => p.committed += 1,
                Kind::RolledBack => p.rolled_back += 1,
                _ => p.failed += 1,
            }
            rel.timeline.push(p.clone());
        }
        let chan = channel.filter(|c| c.product == product && c.version.to_string() == version);
        if let Some(c) = chan {
            let mut offered = 0;
            let mut lo = 0u8;
            for hi in BUCKET_EDGES {
                let mut row = BucketRow {
                    from_percent: lo,
                    to_percent: hi,
                    devices: 0,
                    offered: 0,
                    started: 0,
                    committed: 0,
                };
                for id in reg.keys() {
                    let b = bucket(id, &c.rollout.seed);
                    if b < u64::from(lo) * 100 || b >= u64::from(hi) * 100 {
                        continue;
                    }
                    row.devices += 1;
                    if c.includes(id) {
                        row.offered += 1;
                    }
                    if let Some(k) = latest_kind.get(id.as_str()) {
                        row.started += 1;
                        if *k == Kind::Committed {
                            row.committed += 1;
                        }
                    }
                }
                offered += row.offered;
                rel.by_bucket.push(row);
                lo = hi;
            }
            rel.offered = Some(offered);
        }
        releases.push(rel);
    }
    let mut counts = BTreeMap::new();
    for (_, why) in rejected {
        *counts.entry(why.name()).or_default() += 1;
    }
    Status {
        time: format_rfc3339_utc(now),
        releases,
        rejected: counts,
        rejected_files: rejected.to_vec(),
    }
}

fn join_counts(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text table.
pub fn text(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "rollout status at {}", s.time);
    for r in &s.releases {
        let _ = writeln!(o, "\n{} {}", r.product, r.version);
        let offered = r.offered.map_or("-".into(), |n| n.to_string());
        for (k, v) in [
            ("offered", offered),
            ("started", r.started.to_string()),
            ("committed", r.committed.to_string()),
            (
                "rolled back",
                format!(
                    "{} ({})",
                    r.rolled_back.values().sum::<usize>(),
                    join_counts(&r.rolled_back)
                ),
            ),
            (
                "failed",
                format!(
                    "{} ({})",
                    r.failed.values().sum::<usize>(),
                    join_counts(&r.failed)
                ),
            ),
            ("in progress", r.in_progress.to_string()),
            ("silent", r.silent.to_string()),
        ] {
            let _ = writeln!(o, "  {k:<12} {v}");
        }
        if !r.by_bucket.is_empty() {
            let _ = writeln!(o, "  bucket      devices offered started committed");
            for b in &r.by_bucket {
                let _ = writeln!(
                    o,
                    "  {:>3}-{:<3}%   {:>7} {:>7} {:>7} {:>9}",
                    b.from_percent, b.to_percent, b.devices, b.offered, b.started, b.committed
                );
            }
        }
    }
    let total: usize = s.rejected.values().sum();
    let _ = writeln!(
        o,
        "\nrejected reports: {total}{}",
        if total == 0 {
            String::new()
        } else {
            format!(
                " ({})",
                s.rejected
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained HTML page: the tables and an inline SVG plot of the
/// cumulative outcomes over time per release. No script at all.
pub fn html(s: &Status) -> String {
    let mut o = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rollout status</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #aaa;padding:2px 8px;text-align:right}</style></head><body>\n",
    );
    let _ = writeln!(o, "<h1>Rollout status at {}</h1>", esc(&s.time));
    for r in &s.releases {
        let _ = writeln!(
            o,
            "<h2>{} {}</h2>\n<table>",
            esc(&r.product),
            esc(&r.version)
        );
        let rows = [
            ("offered", r.offered.map_or("-".into(), |n| n.to_string())),
            ("started", r.started.to_string()),
            ("committed", r.committed.to_string()),
            ("rolled back", join_counts(&r.rolled_back)),
            ("failed", join_counts(&r.failed)),
            ("in progress", r.in_progress.to_string()),
            ("silent", r.silent.to_string()),
        ];
        for (k, v) in rows {
            let _ = writeln!(o, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
        }
        o.push_str("</table>\n");
        o.push_str(&svg(&r.timeline));
    }
    let _ = writeln!(o, "<h2>Rejected reports</h2>\n<table>");
    for (k, v) in &s.rejected {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    o.push_str("</table>\n</body></html>\n");
    o
}

/// One curve of the plot: name, colour, value at a point.
type Series = (&'static str, &'static str, fn(&Point) -> usize);

/// Cumulative committed / rolled back / failed as three polylines.
fn svg(points: &[Point]) -> String {
    let (w, h, m) = (640.0f64, 240.0f64, 30.0f64);
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\"><rect x=\"{m}\" y=\"{m}\" width=\"{}\" height=\"{}\" \
         fill=\"none\" stroke=\"#888\"/>",
        w - 2.0 * m,
        h - 2.0 * m
    );
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let t0 = first.time as f64;
        let span = ((last.time - first.time) as f64).max(1.0);
        let top = points
            .iter()
            .map(|p| p.committed.max(p.rolled_back).max(p.failed))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let series: [Series; 3] = [
            ("committed", "#2a2", |p| p.committed),
            ("rolled back", "#d22", |p| p.rolled_back),
            ("failed", "#e90", |p| p.failed),
        ];
        for (i, (name, color, f)) in series.iter().enumerate() {
            let pts: Vec<String> = points
                .iter()
                .map(|p| {
                    let x = m + (p.time as f64 - t0) / span * (w - 2.0 * m);
                    let y = h - m - f(p) as f64 / top * (h - 2.0 * m);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = write!(
                o,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\
                 <text x=\"{}\" y=\"20\" fill=\"{color}\" font-size=\"12\">{name} {}</text>",
                pts.join(" "),
                m + i as f64 * 150.0,
                f(last)
            );
        }
        let _ = write!(
            o,
            "<text x=\"{m}\" y=\"{}\" font-size=\"10\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            h - 8.0,
            format_rfc3339_utc(first.time),
            w - m,
            h - 8.0,
            format_rfc3339_utc(last.time)
        );
    }
    o.push_str("</svg>\n");
    o
}
