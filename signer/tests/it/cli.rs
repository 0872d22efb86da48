//! The command line itself.

use crate::common::{ok, sign_tool};

#[test]
fn every_command_has_help() {
    let d = std::env::temp_dir();
    for cmd in ["keygen", "delta", "patch", "bundle", "verify", "publish"] {
        let text = ok(sign_tool(&d, &[cmd, "--help"]));
        assert!(
            text.starts_with(&format!("usage: ota-sign {cmd}")),
            "{cmd}: {text}"
        );
    }
    let out = sign_tool(&d, &["bundle", "--product", "p"]);
    assert_eq!(out.status.code(), Some(2));
}
