//! Checkpoints of a run at a step boundary: the model's tensors (safetensors), the optimizer's
//! state (safetensors + JSON) and the loop's [`Progress`] (JSON), with a manifest of their
//! SHA-256 sums.
//!
//! Each checkpoint is written into a folder of its own and then published by atomically
//! replacing the `latest` pointer, so a kill at any moment leaves the previous checkpoint
//! intact. The two newest are kept: a checkpoint that fails its checksums (a truncated or
//! flipped file, a pointer to a missing folder) is reported and the previous one used; with
//! none usable the run starts again from scratch. Nothing is loaded into the model before the
//! whole checkpoint has been read and checked.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use models::Network;
use optimizers::{Optimizer, OptimizerState};

use crate::data::digest::sha256_hex;
use crate::train::{Progress, RunState};

pub struct Checkpoints {
    dir: PathBuf,
}

const LATEST: &str = "latest";
const MANIFEST: &str = "manifest.json";
/// The files of a checkpoint, each listed in its manifest.
const FILES: [&str; 4] = [
    "model.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "progress.json",
];
/// Checkpoints kept: the newest and one to fall back to.
const KEEP: usize = 2;

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The step of a finished checkpoint folder's name (`step-000000123`).
fn step_of(name: &str) -> Option<usize> {
    name.strip_prefix("step-")?.parse().ok()
}

/// A checkpoint read whole and checked, not yet applied.
struct Read {
    tensors: HashMap<String, Tensor>,
    optimizer: OptimizerState,
    progress: Progress,
}

/// What [`Checkpoints::load`] found.
#[derive(Debug, Default)]
pub struct Restored {
    /// Where the run continues; `None` when it starts from scratch.
    pub progress: Option<Progress>,
    /// One message per checkpoint that could not be used, and why.
    pub damaged: Vec<String>,
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
        let cannot = |what: &Path| format!("cannot write the checkpoint {}", what.display());
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| cannot(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).with_context(|| cannot(&tmp))?;
        let tensors: HashMap<String, Tensor> = st
            .net
            .named_vars()
            .into_iter()
            .map(|v| (v.name, v.var.as_tensor().clone()))
            .collect();
        let model = tmp.join(FILES[0]);
        candle_core::safetensors::save(&tensors, &model).with_context(|| cannot(&model))?;
        st.opt
            .state()?
            .save(&tmp.join("optimizer"))
            .with_context(|| cannot(&tmp))?;
        let progress = tmp.join(FILES[3]);
        std::fs::write(&progress, serde_json::to_vec(st.progress)?)
            .with_context(|| cannot(&progress))?;
        let mut sums = BTreeMap::new();
        for f in FILES {
            let bytes = std::fs::read(tmp.join(f)).with_context(|| cannot(&tmp.join(f)))?;
            sums.insert(f, sha256_hex(&bytes));
        }
        let manifest = tmp.join(MANIFEST);
        std::fs::write(&manifest, serde_json::to_vec_pretty(&sums)?)
            .with_context(|| cannot(&manifest))?;
        let done = self.dir.join(&name);
        if done.exists() {
            std::fs::remove_dir_all(&done).with_context(|| cannot(&done))?;
        }
        std::fs::rename(&tmp, &done).with_context(|| cannot(&done))?;
        write_atomic(&self.dir.join(LATEST), name.as_bytes())?;
        self.prune();
        Ok(())
    }

    /// Finished checkpoint folders, newest first.
    fn finished(&self) -> Vec<PathBuf> {
        let mut steps: Vec<(usize, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter_map(|p| {
                        let step = step_of(p.file_name()?.to_str()?)?;
                        p.is_dir().then_some((step, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        steps.sort();
        steps.into_iter().rev().map(|(_, p)| p).collect()
    }

    /// Removes all but the [`KEEP`] newest checkpoints, and unfinished ones.
    fn prune(&self) {
        for path in self.finished().iter().skip(KEEP) {
            let _ = std::fs::remove_dir_all(path);
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if path.extension().is_some_and(|e| e == "partial") {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    /// Finished checkpoint folders, the one `latest` names first, then the others from the
    /// newest; and why the pointer could not be followed, if it could not.
    fn candidates(&self) -> (Vec<PathBuf>, Option<String>) {
        let mut out = self.finished();
        let pointer = self.dir.join(LATEST);
        let mut problem = None;
        if let Ok(name) = std::fs::read_to_string(&pointer) {
            let target = self.dir.join(name.trim());
            if let Some(i) = out.iter().position(|p| *p == target) {
                let first = out.remove(i);
                out.insert(0, first);
            } else {
                problem = Some(format!(
                    "{} names `{}`, which is missing",
                    pointer.display(),
                    name.trim()
                ));
            }
        }
        (out, problem)
    }

    /// Reads the checkpoint in `dir` whole and checks it against its manifest.
    fn read(dir: &Path, device: &Device) -> std::result::Result<Read, String> {
        let manifest = dir.join(MANIFEST);
        // Checkpoints from before manifests are accepted if they parse.
        if let Ok(text) = std::fs::read(&manifest) {
            let sums: BTreeMap<String, String> = serde_json::from_slice(&text)
                .map_err(|e| format!("{MANIFEST} is unreadable ({e})"))?;
            for f in FILES {
                let bytes = std::fs::read(dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
                match sums.get(f) {
                    Some(want) if *want == sha256_hex(&bytes) => {}
                    Some(_) => return Err(format!("{f} does not match its checksum")),
                    None => return Err(format!("{MANIFEST} does not list {f}")),
                }
            }
        }
        let tensors = candle_core::safetensors::load(dir.join(FILES[0]), device)
            .map_err(|e| format!("{}: {e}", FILES[0]))?;
        let optimizer =
            OptimizerState::load(&dir.join("optimizer"), device).map_err(|e| e.to_string())?;
        let progress = std::fs::read(dir.join(FILES[3]))
            .map_err(|e| format!("{}: {e}", FILES[3]))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", FILES[3])))?;
        Ok(Read {
            tensors,
            optimizer,
            progress,
        })
    }

    /// Restores the newest usable checkpoint into `net` and `opt`. A damaged one is skipped
    /// (and named in [`Restored::damaged`]) for the one before it; with none usable the run
    /// starts from scratch. Errors only when a sound checkpoint does not fit this model or
    /// optimizer.
    pub fn load(&self, net: &Network, opt: &mut dyn Optimizer) -> Result<Restored> {
        let (candidates, pointer_problem) = self.candidates();
        // Onto the device the run computes on.
        let device = net.param_set().device();
        let mut restored = Restored::default();
        restored.damaged.extend(pointer_problem);
        for dir in candidates {
            let read = match Self::read(&dir, &device) {
                Ok(r) => r,
                Err(why) => {
                    // Set aside (not deleted: it may be worth a look), out of the way of saves.
                    let aside = dir.with_extension("damaged");
                    let _ = std::fs::remove_dir_all(&aside);
                    let _ = std::fs::rename(&dir, &aside);
                    restored.damaged.push(format!(
                        "checkpoint {} is damaged ({why}); set aside as {}",
                        dir.display(),
                        aside.display()
                    ));
                    continue;
                }
            };
            let misfit = || {
                format!(
                    "checkpoint {} does not fit this run; delete {} to restart it",
                    dir.display(),
                    self.dir.display()
                )
            };
            for v in net.named_vars() {
                let t = read
                    .tensors
                    .get(&v.name)
                    .with_context(|| format!("{} lacks tensor `{}`", dir.display(), v.name))?;
                v.var.set(t).with_context(misfit)?;
            }
            opt.load_state(&read.optimizer).with_context(misfit)?;
            restored.progress = Some(read.progress);
            return Ok(restored);
        }
        Ok(restored)
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
    let tensors: HashMap<String, Tensor> = net
        .named_vars()
        .into_iter()
        .map(|v| (v.name, v.var.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, path)
        .with_context(|| format!("cannot write the model to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use crate::train::Progress;

    #[test]
    fn a_progress_parses_back_bit_for_bit() {
        // Loss sums and clocks as a run accumulates them: every f64 must come back exactly,
        // or a resumed run differs from an uninterrupted one in the last bit.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20_000 {
            let p = Progress {
                epoch_loss_sum: rng.random::<f64>() * 3000.0,
                train_seconds: rng.random::<f64>() * 1e4,
                epoch_seconds: rng.random::<f64>(),
                ..Progress::default()
            };
            let back: Progress = serde_json::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
            assert_eq!(back, p, "{}", serde_json::to_string(&p).unwrap());
        }
    }
}
