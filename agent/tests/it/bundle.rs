//! `ota-agent verify` against bundles made with real tools: keys from
//! `openssl ecparam -genkey` (SEC1) and `openssl genpkey` (PKCS#8), manifest
//! signatures from `openssl dgst -sha256 -sign`, deltas from Debian's
//! `bsdiff`. Then a table of hostile bundles, each of which must be refused
//! with exit status 1 and exactly one error line naming the reason.
//!
//! These tests need `openssl` and `bsdiff` (scripts/install-deps); without
//! them they fail, they never skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ota_agent::bundle::container::Header;
use ota_agent::bundle::time::format_rfc3339_utc;
use ota_agent::bundle::{Blob, Compression, Digest, Image, Kind, Manifest, Urgency};

use crate::common::openssl::{self, sign};
use crate::common::tools::{run, AGENT};

fn blob(bytes: &[u8]) -> Blob {
    Blob {
        size: bytes.len() as u64,
        sha256: Digest::of(bytes),
    }
}

/// A device (config, keys dir, os-release, state dir) and a release key.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        let d = f.path();
        fs::create_dir(d.join("keys")).unwrap();
        fs::create_dir(d.join("state")).unwrap();
        // SEC1 key as openssl writes it by default, with an EC PARAMETERS block.
        run(Command::new("openssl")
            .args(["ecparam", "-name", "prime256v1", "-genkey", "-out"])
            .arg(d.join("sec1.key")));
        run(Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(d.join("sec1.key"))
            .arg("-out")
            .arg(d.join("keys/sec1.pem")));
        // PKCS#8 key from genpkey.
        openssl::p256_key(&d.join("p8.key"), &d.join("keys/p8.pem"));
        // A key the device does not trust.
        run(Command::new("openssl")
            .args([
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ])
            .arg(d.join("other.key")));
        fs::write(
            d.join("os-release"),
            "NAME=\"Rice OS\"\nVERSION_ID=\"1.3.2\"\n",
        )
        .unwrap();
        fs::write(
            d.join("ota-agent.toml"),
            format!(
                "product = \"rice-cooker\"\nhardware = \"rc-v2\"\ndisk = \"/dev/null\"\nkeys_dir = \"{0}/keys\"\nstate_dir = \"{0}/state\"\nversion_file = \"{0}/os-release\"\n",
                d.display()
            ),
        )
        .unwrap();
        f
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn verify(&self, bundle: &Path, extra: &[&str]) -> Output {
        Command::new(AGENT)
            .arg("--config")
            .arg(self.path().join("ota-agent.toml"))
            .arg("verify")
            .args(extra)
            .arg(bundle)
            .output()
            .unwrap()
    }
}

/// Old and new rootfs-like images: text with shared structure, small enough
/// for Debian's bsdiff (slow on long zero runs).
fn images() -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..3000)
        .flat_map(|i| format!("line {i} of the old rootfs\n").into_bytes())
        .collect();
    let new: Vec<u8> = (0..3100)
        .flat_map(|i| {
            if i % 97 == 0 {
                format!("LINE {i} changed in v2\n")
            } else {
                format!("line {i} of the old rootfs\n")
            }
            .into_bytes()
        })
        .collect();
    (old, new)
}

/// A release: `boot` full+bzip2 (made by the bzip2 tool) and `rootfs` as a
/// delta made by Debian's bsdiff.
struct Release {
    dir: PathBuf,
    manifest: Manifest,
}

fn make_release(f: &Fixture, name: &str, edit: impl FnOnce(&mut Manifest)) -> Release {
    let dir = f.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    let (old, new) = images();
    fs::write(f.path().join("old.img"), &old).unwrap();
    fs::write(f.path().join("new.img"), &new).unwrap();
    run(Command::new("bsdiff")
        .arg(f.path().join("old.img"))
        .arg(f.path().join("new.img"))
        .arg(dir.join("rootfs.bsdiff")));
    let boot: Vec<u8> = b"boot partition contents ".repeat(500);
    fs::write(dir.join("boot.img"), &boot).unwrap();
    run(Command::new("bzip2").arg("-9").arg(dir.join("boot.img")));
    let patch = fs::read(dir.join("rootfs.bsdiff")).unwrap();
    let boot_bz = fs::read(dir.join("boot.img.bz2")).unwrap();
    let now = ota_agent::bundle::time::now();
    let mut manifest = Manifest {
        product: "rice-cooker".into(),
        hardware: vec!["rc-v1".into(), "rc-v2".into()],
        version: semver::Version::new(1, 4, 0),
        security_version: 3,
        urgency: Default::default(),
        created: now - 3600,
        expires: now + 30 * 86400,
        images: vec![
            Image {
                name: "boot".into(),
                file: "boot.img.bz2".into(),
                payload: blob(&boot_bz),
                compression: Compression::Bzip2,
                kind: Kind::Full,
                result: blob(&boot),
            },
            Image {
                name: "rootfs".into(),
                file: "rootfs.bsdiff".into(),
                payload: blob(&patch),
                compression: Compression::None,
                kind: Kind::Bsdiff { base: blob(&old) },
                result: blob(&new),
            },
        ],
    };
    edit(&mut manifest);
    fs::write(dir.join("manifest.json"), manifest.to_json()).unwrap();
    sign(
        &f.path().join("p8.key"),
        &dir.join("manifest.json"),
        &dir.join("manifest.json.sig"),
    );
    Release { dir, manifest }
}

fn single_file(r: &Release, out: &Path) {
    let m = fs::read(r.dir.join("manifest.json")).unwrap();
    let s = fs::read(r.dir.join("manifest.json.sig")).unwrap();
    let mut bytes = Header {
        manifest_len: m.len() as u32,
        signature_len: s.len() as u32,
    }
    .encode()
    .to_vec();
    bytes.extend(m);
    bytes.extend(s);
    for img in &r.manifest.images {
        bytes.extend(fs::read(r.dir.join(&img.file)).unwrap());
    }
    fs::write(out, bytes).unwrap();
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_refused(out: &Output, needle: &str, case: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{case}: expected refusal, got {:?}: {err}",
        out.status
    );
    assert_eq!(err.lines().count(), 1, "{case}: not one line: {err}");
    assert!(err.starts_with("ota-agent: error: "), "{case}: {err}");
    assert!(err.contains(needle), "{case}: {err:?} lacks {needle:?}");
}

#[test]
fn openssl_signed_bundle_with_bsdiff_delta_verifies() {
    let f = Fixture::new();
    let r = make_release(&f, "rel", |_| {});
    let out = f.verify(&r.dir, &[]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rice-cooker 1.4.0") && stdout.contains("p8.pem"),
        "{stdout}"
    );

    // Signed with the SEC1 key instead: the other trusted key verifies it.
    sign(
        &f.path().join("sec1.key"),
        &r.dir.join("manifest.json"),
        &r.dir.join("manifest.json.sig"),
    );
    let out = f.verify(&r.dir, &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("sec1.pem"));

    // The single-file form of the same release.
    let single = f.path().join("rel.bundle");
    single_file(&r, &single);
    assert_ok(&f.verify(&single, &[]));
}

#[test]
fn debian_bsdiff_patch_reproduces_the_image_with_agent_code() {
    let f = Fixture::new();
    let r = make_release(&f, "rel", |_| {});
    let img = r.manifest.image("rootfs").unwrap();
    let b = ota_agent::bundle::Bundle::open(
        &r.dir,
        &ota_agent::bundle::TrustedKeys::load_dir(&f.path().join("keys")).unwrap(),
    )
    .unwrap();
    let mut base = fs::File::open(f.path().join("old.img")).unwrap();
    let out =
        ota_agent::bundle::write_image(img, &b.payload(1).unwrap(), Some(&mut base), Vec::new())
            .unwrap();
    assert_eq!(out, images().1);
    // Against the wrong base: refused before anything is written.
    fs::write(f.path().join("wrong.img"), images().1).unwrap();
    let mut wrong = fs::File::open(f.path().join("wrong.img")).unwrap();
    let e =
        ota_agent::bundle::write_image(img, &b.payload(1).unwrap(), Some(&mut wrong), Vec::new())
            .unwrap_err();
    assert!(e.to_string().contains("delta base mismatch"), "{e}");
}

#[test]
fn hostile_bundles_are_refused_with_one_clear_line() {
    let f = Fixture::new();
    let now = ota_agent::bundle::time::now();
    type Case = (
        &'static str,
        &'static str,
        Box<dyn Fn(&Fixture) -> (PathBuf, Vec<&'static str>)>,
    );
    let cases: Vec<Case> = vec![
        (
            "tampered manifest byte",
            "manifest signature: does not verify",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t1", |_| {});
                let p = r.dir.join("manifest.json");
                let text = fs::read_to_string(&p).unwrap().replacen(
                    "\"security_version\": 3",
                    "\"security_version\": 4",
                    1,
                );
                fs::write(&p, text).unwrap();
                (r.dir, vec![])
            }),
        ),
        (
            // `urgency` is signed like every other field: lowering a
            // critical release to normal (or raising one) breaks it.
            "tampered urgency",
            "manifest signature: does not verify",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t1u", |m| m.urgency = Urgency::Critical);
                let p = r.dir.join("manifest.json");
                let text = fs::read_to_string(&p).unwrap();
                assert!(text.contains("\"urgency\": \"critical\""), "{text}");
                fs::write(&p, text.replacen("\"critical\"", "\"normal\"", 1)).unwrap();
                (r.dir, vec![])
            }),
        ),
        (
            "wrong key",
            "does not verify with any of the 2 trusted key(s)",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t2", |_| {});
                sign(
                    &f.path().join("other.key"),
                    &r.dir.join("manifest.json"),
                    &r.dir.join("manifest.json.sig"),
                );
                (r.dir, vec![])
            }),
        ),
        (
            "truncated signature",
            "not a DER ECDSA P-256 signature",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t3", |_| {});
                let p = r.dir.join("manifest.json.sig");
                let s = fs::read(&p).unwrap();
                fs::write(&p, &s[..s.len() - 5]).unwrap();
                (r.dir, vec![])
            }),
        ),
        (
            "signature of another manifest",
            "manifest signature: does not verify",
            Box::new(|f: &Fixture| {
                let a = make_release(f, "t4a", |_| {});
                let b = make_release(f, "t4b", |m| m.version = semver::Version::new(9, 0, 0));
                fs::copy(
                    a.dir.join("manifest.json.sig"),
                    b.dir.join("manifest.json.sig"),
                )
                .unwrap();
                (b.dir, vec![])
            }),
        ),
        (
            "payload hash mismatch",
            "payload boot.img.bz2: SHA-256",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t5", |_| {});
                let p = r.dir.join("boot.img.bz2");
                let mut b = fs::read(&p).unwrap();
                let n = b.len();
                b[n / 2] ^= 1;
                fs::write(&p, b).unwrap();
                (r.dir, vec![])
            }),
        ),
        (
            "oversize payload",
            "payload rootfs.bsdiff: oversize",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t6", |_| {});
                let p = r.dir.join("rootfs.bsdiff");
                let mut b = fs::read(&p).unwrap();
                b.extend_from_slice(&[0; 4096]);
                fs::write(&p, b).unwrap();
                (r.dir, vec![])
            }),
        ),
        (
            "expired",
            "manifest expired at",
            Box::new(move |f: &Fixture| {
                let r = make_release(f, "t7", |m| {
                    m.created = now - 10 * 86400;
                    m.expires = now - 86400;
                });
                (r.dir, vec![])
            }),
        ),
        (
            "wrong product",
            "manifest product `toaster` is not this device's product `rice-cooker`",
            Box::new(|f: &Fixture| {
                (
                    make_release(f, "t8", |m| m.product = "toaster".into()).dir,
                    vec![],
                )
            }),
        ),
        (
            "wrong hardware",
            "hardware revision `rc-v2` is not in the manifest's list [rc-v3]",
            Box::new(|f: &Fixture| {
                (
                    make_release(f, "t9", |m| m.hardware = vec!["rc-v3".into()]).dir,
                    vec![],
                )
            }),
        ),
        (
            "downgrade",
            "version 1.3.1 is older than the installed 1.3.2 (downgrade)",
            Box::new(|f: &Fixture| {
                (
                    make_release(f, "t10", |m| m.version = semver::Version::new(1, 3, 1)).dir,
                    vec![],
                )
            }),
        ),
        (
            "same version without --reinstall",
            "already installed",
            Box::new(|f: &Fixture| {
                (
                    make_release(f, "t11", |m| m.version = semver::Version::new(1, 3, 2)).dir,
                    vec![],
                )
            }),
        ),
        (
            "lower security version",
            "security version 3 is below the device's minimum 5",
            Box::new(|f: &Fixture| {
                fs::write(f.path().join("state/min-security-version"), "5\n").unwrap();
                (make_release(f, "t12", |_| {}).dir, vec![])
            }),
        ),
        (
            "patch whose new size disagrees",
            "patch makes",
            Box::new(|f: &Fixture| {
                (
                    make_release(f, "t13", |m| m.images[1].result.size += 1).dir,
                    vec![],
                )
            }),
        ),
        (
            "truncated single file",
            "truncated",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t14", |_| {});
                let p = f.path().join("t14.bundle");
                single_file(&r, &p);
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() - 10]).unwrap();
                (p, vec![])
            }),
        ),
        (
            "tampered single-file header",
            "header CRC",
            Box::new(|f: &Fixture| {
                let r = make_release(f, "t15", |_| {});
                let p = f.path().join("t15.bundle");
                single_file(&r, &p);
                let mut b = fs::read(&p).unwrap();
                b[12] ^= 1;
                fs::write(&p, b).unwrap();
                (p, vec![])
            }),
        ),
    ];
    for (case, needle, make) in cases {
        let _ = fs::remove_file(f.path().join("state/min-security-version"));
        let (path, extra) = make(&f);
        assert_refused(&f.verify(&path, &extra), needle, case);
    }
    // And the equal version is accepted with --reinstall (the refusal above
    // is about the version, not something else).
    let r = make_release(&f, "t16", |m| m.version = semver::Version::new(1, 3, 2));
    assert_ok(&f.verify(&r.dir, &["--reinstall"]));
}

#[test]
fn unset_clock_is_reported_not_silent() {
    // The policy itself (the binary reads the real clock): a clock in 1970
    // judges expiry against the build floor and says so.
    let f = Fixture::new();
    let r = make_release(&f, "c", |_| {});
    let facts = ota_agent::bundle::DeviceFacts {
        product: "rice-cooker".into(),
        hardware: Some("rc-v2".into()),
        installed: semver::Version::new(1, 0, 0),
        min_security_version: 0,
        now: 5,
        reinstall: false,
    };
    let w = ota_agent::bundle::check_policy(&r.manifest, &facts).unwrap();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("device clock 1970-01-01T00:00:05Z is unset"),
        "{w:?}"
    );
    let mut old = r.manifest.clone();
    old.created = 0;
    old.expires = 86400;
    let e = ota_agent::bundle::check_policy(&old, &facts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("expired at {}", format_rfc3339_utc(86400))),
        "{e}"
    );
}

/// Only ECDSA P-256 keys are trusted: RSA, P-384, Ed25519 and compressed-point
/// P-256 public keys from openssl are refused by name when the keys directory
/// is loaded, and the refusal is the one line `verify` prints.
#[test]
fn non_p256_public_keys_are_refused_naming_what_they_are() {
    let f = Fixture::new();
    let d = f.path();
    let genpkey = |name: &str, args: &[&str]| {
        let pem = d.join(format!("{name}.pem"));
        openssl::genpkey(args, &d.join(format!("{name}.key")), &pem);
        pem
    };
    let rsa = genpkey(
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let p384 = genpkey(
        "p384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    let ed = genpkey("ed", &["-algorithm", "ED25519"]);
    // The trusted P-256 key with a compressed point.
    let compressed = d.join("compressed.pem");
    run(Command::new("openssl")
        .args(["ec", "-conv_form", "compressed", "-pubout", "-in"])
        .arg(d.join("sec1.key"))
        .arg("-out")
        .arg(&compressed));
    let good = fs::read_to_string(d.join("keys/p8.pem")).unwrap();
    let p = ota_agent::bundle::PublicKey::from_pem("good", &good).unwrap();
    assert_eq!(p.name, "good");
    for (pem, needle) in [
        (&rsa, "it is an RSA key"),
        (&p384, "it is on curve P-384"),
        (&ed, "it is an Ed25519 key"),
        (&compressed, "compressed points are not supported"),
    ] {
        let text = fs::read_to_string(pem).unwrap();
        let e = ota_agent::bundle::PublicKey::from_pem("k", &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{}: {e}", pem.display());
    }
    // A private key or two public keys in one file are not a public key.
    let private = fs::read_to_string(d.join("p8.key")).unwrap();
    let e = ota_agent::bundle::PublicKey::from_pem("k", &private)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no PUBLIC KEY block"), "{e}");
    let e = ota_agent::bundle::PublicKey::from_pem("k", &format!("{good}{good}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than one"), "{e}");
    // A point off the curve (the good key with Y changed) is refused at load.
    let der = {
        let b64: String = good.lines().filter(|l| !l.starts_with("-----")).collect();
        let out = Command::new("openssl")
            .args(["base64", "-d", "-A"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b64.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        out.stdout
    };
    assert_eq!(der.len(), 91, "P-256 SPKI DER");
    ota_agent::bundle::PublicKey::from_spki_der("good", &der).unwrap();
    let mut off = der.clone();
    off[90] ^= 1;
    let e = ota_agent::bundle::PublicKey::from_spki_der("k", &off)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not on the curve"), "{e}");

    // Through the CLI: the refusal names the file.
    fs::copy(&p384, d.join("keys/zz-p384.pem")).unwrap();
    let r = make_release(&f, "rel", |_| {});
    assert_refused(
        &f.verify(&r.dir, &[]),
        "zz-p384.pem",
        "p384 key in keys_dir",
    );
}
