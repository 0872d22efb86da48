//! Writing JSON by hand (a serde derive per document would cost the device
//! binary more): the one string writer, for the fleet reports, the policy
//! offer and the hawkBit DDI documents. A leaf module: it imports nothing.

/// `v` as a JSON string (RFC 8259 section 7: `"` and `\` escaped, control
/// characters as `\u00XX`). The one JSON string writer of the agent
/// (reports, policy offers, DDI documents).
pub fn string(v: &str) -> String {
    let mut o = String::with_capacity(v.len() + 2);
    o.push('"');
    for c in v.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_read_back_as_written() {
        for s in [
            "",
            "plain",
            "a \"b\" c",
            "back\\slash",
            "line\nfeed\t\r\u{1}\u{1f}",
            "ü 炊飯器 ✓",
        ] {
            let j = super::string(s);
            assert_eq!(serde_json::from_str::<String>(&j).unwrap(), s, "{j}");
            assert!(!j[1..j.len() - 1].chars().any(|c| (c as u32) < 0x20), "{j}");
        }
        assert_eq!(super::string("\"\\\n"), r#""\"\\\u000a""#);
    }
}
