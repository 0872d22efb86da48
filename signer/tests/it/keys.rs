//! Keys and signatures: `ota-sign keygen` output against openssl, and keys
//! openssl made used by `ota-sign`.

use std::fs;
use std::process::Command;

use crate::common::{bzip2_bundle, ok, openssl_verify, refused, setup, sign_tool, tool};

#[test]
fn keygen_keys_and_signatures_are_openssl_compatible() {
    let (_t, d) = setup();
    ok(sign_tool(&d, &["keygen", "--out", "release"]));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(d.join("release.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    tool(
        Command::new("openssl")
            .current_dir(&d)
            .args(["pkey", "-noout", "-in", "release.key"]),
    );
    tool(Command::new("openssl").current_dir(&d).args([
        "pkey",
        "-pubin",
        "-noout",
        "-in",
        "release.pub",
    ]));
    refused(
        sign_tool(&d, &["keygen", "--out", "release"]),
        "already exists",
    );

    ok(bzip2_bundle(&d, "rootfs=new.img", "rel", &[]));
    openssl_verify(&d, "release.pub", "rel/manifest.json");
    // The device side accepts it too (same key as a trusted *.pem).
    ok(sign_tool(&d, &["verify", "--key", "release.pub", "rel"]));

    ok(sign_tool(
        &d,
        &[
            "publish",
            "--key",
            "release.key",
            "--channel",
            "stable",
            "--manifest",
            "rel/manifest.json",
            "--rollout",
            "25",
            "--out",
            ".",
        ],
    ));
    openssl_verify(&d, "release.pub", "stable.json");
    let c = ota_agent::bundle::channel::Channel::parse(&fs::read(d.join("stable.json")).unwrap())
        .unwrap();
    assert_eq!(
        (
            c.manifest.as_str(),
            c.rollout.percent,
            c.rollout.seed.as_str()
        ),
        ("rel/manifest.json", 25, "1.0.0")
    );
}

#[test]
fn openssl_keys_sign_bundles() {
    let (_t, d) = setup();
    // SEC1 with an EC PARAMETERS block (openssl's default), and PKCS#8.
    tool(Command::new("openssl").current_dir(&d).args([
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "sec1.key",
    ]));
    tool(
        Command::new("openssl")
            .current_dir(&d)
            .args(["ec", "-pubout", "-in", "sec1.key", "-out", "sec1.pub"]),
    );
    tool(Command::new("openssl").current_dir(&d).args([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "p8.key",
    ]));
    tool(
        Command::new("openssl")
            .current_dir(&d)
            .args(["pkey", "-pubout", "-in", "p8.key", "-out", "p8.pub"]),
    );
    for k in ["sec1", "p8"] {
        let key = format!("{k}.key");
        let out = format!("rel-{k}");
        ok(sign_tool(
            &d,
            &[
                "bundle",
                "--key",
                &key,
                "--product",
                "p",
                "--version",
                "2.0.0",
                "--image",
                "rootfs=new.img",
                "--out",
                &out,
            ],
        ));
        openssl_verify(&d, &format!("{k}.pub"), &format!("{out}/manifest.json"));
    }
    // And the other way round: wrong key is refused by our verify.
    refused(
        sign_tool(&d, &["verify", "--key", "p8.pub", "rel-sec1"]),
        "does not verify",
    );
}
