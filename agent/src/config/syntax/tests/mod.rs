//! Tests of `config::syntax`.

use super::*;
use proptest::prelude::*;

/// A 900 KB key or number is quoted with at most 80 bytes.
#[test]
fn error_lines_quote_long_input_bounded() {
    let key = "k".repeat(900_000);
    let num = "9".repeat(900_000);
    for text in [
        format!("{key} = 1.5\n"),
        format!("{key} 1\n"),
        format!("a = {num}\n"),
        format!("[{key}]\n[{key}]\n"),
        format!("{key} = 1\n{key} = 2\n"),
        format!("{key}.x = 1\n"),
    ] {
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.len() < 300,
            "{} bytes: {}",
            e.len(),
            &e[..300.min(e.len())]
        );
        assert!(e.contains("…(+899920 bytes)"), "{e}");
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn entry(key: &str, value: Value, line: usize) -> Entry {
    Entry {
        key: key.into(),
        value,
        line,
    }
}

/// The error's line and message, for `assert_eq!`.
fn error(text: &str) -> (usize, String) {
    let e = parse(text).expect_err(text);
    (e.line, e.message)
}

/// Our document as the `toml` crate's value tree (the oracle's terms).
fn to_toml(doc: &Document) -> toml::Table {
    fn value(v: &Value) -> toml::Value {
        match v {
            Value::String(s) => toml::Value::String(s.clone()),
            Value::Integer(n) => toml::Value::Integer(*n),
            Value::Boolean(b) => toml::Value::Boolean(*b),
            Value::Array(a) => toml::Value::Array(a.iter().map(value).collect()),
        }
    }
    fn table(entries: &[Entry]) -> toml::Table {
        entries
            .iter()
            .map(|e| (e.key.clone(), value(&e.value)))
            .collect()
    }
    let mut t = table(&doc.root);
    for s in &doc.sections {
        t.insert(s.name.clone(), toml::Value::Table(table(&s.entries)));
    }
    t
}

/// Where we accept, the `toml` crate must accept and read the same values;
/// where it rejects, we must reject.
fn agrees_with_toml(text: &str) -> std::result::Result<(), TestCaseError> {
    let oracle = text.parse::<toml::Table>();
    match parse(text) {
        Ok(doc) => {
            let Ok(theirs) = oracle else {
                return Err(TestCaseError::fail(format!(
                    "we accept what toml rejects: {text:?}"
                )));
            };
            prop_assert_eq!(to_toml(&doc), theirs, "{:?}", text);
        }
        Err(e) => prop_assert!(
            e.line >= 1 && e.line <= text.split('\n').count() && !e.message.contains('\n'),
            "{e:?} for {text:?}"
        ),
    }
    Ok(())
}

#[test]
fn empty_blank_and_comment_only_files_are_empty() {
    for text in ["", "\n\n", "# c\n  # d\r\n\t\n", "# no line end"] {
        assert_eq!(parse(text).unwrap(), Document::default(), "{text:?}");
    }
}

#[test]
fn keys_sections_and_lines() {
    let doc = parse("# head\na = 1\n\n[mcu]\nport = \"x\" # tail\n[ other ]\n").unwrap();
    assert_eq!(doc.root, vec![entry("a", Value::Integer(1), 2)]);
    assert_eq!(
        doc.sections,
        vec![
            Section {
                name: "mcu".into(),
                line: 4,
                entries: vec![entry("port", s("x"), 5)],
            },
            Section {
                name: "other".into(),
                line: 6,
                entries: vec![],
            },
        ]
    );
}

#[test]
fn basic_strings_resolve_every_escape() {
    let doc = parse(r#"k = "a\b\t\n\f\r\"\\\u00e9\U0001F600 z#""#).unwrap();
    assert_eq!(doc.root[0].value, s("a\u{8}\t\n\u{c}\r\"\\é😀 z#"));
    let doc = parse("k = \"tab\tand ünïcode\"").unwrap();
    assert_eq!(doc.root[0].value, s("tab\tand ünïcode"));
}

#[test]
fn literal_strings_are_verbatim() {
    let doc = parse(r"k = 'C:\no\escapes\u0041 # not a comment'").unwrap();
    assert_eq!(doc.root[0].value, s(r"C:\no\escapes\u0041 # not a comment"));
    assert_eq!(parse("k = ''").unwrap().root[0].value, s(""));
}

#[test]
fn integers_in_every_notation() {
    for (text, n) in [
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("21600", 21600),
        ("+17", 17),
        ("-17", -17),
        ("1_000_000", 1_000_000),
        ("0xdead_BEEF", 0xdead_beef),
        ("0o755", 0o755),
        ("0b1010", 10),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
    ] {
        let doc = parse(&format!("k = {text}")).unwrap();
        assert_eq!(doc.root[0].value, Value::Integer(n), "{text}");
    }
}

#[test]
fn booleans_and_arrays() {
    let doc =
        parse("t = true\nf = false\na = [\"sh\", '-c',\n  # why\n  \"x\", 1, true, ]\ne = []\n")
            .unwrap();
    assert_eq!(doc.root[0].value, Value::Boolean(true));
    assert_eq!(doc.root[1].value, Value::Boolean(false));
    assert_eq!(
        doc.root[2].value,
        Value::Array(vec![
            s("sh"),
            s("-c"),
            s("x"),
            Value::Integer(1),
            Value::Boolean(true)
        ])
    );
    assert_eq!(doc.root[3], entry("e", Value::Array(vec![]), 6));
}

#[test]
fn crlf_line_ends() {
    let doc = parse("a = 1\r\n[mcu]\r\nb = 'x'\r\n").unwrap();
    assert_eq!(doc.sections[0].entries, vec![entry("b", s("x"), 3)]);
}

/// Valid TOML outside the subset: the oracle accepts it, we name the
/// construct and the line.
#[test]
fn valid_toml_outside_the_subset_is_refused_by_name() {
    for (text, line, what) in [
        ("a = 1\nb.c = 1", 2, "dotted keys"),
        ("\"a\" = 1", 1, "quoted keys"),
        ("'a' = 1", 1, "quoted keys"),
        ("[[x]]", 1, "arrays of tables"),
        ("[a.b]", 1, "dotted table names"),
        ("[\"a\"]", 1, "quoted table names"),
        ("x = {a = 1}", 1, "inline tables"),
        ("x = 1.5", 1, "floats"),
        ("x = 1e3", 1, "floats"),
        ("x = inf", 1, "floats"),
        ("x = -nan", 1, "floats"),
        ("x = 1979-05-27", 1, "dates"),
        ("x = 07:32:00", 1, "dates"),
        ("\n\nx = \"\"\"a\"\"\"", 3, "multi-line strings"),
        ("x = '''a'''", 1, "multi-line strings"),
        ("x = [[1]]", 1, "nested arrays"),
        ("x = [\n1,\n[2]]", 3, "nested arrays"),
    ] {
        assert!(
            text.parse::<toml::Table>().is_ok(),
            "oracle refuses {text:?}"
        );
        let (l, m) = error(text);
        assert_eq!(l, line, "{text:?}: {m}");
        assert!(m.contains(what), "{text:?}: {m}");
    }
}

/// Not TOML at all: the oracle refuses too, and our message says why.
#[test]
fn invalid_toml_is_refused_with_the_line() {
    for (text, line, what) in [
        ("x = ", 1, "expected a value"),
        ("x =\ny = 1", 1, "expected a value"),
        ("x = \"abc", 1, "unterminated string"),
        ("x = \"abc\ny = 1", 1, "unterminated string"),
        ("x = 'abc", 1, "unterminated string"),
        ("x = 01", 1, "leading zeros"),
        ("x = 1__0", 1, "not a value"),
        ("x = _1", 1, "expected a value, found `_`"),
        ("x = 1_", 1, "not a value"),
        ("x = 0x", 1, "not a value"),
        ("x = 0xg", 1, "not a value"),
        ("x = +0x1", 1, "sign"),
        ("x = 9223372036854775808", 1, "out of the 64-bit"),
        ("x = 0x8000000000000000", 1, "out of the 64-bit"),
        ("x = yes", 1, "not a value"),
        ("x = True", 1, "not a value"),
        ("x == 1", 1, "expected a value"),
        ("x 1", 1, "expected `=`"),
        ("= 1", 1, "expected a key"),
        ("a = 1\n[x", 2, "expected `]`"),
        ("[]", 1, "expected a table name"),
        ("[x] y = 1", 1, "after table header"),
        (r#"x = "\q""#, 1, "invalid escape `\\q`"),
        (r#"x = "\u12""#, 1, "4 hex digits"),
        (r#"x = "\uD800""#, 1, "not a Unicode scalar"),
        (r#"x = "\U00110000""#, 1, "not a Unicode scalar"),
        ("x = \"a\u{1}\"", 1, "control character U+0001"),
        ("x = 'a\u{7f}'", 1, "control character U+007F"),
        ("# a\u{0}b", 1, "control character U+0000 in comment"),
        ("x = 1\ry = 2", 1, "carriage return"),
        ("x = 1 2", 1, "after the value of `x`"),
        ("x = \"a\" \"b\"", 1, "after the value of `x`"),
        ("x = [1 2]", 1, "expected `,` or `]`"),
        ("x = [,]", 1, "expected a value, found `,`"),
        ("x = [1,,]", 1, "expected a value, found `,`"),
        ("x = [1,\n2", 2, "unterminated array"),
        ("x = 1\nx = 2", 2, "key `x` already defined on line 1"),
        (
            "[t]\nx = 1\n[u]\n[t]",
            4,
            "table [t] already defined on line 1",
        ),
        ("t = 1\n[t]", 2, "key `t` already defined on line 1"),
        ("\u{feff}x = 1", 1, "byte-order mark"),
    ] {
        let (l, m) = error(text);
        assert_eq!(l, line, "{text:?}: {m}");
        assert!(m.contains(what), "{text:?}: {m}");
        if what != "byte-order mark" {
            assert!(
                text.parse::<toml::Table>().is_err(),
                "oracle accepts {text:?}"
            );
        }
    }
}

/// Every file the project ships or generates reads the same with the oracle.
#[test]
fn shipped_configs_agree_with_toml() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let reference = std::fs::read_to_string(root.join("conf/ota-agent.toml")).unwrap();
    // The reference with every `#key = …` example switched on.
    let uncommented: String = reference
        .lines()
        .map(|l| {
            let l = l
                .strip_prefix('#')
                .filter(|r| !r.starts_with(' ') && !r.is_empty());
            format!("{}\n", l.unwrap_or_default())
        })
        .collect();
    let template = std::fs::read_to_string(
        root.join("meta-ota/recipes-ota/ota-agent-config/files/ota-agent.toml.in"),
    )
    .unwrap()
    .replace("@@OTA_BOOT_TRIES@@", "3")
    .replace("@@", "");
    for text in [&reference, &uncommented, &template] {
        let doc = parse(text).unwrap();
        assert!(!doc.root.is_empty());
        assert_eq!(to_toml(&doc), text.parse::<toml::Table>().unwrap());
    }
    assert_eq!(parse(&uncommented).unwrap().sections[0].entries.len(), 6);
}

/// A tiny deterministic generator for formatting choices.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn ws(&mut self) -> &'static str {
        ["", " ", "  ", "\t", " \t "][self.next(5) as usize]
    }
    fn nl(&mut self) -> &'static str {
        if self.next(4) == 0 {
            "\r\n"
        } else {
            "\n"
        }
    }
    fn comment(&mut self) -> String {
        match self.next(3) {
            0 => String::new(),
            1 => "# note \"'[]=#\t\u{e9}".into(),
            _ => "#".into(),
        }
    }
}

fn render_string(v: &str, r: &mut Rng) -> String {
    let literal_ok = !v.chars().any(|c| c == '\'' || is_forbidden_control(c));
    if literal_ok && r.next(3) == 0 {
        return format!("'{v}'");
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        let forced = is_forbidden_control(c) || c == '"' || c == '\\';
        match (forced, r.next(6)) {
            (_, 0) if (c as u32) < 0x10000 => out += &format!("\\u{:04X}", c as u32),
            (_, 0 | 1) => out += &format!("\\U{:08x}", c as u32),
            (true, _) => match c {
                '"' => out += "\\\"",
                '\\' => out += "\\\\",
                '\n' => out += "\\n",
                '\t' => out += "\\t",
                '\r' => out += "\\r",
                '\u{8}' => out += "\\b",
                '\u{c}' => out += "\\f",
                _ => out += &format!("\\U{:08X}", c as u32),
            },
            (false, _) => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render_int(n: i64, r: &mut Rng) -> String {
    let group = r.next(2) == 0;
    let grouped = |digits: String| -> String {
        if !group || digits.len() < 2 {
            return digits;
        }
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('_');
            }
            out.push(c);
        }
        out
    };
    match (n >= 0, r.next(6)) {
        (true, 0) => format!("0x{}", grouped(format!("{n:x}"))),
        (true, 1) => format!("0o{n:o}"),
        (true, 2) => format!("0b{n:b}"),
        (true, 3) => format!("+{}", grouped(n.to_string())),
        _ if n < 0 => format!("-{}", grouped(n.unsigned_abs().to_string())),
        _ => grouped(n.to_string()),
    }
}

fn render_value(v: &Value, r: &mut Rng) -> String {
    match v {
        Value::String(s) => render_string(s, r),
        Value::Integer(n) => render_int(*n, r),
        Value::Boolean(b) => b.to_string(),
        Value::Array(items) => {
            let multi = r.next(2) == 0;
            let mut out = String::from("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out += ",";
                }
                if multi {
                    let c = r.comment();
                    out += &format!("{}{c}{}  ", r.ws(), r.nl());
                } else {
                    out += r.ws();
                }
                out += &render_value(item, r);
                out += r.ws();
            }
            if !items.is_empty() && r.next(2) == 0 {
                out += ",";
            }
            if multi {
                out += r.nl();
            }
            out + "]"
        }
    }
}

/// Renders `doc` in a random but valid style; returns the text and the
/// document with the line numbers the text has.
fn render(doc: &Document, seed: u64) -> (String, Document) {
    let mut r = Rng(seed | 1);
    let mut text = String::new();
    let mut line = 1;
    let mut out = Document::default();
    let emit = |text: &mut String, piece: String, line: &mut usize| {
        *line += piece.matches('\n').count();
        *text += &piece;
    };
    let entries = |entries: &[Entry], text: &mut String, line: &mut usize, r: &mut Rng| {
        let mut placed = Vec::new();
        for e in entries {
            if r.next(4) == 0 {
                let c = r.comment();
                emit(text, format!("{}{c}{}", r.ws(), r.nl()), line);
            }
            placed.push(Entry {
                line: *line,
                ..e.clone()
            });
            let c = r.comment();
            let piece = format!(
                "{}{}{}={}{}{}{c}{}",
                r.ws(),
                e.key,
                r.ws(),
                r.ws(),
                render_value(&e.value, r),
                r.ws(),
                r.nl()
            );
            emit(text, piece, line);
        }
        placed
    };
    out.root = entries(&doc.root, &mut text, &mut line, &mut r);
    for s in &doc.sections {
        let header_line = line;
        let c = r.comment();
        let piece = format!(
            "{}[{}{}{}]{}{c}{}",
            r.ws(),
            r.ws(),
            s.name,
            r.ws(),
            r.ws(),
            r.nl()
        );
        emit(&mut text, piece, &mut line);
        let placed = entries(&s.entries, &mut text, &mut line, &mut r);
        out.sections.push(Section {
            name: s.name.clone(),
            line: header_line,
            entries: placed,
        });
    }
    (text, out)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(Value::Integer),
        any::<bool>().prop_map(Value::Boolean),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => scalar(),
        1 => proptest::collection::vec(scalar(), 0..4).prop_map(Value::Array),
    ]
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::btree_map("[A-Za-z0-9_-]{1,8}", value(), 0..6).prop_map(|m| {
        m.into_iter()
            .map(|(key, value)| Entry {
                key,
                value,
                line: 0,
            })
            .collect()
    })
}

fn document() -> impl Strategy<Value = Document> {
    (
        entries(),
        proptest::collection::btree_map("[a-z_]{1,6}", entries(), 0..3),
    )
        .prop_map(|(root, sections)| {
            let root: Vec<Entry> = root
                .into_iter()
                .filter(|e| !sections.contains_key(&e.key))
                .collect();
            let sections = sections
                .into_iter()
                .map(|(name, entries)| Section {
                    name,
                    line: 0,
                    entries,
                })
                .collect();
            Document { root, sections }
        })
}

/// Pieces random non-documents are made of: TOML's syntax characters,
/// escapes, numbers, words, control characters.
const PIECES: &[&str] = &[
    "a",
    "k_1",
    "-",
    "+",
    "_",
    "=",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "#",
    "[",
    "]",
    "[[",
    ",",
    ".",
    ":",
    "{",
    "}",
    "\"",
    "'",
    "\"\"\"",
    "\\",
    "\\u00e9",
    "\\U0001F600",
    "\\uD800",
    "\\n",
    "\\b",
    "\\f",
    "\\r",
    "\\t",
    "\\\\",
    "\\\"",
    "\\x41",
    "\\e",
    "0",
    "1",
    "07",
    "1e5",
    "0x1f",
    "0o7",
    "0b2",
    "1_0",
    "true",
    "false",
    "inf",
    "é",
    "\u{7f}",
    "\u{1}",
    "\u{0}",
    "\u{feff}",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Rendered documents parse back to themselves, and the oracle reads
    /// the same values.
    #[test]
    fn rendered_documents_round_trip(doc in document(), seed in any::<u64>()) {
        let (text, expected) = render(&doc, seed);
        let ours = parse(&text).map_err(|e| TestCaseError::fail(format!("{e} in {text:?}")))?;
        prop_assert_eq!(&ours, &expected, "{:?}", text);
        let theirs = text.parse::<toml::Table>().map_err(|e| TestCaseError::fail(format!("oracle: {e} in {text:?}")))?;
        prop_assert_eq!(to_toml(&ours), theirs, "{:?}", text);
    }

    /// Random near-TOML: whatever we accept, the oracle accepts and reads
    /// the same; every refusal is one line naming an existing line.
    #[test]
    fn random_text_never_means_something_else(
        pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..40)
    ) {
        agrees_with_toml(&pieces.concat())?;
    }

    /// Random near-values after a valid key (where most mistakes would be).
    #[test]
    fn random_values_never_mean_something_else(
        pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..12)
    ) {
        agrees_with_toml(&format!("k = {}\n", pieces.concat()))?;
    }

    /// Valid documents with one piece inserted or one character removed.
    #[test]
    fn mutated_documents_never_mean_something_else(
        doc in document(),
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        piece in proptest::sample::select(PIECES),
        remove in any::<bool>(),
    ) {
        let (mut text, _) = render(&doc, seed);
        let mut cut = at.index(text.len() + 1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        if remove && cut < text.len() {
            text.remove(cut);
        } else {
            text.insert_str(cut, piece);
        }
        agrees_with_toml(&text)?;
    }
}
