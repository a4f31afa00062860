//! An optimizer's resumable state: its tensors (safetensors) and its counters and
//! hyper-parameters (JSON), saved side by side as `STEM.safetensors` and `STEM.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// Everything an optimizer needs to continue from a step boundary, as
/// [`crate::Optimizer::state`] returns it and [`crate::Optimizer::load_state`] takes it.
#[derive(Clone, Debug)]
pub struct OptimizerState {
    /// Name, step count, learning rate, hyper-parameters: whatever the optimizer needs.
    pub meta: serde_json::Value,
    /// Momentum buffers, moments, curvature statistics and inverses, by stable names.
    pub tensors: BTreeMap<String, Tensor>,
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

impl OptimizerState {
    /// Writes `STEM.safetensors` and `STEM.json`, each through a temporary file and a rename so
    /// that an interrupted save never leaves a half-written state behind.
    pub fn save(&self, stem: &Path) -> Result<()> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            Error::State(format!("cannot {what} {}: {e}", p.display()))
        };
        let st = with_ext(stem, ".safetensors");
        let tmp = with_ext(stem, ".safetensors.tmp");
        let map: HashMap<String, Tensor> = self.tensors.clone().into_iter().collect();
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(&tmp, &st).map_err(|e| io("write", &st, e))?;
        let js = with_ext(stem, ".json");
        let tmp = with_ext(stem, ".json.tmp");
        let text = serde_json::to_string_pretty(&self.meta)
            .map_err(|e| Error::State(format!("cannot encode optimizer state: {e}")))?;
        std::fs::write(&tmp, text).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &js).map_err(|e| io("write", &js, e))?;
        Ok(())
    }

    /// Reads what [`OptimizerState::save`] wrote under `stem`, the tensors onto `device`. An
    /// `Err` ([`Error::State`]) names the file that cannot be read or parsed.
    pub fn load(stem: &Path, device: &Device) -> Result<Self> {
        let st = with_ext(stem, ".safetensors");
        let js = with_ext(stem, ".json");
        let tensors = candle_core::safetensors::load(&st, device)
            .map_err(|e| Error::State(format!("cannot read {}: {e}", st.display())))?
            .into_iter()
            .collect();
        let text = std::fs::read_to_string(&js)
            .map_err(|e| Error::State(format!("cannot read {}: {e}", js.display())))?;
        let meta = serde_json::from_str(&text)
            .map_err(|e| Error::State(format!("{} is not valid JSON: {e}", js.display())))?;
        Ok(OptimizerState { meta, tensors })
    }

    /// The `name` field, which must match the optimizer loading the state.
    pub fn expect_name(&self, name: &str) -> Result<()> {
        match self.meta.get("name").and_then(|n| n.as_str()) {
            Some(n) if n == name => Ok(()),
            other => Err(Error::State(format!(
                "the saved state belongs to optimizer {other:?}, not `{name}`"
            ))),
        }
    }

    /// The `params` field, which must match the number of parameters of the loading optimizer.
    pub fn expect_params(&self, n: usize) -> Result<()> {
        let saved = self.usize_field("params")?;
        if saved != n {
            return Err(Error::State(format!(
                "the saved state covers {saved} parameters, this model has {n}"
            )));
        }
        Ok(())
    }

    /// The non-negative integer `meta[key]`, or [`Error::State`] if absent or not one.
    pub fn usize_field(&self, key: &str) -> Result<usize> {
        self.meta
            .get(key)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| Error::State(format!("the saved state has no integer `{key}`")))
    }

    /// The number `meta[key]`, or [`Error::State`] if absent or not a number.
    pub fn f64_field(&self, key: &str) -> Result<f64> {
        self.meta
            .get(key)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| Error::State(format!("the saved state has no number `{key}`")))
    }
}

/// Stores a deep copy of `t` under `key`, if there is one (in-place updates must never alias
/// saved state).
pub(crate) fn put(
    out: &mut BTreeMap<String, Tensor>,
    key: String,
    t: Option<&Tensor>,
) -> candle_core::Result<()> {
    if let Some(t) = t {
        out.insert(key, t.copy()?);
    }
    Ok(())
}

/// A deep copy of the tensor under `key`, if saved.
pub(crate) fn take(
    src: &BTreeMap<String, Tensor>,
    key: &str,
) -> candle_core::Result<Option<Tensor>> {
    src.get(key).map(|t| t.copy()).transpose()
}

/// Saves a list of optional per-parameter buffers under `prefix.INDEX`.
pub(crate) fn put_list(
    out: &mut BTreeMap<String, Tensor>,
    prefix: &str,
    items: &[Option<Tensor>],
) -> candle_core::Result<()> {
    for (i, t) in items.iter().enumerate() {
        put(out, format!("{prefix}.{i}"), t.as_ref())?;
    }
    Ok(())
}

/// The inverse of [`put_list`], for `n` entries.
pub(crate) fn take_list(
    src: &BTreeMap<String, Tensor>,
    prefix: &str,
    n: usize,
) -> candle_core::Result<Vec<Option<Tensor>>> {
    (0..n)
        .map(|i| take(src, &format!("{prefix}.{i}")))
        .collect()
}
