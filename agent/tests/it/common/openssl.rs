//! Release keys and signatures made by `openssl` (an implementation
//! independent of the agent's verifier).

use std::path::Path;
use std::process::Command;

use super::tools::run;

/// A key made by `openssl genpkey ARGS` (PKCS#8) at `key`, its public
/// half (SPKI PEM, `openssl pkey -pubout`) at `public`.
pub fn genpkey(args: &[&str], key: &Path, public: &Path) {
    run(Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(key));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(key)
        .arg("-out")
        .arg(public));
}

/// A P-256 release key: [`genpkey`] on the curve the agent accepts.
pub fn p256_key(key: &Path, public: &Path) {
    genpkey(
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        key,
        public,
    );
}

/// `openssl dgst -sha256 -sign key -out sig file` (DER ECDSA signature).
pub fn sign(key: &Path, file: &Path, sig: &Path) {
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg("-out")
        .arg(sig)
        .arg(file));
}
