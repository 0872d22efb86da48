//! `ota-sign rollout status|evaluate` (docs/fleet.md): what the fleet's
//! signed reports say about a release, and the staged-rollout policy that
//! advances, holds or pauses the channel from them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ota_agent::bundle::channel::Channel;
use ota_agent::bundle::{time, PublicKey, TrustedKeys};

use crate::args::{need, string};
use crate::error::{usage, Error, Result};
use crate::keys;

pub mod collect;
pub mod evaluate;
pub mod stats;

const HELP: &str = "\
usage: ota-sign rollout status --reports DIR|URL --devices REGISTRY
                               [--channel FILE --pub KEY] [--silent-after HOURS]
                               [--ca FILE] [--json] [--html FILE]
       ota-sign rollout evaluate --policy rollout.toml [--dry-run]

status: per release, devices offered (by bucket, with --channel), started,
committed, rolled back by reason, failed by phase, silent (no final outcome
and nothing heard for --silent-after hours, default 24) and rejected reports
(bad signature, unknown device, replay, malformed, oversized).
evaluate: applies the policy's stages and thresholds and rewrites the
signed channel file (advanced, held or paused); prints the verdict and why.
";

/// `ota-sign rollout …`
pub fn run(mut args: Vec<OsString>) -> Result<()> {
    if args.is_empty() {
        return Err(Error::Usage(
            "rollout needs status or evaluate (try --help)".into(),
        ));
    }
    match string(args.remove(0))?.as_str() {
        "status" => status(args),
        "evaluate" => evaluate(args),
        "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(Error::Usage(format!(
            "rollout {other}: expected status or evaluate"
        ))),
    }
}

/// Reads and verifies a channel file with `pub_key` (or the public half of
/// the signing key).
fn read_channel(path: &Path, key: &PublicKey) -> Result<Channel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let sig_path = sig_of(path);
    let sig = std::fs::read(&sig_path).map_err(|e| Error::io(&sig_path, e))?;
    TrustedKeys::new(vec![key.clone()])
        .verify(&bytes, &sig)
        .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
    Ok(Channel::parse(&bytes)?)
}

fn sig_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn status(args: Vec<OsString>) -> Result<()> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let (mut reports, mut devices, mut channel, mut pubk, mut html, mut ca) =
        (None, None, None, None, None, None);
    let (mut json, mut silent_h) = (false, 24i64);
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            Long("reports") => reports = Some(string(p.value().map_err(usage)?)?),
            Long("devices") => devices = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("channel") => channel = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("pub") => pubk = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("ca") => ca = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("html") => html = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("json") => json = true,
            Long("silent-after") => silent_h = p.value().map_err(usage)?.parse().map_err(usage)?,
            other => return Err(usage(other.unexpected())),
        }
    }
    let reports = need(reports, "--reports DIR|URL")?;
    let reg = collect::load_registry(&need(devices, "--devices REGISTRY")?)?;
    let chan = match (channel, pubk) {
        (Some(c), Some(k)) => {
            let text = std::fs::read_to_string(&k).map_err(|e| Error::io(&k, e))?;
            Some(read_channel(
                &c,
                &PublicKey::from_pem(&k.display().to_string(), &text)?,
            )?)
        }
        (None, None) => None,
        _ => return Err(Error::Usage("--channel and --pub go together".into())),
    };
    let raws = collect::Source::parse(&reports).read(ca.as_deref())?;
    let (ok, bad) = collect::judge(&raws, &reg);
    let st = stats::compute(&ok, &bad, &reg, chan.as_ref(), time::now(), silent_h * 3600);
    if let Some(h) = &html {
        write_file(h, stats::html(&st).as_bytes())?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&st).map_err(|e| Error::Failed(e.to_string()))?
        );
    } else {
        print!("{}", stats::text(&st));
    }
    Ok(())
}

/// Writes atomically (temp file, rename) so a reader never sees half.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn evaluate(args: Vec<OsString>) -> Result<()> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let (mut policy, mut dry) = (None, false);
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            Long("policy") => policy = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("dry-run") => dry = true,
            other => return Err(usage(other.unexpected())),
        }
    }
    let policy = evaluate::Policy::load(&need(policy, "--policy FILE")?)?;
    let key = keys::load_signing_key(&policy.key)?;
    let public = PublicKey::from_uncompressed_point(
        "release key",
        key.verifying_key().to_sec1_point(false).as_bytes(),
    )?;
    let chan = read_channel(&policy.channel, &public)?;
    let reg = collect::load_registry(&policy.devices)?;
    let raws = collect::Source::parse(&policy.reports).read(None)?;
    let (ok, bad) = collect::judge(&raws, &reg);
    let now = time::now();
    let st = stats::compute(&ok, &bad, &reg, Some(&chan), now, i64::MAX / 2);
    let version = chan.version.to_string();
    let rel = st
        .releases
        .iter()
        .find(|r| r.product == chan.product && r.version == version)
        .ok_or_else(|| Error::Failed("no statistics for the channel's release".into()))?;
    let (verdict, why) = evaluate::decide(&policy, &chan, rel, &reg);
    let lease = i64::from(policy.lease_hours) * 3600;
    let mut next = chan.clone();
    let word = match verdict {
        evaluate::Verdict::Advance(pct) => {
            next.rollout.percent = pct;
            "advanced"
        }
        evaluate::Verdict::Pause => {
            next.rollout.paused = true;
            "paused"
        }
        evaluate::Verdict::Hold => "held",
    };
    // A hold only renews the lease once half of it is gone (idempotent).
    let renew = chan.rollout.lease_until.is_none_or(|l| l - now < lease / 2);
    let write = verdict != evaluate::Verdict::Hold || (renew && !chan.rollout.paused);
    println!(
        "{word}: {} {} at {}%{}: {why}{}",
        chan.product,
        version,
        next.rollout.percent,
        if next.rollout.paused { " (paused)" } else { "" },
        if bad.is_empty() {
            String::new()
        } else {
            format!(" [{} rejected reports not counted]", bad.len())
        }
    );
    if write && !dry {
        next.created = now;
        next.expires = now + i64::from(policy.expires_days) * 86400;
        next.rollout.lease_until = Some(now + lease);
        let json = next.to_json();
        Channel::parse(json.as_bytes())?;
        let sig = keys::sign(&key, json.as_bytes());
        write_file(&sig_of(&policy.channel), &sig)?;
        write_file(&policy.channel, json.as_bytes())?;
        println!("wrote {}", policy.channel.display());
    }
    Ok(())
}
