//! `status [--json]`, `mark-good`, `mark-bad`, `set-active a|b|other [--reinit]`.
//!
//! Every command first records a rollback the bootloader reported (so the
//! report survives even if nobody runs `status`), then does its one change.
//! The JSON of `status --json` is documented in `docs/status-json.md`; it
//! embeds the update status document (`docs/update-status.md`).

use std::ffi::OsString;
use std::fmt::Write as _;

use serde::Serialize;

use super::args::{string, usage, Globals};
use crate::bundle::time::format_rfc3339_utc;
use crate::slots::Slot;
use crate::update::{self, StatusReport, Target};
use crate::update_status::UpdateStatus;
use crate::{Error, Result};

/// Version of the `status --json` document; bumped only on incompatible change.
pub const STATUS_JSON_FORMAT: u32 = 1;

fn no_more_args(parser: &mut lexopt::Parser) -> Result<()> {
    match parser.next().map_err(usage)? {
        None => Ok(()),
        Some(arg) => Err(usage(arg.unexpected())),
    }
}

/// `ota-agent status [--json]`
pub fn status(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut json = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("json") => json = true,
            other => return Err(usage(other.unexpected())),
        }
    }
    let report = update::status(&mut globals.device()?)?;
    if json {
        println!("{}", render_json(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(0)
}

/// `ota-agent mark-good`
pub fn mark_good(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    no_more_args(&mut lexopt::Parser::from_args(args))?;
    let done = update::mark_good(&mut globals.device()?)?;
    println!("slot {} marked good", done.slot);
    Ok(0)
}

/// `ota-agent booted`
pub fn booted(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    no_more_args(&mut lexopt::Parser::from_args(args))?;
    if update::booted(&mut globals.device()?)? {
        println!("trial boot recorded: it reached userspace");
    }
    Ok(0)
}

/// `ota-agent mark-bad`
pub fn mark_bad(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    no_more_args(&mut lexopt::Parser::from_args(args))?;
    let (booted, next) = update::mark_bad(&mut globals.device()?)?;
    println!("slot {booted} marked bad; the next boot uses slot {next}");
    Ok(0)
}

/// `ota-agent set-active a|b|other [--reinit]`
pub fn set_active(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut target = None;
    let mut reinit = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Long("reinit") => reinit = true,
            Value(v) if target.is_none() => target = Some(string(v)?),
            other => return Err(usage(other.unexpected())),
        }
    }
    let target = target.ok_or_else(|| Error::Usage("set-active needs a, b or other".into()))?;
    let target = match target.as_str() {
        "other" => Target::Other,
        s => Target::Slot(
            s.parse::<Slot>()
                .map_err(|_| Error::Usage(format!("set-active `{s}`: expected a, b or other")))?,
        ),
    };
    let (slot, st) = update::set_active(&mut globals.device()?, target, reinit)?;
    match st.trial {
        Some(t) if t == slot => println!(
            "slot {slot} is active for the next boot (trial: {} boots to confirm it)",
            st.boot_limit.unwrap_or(0)
        ),
        _ => println!("slot {slot} is active for the next boot"),
    }
    Ok(0)
}

/// A record's time (seconds since the epoch) as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(t: u64) -> String {
    format_rfc3339_utc(i64::try_from(t).unwrap_or(i64::MAX))
}

fn yes(b: bool, y: &'static str, n: &'static str) -> &'static str {
    if b {
        y
    } else {
        n
    }
}

/// The human-readable `status` (golden-tested; scripts should use `--json`).
pub fn render_text(report: &StatusReport) -> String {
    let st = &report.boot;
    let last = report.last_rollback.as_ref();
    let mut out = String::new();
    let _ = writeln!(out, "backend:        {}", st.backend);
    let _ = writeln!(out, "booted slot:    {}", st.booted);
    let pending = if st.active != st.booted {
        " (switch pending: takes effect at the next boot)"
    } else {
        ""
    };
    let _ = writeln!(out, "active slot:    {}{pending}", st.active);
    match st.trial {
        Some(t) => {
            let _ = writeln!(out, "trial:          slot {t} is on trial until mark-good");
        }
        None => {
            let _ = writeln!(out, "trial:          none");
        }
    }
    for s in &st.slots {
        let mut roles = Vec::new();
        if s.slot == st.booted {
            roles.push("booted");
        }
        if s.slot == st.active {
            roles.push("active");
        }
        let mut line = format!(
            "{}{}, {}",
            if roles.is_empty() {
                String::new()
            } else {
                format!("{}, ", roles.join(", "))
            },
            yes(s.bootable, "bootable", "NOT bootable"),
            yes(s.successful, "successful", "not confirmed"),
        );
        if let (Some(p), Some(t)) = (s.priority, s.tries_remaining) {
            let _ = write!(line, " (priority {p}, tries left {t})");
        }
        let _ = writeln!(out, "slot {}:         {line}", s.slot);
    }
    match (st.boot_count, st.boot_limit) {
        (Some(c), Some(l)) => {
            let _ = writeln!(out, "boot count:     {c} of limit {l}");
        }
        (None, Some(l)) => {
            let _ = writeln!(out, "boot limit:     {l} tries per trial");
        }
        _ => {}
    }
    match last {
        Some(r) => {
            let _ = writeln!(
                out,
                "last rollback:  {} from slot {} to slot {} ({})",
                utc(r.time),
                r.from,
                r.to,
                r.reason
            );
            if let Some(c) = &r.cause {
                let _ = writeln!(out, "rollback cause: {c}");
            }
        }
        None => {
            let _ = writeln!(out, "last rollback:  none");
        }
    }
    if let Some(raw) = &st.unrecorded_rollback {
        let _ = writeln!(out, "unrecorded:     bootloader reports rollback `{raw}`");
    }
    let _ = writeln!(
        out,
        "installed:      {}",
        report.installed_version.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        out,
        "update:         {}",
        report
            .update
            .as_ref()
            .map_or_else(|| "none".to_owned(), UpdateStatus::summary)
    );
    out
}

#[derive(Serialize)]
struct JsonSlot {
    slot: Slot,
    booted: bool,
    active: bool,
    bootable: bool,
    successful: bool,
    tries_remaining: Option<u8>,
    priority: Option<u8>,
}

#[derive(Serialize)]
struct JsonRollback<'a> {
    time: u64,
    time_utc: String,
    from: Slot,
    to: Slot,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonStatus<'a> {
    format: u32,
    backend: &'a str,
    booted: Slot,
    active: Slot,
    trial: Option<Slot>,
    boot_count: Option<u32>,
    boot_limit: Option<u32>,
    slots: Vec<JsonSlot>,
    last_rollback: Option<JsonRollback<'a>>,
    unrecorded_rollback: Option<&'a str>,
    installed_version: Option<&'a str>,
    update: Option<&'a UpdateStatus>,
}

/// `status --json` (schema: docs/status-json.md).
pub fn render_json(report: &StatusReport) -> Result<String> {
    let st = &report.boot;
    let last = report.last_rollback.as_ref();
    let doc = JsonStatus {
        format: STATUS_JSON_FORMAT,
        backend: st.backend,
        booted: st.booted,
        active: st.active,
        trial: st.trial,
        boot_count: st.boot_count,
        boot_limit: st.boot_limit,
        slots: st
            .slots
            .iter()
            .map(|s| JsonSlot {
                slot: s.slot,
                booted: s.slot == st.booted,
                active: s.slot == st.active,
                bootable: s.bootable,
                successful: s.successful,
                tries_remaining: s.tries_remaining,
                priority: s.priority,
            })
            .collect(),
        last_rollback: last.map(|r| JsonRollback {
            time: r.time,
            time_utc: utc(r.time),
            from: r.from,
            to: r.to,
            reason: &r.reason,
            cause: r.cause.as_deref(),
        }),
        unrecorded_rollback: st.unrecorded_rollback.as_deref(),
        installed_version: report.installed_version.as_deref(),
        update: report.update.as_ref(),
    };
    serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::io("status json", std::io::Error::other(e)))
}
