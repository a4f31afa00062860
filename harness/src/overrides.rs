//! Hyper-parameter overrides: what a user set, on the command line (`--t-cov 5`) or in a sweep
//! file (`t_cov = 5`), by the same names ([`Hyper::PARAMS`] for the optimizer,
//! [`LoopSettings::PARAMS`] for the loop), checked against each field's kind and applied to a
//! run's configuration by one function.

use std::collections::BTreeMap;
use std::ops::Range;

use optimizers::param::{Kind, Param};
use optimizers::Hyper;
use serde_json::Value;
use toml::Spanned;

use crate::train::{LoopSettings, TrainConfig};

/// A value that could not be used, with where it was written (a sweep file's byte range).
#[derive(Clone, Debug, PartialEq)]
pub struct OverrideError {
    pub key: String,
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// Which part of a run's configuration a setting belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// The optimizer's [`Hyper`].
    Optimizer,
    /// The loop's [`LoopSettings`].
    Loop,
}

/// Every setting a user may give, the optimizer's then the loop's.
fn owned_params() -> impl Iterator<Item = (&'static Param, Owner)> {
    let optimizer = Hyper::PARAMS.iter().map(|p| (p, Owner::Optimizer));
    optimizer.chain(LoopSettings::PARAMS.iter().map(|p| (p, Owner::Loop)))
}

/// Every setting a user may give, as flags and sweep keys name them.
pub fn params() -> impl Iterator<Item = &'static Param> {
    owned_params().map(|(p, _)| p)
}

/// Every setting's default, by name, as JSON.
pub fn defaults() -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for v in [
        serde_json::to_value(Hyper::default()),
        serde_json::to_value(LoopSettings::default()),
    ] {
        if let Ok(Value::Object(o)) = v {
            m.extend(o);
        }
    }
    m
}

/// One set hyper-parameter.
#[derive(Clone, Debug)]
struct Entry {
    param: &'static Param,
    owner: Owner,
    value: Value,
    span: Option<Range<usize>>,
}

/// The hyper-parameters a user set, each checked against its kind.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    entries: Vec<Entry>,
}

fn param(key: &str) -> Option<(&'static Param, Owner)> {
    owned_params().find(|(p, _)| p.name == key)
}

/// `` `lr`, `momentum`, ... `` for an unknown-key message.
fn valid_keys(reserved: &[(&str, &str)]) -> String {
    params()
        .filter(|p| !reserved.iter().any(|(k, _)| *k == p.name))
        .map(|p| format!("`{}`", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A TOML value as a message quotes it.
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// A JSON value of `p`'s kind from a TOML value, or why not.
fn from_toml(p: &Param, v: &toml::Value) -> Result<Value, String> {
    let bad = |rule: &str| format!("`{}` = {}: {rule}", p.name, show(v));
    match (p.kind, v) {
        (Kind::Real, toml::Value::Float(x)) if x.is_finite() => Ok(Value::from(*x)),
        (Kind::Real, toml::Value::Integer(i)) => Ok(Value::from(*i as f64)),
        (Kind::Real, _) => Err(bad("must be a finite number")),
        (Kind::Count, toml::Value::Integer(i)) if *i >= 0 => Ok(Value::from(*i as u64)),
        (Kind::Count, toml::Value::Integer(_)) => Err(bad("must be at least 0")),
        (Kind::Count, _) => Err(bad("must be a whole number")),
        (Kind::Flag, toml::Value::Boolean(b)) => Ok(Value::from(*b)),
        (Kind::Flag, _) => Err(bad("must be true or false")),
        (Kind::Choice(_), toml::Value::String(s)) => from_text(p, s),
        (Kind::Choice(names), _) => Err(bad(&format!("must be one of: {}", names().join(", ")))),
    }
}

/// A JSON value of `p`'s kind from command-line text, or why not.
fn from_text(p: &Param, s: &str) -> Result<Value, String> {
    match p.kind {
        Kind::Real => s
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Value::from)
            .ok_or_else(|| format!("`{}` = {s}: must be a finite number", p.name)),
        Kind::Count => s
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("`{}` = {s}: must be a whole number >= 0", p.name)),
        Kind::Flag => s
            .parse::<bool>()
            .map(Value::from)
            .map_err(|_| format!("`{}` = {s}: must be true or false", p.name)),
        Kind::Choice(names) => {
            let valid = names();
            if valid.contains(&s) {
                Ok(Value::from(s))
            } else {
                Err(format!(
                    "unknown {} `{s}`; valid choices: {}",
                    p.name,
                    valid.join(", ")
                ))
            }
        }
    }
}

impl Overrides {
    /// A sweep file's table of hyper-parameters. `reserved` keys are refused with their
    /// reason (the sweep's grid sets them).
    pub fn from_table(
        table: &BTreeMap<String, Spanned<toml::Value>>,
        reserved: &[(&str, &str)],
    ) -> Result<Self, OverrideError> {
        let mut entries = Vec::with_capacity(table.len());
        for (key, v) in table {
            let err = |message: String| OverrideError {
                key: key.clone(),
                span: Some(v.span()),
                message,
            };
            if let Some((_, why)) = reserved.iter().find(|(k, _)| k == key) {
                return Err(err(format!("`{key}` cannot be set here: {why}")));
            }
            let (p, owner) = param(key).ok_or_else(|| {
                err(format!(
                    "unknown key `{key}`; valid keys: {}",
                    valid_keys(reserved)
                ))
            })?;
            let value = from_toml(p, v.get_ref()).map_err(err)?;
            entries.push(Entry {
                param: p,
                owner,
                value,
                span: Some(v.span()),
            });
        }
        Ok(Overrides { entries })
    }

    /// Sets `key` from command-line text.
    pub fn set_text(&mut self, key: &str, text: &str) -> Result<(), OverrideError> {
        let err = |message: String| OverrideError {
            key: key.to_string(),
            span: None,
            message,
        };
        let (p, owner) =
            param(key).ok_or_else(|| err(format!("unknown hyper-parameter `{key}`")))?;
        let value = from_text(p, text).map_err(err)?;
        self.entries.retain(|e| e.param.name != key);
        self.entries.push(Entry {
            param: p,
            owner,
            value,
            span: None,
        });
        Ok(())
    }

    /// Whether `key` was set.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.param.name == key)
    }

    /// Where `key` was set, if it was and has a place.
    pub fn span_of(&self, key: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|e| e.param.name == key)
            .and_then(|e| e.span.clone())
    }

    /// Writes every set value into `cfg`'s optimizer or loop settings. The values are checked
    /// against their kinds already; their ranges are [`TrainConfig::validate`]'s to check, once
    /// all overrides are in.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<(), OverrideError> {
        self.set(Owner::Optimizer, &mut cfg.hyper)?;
        self.set(Owner::Loop, &mut cfg.loop_settings)
    }

    /// Writes the values of `owner`'s settings into `t`, by field name.
    fn set<T>(&self, owner: Owner, t: &mut T) -> Result<(), OverrideError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mine: Vec<&Entry> = self.entries.iter().filter(|e| e.owner == owner).collect();
        if mine.is_empty() {
            return Ok(());
        }
        let mut fields = serde_json::to_value(&*t).expect("settings serialise");
        let map = fields.as_object_mut().expect("settings are a JSON object");
        for e in &mine {
            map.insert(e.param.name.to_string(), e.value.clone());
        }
        *t = serde_json::from_value(fields).map_err(|e| OverrideError {
            key: String::new(),
            span: mine.first().and_then(|e| e.span.clone()),
            message: e.to_string(),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizers::Fisher;

    fn table(text: &str) -> BTreeMap<String, Spanned<toml::Value>> {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn file_keys_and_flags_set_the_same_fields() {
        let from_file = Overrides::from_table(
            &table("t_cov = 5\nfisher = \"empirical\"\nlr = 1\nnesterov = true\nmin_lr = 0.5"),
            &[],
        )
        .unwrap();
        let mut from_flags = Overrides::default();
        for (k, v) in [
            ("t_cov", "5"),
            ("fisher", "empirical"),
            ("lr", "1"),
            ("nesterov", "true"),
            ("min_lr", "0.5"),
        ] {
            from_flags.set_text(k, v).unwrap();
        }
        let run = TrainConfig::new("mlp", optimizers::OptimizerKind::Kfac);
        let (mut a, mut b) = (run.clone(), run.clone());
        from_file.apply(&mut a).unwrap();
        from_flags.apply(&mut b).unwrap();
        assert_eq!(a, b);
        let h = &a.hyper;
        assert_eq!(
            (h.t_cov, h.fisher, h.lr, h.nesterov),
            (5, Fisher::Empirical, 1.0, true)
        );
        assert_eq!(h.t_inv, Hyper::default().t_inv);
        // A loop setting lands in the loop's settings, by the same mechanism.
        assert_eq!(a.loop_settings.min_lr, 0.5);
    }

    #[test]
    fn the_optimizers_and_the_loops_settings_have_different_names() {
        // A name in both would be one flag twice and one key for two fields.
        let mut names: Vec<&str> = params().map(|p| p.name).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
        assert_eq!(all, Hyper::PARAMS.len() + LoopSettings::PARAMS.len());
        // The stored settings are one JSON object holding both.
        let cfg = TrainConfig::new("mlp", optimizers::OptimizerKind::Kfac);
        let stored: serde_json::Map<String, Value> =
            serde_json::from_str(&crate::train::settings_json(&cfg)).unwrap();
        assert_eq!(stored.len(), all);
        assert_eq!(stored["t_cov"], 20);
        assert_eq!(stored["schedule"], "warmup-cosine");
    }

    #[test]
    fn wrong_kinds_unknown_keys_and_reserved_keys_are_refused() {
        let e = Overrides::from_table(&table("t_cov = 2.5"), &[]).unwrap_err();
        assert!(
            e.message.contains("t_cov") && e.message.contains("whole"),
            "{e:?}"
        );
        assert!(e.span.is_some());
        let e = Overrides::from_table(&table("fisher = \"true\""), &[]).unwrap_err();
        assert!(e.message.contains("sampled, empirical"), "{e:?}");
        let e = Overrides::from_table(&table("lrr = 0.1"), &[]).unwrap_err();
        assert!(
            e.message.contains("`lrr`") && e.message.contains("`lr`"),
            "{e:?}"
        );
        let e = Overrides::from_table(&table("seed = 1"), &[("seed", "list seeds in `seeds`")])
            .unwrap_err();
        assert!(e.message.contains("`seeds`"), "{e:?}");
        let e = Overrides::default()
            .set_text("damping", "lots")
            .unwrap_err();
        assert!(e.message.contains("number"), "{e:?}");
    }
}
