//! The `ota-agent` binary: command dispatch only, everything else lives in the
//! library (`ota_agent::cli`). Also answers as `fw_printenv` / `fw_setenv` when
//! invoked under those names, so an image needs no second tool.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(ota_agent::cli::main(std::env::args_os()));
}
