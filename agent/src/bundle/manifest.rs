//! `manifest.json`, formats 1 and 2 (documented in `docs/manifest.md`;
//! format 2 adds `urgency`).
//!
//! Parsing is strict: unknown fields anywhere are an error (a signed field the
//! device does not understand might carry meaning it would ignore; a format
//! change bumps `format`), every value is checked, and each error names the
//! field. [`Manifest::to_json`] writes the canonical form the signer signs;
//! the device verifies the exact bytes it received, never a re-encoding.

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{json_error, BundleError};
use super::time::{format_rfc3339_utc, parse_rfc3339_utc};

/// The oldest manifest format this code reads and writes (no `urgency`).
pub const FORMAT: u32 = 1;
/// The newest format: format 1 plus `urgency`. A writer uses format 1
/// unless the urgency is not `normal`, so older agents keep reading every
/// normal release.
pub const FORMAT_URGENCY: u32 = 2;
/// Largest manifest accepted (it is read into memory before verification).
pub const MAX_LEN: usize = 1 << 20;
/// Most images one manifest may name.
pub const MAX_IMAGES: usize = 16;

/// How a payload is compressed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    None,
    /// One or more bzip2 streams.
    Bzip2,
}

/// How soon the device should take a release (docs/policy.md): `normal`
/// (the default), `security` (passed to the policy hooks, otherwise like
/// `normal`), `critical` (ignores the download and activation windows; a
/// deferring policy hook is obeyed only for a bounded time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// No hurry: windows and hooks decide.
    #[default]
    Normal,
    /// Fixes a vulnerability; treated like `normal` by the agent itself.
    Security,
    /// Must not wait for long: see [`Urgency`].
    Critical,
}

impl Urgency {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Urgency::Normal => "normal",
            Urgency::Security => "security",
            Urgency::Critical => "critical",
        }
    }
}

/// What the payload holds (wire form; see [`Kind`] for the checked form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Full,
    Bsdiff,
}

/// Size and SHA-256 of some bytes (a payload, a result, a delta base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: Digest,
}

/// How the partition contents are produced from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The (decompressed) payload is the partition image.
    Full,
    /// The payload is a BSDIFF40 patch against `base` (the booted slot's image).
    Bsdiff {
        /// The image the patch applies to.
        base: Blob,
    },
}

/// One target partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Partition name without slot suffix (`rootfs`, not `rootfs_a`).
    pub name: String,
    /// Payload file name, relative to the manifest.
    pub file: String,
    /// The payload as transferred.
    pub payload: Blob,
    /// Compression of the payload.
    pub compression: Compression,
    /// Full image or delta.
    pub kind: Kind,
    /// The bytes that end up on the partition.
    pub result: Blob,
}

/// A parsed, checked manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Product id; must equal the device's.
    pub product: String,
    /// Compatible hardware revisions; empty = every revision.
    pub hardware: Vec<String>,
    /// Release version.
    pub version: semver::Version,
    /// Anti-rollback counter: the device refuses anything below its stored minimum.
    pub security_version: u32,
    /// How soon the device should take it (format 2; `normal` in format 1).
    pub urgency: Urgency,
    /// Creation time, seconds since the epoch (UTC).
    pub created: i64,
    /// Expiry time, seconds since the epoch (UTC).
    pub expires: i64,
    /// Target partitions, in payload order.
    pub images: Vec<Image>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    format: u32,
    product: String,
    hardware: Vec<String>,
    version: String,
    security_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    urgency: Option<Urgency>,
    created: String,
    expires: String,
    images: Vec<RawImage>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    name: String,
    file: String,
    size: u64,
    sha256: String,
    compression: Compression,
    kind: RawKind,
    result_size: u64,
    result_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_sha256: Option<String>,
}

fn bad(msg: String) -> BundleError {
    BundleError::Manifest(msg)
}

/// `[a-z0-9][a-z0-9_-]*`, at most 32 bytes, no slot suffix.
fn check_partition_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if !ok {
        return Err(format!(
            "`name` {name:?} is not a partition name ([a-z0-9][a-z0-9_-]*, at most 32 bytes)"
        ));
    }
    if name.ends_with("_a") || name.ends_with("_b") {
        return Err(format!(
            "`name` {name:?} has a slot suffix (name the partition without _a/_b)"
        ));
    }
    Ok(())
}

/// A plain file name: `[A-Za-z0-9][A-Za-z0-9._+-]*`, at most 128 bytes (no
/// directories, no `..`, nothing hidden).
fn check_file_name(file: &str) -> Result<(), String> {
    let ok = !file.is_empty()
        && file.len() <= 128
        && file.starts_with(|c: char| c.is_ascii_alphanumeric())
        && file
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(&c));
    if ok && file != "manifest.json" && file != "manifest.json.sig" {
        Ok(())
    } else {
        Err(format!("`file` {file:?} is not a plain payload file name"))
    }
}

fn check_token(field: &str, v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{field}` {v:?} must be 1-64 characters of [A-Za-z0-9._-]"
        ))
    }
}

impl Manifest {
    /// Parses and checks manifest bytes. Call only on bytes whose signature
    /// verified (see `bundle::verify_manifest`).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, BundleError> {
        if bytes.len() > MAX_LEN {
            return Err(bad(format!(
                "{} bytes is larger than the limit of {MAX_LEN}",
                bytes.len()
            )));
        }
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| bad(json_error(bytes, &e)))?;
        Manifest::from_raw(raw).map_err(bad)
    }

    fn from_raw(raw: RawManifest) -> Result<Manifest, String> {
        if raw.format != FORMAT && raw.format != FORMAT_URGENCY {
            return Err(format!(
                "`format` {} is not supported (this agent reads formats {FORMAT} and {FORMAT_URGENCY})",
                raw.format
            ));
        }
        if raw.format == FORMAT && raw.urgency.is_some() {
            return Err(format!(
                "`urgency` needs `format` {FORMAT_URGENCY} (this manifest says {FORMAT})"
            ));
        }
        check_token("product", &raw.product)?;
        for h in &raw.hardware {
            check_token("hardware", h)?;
        }
        let version = semver::Version::parse(&raw.version)
            .map_err(|e| format!("`version` {:?} is not SemVer: {e}", raw.version))?;
        let time = |field: &str, v: &str| {
            parse_rfc3339_utc(v).ok_or_else(|| {
                format!("`{field}` {v:?} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)")
            })
        };
        let created = time("created", &raw.created)?;
        let expires = time("expires", &raw.expires)?;
        if expires <= created {
            return Err(format!(
                "`expires` {} is not after `created` {}",
                raw.expires, raw.created
            ));
        }
        if raw.images.is_empty() {
            return Err("`images` is empty".into());
        }
        if raw.images.len() > MAX_IMAGES {
            return Err(format!(
                "`images` has {} entries, more than {MAX_IMAGES}",
                raw.images.len()
            ));
        }
        let mut images: Vec<Image> = Vec::with_capacity(raw.images.len());
        for r in raw.images {
            let img = image_from_raw(r)?;
            if images.iter().any(|i| i.name == img.name) {
                return Err(format!("`name` {:?} appears twice in `images`", img.name));
            }
            if images.iter().any(|i| i.file == img.file) {
                return Err(format!("`file` {:?} appears twice in `images`", img.file));
            }
            images.push(img);
        }
        Ok(Manifest {
            product: raw.product,
            hardware: raw.hardware,
            version,
            security_version: raw.security_version,
            urgency: raw.urgency.unwrap_or_default(),
            created,
            expires,
            images,
        })
    }

    /// The canonical JSON encoding (pretty, fixed field order, trailing newline).
    pub fn to_json(&self) -> String {
        let urgency = (self.urgency != Urgency::Normal).then_some(self.urgency);
        let raw = RawManifest {
            format: if urgency.is_some() {
                FORMAT_URGENCY
            } else {
                FORMAT
            },
            product: self.product.clone(),
            hardware: self.hardware.clone(),
            version: self.version.to_string(),
            security_version: self.security_version,
            urgency,
            created: format_rfc3339_utc(self.created),
            expires: format_rfc3339_utc(self.expires),
            images: self.images.iter().map(image_to_raw).collect(),
        };
        // Serialising plain strings and integers cannot fail.
        let mut s = serde_json::to_string_pretty(&raw).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Looks up an image by partition name.
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name == name)
    }
}

fn image_from_raw(r: RawImage) -> Result<Image, String> {
    check_partition_name(&r.name)?;
    let name = r.name;
    let ctx = |m: String| format!("image {name:?}: {m}");
    check_file_name(&r.file).map_err(ctx)?;
    let digest = |field: &str, v: &str| {
        Digest::from_hex(v)
            .ok_or_else(|| ctx(format!("`{field}` {v:?} is not 64 lowercase hex digits")))
    };
    let payload = Blob {
        size: r.size,
        sha256: digest("sha256", &r.sha256)?,
    };
    let result = Blob {
        size: r.result_size,
        sha256: digest("result_sha256", &r.result_sha256)?,
    };
    let kind = match (r.kind, r.base_size, &r.base_sha256) {
        (RawKind::Full, None, None) => Kind::Full,
        (RawKind::Full, _, _) => {
            return Err(ctx(
                "`base_size`/`base_sha256` are only for kind \"bsdiff\"".into(),
            ))
        }
        (RawKind::Bsdiff, Some(size), Some(sha)) => Kind::Bsdiff {
            base: Blob {
                size,
                sha256: digest("base_sha256", sha)?,
            },
        },
        (RawKind::Bsdiff, None, _) => {
            return Err(ctx(
                "missing field `base_size` (required for kind \"bsdiff\")".into(),
            ))
        }
        (RawKind::Bsdiff, _, None) => {
            return Err(ctx(
                "missing field `base_sha256` (required for kind \"bsdiff\")".into(),
            ))
        }
    };
    match (kind, r.compression) {
        (Kind::Bsdiff { .. }, Compression::Bzip2) => {
            return Err(ctx("`compression` must be \"none\" for kind \"bsdiff\" (the patch compresses its blocks itself)".into()))
        }
        (Kind::Full, Compression::None) if payload != result => {
            return Err(ctx("`size`/`sha256` differ from `result_size`/`result_sha256` of an uncompressed full image".into()))
        }
        _ => {}
    }
    Ok(Image {
        name,
        file: r.file,
        payload,
        compression: r.compression,
        kind,
        result,
    })
}

fn image_to_raw(i: &Image) -> RawImage {
    let (kind, base_size, base_sha256) = match i.kind {
        Kind::Full => (RawKind::Full, None, None),
        Kind::Bsdiff { base } => (
            RawKind::Bsdiff,
            Some(base.size),
            Some(base.sha256.to_string()),
        ),
    };
    RawImage {
        name: i.name.clone(),
        file: i.file.clone(),
        size: i.payload.size,
        sha256: i.payload.sha256.to_string(),
        compression: i.compression,
        kind,
        result_size: i.result.size,
        result_sha256: i.result.sha256.to_string(),
        base_size,
        base_sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = include_str!("../../testdata/manifest-example.json");

    #[test]
    fn documented_example_parses_and_is_canonical() {
        let m = Manifest::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(m.product, "rice-cooker");
        assert_eq!(m.version, semver::Version::new(1, 4, 0));
        assert_eq!(m.images.len(), 2);
        assert!(matches!(m.images[1].kind, Kind::Bsdiff { .. }));
        // The example file is what the signer writes, byte for byte.
        assert_eq!(m.to_json(), EXAMPLE);
    }

    #[test]
    fn urgency_is_format_2_and_defaults_to_normal() {
        assert_eq!(
            Manifest::parse(EXAMPLE.as_bytes()).unwrap().urgency,
            Urgency::Normal
        );
        for (name, u) in [
            ("normal", Urgency::Normal),
            ("security", Urgency::Security),
            ("critical", Urgency::Critical),
        ] {
            let text = EXAMPLE
                .replacen("\"format\": 1", "\"format\": 2", 1)
                .replacen(
                    "\"security_version\": 3,",
                    &format!("\"security_version\": 3, \"urgency\": \"{name}\","),
                    1,
                );
            assert_eq!(Manifest::parse(text.as_bytes()).unwrap().urgency, u);
        }
        let text = EXAMPLE
            .replacen("\"format\": 1", "\"format\": 2", 1)
            .replacen(
                "\"security_version\": 3,",
                "\"security_version\": 3, \"urgency\": \"urgent\",",
                1,
            );
        assert!(
            err(&text).contains("unknown variant `urgent`"),
            "{}",
            err(&text)
        );
    }

    fn err(text: &str) -> String {
        let e = Manifest::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("\"format\": 1", "\"format\": 3", "`format`"),
            (
                "\"security_version\": 3,",
                "\"security_version\": 3, \"urgency\": \"critical\",",
                "`urgency` needs `format` 2",
            ),
            (
                "\"product\": \"rice-cooker\"",
                "\"product\": \"rice cooker\"",
                "`product`",
            ),
            (
                "\"version\": \"1.4.0\"",
                "\"version\": \"1.4\"",
                "`version`",
            ),
            (
                "\"created\": \"2026-11-20T08:00:00Z\"",
                "\"created\": \"2026-11-20 08:00\"",
                "`created`",
            ),
            (
                "\"expires\": \"2027-11-20T08:00:00Z\"",
                "\"expires\": \"2025-11-20T08:00:00Z\"",
                "`expires`",
            ),
            (
                "\"security_version\": 3,",
                "\"security_version\": 3, \"colour\": 1,",
                "unknown field `colour`",
            ),
            (
                "\"security_version\": 3,",
                "\"security_version\": -3,",
                "security_version",
            ),
            (
                "\"security_version\": 3,",
                "",
                "missing field `security_version`",
            ),
            (
                "\"name\": \"rootfs\"",
                "\"name\": \"rootfs_a\"",
                "slot suffix",
            ),
            (
                "\"file\": \"boot.vfat.bz2\"",
                "\"file\": \"../etc/passwd\"",
                "`file`",
            ),
            (
                "\"compression\": \"bzip2\"",
                "\"compression\": \"xz\"",
                "unknown variant `xz`",
            ),
            (
                "\"kind\": \"bsdiff\"",
                "\"kind\": \"vcdiff\"",
                "unknown variant `vcdiff`",
            ),
            (
                "\"kind\": \"bsdiff\",",
                "\"kind\": \"full\",",
                "`base_size`",
            ),
            ("\"base_size\": 268435456,", "", "missing field `base_size`"),
            (
                "\"name\": \"boot\"",
                "\"name\": \"rootfs\"",
                "appears twice",
            ),
        ];
        for (from, to, needle) in cases {
            assert!(EXAMPLE.contains(from), "{from}");
            let text = EXAMPLE.replacen(from, to, 1);
            let e = err(&text);
            assert!(e.contains(needle), "{to}: {e:?} lacks {needle:?}");
        }
        let e = err(&EXAMPLE.replacen("\"images\": [", "\"images\": [\n], \"x\": [", 1));
        assert!(
            e.contains("`images` is empty") || e.contains("unknown field"),
            "{e}"
        );
        assert!(err("{").starts_with("manifest: "));
        let bad_hex = EXAMPLE.replacen("\"sha256\": \"", "\"sha256\": \"A", 1);
        assert!(err(&bad_hex).contains("`sha256`"));
    }

    fn blob() -> impl Strategy<Value = Blob> {
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(size, d)| Blob {
            size,
            sha256: Digest(d),
        })
    }

    prop_compose! {
        fn image()(name in "[a-z][a-z0-9-]{0,10}", file in "[a-z][a-z0-9.]{0,20}",
                   payload in blob(), result in blob(), base in proptest::option::of(blob()),
                   bz in any::<bool>()) -> Image {
            let kind = match base { Some(base) => Kind::Bsdiff { base }, None => Kind::Full };
            let compression = if bz && base.is_none() { Compression::Bzip2 } else { Compression::None };
            let payload = if compression == Compression::None && base.is_none() { result } else { payload };
            Image { name, file, payload, compression, kind, result }
        }
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(img in image(), sv in any::<u32>(), major in 0u64..100,
                                   created in 0i64..4_000_000_000, life in 1i64..1_000_000_000,
                                   hw in proptest::collection::vec("[a-z0-9-]{1,8}", 0..3),
                                   urgency in 0usize..3) {
            let urgency = [Urgency::Normal, Urgency::Security, Urgency::Critical][urgency];
            let m = Manifest {
                product: "rice-cooker".into(),
                hardware: hw,
                version: semver::Version::parse(&format!("{major}.2.3-rc.1+b5")).unwrap(),
                security_version: sv,
                urgency,
                created,
                expires: created + life,
                images: vec![img],
            };
            let json = m.to_json();
            // Format 2 exactly when the urgency needs it (older agents
            // keep reading every normal release).
            let format2 = json.contains("\"format\": 2,");
            prop_assert_eq!(format2, urgency != Urgency::Normal);
            prop_assert_eq!(Manifest::parse(json.as_bytes()).unwrap(), m);
        }
    }
}
