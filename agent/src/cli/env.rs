//! `ota-agent env print|set`, and the `fw_printenv` / `fw_setenv` personalities.
//!
//! Options and output follow libubootenv's tools (Debian `libubootenv-tool`):
//!
//! ```text
//! fw_printenv [-c CONFIG] [-f DEFENV] [-n] [NAME...]   ota-agent env print [same]
//! fw_setenv   [-c CONFIG] [-f DEFENV] NAME [VALUE...]  ota-agent env set   [same]
//! fw_setenv   [-c CONFIG] [-f DEFENV] -s SCRIPT|-      ota-agent env set -s SCRIPT|-
//! ```
//!
//! * print: all variables as `name=value` lines in name order; named variables
//!   as `name=value` (`name=` when unset, like libubootenv), or bare values
//!   with `-n`.
//! * set: `NAME` alone deletes; several `VALUE`s are joined with single spaces
//!   (U-Boot `tools/env` semantics; libubootenv 0.3 would instead read
//!   `NAME VALUE NAME VALUE…` pairs). Scripts accept both line syntaxes (see
//!   `uboot_env::script`). Every change of one invocation is ONE environment
//!   write; nothing is written when nothing changed.
//! * No valid environment is an error. `-f DEFENV` explicitly allows starting
//!   from a default environment file (`name=value` lines); unlike libubootenv
//!   there is no implicit `/etc/u-boot-initial-env`.
//!
//! Default configuration: `/etc/fw_env.config`, as for the C tools.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;

use uboot_env::{script, Env, EnvStore, FwEnvConfig};

use super::args::{string, usage, Globals};
use crate::{Error, Result};

/// The configuration file the C tools read when `-c` is not given.
pub const DEFAULT_FW_ENV_CONFIG: &str = "/etc/fw_env.config";

/// libubootenv keeps U-Boot's variable-attribute list out of its listing.
const FLAGS_VAR: &str = ".flags";

const PRINT_USAGE: &str = "\
usage: fw_printenv [OPTION]... [NAME]...
   or: ota-agent env print [OPTION]... [NAME]...
print U-Boot environment variables (all, or the NAMEs given)

 -c, --config FILE     fw_env.config to use (default /etc/fw_env.config)
 -f, --defenv FILE     default environment (name=value lines) if no valid one is stored
 -n, --no-header       print only the values
 -V, --version         print the version and exit
 -h, --help            print this help
";

const SET_USAGE: &str = "\
usage: fw_setenv [OPTION]... NAME [VALUE]...
   or: fw_setenv [OPTION]... -s SCRIPT|-
   or: ota-agent env set [OPTION]... NAME [VALUE]... | -s SCRIPT|-
set (VALUEs joined by spaces) or delete (no VALUE) a U-Boot environment variable

 -c, --config FILE     fw_env.config to use (default /etc/fw_env.config)
 -f, --defenv FILE     default environment (name=value lines) if no valid one is stored
 -s, --script FILE     apply a script ('-' = stdin): `name=value` or `name value`
                       lines set, `name=` or `name` alone delete, '#' comments
 -V, --version         print the version and exit
 -h, --help            print this help
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Print,
    Set,
}

#[derive(Debug, Default)]
struct Options {
    config: Option<PathBuf>,
    defenv: Option<PathBuf>,
    no_header: bool,
    script: Option<PathBuf>,
    args: Vec<String>,
}

/// `ota-agent env …`
pub fn run(_globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    let mut args = args.into_iter();
    let sub =
        args.next().map(string).transpose()?.ok_or_else(|| {
            Error::Usage("env: expected `print` or `set` (try env --help)".into())
        })?;
    let mode = match sub.as_str() {
        "print" => Mode::Print,
        "set" => Mode::Set,
        "-h" | "--help" => {
            print!("{PRINT_USAGE}\n{SET_USAGE}");
            return Ok(0);
        }
        other => {
            return Err(Error::Usage(format!(
                "env: unknown subcommand `{other}` (expected print or set)"
            )))
        }
    };
    dispatch(mode, args.collect())
}

/// Invoked as `fw_printenv`.
pub fn fw_printenv(args: Vec<OsString>) -> Result<i32> {
    dispatch(Mode::Print, args)
}

/// Invoked as `fw_setenv`.
pub fn fw_setenv(args: Vec<OsString>) -> Result<i32> {
    dispatch(Mode::Set, args)
}

fn dispatch(mode: Mode, args: Vec<OsString>) -> Result<i32> {
    let Some(opts) = parse(mode, args)? else {
        return Ok(0);
    };
    match mode {
        Mode::Print => print(&opts),
        Mode::Set => set(&opts),
    }
}

/// Parses the options; `None` when help or version was printed.
fn parse(mode: Mode, args: Vec<OsString>) -> Result<Option<Options>> {
    use lexopt::prelude::*;
    let mut opts = Options::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('c') | Long("config") => {
                opts.config = Some(parser.value().map_err(usage)?.into())
            }
            Short('f') | Long("defenv") => {
                opts.defenv = Some(parser.value().map_err(usage)?.into())
            }
            Short('n') | Long("no-header") if mode == Mode::Print => opts.no_header = true,
            Short('s') | Long("script") if mode == Mode::Set => {
                opts.script = Some(parser.value().map_err(usage)?.into())
            }
            Short('V') | Long("version") => {
                println!("{}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Short('h') | Long("help") => {
                print!(
                    "{}",
                    match mode {
                        Mode::Print => PRINT_USAGE,
                        Mode::Set => SET_USAGE,
                    }
                );
                return Ok(None);
            }
            Value(v) => opts.args.push(string(v)?),
            other => return Err(usage(other.unexpected())),
        }
    }
    if mode == Mode::Set {
        match (&opts.script, opts.args.is_empty()) {
            (Some(_), false) => {
                return Err(Error::Usage(
                    "fw_setenv: --script and NAME [VALUE...] are exclusive".into(),
                ))
            }
            (None, true) => {
                return Err(Error::Usage(
                    "fw_setenv: missing variable name (try --help)".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(Some(opts))
}

/// Opens the store and parses the explicit default environment, if any.
fn open(opts: &Options) -> Result<(EnvStore, Option<Env>)> {
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| DEFAULT_FW_ENV_CONFIG.into());
    let config = FwEnvConfig::load(&config_path)?;
    let store = EnvStore::open(&config)?;
    let default = match &opts.defenv {
        None => None,
        Some(path) => Some(script::default_env(
            &read_text(path)?,
            &path.display().to_string(),
        )?),
    };
    Ok((store, default))
}

/// Reads the environment (or the explicit default when no copy is valid).
fn load(opts: &Options) -> Result<Env> {
    let (mut store, default) = open(opts)?;
    Ok(match default {
        None => store.read()?,
        Some(default) => store.read_or_default(&default)?.env,
    })
}

fn read_text(path: &PathBuf) -> Result<String> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("<stdin>", e))?;
    } else {
        bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
        )
    })
}

/// The text `fw_printenv` prints for these options.
fn render(env: &Env, opts: &Options) -> String {
    let mut out = String::new();
    if opts.args.is_empty() {
        for (name, value) in env.iter().filter(|(n, _)| *n != FLAGS_VAR) {
            out.push_str(&format!("{name}={value}\n"));
        }
    } else {
        for name in &opts.args {
            let value = env.get(name).unwrap_or("");
            if opts.no_header {
                out.push_str(&format!("{value}\n"));
            } else {
                out.push_str(&format!("{name}={value}\n"));
            }
        }
    }
    out
}

fn print(opts: &Options) -> Result<i32> {
    let env = load(opts)?;
    let text = render(&env, opts);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("<stdout>", e))?;
    Ok(0)
}

fn set(opts: &Options) -> Result<i32> {
    // Parse the script before touching the store: bad input changes nothing.
    let edits = match &opts.script {
        Some(path) => script::parse(&read_text(path)?, &path.display().to_string())?,
        None => {
            let (name, values) = opts.args.split_first().ok_or_else(|| {
                Error::Usage("fw_setenv: missing variable name (try --help)".into())
            })?;
            uboot_env::validate_name(name)?;
            vec![script::Assignment {
                name: name.clone(),
                value: (!values.is_empty()).then(|| values.join(" ")),
            }]
        }
    };
    let (mut store, default) = open(opts)?;
    // Read, edit and write under one hold of fw_setenv's lock.
    store.update(default.as_ref(), |env| script::apply(env, &edits))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: Mode, args: &[&str]) -> Options {
        parse(mode, args.iter().map(OsString::from).collect())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn options_anywhere_like_getopt() {
        let o = opts(Mode::Print, &["a", "-n", "-c", "x.cfg", "b"]);
        assert!(o.no_header);
        assert_eq!(o.config, Some(PathBuf::from("x.cfg")));
        assert_eq!(o.args, ["a", "b"]);
        let o = opts(Mode::Set, &["--config=y", "--", "x", "-1"]);
        assert_eq!(o.args, ["x", "-1"]);
    }

    #[test]
    fn set_needs_a_name_or_a_script() {
        for args in [&[][..], &["-s", "f", "x"][..], &["-n", "x"][..]] {
            let r = parse(Mode::Set, args.iter().map(OsString::from).collect());
            assert!(matches!(r, Err(Error::Usage(_))), "{args:?}");
        }
    }

    #[test]
    fn render_matches_libubootenv_format() {
        let mut env = Env::new();
        env.set("b", "2 3").unwrap();
        env.set("a", "").unwrap();
        env.set(FLAGS_VAR, "a:sa").unwrap();
        assert_eq!(render(&env, &opts(Mode::Print, &[])), "a=\nb=2 3\n");
        assert_eq!(
            render(&env, &opts(Mode::Print, &["b", "zz"])),
            "b=2 3\nzz=\n"
        );
        assert_eq!(
            render(&env, &opts(Mode::Print, &["-n", "b", "zz"])),
            "2 3\n\n"
        );
    }
}
