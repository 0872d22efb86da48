//! `ota-sign`: the offline host tool (keygen, delta, patch, bundle, verify,
//! publish). Command dispatch only; the formats live in the `ota_agent`
//! library so the device and this tool share one implementation, and this
//! crate adds what only a host does: key generation, signing, delta creation.
#![forbid(unsafe_code)]

use std::ffi::OsString;

mod args;
mod build;
mod commands;
mod delta;
mod error;
mod keys;
mod progress;
mod rollout;

use error::{Error, Result};

const USAGE: &str = "\
usage: ota-sign <command> [options]   (each command has --help)

commands:
  keygen --out NAME                   NAME.key (PKCS#8, 0600) and NAME.pub (SPKI)
  delta OLD NEW PATCH                 write a BSDIFF40 patch (as Debian's bsdiff)
  patch OLD PATCH NEW                 apply a BSDIFF40 patch (the agent's code)
  bundle --key K --product P --version V --image NAME=FILE ... --out DIR
                                      build and sign a release bundle
  verify --key PUB DIR|FILE           check signature, sizes and hashes
  publish --key K --channel NAME --manifest PATH --rollout PERCENT --out DIR
                                      write and sign <channel>.json
  rollout status --reports DIR|URL --devices REGISTRY [--json] [--html FILE]
                                      what the fleet's signed reports say
  rollout evaluate --policy rollout.toml
                                      advance, hold or pause the staged rollout
";

fn main() {
    let mut args = std::env::args_os();
    args.next();
    let rest: Vec<OsString> = args.collect();
    let code = match run(rest) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ota-sign: error: {e}");
            match e {
                Error::Usage(_) => 2,
                _ => 1,
            }
        }
    };
    std::process::exit(code);
}

fn run(mut args: Vec<OsString>) -> Result<()> {
    if args.is_empty() {
        return Err(Error::Usage("no command given (try --help)".into()));
    }
    let cmd = args.remove(0).into_string().unwrap_or_default();
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        "keygen" => commands::keygen(args),
        "delta" => commands::delta(args),
        "patch" => commands::patch(args),
        "bundle" => build::bundle(args),
        "verify" => commands::verify(args),
        "publish" => commands::publish(args),
        "rollout" => rollout::run(args),
        other => Err(Error::Usage(format!(
            "unknown command `{other}` (try --help)"
        ))),
    }
}
