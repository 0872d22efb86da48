//! The TOML subset `/etc/ota-agent.toml` is written in, parsed without I/O.
//!
//! The agent used the `toml` crate (with serde) for this; that cost ~80 KiB of
//! `.text` for a 20-key file. This parser accepts a strict subset of TOML 1.0
//! (<https://toml.io/en/v1.0.0>), and whatever it accepts means the same as
//! in TOML (the tests compare it with the `toml` crate):
//!
//! * blank lines and `#` comments (LF or CRLF line ends);
//! * bare keys `A-Za-z0-9_-`, each at most once per table;
//! * table headers `[name]` (bare name), each at most once;
//! * values: basic strings `"…"` with all TOML escapes (`\b \t \n \f \r \" \\
//!   \uXXXX \UXXXXXXXX`), literal strings `'…'`, integers (decimal with `_`
//!   separators, `0x`/`0o`/`0b`; 64-bit signed), `true`/`false`, and arrays
//!   of those (one or several lines, trailing comma allowed).
//!
//! Anything else that is valid TOML (quoted or dotted keys, `[[arrays]]`,
//! `[a.b]`, inline tables, floats, dates, multi-line strings, nested arrays)
//! is refused with an error naming the line and the construct, as is
//! everything that is not TOML at all. So a config file never means something
//! else to the agent than to a TOML tool.

use std::fmt;

use crate::error::quote;

/// One value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A basic or literal string, escapes resolved.
    String(String),
    /// A 64-bit signed integer.
    Integer(i64),
    /// `true` or `false`.
    Boolean(bool),
    /// An array of scalars (strings, integers, booleans; types may mix).
    Array(Vec<Value>),
}

impl Value {
    /// The TOML type name, for messages ("expected a string, found an integer").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Boolean(_) => "a boolean",
            Value::Array(_) => "an array",
        }
    }
}

/// `key = value`, with the line the key is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The bare key.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// 1-based line of the key.
    pub line: usize,
}

/// A `[name]` section and its entries, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The bare table name.
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    /// Its keys, in file order.
    pub entries: Vec<Entry>,
}

/// A parsed file: the keys before the first header, then each section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// Top-level keys, in file order.
    pub root: Vec<Entry>,
    /// Sections, in file order.
    pub sections: Vec<Section>,
}

/// Why a file is not in the subset: one line, naming the line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// Parses `text`. Pure: no I/O.
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    Parser {
        s: text,
        pos: 0,
        line: 1,
    }
    .document()
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    line: usize,
}

fn is_bare_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// TOML forbids control characters other than tab in strings and comments.
fn is_forbidden_control(c: char) -> bool {
    (c < ' ' && c != '\t') || c == '\u{7f}'
}

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(' ' | '\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes a line end (LF or CRLF) if one is next.
    fn newline(&mut self) -> Result<bool, SyntaxError> {
        match self.peek() {
            Some('\n') => {}
            Some('\r') if self.rest().starts_with("\r\n") => self.pos += 1,
            Some('\r') => return self.err("carriage return without line feed"),
            _ => return Ok(false),
        }
        self.pos += 1;
        self.line += 1;
        Ok(true)
    }

    /// `# …` up to (not including) the line end.
    fn comment(&mut self) -> Result<(), SyntaxError> {
        if self.peek() != Some('#') {
            return Ok(());
        }
        self.pos += 1;
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            if is_forbidden_control(c) {
                return self.err(format!("control character U+{:04X} in comment", c as u32));
            }
            self.pos += c.len_utf8();
        }
        Ok(())
    }

    /// After a header or value: spaces, an optional comment, then the line end.
    fn end_of_line(&mut self, after: &str) -> Result<(), SyntaxError> {
        self.skip_ws();
        self.comment()?;
        if self.peek().is_none() || self.newline()? {
            return Ok(());
        }
        let c = self.peek().unwrap_or(' ');
        self.err(format!("unexpected `{c}` after {after}"))
    }

    fn document(mut self) -> Result<Document, SyntaxError> {
        let mut doc = Document::default();
        // A byte-order mark is not whitespace in TOML; say so plainly.
        if self.s.starts_with('\u{feff}') {
            return self.err("byte-order mark (U+FEFF) at the start of the file");
        }
        loop {
            self.skip_ws();
            self.comment()?;
            if self.newline()? {
                continue;
            }
            match self.peek() {
                None => return Ok(doc),
                Some('[') => {
                    let line = self.line;
                    let name = self.header()?;
                    let shown = quote(&name);
                    if let Some(s) = doc.sections.iter().find(|s| s.name == name) {
                        return self.err(format!(
                            "table [{shown}] already defined on line {}",
                            s.line
                        ));
                    }
                    if let Some(e) = doc.root.iter().find(|e| e.key == name) {
                        return self.err(format!(
                            "table [{shown}]: key `{shown}` already defined on line {}",
                            e.line
                        ));
                    }
                    doc.sections.push(Section {
                        name,
                        line,
                        entries: Vec::new(),
                    });
                }
                Some(_) => {
                    let entry = self.key_value()?;
                    let table = match doc.sections.last_mut() {
                        Some(s) => &mut s.entries,
                        None => &mut doc.root,
                    };
                    if let Some(e) = table.iter().find(|e| e.key == entry.key) {
                        return self.err(format!(
                            "key `{}` already defined on line {}",
                            quote(&entry.key),
                            e.line
                        ));
                    }
                    table.push(entry);
                }
            }
        }
    }

    fn bare_key(&mut self, what: &str) -> Result<String, SyntaxError> {
        let start = self.pos;
        while self.peek().is_some_and(is_bare_key_char) {
            self.pos += 1;
        }
        if self.pos == start {
            return match self.peek() {
                Some('"' | '\'') => self.err(format!("quoted {what}s are not supported")),
                Some(c) => self.err(format!("expected a {what}, found `{}`", c.escape_debug())),
                None => self.err(format!("expected a {what}, found the end of the file")),
            };
        }
        let key = self.s[start..self.pos].to_owned();
        self.skip_ws();
        if self.peek() == Some('.') {
            let key = quote(&key);
            return self.err(format!("dotted {what}s (`{key}.…`) are not supported"));
        }
        Ok(key)
    }

    fn header(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1; // '['
        if self.peek() == Some('[') {
            return self.err("arrays of tables (`[[…]]`) are not supported");
        }
        self.skip_ws();
        let name = self.bare_key("table name")?;
        let shown = quote(&name);
        if self.peek() != Some(']') {
            return self.err(format!("expected `]` after table name `{shown}`"));
        }
        self.pos += 1;
        self.end_of_line(&format!("table header [{shown}]"))?;
        Ok(name)
    }

    fn key_value(&mut self) -> Result<Entry, SyntaxError> {
        let line = self.line;
        let key = self.bare_key("key")?;
        // Messages quote at most QUOTE_MAX bytes of the key.
        let shown = quote(&key);
        if self.peek() != Some('=') {
            return self.err(format!("expected `=` after key `{shown}`"));
        }
        self.pos += 1;
        self.skip_ws();
        let value = self.value(&shown, true)?;
        self.end_of_line(&format!("the value of `{shown}`"))?;
        Ok(Entry { key, value, line })
    }

    fn value(&mut self, key: &str, array_allowed: bool) -> Result<Value, SyntaxError> {
        match self.peek() {
            Some('"') if self.rest().starts_with("\"\"\"") => {
                self.err(format!("key `{key}`: multi-line strings are not supported"))
            }
            Some('\'') if self.rest().starts_with("'''") => {
                self.err(format!("key `{key}`: multi-line strings are not supported"))
            }
            Some('"') => self.basic_string(key).map(Value::String),
            Some('\'') => self.literal_string(key).map(Value::String),
            Some('[') if array_allowed => self.array(key),
            Some('[') => self.err(format!("key `{key}`: nested arrays are not supported")),
            Some('{') => self.err(format!("key `{key}`: inline tables are not supported")),
            Some(c) if c.is_ascii_alphanumeric() || c == '+' || c == '-' => self.scalar(key),
            Some(c) if c != '\n' && c != '\r' && c != '#' => self.err(format!(
                "key `{key}`: expected a value, found `{}`",
                c.escape_debug()
            )),
            _ => self.err(format!("key `{key}`: expected a value after `=`")),
        }
    }

    fn basic_string(&mut self, key: &str) -> Result<String, SyntaxError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return self.err(format!("key `{key}`: unterminated string"));
            };
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = self.bump();
                    out.push(match e {
                        Some('b') => '\u{8}',
                        Some('t') => '\t',
                        Some('n') => '\n',
                        Some('f') => '\u{c}',
                        Some('r') => '\r',
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('u') => self.unicode_escape(key, 4)?,
                        Some('U') => self.unicode_escape(key, 8)?,
                        Some(e) if !is_forbidden_control(e) => {
                            return self
                                .err(format!("key `{key}`: invalid escape `\\{e}` in string"))
                        }
                        _ => return self.err(format!("key `{key}`: invalid escape in string")),
                    });
                }
                '\n' | '\r' => return self.err(format!("key `{key}`: unterminated string")),
                c if is_forbidden_control(c) => {
                    return self.err(format!(
                        "key `{key}`: control character U+{:04X} in string (escape it)",
                        c as u32
                    ))
                }
                c => out.push(c),
            }
        }
    }

    fn unicode_escape(&mut self, key: &str, digits: usize) -> Result<char, SyntaxError> {
        let hex = self
            .rest()
            .get(..digits)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(hex) = hex else {
            return self.err(format!(
                "key `{key}`: `\\u`/`\\U` needs {digits} hex digits"
            ));
        };
        // `hex` is 4 or 8 ASCII hex digits: fits in u32.
        let code = u32::from_str_radix(hex, 16).unwrap_or(u32::MAX);
        self.pos += digits;
        match char::from_u32(code) {
            Some(c) => Ok(c),
            None => self.err(format!(
                "key `{key}`: escape U+{code:X} is not a Unicode scalar value"
            )),
        }
    }

    fn literal_string(&mut self, key: &str) -> Result<String, SyntaxError> {
        self.pos += 1; // '\''
        let start = self.pos;
        loop {
            match self.peek() {
                Some('\'') => {
                    let s = self.s[start..self.pos].to_owned();
                    self.pos += 1;
                    return Ok(s);
                }
                None | Some('\n' | '\r') => {
                    return self.err(format!("key `{key}`: unterminated string"))
                }
                Some(c) if is_forbidden_control(c) => {
                    return self.err(format!(
                        "key `{key}`: control character U+{:04X} in string",
                        c as u32
                    ))
                }
                Some(c) => self.pos += c.len_utf8(),
            }
        }
    }

    /// Skips whitespace, comments and line ends inside an array.
    fn skip_array_space(&mut self) -> Result<(), SyntaxError> {
        loop {
            self.skip_ws();
            self.comment()?;
            if !self.newline()? {
                return Ok(());
            }
        }
    }

    fn array(&mut self, key: &str) -> Result<Value, SyntaxError> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        loop {
            self.skip_array_space()?;
            if self.peek() == Some(']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            if self.peek().is_none() {
                return self.err(format!("key `{key}`: unterminated array"));
            }
            items.push(self.value(key, false)?);
            self.skip_array_space()?;
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {}
                None => return self.err(format!("key `{key}`: unterminated array")),
                Some(c) => {
                    return self.err(format!(
                        "key `{key}`: expected `,` or `]` in array, found `{}`",
                        c.escape_debug()
                    ))
                }
            }
        }
    }

    /// Integers and booleans (and, to name them in the error, floats, dates,
    /// `inf`, `nan`).
    fn scalar(&mut self, key: &str) -> Result<Value, SyntaxError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "_+-.:".contains(c))
        {
            self.pos += 1;
        }
        let token = &self.s[start..self.pos];
        match token {
            "true" => return Ok(Value::Boolean(true)),
            "false" => return Ok(Value::Boolean(false)),
            _ => {}
        }
        match parse_integer(token) {
            Ok(n) => Ok(Value::Integer(n)),
            Err(why) => self.err(format!("key `{key}`: {why}")),
        }
    }
}

/// A TOML 1.0 integer, or why `token` is not one.
fn parse_integer(token: &str) -> Result<i64, String> {
    let shown = quote(token);
    let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
    let (radix, digits) = match unsigned.get(..2) {
        Some("0x") => (16, &unsigned[2..]),
        Some("0o") => (8, &unsigned[2..]),
        Some("0b") => (2, &unsigned[2..]),
        _ => (10, unsigned),
    };
    if radix != 10 && unsigned.len() != token.len() {
        return Err(format!("`{shown}`: a sign is not allowed before 0x/0o/0b"));
    }
    let float_like = matches!(unsigned, "inf" | "nan")
        || (radix == 10
            && unsigned.starts_with(|c: char| c.is_ascii_digit())
            && unsigned.contains(['.', 'e', 'E'])
            && !unsigned.contains(':'));
    if float_like {
        return Err(format!("`{shown}`: floats are not supported"));
    }
    if radix == 10 && (unsigned.contains(':') || unsigned.get(4..5) == Some("-")) {
        return Err(format!("`{shown}`: dates and times are not supported"));
    }
    // Underscores only between two digits.
    let b = digits.as_bytes();
    let ok_digit = |c: u8| (c as char).is_digit(radix);
    let well_formed = !b.is_empty()
        && b.iter().enumerate().all(|(i, &c)| {
            ok_digit(c)
                || (c == b'_'
                    && i > 0
                    && i + 1 < b.len()
                    && ok_digit(b[i - 1])
                    && ok_digit(b[i + 1]))
        });
    if !well_formed {
        return Err(format!(
            "`{shown}` is not a value (expected a string, integer, boolean or array)"
        ));
    }
    if radix == 10 && b.len() > 1 && b[0] == b'0' {
        return Err(format!("`{shown}`: leading zeros are not allowed"));
    }
    let mut clean: String = digits.chars().filter(|&c| c != '_').collect();
    if token.starts_with('-') {
        clean.insert(0, '-');
    }
    i64::from_str_radix(&clean, radix)
        .map_err(|_| format!("`{shown}` is out of the 64-bit integer range"))
}

#[cfg(test)]
mod tests;
