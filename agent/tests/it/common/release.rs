//! Releases as a server publishes them: a manifest with one full image,
//! signed by openssl.

use std::fs;
use std::path::Path;

use ota_agent::bundle::{Blob, Compression, Digest, Image, Kind, Manifest};

use super::openssl;

/// The manifest of a release whose one image, `rootfs`, is `image` stored
/// whole and uncompressed in the file `rootfs.img`.
pub fn one_image_manifest(
    product: &str,
    version: semver::Version,
    security_version: u32,
    (created, expires): (i64, i64),
    image: &[u8],
) -> Manifest {
    let blob = Blob {
        size: image.len() as u64,
        sha256: Digest::of(image),
    };
    Manifest {
        product: product.into(),
        hardware: vec![],
        version,
        security_version,
        urgency: Default::default(),
        created,
        expires,
        images: vec![Image {
            name: "rootfs".into(),
            file: "rootfs.img".into(),
            payload: blob,
            compression: Compression::None,
            kind: Kind::Full,
            result: blob,
        }],
    }
}

/// Writes `rice-cooker` release `version` into the directory `rel`:
/// `rootfs.img` (= `image`), `manifest.json` (security version 1, made a
/// minute ago, valid for a day) and `manifest.json.sig` signed with `key`.
/// Returns the manifest.
pub fn write_one_image_release(rel: &Path, key: &Path, version: &str, image: &[u8]) -> Manifest {
    fs::create_dir_all(rel).unwrap();
    fs::write(rel.join("rootfs.img"), image).unwrap();
    let now = ota_agent::bundle::time::now();
    let m = one_image_manifest(
        "rice-cooker",
        version.parse().unwrap(),
        1,
        (now - 60, now + 86400),
        image,
    );
    fs::write(rel.join("manifest.json"), m.to_json()).unwrap();
    openssl::sign(
        key,
        &rel.join("manifest.json"),
        &rel.join("manifest.json.sig"),
    );
    m
}

/// `ota-sign bundle` run in `dir`: rice-cooker `version` with `image` as
/// `rootfs`, signed with `dir/release.key` (the key `agent_root` made),
/// written to the bundle directory `out`.
pub fn sign_bundle(dir: &Path, version: &str, image: &Path, out: &Path) {
    super::tools::ota_sign_in(
        dir,
        &[
            "bundle",
            "--key",
            "release.key",
            "--product",
            "rice-cooker",
            "--version",
            version,
            "--image",
            &format!("rootfs={}", image.display()),
            "--out",
            out.to_str().unwrap(),
        ],
    );
}
