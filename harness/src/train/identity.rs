//! A run's identity in the results store: a key from its configuration that stays the same
//! when a later version adds a hyper-parameter, so finished runs of an existing store stay
//! finished.
//!
//! The key is compact JSON: the fields every key has carried (in their original order, so keys
//! written before this scheme are unchanged), then, sorted by name, every other field whose
//! value differs from its default.

use serde_json::{Map, Value};

use super::TrainConfig;

/// The fields of the first key format, in its order; each key carries them all.
const BASE_FIELDS: [&str; 24] = [
    "model",
    "optimizer",
    "dataset",
    "epochs",
    "batch_size",
    "eval_batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "nesterov",
    "schedule",
    "warmup_epochs",
    "min_lr",
    "half_life_epochs",
    "train_subset",
    "seed",
    "damping",
    "t_cov",
    "t_inv",
    "stat_decay",
    "kl_clip",
    "fisher",
    "samples",
    "woodbury",
];

/// Fields whose default changed after runs were stored, with the default those runs had: a
/// run is keyed against it, so a stored run keeps meaning what it ran with, and a run at the
/// new default is a new run.
const FORMER_DEFAULTS: [(&str, &str); 2] = [("damping_split", "each"), ("row_average", "ema")];

/// As [`FORMER_DEFAULTS`], for fields only the K-FAC family reads: a first-order run's key
/// leaves them out, so its stored runs stay finished.
const FORMER_SECOND_ORDER_DEFAULTS: [(&str, &str); 1] = [("inverse_dtype", "f64")];

/// The run's settings and hyper-parameters as one flat JSON object.
fn flat(cfg: &TrainConfig) -> Map<String, Value> {
    let Value::Object(mut m) = serde_json::to_value(cfg).expect("a config serialises") else {
        unreachable!("a config is a JSON object")
    };
    // The optimizer's and the loop's settings were once one struct: their fields sit beside
    // the run's in the key, as then.
    for part in ["hyper", "loop_settings"] {
        if let Some(Value::Object(h)) = m.remove(part) {
            m.extend(h);
        }
    }
    m
}

/// The optimizer's and the loop's settings as one JSON object, as the store records them:
/// each struct's fields in declaration order (a JSON map would sort them).
pub fn settings_json(cfg: &TrainConfig) -> String {
    let hyper = serde_json::to_string(&cfg.hyper).expect("settings serialise");
    let loop_settings = serde_json::to_string(&cfg.loop_settings).expect("settings serialise");
    // Two non-empty objects, `{…}` and `{…}`, joined into one.
    format!("{},{}", &hyper[..hyper.len() - 1], &loop_settings[1..])
}

/// The store's key for a run of `cfg`.
pub fn run_key(cfg: &TrainConfig) -> String {
    // The base fields are in every key; a later field (`validation`) counts from its default.
    let mut defaults = flat(&TrainConfig::new(&cfg.model, cfg.optimizer));
    for (field, former) in FORMER_DEFAULTS {
        defaults.insert(field.into(), Value::from(former));
    }
    if cfg.optimizer.is_second_order() {
        for (field, former) in FORMER_SECOND_ORDER_DEFAULTS {
            defaults.insert(field.into(), Value::from(former));
        }
    }
    stable_key(&flat(cfg), &defaults)
}

/// The base fields of `fields`, then its other fields that differ from `defaults`.
pub fn stable_key(fields: &Map<String, Value>, defaults: &Map<String, Value>) -> String {
    let quote = |k: &str| Value::from(k).to_string();
    let mut parts: Vec<String> = BASE_FIELDS
        .iter()
        .filter_map(|k| fields.get(*k).map(|v| format!("{}:{v}", quote(k))))
        .collect();
    let mut extra: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(k, v)| !BASE_FIELDS.contains(&k.as_str()) && defaults.get(*k) != Some(*v))
        .collect();
    extra.sort_by(|a, b| a.0.cmp(b.0));
    parts.extend(extra.into_iter().map(|(k, v)| format!("{}:{v}", quote(k))));
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizers::{Hyper, OptimizerKind};

    /// The key the first key format (the JSON of the whole configuration) gave this run, read
    /// from a results store written by that version (`skfac sweep` at commit 226d2d7).
    const FIRST_FORMAT_KEY: &str = r#"{"model":"mlp","optimizer":"skfac-ss","dataset":"fashion-mnist","epochs":1,"batch_size":32,"eval_batch_size":500,"lr":0.05,"momentum":0.9,"weight_decay":0.0005,"nesterov":false,"schedule":"warmup-cosine","warmup_epochs":0.0,"min_lr":0.0,"half_life_epochs":5.0,"train_subset":320,"seed":1,"damping":0.3,"t_cov":5,"t_inv":20,"stat_decay":0.95,"kl_clip":0.001,"fisher":"sampled","samples":2,"woodbury":"applied"}"#;

    fn first_format_run() -> TrainConfig {
        let mut c = TrainConfig::new("mlp", OptimizerKind::SkfacSs);
        c.train_subset = Some(320);
        c.hyper.seed = 1;
        c.hyper.damping = 0.3;
        c.hyper.t_cov = 5;
        c.hyper.t_inv = 20;
        c.hyper.samples = 2;
        // What that version ran with (the defaults then).
        c.hyper.damping_split = optimizers::DampingSplit::Each;
        c.hyper.row_average = optimizers::curvature::RowAverage::Ema;
        c.hyper.inverse_dtype = optimizers::curvature::InverseDtype::F64;
        c
    }

    #[test]
    fn a_changed_default_makes_a_new_run_and_keeps_the_stored_ones() {
        let mut cfg = first_format_run();
        cfg.hyper.damping_split = Hyper::default().damping_split;
        cfg.hyper.row_average = Hyper::default().row_average;
        cfg.hyper.inverse_dtype = Hyper::default().inverse_dtype;
        let key = run_key(&cfg);
        assert_ne!(key, FIRST_FORMAT_KEY);
        assert!(
            key.ends_with(
                r#","damping_split":"sqrt","inverse_dtype":"f32","row_average":"stack"}"#
            ),
            "{key}"
        );
    }

    #[test]
    fn a_first_order_run_is_keyed_without_the_k_fac_familys_precision() {
        let sgd = TrainConfig::new("mlp", OptimizerKind::Sgd);
        let key = run_key(&sgd);
        assert!(!key.contains("inverse_dtype"), "{key}");
    }

    #[test]
    fn keys_of_the_first_format_are_unchanged() {
        assert_eq!(run_key(&first_format_run()), FIRST_FORMAT_KEY);
    }

    #[test]
    fn a_new_field_left_at_its_default_keeps_the_key() {
        let cfg = first_format_run();
        let (mut fields, mut defaults) = (flat(&cfg), flat(&cfg));
        let before = stable_key(&fields, &defaults);
        // A later version adds `row_average` with its default "ema".
        fields.insert("row_average".into(), Value::from("ema"));
        defaults.insert("row_average".into(), Value::from("ema"));
        assert_eq!(stable_key(&fields, &defaults), before);
        // Set to something else, it tells the runs apart.
        fields.insert("row_average".into(), Value::from("batch"));
        let changed = stable_key(&fields, &defaults);
        assert_ne!(changed, before);
        assert!(changed.ends_with(r#","row_average":"batch"}"#), "{changed}");
    }

    #[test]
    fn fields_after_the_first_format_enter_the_key_only_when_set() {
        let mut cfg = first_format_run();
        cfg.hyper.dense_method = optimizers::curvature::DenseMethod::Cholesky;
        cfg.hyper.beta1 = 0.8;
        let key = run_key(&cfg);
        assert!(
            key.ends_with(r#","beta1":0.8,"dense_method":"cholesky"}"#),
            "{key}"
        );
        // So does a run's own setting: a run that holds out a validation split trains on
        // other images.
        cfg.validation = 5000;
        assert!(run_key(&cfg).ends_with(r#","dense_method":"cholesky","validation":5000}"#));
        // Adam's own learning-rate default is a base field: always in the key.
        let adam = TrainConfig::new("mlp", OptimizerKind::Adam);
        assert!(run_key(&adam).contains(r#""lr":0.001"#));
    }
}
