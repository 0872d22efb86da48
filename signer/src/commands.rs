//! `keygen`, `delta`, `patch`, `verify`, `publish`: argument parsing and the
//! file edges around the shared library.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use ota_agent::bundle::channel::{Channel, Rollout};
use ota_agent::bundle::{self, time, Bundle, Kind, Manifest, PublicKey, TrustedKeys};

use crate::args::{name_eq_file, need, string};
use crate::delta;
use crate::error::{usage, Error, Result};
use crate::keys;
use crate::progress::Progress;

/// Returns Ok(true) after printing `text` when the argument is -h/--help.
fn is_help(arg: &lexopt::Arg) -> bool {
    matches!(arg, lexopt::Arg::Short('h') | lexopt::Arg::Long("help"))
}

/// Collects exactly `n` positional arguments.
fn positionals(args: Vec<OsString>, n: usize, help: &str) -> Result<Option<Vec<PathBuf>>> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut out = Vec::new();
    while let Some(arg) = p.next().map_err(usage)? {
        if is_help(&arg) {
            print!("{help}");
            return Ok(None);
        }
        match arg {
            Value(v) if out.len() < n => out.push(PathBuf::from(v)),
            other => return Err(usage(other.unexpected())),
        }
    }
    if out.len() != n {
        return Err(Error::Usage(format!(
            "expected {n} arguments, got {} (try --help)",
            out.len()
        )));
    }
    Ok(Some(out))
}

const KEYGEN_HELP: &str = "\
usage: ota-sign keygen --out NAME

Generates an ECDSA P-256 key pair: NAME.key (PKCS#8 PEM, mode 0600) and
NAME.pub (SPKI PEM; copy it into the devices' keys directory). Existing files
are never overwritten.
";

pub fn keygen(args: Vec<OsString>) -> Result<()> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut out = None;
    while let Some(arg) = p.next().map_err(usage)? {
        if is_help(&arg) {
            print!("{KEYGEN_HELP}");
            return Ok(());
        }
        match arg {
            Long("out") => out = Some(PathBuf::from(p.value().map_err(usage)?)),
            other => return Err(usage(other.unexpected())),
        }
    }
    let (k, pubk) = keys::keygen(&need(out, "--out NAME")?)?;
    println!("wrote {} and {}", k.display(), pubk.display());
    Ok(())
}

const DELTA_HELP: &str = "\
usage: ota-sign delta OLD NEW PATCH

Writes a classic BSDIFF40 patch (the format of Debian's bsdiff 4.3; its
bspatch applies it) that turns OLD into NEW, then checks it by applying it
with the agent's code. Shows progress on a terminal. Needs OLD and NEW in
memory plus about 5x OLD for the suffix array.
";

pub fn delta(args: Vec<OsString>) -> Result<()> {
    let Some(a) = positionals(args, 3, DELTA_HELP)? else {
        return Ok(());
    };
    let (old_p, new_p, patch_p) = (&a[0], &a[1], &a[2]);
    let progress = Progress::start("ota-sign delta");
    progress.phase("reading", 0);
    let old = delta::read(old_p)?;
    let new = delta::read(new_p)?;
    let patch = delta::diff(&old, &new, &progress)?;
    let want = delta::blob(&new);
    drop(new);
    drop(old);
    delta::check_reproduces(old_p, patch.as_slice(), want, &progress)?;
    std::fs::write(patch_p, &patch).map_err(|e| Error::io(patch_p, e))?;
    drop(progress);
    println!(
        "{}: {} bytes ({} -> {} bytes)",
        patch_p.display(),
        patch.len(),
        std::fs::metadata(old_p).map(|m| m.len()).unwrap_or(0),
        want.size
    );
    Ok(())
}

const PATCH_HELP: &str = "\
usage: ota-sign patch OLD PATCH NEW

Applies a BSDIFF40 patch (from ota-sign delta or Debian's bsdiff) to OLD and
writes NEW, with exactly the streaming code the agent uses on the device.
";

pub fn patch(args: Vec<OsString>) -> Result<()> {
    let Some(a) = positionals(args, 3, PATCH_HELP)? else {
        return Ok(());
    };
    let patch = File::open(&a[1]).map_err(|e| Error::io(&a[1], e))?;
    let progress = Progress::start("ota-sign patch");
    let got = delta::apply_file(&a[0], &patch, Some(&a[2]), &progress)?;
    drop(progress);
    println!(
        "{}: {} bytes sha256 {}",
        a[2].display(),
        got.size,
        got.sha256
    );
    Ok(())
}

const VERIFY_HELP: &str = "\
usage: ota-sign verify --key PUB [--key PUB2...] [--base NAME=FILE...] DIR|FILE

Checks a bundle directory or single-file bundle: the manifest signature with
the given public key(s), the manifest's format, and every payload's size and
SHA-256 and what it produces (decompressed size and SHA-256 of full images;
for deltas the patch's new size, and with --base the whole result).
";

pub fn verify(args: Vec<OsString>) -> Result<()> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut keys = Vec::new();
    let mut bases: Vec<(String, PathBuf)> = Vec::new();
    let mut path = None;
    while let Some(arg) = p.next().map_err(usage)? {
        if is_help(&arg) {
            print!("{VERIFY_HELP}");
            return Ok(());
        }
        match arg {
            Long("key") => {
                let k = PathBuf::from(p.value().map_err(usage)?);
                let text = std::fs::read_to_string(&k).map_err(|e| Error::io(&k, e))?;
                keys.push(PublicKey::from_pem(&k.display().to_string(), &text)?);
            }
            Long("base") => bases.push(name_eq_file(p.value().map_err(usage)?)?),
            Value(v) if path.is_none() => path = Some(PathBuf::from(v)),
            other => return Err(usage(other.unexpected())),
        }
    }
    let path = need(path, "DIR|FILE")?;
    if keys.is_empty() {
        return Err(Error::Usage("missing --key PUB (try --help)".into()));
    }
    let b = Bundle::open(&path, &TrustedKeys::new(keys))?;
    b.check_payloads()?;
    for (name, base) in &bases {
        let (i, img) = b
            .manifest
            .images
            .iter()
            .enumerate()
            .find(|(_, i)| &i.name == name)
            .ok_or_else(|| Error::Usage(format!("--base {name}: no such image in the manifest")))?;
        if !matches!(img.kind, Kind::Bsdiff { .. }) {
            return Err(Error::Usage(format!("--base {name}: image is not a delta")));
        }
        let mut f = File::open(base).map_err(|e| Error::io(base, e))?;
        bundle::write_image(img, &b.payload(i)?, Some(&mut f), std::io::sink())?;
    }
    let m = &b.manifest;
    if m.expires <= time::now() {
        eprintln!(
            "ota-sign: warning: manifest expired at {}",
            time::format_rfc3339_utc(m.expires)
        );
    }
    println!(
        "{}: ok: {} {} (security version {}, urgency {}), {} image(s), signed by {}",
        path.display(),
        m.product,
        m.version,
        m.security_version,
        m.urgency.name(),
        m.images.len(),
        b.key
    );
    Ok(())
}

const PUBLISH_HELP: &str = "\
usage: ota-sign publish --key K --channel NAME --manifest PATH --rollout PERCENT
                        [--seed S] [--pause] [--expires-in DAYS] [--manifest-url REL]
                        [--reports URL] [--lease-hours H] --out DIR

Writes DIR/NAME.json and DIR/NAME.json.sig (docs/channel.md): the release of
the manifest at PATH, offered to PERCENT (0-100) of the devices. The device's
bucket is SHA-256(device id || seed); keep the seed (default: the release
version) while raising the percent so that raising only adds devices.
--expires-in defaults to 30 days: republish before then. The manifest's path
in the channel file is --manifest-url, or PATH relative to DIR.
--reports names where devices PUT their signed reports, --lease-hours ends
new installs that many hours from now unless republished (both make the
file format 2, docs/channel.md).
";

pub fn publish(args: Vec<OsString>) -> Result<()> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let (mut key, mut channel, mut manifest, mut percent, mut seed, mut out, mut url) =
        (None, None, None, None, None, None, None);
    let mut paused = false;
    let mut days: u32 = 30;
    let (mut reports, mut lease_h): (Option<String>, Option<i64>) = (None, None);
    while let Some(arg) = p.next().map_err(usage)? {
        if is_help(&arg) {
            print!("{PUBLISH_HELP}");
            return Ok(());
        }
        match arg {
            Long("key") => key = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("channel") => channel = Some(string(p.value().map_err(usage)?)?),
            Long("manifest") => manifest = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("manifest-url") => url = Some(string(p.value().map_err(usage)?)?),
            Long("rollout") => {
                percent = Some(p.value().map_err(usage)?.parse::<u8>().map_err(usage)?)
            }
            Long("seed") => seed = Some(string(p.value().map_err(usage)?)?),
            Long("pause") => paused = true,
            Long("expires-in") => days = p.value().map_err(usage)?.parse().map_err(usage)?,
            Long("out") => out = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("reports") => reports = Some(string(p.value().map_err(usage)?)?),
            Long("lease-hours") => {
                lease_h = Some(p.value().map_err(usage)?.parse().map_err(usage)?)
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let key = keys::load_signing_key(&need(key, "--key K")?)?;
    let channel = need(channel, "--channel NAME")?;
    let manifest_path = need(manifest, "--manifest PATH")?;
    let percent = need(percent, "--rollout PERCENT")?;
    let out = need(out, "--out DIR")?;
    if percent > 100 {
        return Err(Error::Usage(format!("--rollout {percent} is above 100")));
    }
    let bytes = std::fs::read(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let m = Manifest::parse(&bytes)?;
    let url = match url {
        Some(u) => u,
        None => relative_to(&manifest_path, &out)?,
    };
    let now = crate::args::now();
    let c = Channel {
        product: m.product.clone(),
        channel: channel.clone(),
        version: m.version.clone(),
        manifest: url,
        rollout: Rollout {
            percent,
            seed: seed.unwrap_or_else(|| m.version.to_string()),
            paused,
            lease_until: lease_h.map(|h| now + h * 3600),
        },
        created: now,
        expires: now + i64::from(days) * 86400,
        reports,
    };
    let json = c.to_json();
    Channel::parse(json.as_bytes())?; // what devices will parse
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let path = out.join(format!("{channel}.json"));
    let sig_path = out.join(format!("{channel}.json.sig"));
    std::fs::write(&path, &json).map_err(|e| Error::io(&path, e))?;
    std::fs::write(&sig_path, keys::sign(&key, json.as_bytes()))
        .map_err(|e| Error::io(&sig_path, e))?;
    println!(
        "{}: {} {} at {}%{}",
        path.display(),
        c.product,
        c.version,
        percent,
        if paused { " (paused)" } else { "" }
    );
    Ok(())
}

/// `path` relative to `dir` (both must exist), with `/` separators.
fn relative_to(path: &Path, dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let p = path.canonicalize().map_err(|e| Error::io(path, e))?;
    let d = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let rel = p.strip_prefix(&d).map_err(|_| {
        Error::Usage(format!(
            "{} is not below {}: give --manifest-url",
            path.display(),
            dir.display()
        ))
    })?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}
