//! Helpers shared by the test modules, each written once.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use uboot_env::Env;

/// An environment holding `pairs` (built with `Env::set`, no parsing).
pub fn env(pairs: &[(&str, &str)]) -> Env {
    let mut e = Env::new();
    for (n, v) in pairs {
        e.set(n, v).unwrap();
    }
    e
}

/// Runs a real tool; a missing tool is a test failure, never a skip.
pub fn run(tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}); install it with scripts/install-deps")
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// [`run`] for a tool that must succeed; returns its standard output.
pub fn ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args, None);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
