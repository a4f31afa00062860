//! Every [`Hyper`] field, and every loop setting, as a `skfac train` flag (`t_cov` →
//! `--t-cov`), built from their `PARAMS` lists ([`crate::overrides::params`]) so that a new
//! setting is a flag without further code.

use std::ffi::OsStr;

use clap::builder::{MapValueParser, PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use optimizers::param::Kind;
use optimizers::Choice;
#[cfg(doc)]
use optimizers::Hyper;

use crate::overrides::{self, Overrides};

/// The hyper-parameter flags a user gave.
#[derive(Clone, Debug, Default)]
pub struct HyperFlags(pub Overrides);

impl FromArgMatches for HyperFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut o = Overrides::default();
        for p in overrides::params() {
            let text = match p.kind {
                Kind::Flag => m.get_flag(p.name).then(|| "true".to_string()),
                _ => m.get_one::<String>(p.name).cloned(),
            };
            if let Some(t) = text {
                o.set_text(p.name, &t).map_err(|e| {
                    clap::Error::raw(clap::error::ErrorKind::ValueValidation, e.message + "\n")
                })?;
            }
        }
        Ok(HyperFlags(o))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for HyperFlags {
    fn augment_args(cmd: Command) -> Command {
        let defaults = overrides::defaults();
        overrides::params().fold(cmd, |cmd, p| {
            let arg = Arg::new(p.name)
                .long(p.flag())
                .help_heading("Hyper-parameters (sweep keys of the same names)");
            let arg = match p.kind {
                Kind::Flag => arg.action(ArgAction::SetTrue).help(p.help()),
                kind => {
                    let arg = arg.action(ArgAction::Set).help(
                        format!("{} [default: {}]", p.help(), defaults[p.name]).replace('"', ""),
                    );
                    match kind {
                        Kind::Choice(names) => arg.value_name("NAME").value_parser(NameParser {
                            names,
                            what: p.name,
                        }),
                        Kind::Count => arg.value_name("N"),
                        _ => arg.value_name("X"),
                    }
                }
            };
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// A value that must be one of a list of names: help lists them, and a wrong one is refused
/// with the valid choices, as sweep files and [`Choice::parse`] word it.
#[derive(Clone, Copy)]
pub struct NameParser {
    names: fn() -> Vec<&'static str>,
    what: &'static str,
}

impl TypedValueParser for NameParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        let s = value.to_string_lossy();
        let valid = (self.names)();
        if valid.contains(&s.as_ref()) {
            return Ok(s.into_owned());
        }
        let flag = arg.map(|a| format!("{a}: ")).unwrap_or_default();
        let msg = format!(
            "{flag}unknown {} `{s}`; valid choices: {}\n",
            self.what,
            valid.join(", ")
        );
        Err(clap::Error::raw(ErrorKind::InvalidValue, msg).with_cmd(cmd))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new((self.names)().into_iter().map(PossibleValue::new)))
    }
}

/// The value parser of a [`Choice`]-typed flag.
pub fn choice<T: Choice + Send + Sync>() -> MapValueParser<NameParser, fn(String) -> T> {
    NameParser {
        names: T::names,
        what: T::WHAT,
    }
    .map((|s: String| T::parse(&s).expect("NameParser checked the name")) as fn(String) -> T)
}
