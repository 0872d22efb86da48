//! The wire format of the control socket (docs/local-api.md), without I/O:
//! one JSON object per line (RFC 8259, UTF-8, `\n`-terminated) each way.
//! Requests are parsed into [`Request`]; replies and events are built here
//! as lines. Unknown request fields are ignored (a newer client on an older
//! agent); an unknown `cmd`, a wrong type or a value out of range is an
//! error reply, and the connection stays open.

use serde_json::Value;

/// The protocol version in the `hello` line; raised only on an
/// incompatible change (new commands, fields and events may appear in 1).
pub const PROTOCOL: u32 = 1;
/// Longest request line, newline included. A longer one is refused and
/// the connection closed (there is no way to find the next line's start).
pub const MAX_LINE: usize = 4096;
/// Deepest nesting of arrays and objects in a request (a request is one
/// flat object; deeper lines are refused before they are parsed, so the
/// parser's recursion stays shallow on the server's small stack).
pub const MAX_DEPTH: usize = 8;
/// Longest inhibit reason, in bytes.
pub const MAX_REASON: usize = 120;
/// Longest inhibit lease, in seconds (a holder renews by inhibiting again).
pub const MAX_LEASE_S: u64 = 86_400;
/// Shortest and longest interval between two `progress` events to one
/// subscriber, and the default.
pub const INTERVAL_MS: (u64, u64, u64) = (100, 60_000, 1000);

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Echoed in the reply (`null` when absent).
    pub id: Option<u64>,
    /// What is asked.
    pub cmd: Command,
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The daemon's state, the update document, offer and inhibits.
    Status,
    /// Events from now on, `progress` at most every `interval_ms`.
    Subscribe {
        /// Milliseconds between two `progress` events.
        interval_ms: u64,
    },
    /// Start a cycle now instead of at the next poll.
    CheckNow,
    /// Consent to the offered release.
    Accept {
        /// The release, as offered.
        version: String,
    },
    /// Refuse the offered release (remembered like a hook's refusal).
    Decline {
        /// The release, as offered.
        version: String,
    },
    /// Hold back the next phase of any update until released or expired.
    Inhibit {
        /// Why, for people and logs.
        reason: String,
        /// Seconds until it lapses by itself.
        lease_s: u64,
    },
    /// End an inhibit early.
    Release {
        /// The id `inhibit` replied.
        inhibit: u64,
    },
    /// Pause the download or write in progress (between chunks).
    Suspend,
    /// Continue after `suspend`.
    Resume,
    /// Stop the download or write in progress and abandon it.
    Cancel,
}

/// A request line that cannot be served: the reply's `id` (if it could
/// be read) and the error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The request's id, if readable.
    pub id: Option<u64>,
    /// One line.
    pub error: String,
}

/// Parses one request line (without its newline). Read through
/// `serde_json::Value`, which the binary has anyway (a derive per message
/// would cost more).
pub fn parse(line: &[u8]) -> Result<Request, Refusal> {
    if depth(line) > MAX_DEPTH {
        return Err(Refusal {
            id: None,
            error: format!("not a request: nested deeper than {MAX_DEPTH} levels"),
        });
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| Refusal {
        id: None,
        error: format!("not a request: {e}"),
    })?;
    let id = v.get("id").and_then(Value::as_u64);
    let refuse = |error: String| Refusal { id, error };
    if !v.is_object() || v.get("id").is_some_and(|i| !i.is_null() && id.is_none()) {
        return Err(refuse(
            "not a request: expected an object with an unsigned integer `id`, if any".into(),
        ));
    }
    let cmd = v
        .get("cmd")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("not a request: `cmd` must be a string".into()))?;
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let number = |key: &str| v.get(key).and_then(Value::as_u64);
    let version = || text("version").ok_or_else(|| refuse(format!("`{cmd}` needs `version`")));
    let cmd = match cmd {
        "status" => Command::Status,
        "subscribe" => {
            let (lo, hi, default) = INTERVAL_MS;
            let interval_ms = number("interval_ms").unwrap_or(default);
            if !(lo..=hi).contains(&interval_ms) {
                return Err(refuse(format!(
                    "interval_ms {interval_ms} is out of range {lo} ..= {hi}"
                )));
            }
            Command::Subscribe { interval_ms }
        }
        "check-now" => Command::CheckNow,
        "accept" => Command::Accept {
            version: version()?,
        },
        "decline" => Command::Decline {
            version: version()?,
        },
        "inhibit" => {
            let reason = text("reason").unwrap_or_default();
            if reason.trim().is_empty() || reason.len() > MAX_REASON || reason.contains('\n') {
                return Err(refuse(format!(
                    "`inhibit` needs a `reason` of 1 ..= {MAX_REASON} bytes on one line"
                )));
            }
            let lease_s = number("lease_s")
                .filter(|s| (1..=MAX_LEASE_S).contains(s))
                .ok_or_else(|| {
                    refuse(format!(
                        "`inhibit` needs `lease_s` in 1 ..= {MAX_LEASE_S} (renew by inhibiting again)"
                    ))
                })?;
            Command::Inhibit { reason, lease_s }
        }
        "release" => Command::Release {
            inhibit: number("inhibit")
                .ok_or_else(|| refuse("`release` needs `inhibit` (the id)".into()))?,
        },
        "suspend" => Command::Suspend,
        "resume" => Command::Resume,
        "cancel" => Command::Cancel,
        other => {
            return Err(refuse(format!(
                "unknown command \"{}\"",
                crate::error::quote(other)
            )))
        }
    };
    Ok(Request { id, cmd })
}

/// The deepest nesting of `[` and `{` in `line`, strings skipped.
fn depth(line: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in line {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The first line the agent sends on every connection.
pub fn hello() -> String {
    format!(
        "{{\"event\":\"hello\",\"protocol\":{PROTOCOL},\"agent\":\"{}\"}}\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn id_text(id: Option<u64>) -> String {
    id.map_or_else(|| "null".into(), |i| i.to_string())
}

/// A success reply; `fields` are more members (`"a":1,"b":2`), maybe empty.
pub fn ok(id: Option<u64>, fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { "," };
    format!("{{\"id\":{},\"ok\":true{sep}{fields}}}\n", id_text(id))
}

/// An error reply.
pub fn error(id: Option<u64>, text: &str) -> String {
    format!(
        "{{\"id\":{},\"ok\":false,\"error\":{}}}\n",
        id_text(id),
        crate::json::string(text)
    )
}

/// An event line: `{"event":NAME,` + `fields` + `}`.
pub fn event(name: &str, fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { "," };
    format!("{{\"event\":\"{name}\"{sep}{fields}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        parse(line.as_bytes()).unwrap().cmd
    }

    fn refused(line: &str) -> String {
        parse(line.as_bytes()).unwrap_err().error
    }

    #[test]
    fn requests_parse_with_defaults_and_ignore_unknown_fields() {
        let r = parse(br#"{"id":7,"cmd":"status","future":[1,2]}"#).unwrap();
        assert_eq!(
            r,
            Request {
                id: Some(7),
                cmd: Command::Status
            }
        );
        assert_eq!(
            cmd(r#"{"cmd":"subscribe"}"#),
            Command::Subscribe { interval_ms: 1000 }
        );
        assert_eq!(
            cmd(r#"{"cmd":"inhibit","reason":"cooking","lease_s":600}"#),
            Command::Inhibit {
                reason: "cooking".into(),
                lease_s: 600
            }
        );
        assert_eq!(
            cmd(r#"{"cmd":"accept","version":"2.0.0"}"#),
            Command::Accept {
                version: "2.0.0".into()
            }
        );
        assert_eq!(
            cmd(r#"{"cmd":"release","inhibit":3}"#),
            Command::Release { inhibit: 3 }
        );
        for (name, c) in [
            ("check-now", Command::CheckNow),
            ("suspend", Command::Suspend),
            ("resume", Command::Resume),
            ("cancel", Command::Cancel),
        ] {
            assert_eq!(cmd(&format!(r#"{{"cmd":"{name}"}}"#)), c);
        }
    }

    #[test]
    fn bad_requests_are_refused_with_their_id_when_readable() {
        let e = parse(br#"{"id":4,"cmd":"reboot"}"#).unwrap_err();
        assert_eq!(e.id, Some(4));
        assert!(
            e.error.contains("unknown command \"reboot\""),
            "{}",
            e.error
        );
        assert!(refused("not json").starts_with("not a request"));
        assert!(refused(r#"{"cmd":5}"#).starts_with("not a request"));
        assert!(refused(r#"{"id":"x","cmd":"status"}"#).starts_with("not a request"));
        assert!(refused(r#"{"cmd":"accept"}"#).contains("needs `version`"));
        assert!(refused(r#"{"cmd":"inhibit","lease_s":5}"#).contains("reason"));
        assert!(refused(r#"{"cmd":"inhibit","reason":" ","lease_s":5}"#).contains("reason"));
        let long = "r".repeat(MAX_REASON + 1);
        assert!(refused(&format!(
            r#"{{"cmd":"inhibit","reason":"{long}","lease_s":5}}"#
        ))
        .contains("reason"));
        assert!(refused(r#"{"cmd":"inhibit","reason":"x"}"#).contains("lease_s"));
        assert!(refused(r#"{"cmd":"inhibit","reason":"x","lease_s":0}"#).contains("lease_s"));
        assert!(refused(r#"{"cmd":"inhibit","reason":"x","lease_s":86401}"#).contains("lease_s"));
        assert!(refused(r#"{"cmd":"subscribe","interval_ms":10}"#).contains("out of range"));
        assert!(refused(r#"{"cmd":"release"}"#).contains("needs `inhibit`"));
        // Nesting: refused before parsing, strings do not count.
        let deep = format!(
            r#"{{"cmd":"status","x":{}{}}}"#,
            "[".repeat(9),
            "]".repeat(9)
        );
        assert!(refused(&deep).contains("nested deeper than 8"), "{deep}");
        let ok = format!(
            r#"{{"cmd":"status","x":{}{},"s":"[[[[[[[[[[\"{{{{{{"}}"#,
            "[".repeat(7),
            "]".repeat(7)
        );
        assert_eq!(parse(ok.as_bytes()).unwrap().cmd, Command::Status, "{ok}");
        // A hostile command name is quoted, bounded, on one line.
        let e = refused(&format!(r#"{{"cmd":"a\nb{}"}}"#, "x".repeat(500)));
        assert!(!e.contains('\n') && e.len() < 200, "{e}");
    }

    #[test]
    fn lines_are_json_objects_ending_in_a_newline() {
        for line in [
            hello(),
            ok(Some(1), ""),
            ok(None, "\"inhibit\":2"),
            error(Some(3), "no \"offer\"\n"),
            event("outcome", "\"result\":\"installed\""),
        ] {
            assert!(
                line.ends_with('\n') && line.matches('\n').count() == 1,
                "{line:?}"
            );
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert!(v.is_object(), "{line}");
        }
        let v: serde_json::Value = serde_json::from_str(&error(Some(3), "no \"offer\"")).unwrap();
        assert_eq!(v["error"], "no \"offer\"");
        assert_eq!(v["ok"], false);
        let v: serde_json::Value = serde_json::from_str(&hello()).unwrap();
        assert_eq!(v["protocol"], PROTOCOL);
    }
}
