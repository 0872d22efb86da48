//! `ota-sign`: the offline host tool (keygen, delta, patch, bundle, verify,
//! publish). Command dispatch only; formats live in the `ota_agent` library.
#![forbid(unsafe_code)]

const USAGE: &str = "usage: ota-sign keygen|delta|patch|bundle|verify|publish [--help]";

fn main() {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "-h" | "--help" => println!("{USAGE}"),
        _ => {
            eprintln!("ota-sign: error: unknown or not yet implemented command `{cmd}`\n{USAGE}");
            std::process::exit(2);
        }
    }
}
