//! `ota-agent ctl [--socket PATH] COMMAND [ARGS]`: one request to the
//! running daemon's control socket (docs/local-api.md). The reply line is
//! printed as it came (JSON); an error reply is one `error:` line on stderr
//! and exit status 1. `subscribe` prints the event lines that follow.

use std::ffi::OsString;
use std::path::PathBuf;

use super::args::{string, usage, Globals};
use crate::control::client::{reply_error, Connection};
use crate::json::string as js;
use crate::{Error, Result};

/// `ota-agent ctl …`
pub fn run(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut socket: Option<PathBuf> = None;
    let mut words: Vec<String> = Vec::new();
    let mut lease = 3600u64;
    let mut interval: Option<u64> = None;
    let mut count: Option<u64> = None;
    let mut until_outcome = false;
    let number = |p: &mut lexopt::Parser, what: &str| -> Result<u64> {
        let v = string(p.value().map_err(usage)?)?;
        v.parse()
            .map_err(|_| Error::Usage(format!("{what} `{v}`: expected a number")))
    };
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Long("socket") => socket = Some(p.value().map_err(usage)?.into()),
            Long("lease") => lease = number(&mut p, "--lease")?,
            Long("interval") => interval = Some(number(&mut p, "--interval")?),
            Long("count") => count = Some(number(&mut p, "--count")?),
            Long("until-outcome") => until_outcome = true,
            Value(v) => words.push(string(v)?),
            other => return Err(usage(other.unexpected())),
        }
    }
    let (cmd, rest) = words
        .split_first()
        .ok_or_else(|| Error::Usage("ctl: which command? (status, subscribe, check-now, accept, decline, inhibit, release, suspend, resume, cancel)".into()))?;
    let one = |what: &str| -> Result<&String> {
        match rest {
            [v] => Ok(v),
            _ => Err(Error::Usage(format!("ctl {cmd}: expected one {what}"))),
        }
    };
    let request = match cmd.as_str() {
        "status" | "check-now" | "suspend" | "resume" | "cancel" if rest.is_empty() => {
            format!("{{\"cmd\":\"{cmd}\"}}")
        }
        "subscribe" if rest.is_empty() => match interval {
            Some(ms) => format!("{{\"cmd\":\"subscribe\",\"interval_ms\":{ms}}}"),
            None => "{\"cmd\":\"subscribe\"}".into(),
        },
        "accept" | "decline" => {
            format!("{{\"cmd\":\"{cmd}\",\"version\":{}}}", js(one("VERSION")?))
        }
        "inhibit" => format!(
            "{{\"cmd\":\"inhibit\",\"reason\":{},\"lease_s\":{lease}}}",
            js(one("REASON")?)
        ),
        "release" => {
            let id = one("inhibit ID")?;
            let id: u64 = id.parse().map_err(|_| {
                Error::Usage(format!("ctl release `{id}`: expected the inhibit id"))
            })?;
            format!("{{\"cmd\":\"release\",\"inhibit\":{id}}}")
        }
        other => {
            return Err(Error::Usage(format!(
                "ctl: unknown command or arguments `{other}{}` (try --help)",
                if rest.is_empty() { "" } else { " …" }
            )))
        }
    };
    let socket = match socket {
        Some(s) => s,
        None => {
            let config = globals.config()?;
            config
                .control
                .map(|c| c.socket)
                .ok_or_else(|| Error::Config {
                    path: config.source.clone(),
                    reason: "no [control] socket is configured (or give --socket PATH)".into(),
                })?
        }
    };
    let mut conn = Connection::open(&socket)?;
    let reply = conn.request(&request)?;
    print!("{reply}");
    if let Some(e) = reply_error(&reply) {
        eprintln!("ota-agent: error: {e}");
        return Ok(super::EXIT_FAILURE);
    }
    if cmd == "subscribe" {
        let mut seen = 0u64;
        while count.is_none_or(|n| seen < n) {
            let line = conn.next_line(None)?;
            print!("{line}");
            seen += 1;
            if until_outcome && line.starts_with("{\"event\":\"outcome\"") {
                break;
            }
        }
    }
    Ok(0)
}
