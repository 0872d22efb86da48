//! The deployment's artifacts — one single-file bundle, or the files of a
//! bundle directory (`manifest.json`, `manifest.json.sig` and the payloads
//! it names) — their download into `<state_dir>/hawkbit/download/`
//! (resumable) and the check of the server's hashes, which guard the
//! transfer (the bundle's signature stays the trust root).

use std::path::{Path, PathBuf};

use super::ddi::{self, protocol};
use super::feedback::proceeding;
use crate::bundle::{MANIFEST_FILE, SIGNATURE_FILE};
use crate::net::{self, Client};
use crate::{Error, Result};

/// What a deployment installs, and where its files are downloaded.
pub(super) struct Plan<'a> {
    /// The path given to the installer: the single file, or the directory.
    pub(super) bundle: PathBuf,
    /// Each artifact with the file it is downloaded to.
    pub(super) files: Vec<(&'a ddi::Artifact, PathBuf)>,
}

/// The deployment's artifacts, checked: one artifact is a single-file
/// bundle (`dir/<name>`); several are a bundle directory
/// (`dir/bundle-<action>/<name>`), which must hold `manifest.json` and
/// `manifest.json.sig` and no two files of one name.
pub(super) fn plan<'a>(d: &'a ddi::DeploymentBase, dir: &Path) -> Result<Plan<'a>> {
    match d.artifacts.as_slice() {
        [] => Err(protocol("deploymentBase", "the deployment has no artifact")),
        [a] => {
            let bundle = dir.join(safe_name(&a.filename));
            Ok(Plan {
                files: vec![(a, bundle.clone())],
                bundle,
            })
        }
        arts => {
            let bundle = dir.join(format!("bundle-{}", safe_name(&d.id)));
            let mut files: Vec<(&ddi::Artifact, PathBuf)> = Vec::new();
            for a in arts {
                let f = bundle.join(safe_name(&a.filename));
                if files.iter().any(|(_, g)| *g == f) {
                    return Err(protocol(
                        "deploymentBase",
                        &format!("two artifacts are named {:?}", a.filename),
                    ));
                }
                files.push((a, f));
            }
            for need in [MANIFEST_FILE, SIGNATURE_FILE] {
                if !files.iter().any(|(_, f)| f.ends_with(need)) {
                    return Err(protocol(
                        "deploymentBase",
                        &format!("{} artifacts but no {need}: neither a single-file bundle nor a bundle directory", arts.len()),
                    ));
                }
            }
            Ok(Plan { bundle, files })
        }
    }
}

/// Removes what a plan downloaded (file or directory).
pub(super) fn remove(bundle: &Path) {
    if bundle.is_dir() {
        let _ = std::fs::remove_dir_all(bundle);
    } else {
        let _ = std::fs::remove_file(bundle);
    }
}

/// The artifact's file name without any directory part.
pub(super) fn safe_name(name: &str) -> String {
    let n = name.rsplit('/').next().unwrap_or("");
    if n.is_empty() || n == "." || n == ".." {
        "bundle".into()
    } else {
        n.into()
    }
}

/// Checks every hash the server gave (sha256, sha1) over the file.
fn check_hashes(file: &Path, art: &ddi::Artifact) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let mut s256 = ring::digest::Context::new(&ring::digest::SHA256);
    let mut s1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(file, e))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        s256.update(&buf[..n]);
        s1.update(&buf[..n]);
    }
    let hex = |d: ring::digest::Digest| {
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let name = &art.filename;
    if let Some(size) = art.size {
        if size != len {
            return Err(protocol(
                name,
                &format!("size {len} differs from the server's {size}"),
            ));
        }
    }
    for (what, want, got) in [
        ("sha256", &art.sha256, hex(s256.finish())),
        ("sha1", &art.sha1, hex(s1.finish())),
    ] {
        if let Some(want) = want {
            if !want.eq_ignore_ascii_case(&got) {
                return Err(protocol(
                    name,
                    &format!("{what} {got} differs from the server's {want}"),
                ));
            }
        }
    }
    Ok(())
}

/// Downloads `href` into `file` (resuming), then checks the server's hashes.
pub(super) fn download(
    client: &Client,
    href: &str,
    file: &Path,
    art: &ddi::Artifact,
    feedback: &str,
) -> Result<()> {
    if art.sha1.is_none() && art.sha256.is_none() {
        return Err(protocol(
            href,
            "the artifact has neither a sha256 nor a sha1 hash",
        ));
    }
    if !file.exists() {
        let mut step = 0u64;
        net::fetch_to_file(client, href, file, None, &mut |held, total| {
            let Some(t) = total.or(art.size).filter(|t| *t > 0) else {
                return Ok(());
            };
            let pct = held.min(t) * 100 / t;
            if pct / 10 > step {
                step = pct / 10;
                proceeding(client, feedback, 0, format!("Downloaded {pct}%"));
            }
            Ok(())
        })?;
    }
    let check = check_hashes(file, art);
    if check.is_err() {
        let _ = std::fs::remove_file(file);
    }
    check?;
    proceeding(
        client,
        feedback,
        1,
        "Downloaded 100%; server hash verified".into(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_checked_and_a_mismatch_named() {
        let dir = std::env::temp_dir().join(format!("hawkbit-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"abc").unwrap();
        let art = |sha1: &str, sha256: Option<&str>| ddi::Artifact {
            filename: "f".into(),
            sha1: Some(sha1.into()),
            sha256: sha256.map(Into::into),
            size: Some(3),
            href: None,
        };
        // FIPS 180-2 test vectors for "abc".
        let sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        check_hashes(&p, &art(sha1, Some(sha256))).unwrap();
        let e = check_hashes(&p, &art(&sha1.replace('a', "b"), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha1") && e.contains("differs"), "{e}");
        let e = check_hashes(&p, &art(sha1, Some(&sha256.replace('b', "c"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_artifact_is_a_file_several_a_bundle_directory() {
        let art = |name: &str| ddi::Artifact {
            filename: name.into(),
            sha1: Some("0".into()),
            sha256: None,
            size: None,
            href: Some("http://h/x".into()),
        };
        let dep = |names: &[&str]| ddi::DeploymentBase {
            id: "7".into(),
            artifacts: names.iter().map(|n| art(n)).collect(),
            ..ddi::DeploymentBase::default()
        };
        let dir = Path::new("/s/download");
        let d = dep(&["b.otab"]);
        let p = plan(&d, dir).unwrap();
        assert_eq!(p.bundle, dir.join("b.otab"));
        let d = dep(&["manifest.json", "manifest.json.sig", "rootfs.img"]);
        let p = plan(&d, dir).unwrap();
        assert_eq!(p.bundle, dir.join("bundle-7"));
        let names: Vec<_> = p.files.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(names[2], dir.join("bundle-7/rootfs.img"));
        for bad in [
            &[][..],
            &["manifest.json", "rootfs.img"][..],
            &[
                "manifest.json",
                "manifest.json.sig",
                "x/rootfs.img",
                "rootfs.img",
            ][..],
        ] {
            assert!(plan(&dep(bad), dir).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn artifact_names_cannot_leave_the_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name(".."), "bundle");
        assert_eq!(safe_name("b.ota"), "b.ota");
    }
}
