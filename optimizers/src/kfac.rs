//! The K-FAC family as one optimizer: `kfac`, `kfac-sua`, `skfac-rs`, `skfac-ss`. They share
//! the schedule (statistics every `T_cov` steps, inverses every `T_inv`), KL-clipping, weight
//! decay after preconditioning and the momentum step (docs/algorithms.md, "The step"); they
//! differ only in their curvature blocks.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::comm::{Communicator, Local};
use crate::curvature::shared::{self, DistributeInverses, Shared};
use crate::curvature::{Approx, Block, FactorError};
use crate::damping::FactorInit;
use crate::error::{Error, Result};
use crate::hyper::Hyper;
use crate::layer::{LayerStats, NamedVar, ParamSet};
use crate::momentum::MomentumBuffers;
use crate::optimizer::{Optimizer, StatsRequest};
use crate::state::OptimizerState;
use crate::timing::{StageTimes, Stopwatch};
use kinds::OptimizerKind;

/// The curvature approximation of a K-FAC-family `kind`, or `None` for a first-order one.
pub fn approx_of(kind: OptimizerKind, samples: usize) -> Option<Approx> {
    match kind {
        OptimizerKind::Sgd | OptimizerKind::Adam => None,
        OptimizerKind::Kfac => Some(Approx::Kfac),
        OptimizerKind::KfacSua => Some(Approx::KfacSua),
        OptimizerKind::SkfacRs => Some(Approx::ReduceSum),
        OptimizerKind::SkfacSs => Some(Approx::Subsample(samples)),
    }
}

/// Reads the fields of its [`Hyper`] that a [`crate::KfacConfig`] holds.
pub struct Kfac {
    kind: OptimizerKind,
    approx: Approx,
    /// The damping of the next refresh: `hyper.damping`, the decay schedule's value
    /// ([`Optimizer::set_steps_per_epoch`]), or what [`Optimizer::set_damping`] set.
    damping: f64,
    /// Steps per epoch, which `damping_decay`'s schedule counts its epochs in.
    steps_per_epoch: Option<usize>,
    hyper: Hyper,
    /// The learning rate of the next step: `hyper.lr` until a schedule sets another.
    lr: f64,
    blocks: Vec<Block>,
    others: Vec<NamedVar>,
    weight_momentum: MomentumBuffers,
    bias_momentum: MomentumBuffers,
    other_momentum: MomentumBuffers,
    steps: usize,
    /// Whether any statistics have been folded in (the first inverse waits for them).
    observed: bool,
    /// Whether the inverses have been computed at least once.
    refreshed: bool,
    /// Layer refreshes that failed at every damping ([`Optimizer::failed_refreshes`]).
    failed_refreshes: usize,
    /// The other processes of a data-parallel job ([`Local`] when alone).
    comm: Arc<dyn Communicator>,
    /// Where the parameters live, for the stopwatch.
    device: Device,
    /// Whether steps time their stages ([`Optimizer::set_timing`]).
    timing: bool,
}

impl Kfac {
    /// The K-FAC-family optimizer `kind` over `params`: the layers are preconditioned, the
    /// other parameters take momentum SGD steps. Fails if `hyper` does not pass
    /// [`Hyper::validate`] or `kind` is first-order.
    pub fn new(params: &ParamSet, kind: OptimizerKind, hyper: Hyper) -> Result<Self> {
        hyper.validate()?;
        let approx = approx_of(kind, hyper.samples).ok_or_else(|| kinds::UnknownChoice {
            what: "K-FAC-family optimizer",
            name: kind.name().to_string(),
            valid: "kfac, kfac-sua, skfac-rs, skfac-ss".into(),
        })?;
        if hyper.factor_init == FactorInit::Identity
            && matches!(approx, Approx::ReduceSum | Approx::Subsample(_))
        {
            return Err(Error::Unsupported {
                field: "factor_init",
                value: "identity",
                optimizer: kind.name(),
                why:
                    "SKFAC averages the rows Y themselves, and no rows have YᵀY/N = I; use `first`",
            });
        }
        let blocks: Vec<Block> = params
            .layers
            .iter()
            .map(|l| Block::new(l.clone(), approx, hyper.block_options()))
            .collect();
        let n = blocks.len();
        Ok(Kfac {
            kind,
            approx,
            damping: hyper.damping,
            steps_per_epoch: None,
            lr: hyper.lr,
            hyper,
            blocks,
            others: params.others.clone(),
            weight_momentum: MomentumBuffers::new(n),
            bias_momentum: MomentumBuffers::new(n),
            other_momentum: MomentumBuffers::new(params.others.len()),
            steps: 0,
            observed: false,
            refreshed: false,
            failed_refreshes: 0,
            comm: Arc::new(Local),
            device: params.device(),
            timing: false,
        })
    }

    /// The settings it was built with.
    pub fn hyper(&self) -> &Hyper {
        &self.hyper
    }

    /// The curvature blocks, one per [`ParamSet::layers`] entry (tests and diagnostics).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// A fresh, reproducible stream per (step, layer) for the spatial subsampling, so that the
    /// state to resume holds no RNG.
    fn rng(&self, step: usize, layer: usize) -> ChaCha8Rng {
        let s = self.hyper.seed
            ^ (step as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (layer as u64)
                .wrapping_add(1)
                .wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        ChaCha8Rng::seed_from_u64(s)
    }

    /// `⟨a, b⟩` as an f64 scalar tensor on their device.
    fn dot(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        (a * b)?.sum_all()?.to_dtype(DType::F64)
    }

    /// Refreshes every layer's inverses: each by one process and shared where the job has
    /// several and `distribute_inverses` is on ([`shared`]), here otherwise. A numerical failure
    /// is logged by the block, which then takes its plain gradient; a failed operation (a device
    /// or library error) stops the step.
    fn refresh(&mut self) -> Result<()> {
        let fail = |layer: &str, e| {
            let msg = format!("refreshing {layer}'s inverses: {e}");
            Error::Candle(candle_core::Error::Msg(msg))
        };
        if self.comm.size() > 1
            && self.hyper.distribute_inverses == DistributeInverses::On
            && self.blocks.iter().all(Block::shares_inverses)
        {
            let outcomes = shared::refresh(&mut self.blocks, self.damping, self.comm.as_ref())
                .map_err(|(layer, e)| fail(&layer, e))?;
            self.failed_refreshes += outcomes.iter().filter(|o| **o == Shared::Failed).count();
            return Ok(());
        }
        for b in &mut self.blocks {
            match b.refresh(self.damping) {
                Err(e @ FactorError::Candle(_)) => return Err(fail(b.name(), e)),
                Err(_) => self.failed_refreshes += 1,
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// The KL-clip factor `ν = min(1, sqrt(κ / (lr² Σ⟨∇̂W, ∇W⟩)))`.
    fn kl_scale(&self, vg: f64) -> f64 {
        let denom = self.lr * self.lr * vg;
        if self.hyper.kl_clip > 0.0 && denom.is_finite() && denom > 0.0 {
            (self.hyper.kl_clip / denom).sqrt().min(1.0)
        } else {
            1.0
        }
    }
}

impl Optimizer for Kfac {
    fn name(&self) -> String {
        self.kind.name().into()
    }

    fn stats_request(&self) -> StatsRequest {
        if self.steps.is_multiple_of(self.hyper.t_cov) {
            self.hyper.fisher.request()
        } else {
            StatsRequest::None
        }
    }

    fn step(&mut self, grads: &GradStore, stats: Option<&[LayerStats]>) -> Result<StageTimes> {
        let mut times = StageTimes::default();
        let mut sw = Stopwatch::start_if(self.timing, &self.device);
        let k = self.steps;
        if self.hyper.damping_decay != 1.0 {
            let Some(per_epoch) = self.steps_per_epoch else {
                return Err(Error::Unsupported {
                    field: "damping_decay",
                    value: "other than 1",
                    optimizer: self.kind.name(),
                    why: "the decay counts epochs: call set_steps_per_epoch before the first step",
                });
            };
            self.damping = self.hyper.damping_at(k, per_epoch);
        }

        if let Some(stats) = stats {
            if stats.len() != self.blocks.len() {
                return Err(Error::Candle(candle_core::Error::Msg(format!(
                    "got statistics for {} layers, the optimizer has {}",
                    stats.len(),
                    self.blocks.len()
                ))));
            }
            for (i, s) in stats.iter().enumerate() {
                let rng = self.rng(k, i);
                self.blocks[i].observe(s, self.hyper.stat_decay, &rng, self.comm.as_ref())?;
            }
            self.observed = true;
        }
        times.statistics = sw.lap();

        if self.observed && (k.is_multiple_of(self.hyper.t_inv) || !self.refreshed) {
            self.refresh()?;
            self.refreshed = true;
        }
        times.inverse = sw.lap();

        // Each layer's (P, or None without an inverse; V) and ⟨P, V⟩, the products read back
        // together: one device synchronisation a step on a GPU, not one a layer.
        type Pair = (Option<Tensor>, Tensor);
        let mut pre: Vec<Option<Pair>> = Vec::with_capacity(self.blocks.len());
        let mut dots = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let Some(v) = b.gradient_matrix(grads)? else {
                pre.push(None);
                continue;
            };
            let p = b.precondition(&v)?;
            dots.push(Self::dot(p.as_ref().unwrap_or(&v), &v)?);
            pre.push(Some((p, v)));
        }
        let mut dots = if dots.is_empty() {
            Vec::new()
        } else {
            Tensor::stack(&dots, 0)?.to_vec1::<f64>()?
        }
        .into_iter();
        let mut vg = 0.0;
        let pre: Vec<Option<Tensor>> = pre
            .into_iter()
            .zip(&self.blocks)
            .map(|(pair, b)| -> Result<Option<Tensor>> {
                let Some((p, v)) = pair else { return Ok(None) };
                let d = dots.next().unwrap_or(f64::NAN);
                match p {
                    Some(p) if d.is_finite() => {
                        vg += d;
                        Ok(Some(p))
                    }
                    Some(_) => {
                        tracing::warn!(
                            layer = b.name(),
                            "non-finite preconditioned gradient; using the plain gradient"
                        );
                        vg += Self::dot(&v, &v)?.to_scalar::<f64>()?;
                        Ok(Some(v))
                    }
                    // No inverse: `d` is ⟨V, V⟩.
                    None => {
                        vg += d;
                        Ok(Some(v))
                    }
                }
            })
            .collect::<Result<_>>()?;
        let nu = self.kl_scale(vg);
        times.precondition = sw.lap();

        let (h, lr) = (&self.hyper, self.lr);
        for (i, p) in pre.into_iter().enumerate() {
            let Some(p) = p else { continue };
            let p = if nu < 1.0 { (p * nu)? } else { p };
            let (gw, gb) = self.blocks[i].split(&p)?;
            let spec = &self.blocks[i].spec;
            self.weight_momentum
                .step(i, lr, h, spec.weight.as_tensor(), &gw)?;
            if let (Some(b), Some(gb)) = (&spec.bias, gb) {
                self.bias_momentum.step(i, lr, h, b.as_tensor(), &gb)?;
            }
        }
        for (i, p) in self.others.iter().enumerate() {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                self.other_momentum.step(i, lr, h, p.var.as_tensor(), g)?;
            }
        }
        times.update = sw.lap();
        self.steps += 1;
        Ok(times)
    }

    fn set_timing(&mut self, on: bool) {
        self.timing = on;
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn set_steps_per_epoch(&mut self, steps: usize) {
        self.steps_per_epoch = Some(steps.max(1));
    }

    fn set_damping(&mut self, damping: f64) {
        self.damping = damping;
    }

    fn set_communicator(&mut self, comm: Arc<dyn Communicator>) {
        self.comm = comm;
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn failed_refreshes(&self) -> usize {
        self.failed_refreshes
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut tensors = BTreeMap::new();
        for (i, b) in self.blocks.iter().enumerate() {
            b.save(&format!("block.{i}"), &mut tensors)?;
        }
        self.weight_momentum.save("momentum.weight", &mut tensors)?;
        self.bias_momentum.save("momentum.bias", &mut tensors)?;
        self.other_momentum.save("momentum.other", &mut tensors)?;
        let meta = json!({
            "name": self.kind.name(),
            "approx": self.approx.name(),
            "steps": self.steps,
            "lr": self.lr,
            "damping": self.damping,
            "steps_per_epoch": self.steps_per_epoch,
            "observed": self.observed,
            "refreshed": self.refreshed,
            "layers": self.blocks.len(),
        });
        Ok(OptimizerState { meta, tensors })
    }

    fn load_state(&mut self, s: &OptimizerState) -> Result<()> {
        s.expect_name(self.kind.name())?;
        let layers = s.usize_field("layers")?;
        if layers != self.blocks.len() {
            return Err(Error::State(format!(
                "the saved state has {layers} preconditioned layers, this model {}",
                self.blocks.len()
            )));
        }
        let approx = self.approx.name();
        if s.meta.get("approx").and_then(|a| a.as_str()) != Some(approx.as_str()) {
            return Err(Error::State(format!(
                "the saved state was made with {:?}, this optimizer uses {approx}",
                s.meta.get("approx")
            )));
        }
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.load(&format!("block.{i}"), &s.tensors)?;
        }
        self.weight_momentum.load("momentum.weight", &s.tensors)?;
        self.bias_momentum.load("momentum.bias", &s.tensors)?;
        self.other_momentum.load("momentum.other", &s.tensors)?;
        self.steps = s.usize_field("steps")?;
        self.lr = s.f64_field("lr")?;
        if let Some(n) = s.meta.get("steps_per_epoch").and_then(|v| v.as_u64()) {
            self.steps_per_epoch = Some(n as usize);
        }
        // The current λ (a caller may have changed it with `set_damping`); states saved
        // before it was recorded keep the configured one.
        if let Some(d) = s.meta.get("damping").and_then(|v| v.as_f64()) {
            self.damping = d;
        }
        let flag = |k: &str| s.meta.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        self.observed = flag("observed");
        self.refreshed = flag("refreshed");
        Ok(())
    }
}
