//! `fw_setenv --script` files and default environment files (text, no I/O).
//!
//! Two line syntaxes exist and both are accepted, line by line:
//!
//! * libubootenv (`fw_setenv -s` of libubootenv-tool, and the
//!   `u-boot-initial-env` default files): `name=value`; `name=` deletes.
//! * U-Boot `tools/env` (`fw_setenv -s` of u-boot-tools): `name value`
//!   (whitespace after the name); `name` alone deletes.
//!
//! A line is the libubootenv form when it has a `=` before any space or tab,
//! else the U-Boot form. Leading whitespace is skipped; empty lines and lines
//! starting with `#` are comments; a trailing `\r` is dropped. The value is
//! taken verbatim (inner and trailing whitespace kept).
//!
//! Differences from libubootenv 0.3.2 (Debian 12's `fw_setenv -s`), chosen so
//! that no line is silently lost: it ignores a line without `=` (we read it as
//! the U-Boot form: set or delete), keeps leading whitespace as part of the name
//! (we skip it), and splits lines longer than 1023 bytes (we do not).

use crate::{validate_name, Env, Error, Result};

/// One line of a script: set `name` to `value`, or delete it (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Variable name (validated).
    pub name: String,
    /// New value; `None` deletes the variable.
    pub value: Option<String>,
}

/// Parses a script. `origin` names the file in errors (e.g. `-` for stdin).
pub fn parse(text: &str, origin: &str) -> Result<Vec<Assignment>> {
    let mut out = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let space = line.find([' ', '\t']);
        let (name, value) = match line.find('=') {
            Some(eq) if space.is_none_or(|sp| eq < sp) => (&line[..eq], &line[eq + 1..]),
            _ => match space {
                Some(sp) => (&line[..sp], line[sp..].trim_start_matches([' ', '\t'])),
                None => (line, ""),
            },
        };
        validate_name(name).map_err(|e| Error::Syntax {
            origin: origin.to_owned(),
            line: index + 1,
            reason: e.to_string(),
        })?;
        if value.contains('\0') {
            return Err(Error::Syntax {
                origin: origin.to_owned(),
                line: index + 1,
                reason: format!("value of {name:?} contains a NUL byte"),
            });
        }
        out.push(Assignment {
            name: name.to_owned(),
            value: (!value.is_empty()).then(|| value.to_owned()),
        });
    }
    Ok(out)
}

/// Applies assignments in order (a later line wins).
pub fn apply(env: &mut Env, edits: &[Assignment]) -> Result<()> {
    for edit in edits {
        match &edit.value {
            Some(value) => env.set(&edit.name, value)?,
            None => {
                env.remove(&edit.name);
            }
        }
    }
    Ok(())
}

/// Builds an environment from a default environment file (`name=value` lines,
/// as U-Boot's `u-boot-initial-env` and libubootenv's `--defenv` use).
pub fn default_env(text: &str, origin: &str) -> Result<Env> {
    let mut env = Env::new();
    apply(&mut env, &parse(text, origin)?)?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, value: Option<&str>) -> Assignment {
        Assignment {
            name: name.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn both_syntaxes() {
        let text = "# comment\n\nfoo=bar baz\nbootcmd run a; run b\n  \tindented=1\r\n\
                    del=\ngone\nx y=z\nk=v=w\nsp  \t two spaces \n";
        assert_eq!(
            parse(text, "s").unwrap(),
            [
                a("foo", Some("bar baz")),
                a("bootcmd", Some("run a; run b")),
                a("indented", Some("1")),
                a("del", None),
                a("gone", None),
                a("x", Some("y=z")),
                a("k", Some("v=w")),
                a("sp", Some("two spaces ")),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("ok=1\n=nameless\n", "script.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "script.txt line 2: invalid variable name \"\": name is empty"
        );
    }

    #[test]
    fn apply_sets_and_deletes_in_order() {
        let mut env = Env::new();
        env.set("old", "1").unwrap();
        apply(
            &mut env,
            &parse("old=\nnew=2\nnew 3\nmissing\n", "-").unwrap(),
        )
        .unwrap();
        assert_eq!(env.iter().collect::<Vec<_>>(), [("new", "3")]);
    }
}
