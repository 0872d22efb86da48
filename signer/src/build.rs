//! `ota-sign bundle`: builds the payloads, writes and signs `manifest.json`,
//! and optionally the single-file form.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ota_agent::bundle::container::Header;
use ota_agent::bundle::{
    hash_reader, time, Blob, Bundle, Compression, Image, Kind, Manifest, PublicKey, TrustedKeys,
    Urgency, MANIFEST_FILE, SIGNATURE_FILE,
};

use crate::args::{name_eq_file, need, now, string};
use crate::delta;
use crate::error::{usage, Error, Result};
use crate::keys;
use crate::progress::{Counting, Progress};

const HELP: &str = "\
usage: ota-sign bundle --key K --product P --version V [--security-version N]
                       [--urgency normal|security|critical] [--hardware H...] [--expires-in DAYS]
                       --image NAME=FILE... [--delta-from NAME=OLDFILE...]
                       [--patch NAME=PATCHFILE...] [--compress bzip2]
                       [--bzip2-level 1-9] --out DIR [--single-file OUT]

Builds a signed release (docs/manifest.md) in DIR: manifest.json,
manifest.json.sig and one payload per --image (NAME = partition without slot
suffix, FILE = its new image):
  full image      NAME.img, or NAME.img.bz2 with --compress bzip2
                  (block size --bzip2-level x 100 kB, default 2: the device
                  decoder needs ~4 bytes of RAM per block byte, so -9 costs
                  3.6 MB on the device for ~3 % smaller payloads)
  delta           NAME.bsdiff when --delta-from NAME=OLDFILE is given: a
                  BSDIFF40 patch made here, or --patch NAME=PATCHFILE made
                  elsewhere (e.g. Debian's bsdiff); either is applied to
                  OLDFILE with the agent's code and must reproduce FILE.
--hardware may repeat (no --hardware = every revision). --expires-in defaults
to 365 days. --urgency (default normal) is signed in the manifest; any other
value writes manifest format 2 (docs/policy.md). `created` is SOURCE_DATE_EPOCH when set (reproducible builds),
else now. --single-file OUT also writes the one-file form (USB, factory).
";

struct Args {
    key: PathBuf,
    product: String,
    version: semver::Version,
    security_version: u32,
    urgency: Urgency,
    hardware: Vec<String>,
    expires_in_days: u32,
    images: Vec<(String, PathBuf)>,
    bases: Vec<(String, PathBuf)>,
    patches: Vec<(String, PathBuf)>,
    compression: Compression,
    bzip2_level: u32,
    out: PathBuf,
    single_file: Option<PathBuf>,
}

/// bzip2 block size (x 100 kB) for full-image payloads. The device's libbz2
/// decoder holds ~4 bytes per block byte (plus tables): level 9 = ~3.6 MB,
/// which alone breaks the agent's 4 MiB install budget (docs/architecture.md "Budgets"); level 2
/// = ~0.8 MB. Measured on a 408 MiB ext4 of /usr/bin + /usr/sbin (2026-11-25,
/// `bzip2 -N`): level 9 127,469,870 B, 3 130,199,050 (+2.1 %), 2 131,544,118
/// (+3.2 %), 1 134,730,635 (+5.7 %); level 2 also decoded 2.3x faster than 9.
/// docs/benchmarks.md has the agent's peak RSS per level.
pub const DEFAULT_BZIP2_LEVEL: u32 = 2;

/// Image bytes per bzip2 stream. The agent checkpoints a compressed image
/// only where a stream ends, so after a power cut it re-fetches at most one
/// stream's compressed bytes (and its checkpoint interval, 8 MiB, of image).
/// A stream costs ~50 bytes of headers and one partly filled block.
pub const BZIP2_STREAM_BYTES: u64 = 4 << 20;

fn parse(args: Vec<OsString>) -> Result<Option<Args>> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let (mut key, mut product, mut version, mut out, mut single) = (None, None, None, None, None);
    let mut a = Args {
        key: PathBuf::new(),
        product: String::new(),
        version: semver::Version::new(0, 0, 0),
        security_version: 0,
        urgency: Urgency::Normal,
        hardware: Vec::new(),
        expires_in_days: 365,
        images: Vec::new(),
        bases: Vec::new(),
        patches: Vec::new(),
        compression: Compression::None,
        bzip2_level: DEFAULT_BZIP2_LEVEL,
        out: PathBuf::new(),
        single_file: None,
    };
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(None);
            }
            Long("key") => key = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("product") => product = Some(string(p.value().map_err(usage)?)?),
            Long("version") => {
                let v = string(p.value().map_err(usage)?)?;
                version = Some(
                    semver::Version::parse(&v)
                        .map_err(|e| Error::Usage(format!("--version {v:?}: {e}")))?,
                );
            }
            Long("security-version") => {
                a.security_version = p.value().map_err(usage)?.parse().map_err(usage)?
            }
            Long("urgency") => {
                let u = string(p.value().map_err(usage)?)?;
                a.urgency = match u.as_str() {
                    "normal" => Urgency::Normal,
                    "security" => Urgency::Security,
                    "critical" => Urgency::Critical,
                    _ => {
                        return Err(Error::Usage(format!(
                            "--urgency {u:?}: expected normal, security or critical"
                        )))
                    }
                };
            }
            Long("hardware") => a.hardware.push(string(p.value().map_err(usage)?)?),
            Long("expires-in") => {
                a.expires_in_days = p.value().map_err(usage)?.parse().map_err(usage)?
            }
            Long("image") => a.images.push(name_eq_file(p.value().map_err(usage)?)?),
            Long("delta-from") => a.bases.push(name_eq_file(p.value().map_err(usage)?)?),
            Long("patch") => a.patches.push(name_eq_file(p.value().map_err(usage)?)?),
            Long("compress") => {
                let c = string(p.value().map_err(usage)?)?;
                a.compression = match c.as_str() {
                    "bzip2" => Compression::Bzip2,
                    "none" => Compression::None,
                    _ => {
                        return Err(Error::Usage(format!(
                            "--compress {c:?}: expected bzip2 or none"
                        )))
                    }
                };
            }
            Long("bzip2-level") => {
                let v = string(p.value().map_err(usage)?)?;
                a.bzip2_level = match v.parse() {
                    Ok(n @ 1..=9) => n,
                    _ => {
                        return Err(Error::Usage(format!(
                            "--bzip2-level {v:?}: expected 1 to 9"
                        )))
                    }
                };
            }
            Long("out") => out = Some(PathBuf::from(p.value().map_err(usage)?)),
            Long("single-file") => single = Some(PathBuf::from(p.value().map_err(usage)?)),
            other => return Err(usage(other.unexpected())),
        }
    }
    a.key = need(key, "--key K")?;
    a.product = need(product, "--product P")?;
    a.version = need(version, "--version V")?;
    a.out = need(out, "--out DIR")?;
    a.single_file = single;
    if a.images.is_empty() {
        return Err(Error::Usage(
            "at least one --image NAME=FILE is needed".into(),
        ));
    }
    if a.expires_in_days == 0 {
        return Err(Error::Usage("--expires-in must be at least 1 day".into()));
    }
    for (what, list) in [("--delta-from", &a.bases), ("--patch", &a.patches)] {
        for (n, _) in list {
            if !a.images.iter().any(|(i, _)| i == n) {
                return Err(Error::Usage(format!("{what} {n}: no --image {n}=FILE")));
            }
        }
    }
    for (n, _) in &a.patches {
        if !a.bases.iter().any(|(b, _)| b == n) {
            return Err(Error::Usage(format!(
                "--patch {n} needs --delta-from {n}=OLDFILE (to check it)"
            )));
        }
    }
    Ok(Some(a))
}

fn hash_file(path: &Path) -> Result<Blob> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    hash_reader(BufReader::new(f)).map_err(|e| Error::io(path, e))
}

fn lookup<'a>(list: &'a [(String, PathBuf)], name: &str) -> Option<&'a Path> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.as_path())
}

/// Builds one payload into `out`; returns its manifest entry.
fn build_image(a: &Args, name: &str, file: &Path, progress: &Progress) -> Result<Image> {
    progress.phase(&format!("{name}: hashing"), 0);
    let result = hash_file(file)?;
    if let Some(base_path) = lookup(&a.bases, name) {
        let base = hash_file(base_path)?;
        let payload_name = format!("{name}.bsdiff");
        let dest = a.out.join(&payload_name);
        let patch = match lookup(&a.patches, name) {
            Some(p) => delta::read(p)?,
            None => {
                progress.phase(&format!("{name}: reading"), 0);
                let old = delta::read(base_path)?;
                let new = delta::read(file)?;
                progress.phase(&format!("{name}: delta"), 0);
                delta::diff(&old, &new, progress)?
            }
        };
        delta::check_reproduces(base_path, patch.as_slice(), result, progress)?;
        std::fs::write(&dest, &patch).map_err(|e| Error::io(&dest, e))?;
        return Ok(Image {
            name: name.to_owned(),
            file: payload_name,
            payload: delta::blob(&patch),
            compression: Compression::None,
            kind: Kind::Bsdiff { base },
            result,
        });
    }
    let (payload_name, payload) = match a.compression {
        Compression::None => {
            let payload_name = format!("{name}.img");
            let dest = a.out.join(&payload_name);
            std::fs::copy(file, &dest).map_err(|e| Error::io(&dest, e))?;
            (payload_name, result)
        }
        Compression::Bzip2 => {
            let payload_name = format!("{name}.img.bz2");
            let dest = a.out.join(&payload_name);
            progress.phase(&format!("{name}: bzip2"), result.size);
            let mut input = BufReader::new(File::open(file).map_err(|e| Error::io(file, e))?);
            let mut out = BufWriter::new(File::create(&dest).map_err(|e| Error::io(&dest, e))?);
            // One bzip2 stream per BZIP2_STREAM_BYTES of image: the agent can
            // only resume decoding at a stream start (docs/install.md).
            // An empty image still gets its one (empty) stream.
            let mut first = true;
            while first || !input.fill_buf().map_err(|e| Error::io(file, e))?.is_empty() {
                first = false;
                let mut enc =
                    bzip2::write::BzEncoder::new(&mut out, bzip2::Compression::new(a.bzip2_level));
                std::io::copy(
                    &mut (&mut input).take(BZIP2_STREAM_BYTES),
                    &mut Counting {
                        inner: &mut enc,
                        progress,
                    },
                )
                .map_err(|e| Error::io(file, e))?;
                enc.finish().map_err(|e| Error::io(&dest, e))?;
            }
            out.flush().map_err(|e| Error::io(&dest, e))?;
            (payload_name, hash_file(&dest)?)
        }
    };
    Ok(Image {
        name: name.to_owned(),
        file: payload_name,
        payload,
        compression: a.compression,
        kind: Kind::Full,
        result,
    })
}

pub fn bundle(args: Vec<OsString>) -> Result<()> {
    let Some(a) = parse(args)? else {
        return Ok(());
    };
    let key = keys::load_signing_key(&a.key)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let progress = Progress::start("ota-sign bundle");
    let mut images = Vec::new();
    for (name, file) in &a.images {
        images.push(build_image(&a, name, file, &progress)?);
    }
    let created = now();
    let manifest = Manifest {
        product: a.product.clone(),
        hardware: a.hardware.clone(),
        version: a.version.clone(),
        security_version: a.security_version,
        urgency: a.urgency,
        created,
        expires: created + i64::from(a.expires_in_days) * 86400,
        images,
    };
    let json = manifest.to_json();
    // Exactly what a device will parse: refuse to sign what it would refuse.
    if Manifest::parse(json.as_bytes())? != manifest {
        return Err(Error::Failed("manifest does not round-trip (bug)".into()));
    }
    let sig = keys::sign(&key, json.as_bytes());
    let mpath = a.out.join(MANIFEST_FILE);
    let spath = a.out.join(SIGNATURE_FILE);
    std::fs::write(&mpath, &json).map_err(|e| Error::io(&mpath, e))?;
    std::fs::write(&spath, &sig).map_err(|e| Error::io(&spath, e))?;
    if let Some(single) = &a.single_file {
        progress.phase("single file", 0);
        write_single_file(single, json.as_bytes(), &sig, &a.out, &manifest)?;
    }
    // Check the result as a device would see it (signature, payload hashes).
    progress.phase("verifying", 0);
    let trusted = TrustedKeys::new(vec![PublicKey::from_uncompressed_point(
        "bundle key",
        key.verifying_key().to_sec1_point(false).as_bytes(),
    )?]);
    Bundle::open(&a.out, &trusted)?.check_payloads()?;
    if let Some(single) = &a.single_file {
        Bundle::open(single, &trusted)?.check_payloads()?;
    }
    drop(progress);
    println!(
        "{}: {} {} (security version {}, urgency {}), {} image(s), expires {}",
        a.out.display(),
        manifest.product,
        manifest.version,
        manifest.security_version,
        manifest.urgency.name(),
        manifest.images.len(),
        time::format_rfc3339_utc(manifest.expires)
    );
    Ok(())
}

/// Header, manifest, signature, then the payloads in manifest order
/// (`bundle::container`).
fn write_single_file(
    path: &Path,
    manifest: &[u8],
    sig: &[u8],
    dir: &Path,
    m: &Manifest,
) -> Result<()> {
    let io = |e| Error::io(path, e);
    let header = Header {
        manifest_len: u32::try_from(manifest.len())
            .map_err(|_| Error::Failed("manifest too large".into()))?,
        signature_len: u32::try_from(sig.len())
            .map_err(|_| Error::Failed("signature too large".into()))?,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    w.write_all(&header.encode()).map_err(io)?;
    w.write_all(manifest).map_err(io)?;
    w.write_all(sig).map_err(io)?;
    for img in &m.images {
        let p = dir.join(&img.file);
        let n = std::io::copy(
            &mut File::open(&p)
                .map_err(|e| Error::io(&p, e))?
                .take(img.payload.size),
            &mut w,
        )
        .map_err(io)?;
        if n != img.payload.size {
            return Err(Error::Failed(format!(
                "{}: changed while bundling",
                p.display()
            )));
        }
    }
    w.into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(())
}
