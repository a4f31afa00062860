//! Checkpoints of a run at a step boundary: the model's tensors (safetensors), the optimizer's
//! state (safetensors + JSON) and the loop's [`Progress`] (JSON). Each checkpoint is written
//! into a folder of its own and then published by atomically replacing the `latest` pointer,
//! so a kill at any moment leaves the previous checkpoint intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use models::Network;
use optimizers::{Optimizer, OptimizerState};

use crate::train::{Progress, RunState};

pub struct Checkpoints {
    dir: PathBuf,
}

const LATEST: &str = "latest";

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

impl Checkpoints {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpoints { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn save(&self, st: &RunState<'_>) -> Result<()> {
        let name = format!("step-{:09}", st.progress.step);
        let tmp = self.dir.join(format!("{name}.partial"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let tensors: HashMap<String, candle_core::Tensor> = st
            .net
            .named_vars()
            .into_iter()
            .map(|v| (v.name, v.var.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&tensors, tmp.join("model.safetensors"))?;
        st.opt.state()?.save(&tmp.join("optimizer"))?;
        std::fs::write(tmp.join("progress.json"), serde_json::to_vec(st.progress)?)?;
        let done = self.dir.join(&name);
        if done.exists() {
            std::fs::remove_dir_all(&done)?;
        }
        std::fs::rename(&tmp, &done)?;
        write_atomic(&self.dir.join(LATEST), name.as_bytes())?;
        // Older checkpoints are no longer needed.
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let stale = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-") && n != name);
            if stale && path.is_dir() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }

    /// Restores the latest checkpoint into `net` and `opt`; `None` when there is none.
    pub fn load(&self, net: &Network, opt: &mut dyn Optimizer) -> Result<Option<Progress>> {
        let pointer = self.dir.join(LATEST);
        let Ok(name) = std::fs::read_to_string(&pointer) else {
            return Ok(None);
        };
        let dir = self.dir.join(name.trim());
        let ctx = || {
            format!(
                "checkpoint {} is unreadable; delete it to restart the run",
                dir.display()
            )
        };
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .with_context(ctx)?;
        for v in net.named_vars() {
            let t = tensors
                .get(&v.name)
                .with_context(|| format!("{} lacks tensor `{}`", dir.display(), v.name))?;
            v.var.set(t).with_context(ctx)?;
        }
        opt.load_state(&OptimizerState::load(&dir.join("optimizer"), &Device::Cpu)?)
            .with_context(ctx)?;
        let progress: Progress =
            serde_json::from_slice(&std::fs::read(dir.join("progress.json")).with_context(ctx)?)
                .with_context(ctx)?;
        Ok(Some(progress))
    }

    /// Deletes every checkpoint (the run is over).
    pub fn clear(&self) -> Result<()> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .with_context(|| format!("cannot remove {}", self.dir.display()))?;
        }
        Ok(())
    }
}

/// Writes the model's tensors (parameters and buffers, by name) to one safetensors file.
pub fn save_model(net: &Network, path: &Path) -> Result<()> {
    let tensors: HashMap<String, candle_core::Tensor> = net
        .named_vars()
        .into_iter()
        .map(|v| (v.name, v.var.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, path)
        .with_context(|| format!("cannot write the model to {}", path.display()))
}
