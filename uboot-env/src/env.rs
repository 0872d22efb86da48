//! The variable set and its data-area encoding (no header, no I/O).
//!
//! The data area of a U-Boot environment is a sequence of NUL-terminated
//! `name=value` strings, ended by an empty string (a second NUL), padded up to
//! the area size. This is what U-Boot's `env_export`/`himport_r` and
//! libubootenv's `libuboot_env_store`/`libuboot_load` write and read.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// An ordered set of U-Boot environment variables.
///
/// Iteration and encoding are in byte order of the names (a `BTreeMap`), the
/// same order libubootenv keeps (it inserts by `strcmp`), so the same variables
/// always give the same image bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// Checks that `name` can be stored: non-empty, no `=` (it ends the name in the
/// image), no NUL (it ends the entry).
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "name is empty"
    } else if name.contains('=') {
        "name contains '='"
    } else if name.contains('\0') {
        "name contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Checks that `value` can be stored under `name`: no NUL byte.
pub fn validate_value(name: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::InvalidValue {
            name: name.to_owned(),
            reason: "value contains a NUL byte",
        });
    }
    Ok(())
}

impl Env {
    /// An empty environment.
    pub fn new() -> Env {
        Env::default()
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Sets `name` to `value` (an empty value is stored as such; use
    /// [`Env::remove`] to delete). Refuses invalid names and values, leaving the
    /// set unchanged.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        validate_name(name)?;
        validate_value(name, value)?;
        self.vars.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// Removes `name`, returning its old value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.vars.remove(name)
    }

    /// The variables in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Bytes the data area needs for these variables, including the final NUL.
    pub fn encoded_len(&self) -> usize {
        1 + self
            .vars
            .iter()
            .map(|(n, v)| n.len() + 1 + v.len() + 1)
            .sum::<usize>()
    }

    /// Encodes the variables into a data area of exactly `len` bytes, padded
    /// with NUL bytes (as `mkenvimage` does by default).
    pub fn encode_data(&self, len: usize) -> Result<Vec<u8>> {
        let needed = self.encoded_len();
        if needed > len {
            return Err(Error::TooLarge {
                needed,
                capacity: len,
            });
        }
        let mut out = Vec::with_capacity(len);
        for (name, value) in &self.vars {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        }
        out.resize(len, 0);
        Ok(out)
    }

    /// Decodes a data area (hostile bytes). Reads entries up to the first empty
    /// one. Entries without `=` or with an empty name are skipped, as
    /// libubootenv skips them; a later duplicate replaces an earlier one.
    /// An entry that runs past the end of the area is an error, and so are
    /// names or values that are not UTF-8 (this crate's strings are UTF-8).
    pub fn decode_data(data: &[u8]) -> Result<Env> {
        let mut env = Env::new();
        let mut pos = 0;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            let Some(end) = rest.iter().position(|&b| b == 0) else {
                return Err(Error::Corrupt(format!(
                    "entry at data offset {pos} has no terminating NUL"
                )));
            };
            if end == 0 {
                return Ok(env);
            }
            let entry = &rest[..end];
            match entry.iter().position(|&b| b == b'=') {
                Some(0) | None => log::warn!(
                    "skipping malformed environment entry at data offset {pos} (no name)"
                ),
                Some(eq) => {
                    let text = |bytes: &[u8]| {
                        String::from_utf8(bytes.to_vec()).map_err(|_| {
                            Error::Corrupt(format!("entry at data offset {pos} is not UTF-8"))
                        })
                    };
                    let name = text(&entry[..eq])?;
                    let value = text(&entry[eq + 1..])?;
                    env.vars.insert(name, value);
                }
            }
            pos += end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_name_order_with_padding() {
        let mut env = Env::new();
        env.set("b", "2").unwrap();
        env.set("a", "x=y").unwrap();
        let data = env.encode_data(16).unwrap();
        assert_eq!(&data, b"a=x=y\0b=2\0\0\0\0\0\0\0");
        assert_eq!(env.encoded_len(), 11);
    }

    #[test]
    fn refuses_bad_names_and_values_without_change() {
        let mut env = Env::new();
        for bad in ["", "a=b", "a\0b"] {
            let err = env.set(bad, "v").unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?}: {err}");
        }
        assert!(matches!(
            env.set("a", "v\0").unwrap_err(),
            Error::InvalidValue { .. }
        ));
        assert!(env.is_empty());
        assert_eq!(
            Env::new().set("x=1", "").unwrap_err().to_string(),
            "invalid variable name \"x=1\": name contains '='"
        );
    }

    #[test]
    fn too_large_is_refused() {
        let mut env = Env::new();
        env.set("abc", "def").unwrap();
        assert!(env.encode_data(9).is_ok());
        assert!(matches!(
            env.encode_data(8).unwrap_err(),
            Error::TooLarge {
                needed: 9,
                capacity: 8
            }
        ));
    }

    #[test]
    fn decodes_like_libubootenv() {
        let env = Env::decode_data(b"x=1\0junk\0=v\0y=a=b\0x=2\0\0garbage").unwrap();
        let pairs: Vec<_> = env.iter().collect();
        assert_eq!(pairs, [("x", "2"), ("y", "a=b")]);
        assert!(Env::decode_data(b"\0").unwrap().is_empty());
    }

    #[test]
    fn unterminated_data_is_an_error() {
        for data in [&b""[..], b"a=1", b"a=1\0b=2"] {
            assert!(
                matches!(Env::decode_data(data), Err(Error::Corrupt(_))),
                "{data:?}"
            );
        }
    }
}
