//! Running the built agent, `ota-sign` and host tools. A tool that cannot be
//! started FAILS the test with a message naming it (scripts/install-deps
//! installs them); nothing is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `ota-agent` binary cargo built for these tests.
pub const AGENT: &str = env!("CARGO_BIN_EXE_ota-agent");

/// Runs `cmd` to the end and returns what it did, whatever its exit status;
/// panics naming the program if it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (scripts/install-deps installs it): {e}"))
}

/// [`output`] with `stdin` fed to the program.
pub fn output_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (scripts/install-deps installs it): {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed (a host tool preparing a fixture).
pub fn run(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`run`] for `program args…`; returns its standard output.
pub fn tool(program: &str, args: &[&str]) -> String {
    String::from_utf8(run(Command::new(program).args(args)).stdout).unwrap()
}

/// Status, stdout and stderr of a finished command, for failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The standard output of `out`, which must have succeeded; `what` names
/// the command in the failure message.
pub fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The real `ota-sign` binary: built next to `ota-agent` by
/// `cargo test --workspace`; built here when only this crate's tests run.
pub fn ota_sign() -> PathBuf {
    let path = Path::new(AGENT).with_file_name("ota-sign");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--quiet", "-p", "ota-sign", "--bin", "ota-sign"])
            .status()
            .expect("cargo build -p ota-sign");
        assert!(st.success(), "building ota-sign failed");
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// Runs `ota-sign args…` in `dir`; it must succeed.
pub fn ota_sign_in(dir: &Path, args: &[&str]) {
    ok(
        &output(Command::new(ota_sign()).current_dir(dir).args(args)),
        &format!("ota-sign {args:?}"),
    );
}
