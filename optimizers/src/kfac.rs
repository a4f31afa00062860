//! The K-FAC family as one optimizer: `kfac`, `kfac-sua`, `skfac-rs`, `skfac-ss`. They share
//! the schedule (statistics every `T_cov` steps, inverses every `T_inv`), KL-clipping, weight
//! decay after preconditioning and the momentum step (algorithms.md, "The step"); they differ
//! only in their curvature blocks.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::comm::{Communicator, Local};
use crate::curvature::{Approx, Block, BlockOptions};
use crate::error::{check, Error, Result};
use crate::layer::{LayerStats, NamedVar, ParamSet};
use crate::optimizer::{block_options, Hyper, Optimizer, StatsRequest};
use crate::sgd::{Sgd, SgdConfig};
use crate::state::{put_list, take_list, OptimizerState};
use crate::timing::{StageTimes, Stopwatch};

/// Where the output-gradient rows `G` come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fisher {
    /// Labels sampled from the model's predictive distribution (true Fisher, paper eq. 3).
    #[default]
    Sampled,
    /// The real labels (empirical Fisher).
    Empirical,
}

impl Fisher {
    pub fn request(self) -> StatsRequest {
        match self {
            Fisher::Sampled => StatsRequest::Sampled,
            Fisher::Empirical => StatsRequest::Empirical,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct KfacConfig {
    pub name: &'static str,
    pub approx: Approx,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub damping: f64,
    pub t_cov: usize,
    pub t_inv: usize,
    pub stat_decay: f64,
    pub kl_clip: f64,
    pub fisher: Fisher,
    pub blocks: BlockOptions,
    pub seed: u64,
}

impl KfacConfig {
    pub fn from_hyper(name: &'static str, approx: Approx, h: &Hyper) -> Self {
        KfacConfig {
            name,
            approx,
            lr: h.lr,
            momentum: h.momentum,
            weight_decay: h.weight_decay,
            damping: h.damping,
            t_cov: h.t_cov,
            t_inv: h.t_inv,
            stat_decay: h.stat_decay,
            kl_clip: h.kl_clip,
            fisher: h.fisher,
            blocks: block_options(h),
            seed: h.seed,
        }
    }

    fn validate(&self) -> Result<()> {
        check("lr", self.lr, self.lr > 0.0, "must be positive")?;
        check(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "must be in [0, 1)",
        )?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "must be >= 0",
        )?;
        check(
            "damping",
            self.damping,
            self.damping > 0.0,
            "must be positive",
        )?;
        check(
            "t_cov",
            self.t_cov as f64,
            self.t_cov >= 1,
            "must be at least 1",
        )?;
        check(
            "t_inv",
            self.t_inv as f64,
            self.t_inv >= 1,
            "must be at least 1",
        )?;
        check(
            "stat_decay",
            self.stat_decay,
            (0.0..1.0).contains(&self.stat_decay),
            "must be in [0, 1)",
        )?;
        check(
            "kl_clip",
            self.kl_clip,
            self.kl_clip >= 0.0,
            "must be >= 0 (0 turns it off)",
        )?;
        if let Approx::Subsample(s) = self.approx {
            check("samples", s as f64, s >= 1, "must be at least 1")?;
        }
        Ok(())
    }

    fn sgd(&self) -> SgdConfig {
        SgdConfig {
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: false,
        }
    }
}

pub struct Kfac {
    cfg: KfacConfig,
    blocks: Vec<Block>,
    others: Vec<NamedVar>,
    weight_bufs: Vec<Option<Tensor>>,
    bias_bufs: Vec<Option<Tensor>>,
    other_bufs: Vec<Option<Tensor>>,
    steps: usize,
    /// Whether any statistics have been folded in (the first inverse waits for them).
    observed: bool,
    /// Whether the inverses have been computed at least once.
    refreshed: bool,
    /// The other processes of a data-parallel job ([`Local`] when alone).
    comm: Arc<dyn Communicator>,
}

impl Kfac {
    pub fn new(params: &ParamSet, cfg: KfacConfig) -> Result<Self> {
        cfg.validate()?;
        let blocks: Vec<Block> = params
            .layers
            .iter()
            .map(|l| Block::new(l.clone(), cfg.approx, cfg.blocks))
            .collect();
        let n = blocks.len();
        Ok(Kfac {
            blocks,
            others: params.others.clone(),
            weight_bufs: vec![None; n],
            bias_bufs: vec![None; n],
            other_bufs: vec![None; params.others.len()],
            cfg,
            steps: 0,
            observed: false,
            refreshed: false,
            comm: Arc::new(Local),
        })
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// A fresh, reproducible stream per (step, layer) for the spatial subsampling, so that the
    /// state to resume holds no RNG.
    fn rng(&self, step: usize, layer: usize) -> ChaCha8Rng {
        let s = self.cfg.seed
            ^ (step as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (layer as u64)
                .wrapping_add(1)
                .wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        ChaCha8Rng::seed_from_u64(s)
    }

    /// `⟨a, b⟩` in f64.
    fn dot(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
        (a * b)?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()
    }

    /// The KL-clip factor `ν = min(1, sqrt(κ / (lr² Σ⟨∇̂W, ∇W⟩)))`.
    fn kl_scale(&self, vg: f64) -> f64 {
        let denom = self.cfg.lr * self.cfg.lr * vg;
        if self.cfg.kl_clip > 0.0 && denom.is_finite() && denom > 0.0 {
            (self.cfg.kl_clip / denom).sqrt().min(1.0)
        } else {
            1.0
        }
    }
}

impl Optimizer for Kfac {
    fn name(&self) -> String {
        self.cfg.name.into()
    }

    fn stats_request(&self) -> StatsRequest {
        if self.steps.is_multiple_of(self.cfg.t_cov) {
            self.cfg.fisher.request()
        } else {
            StatsRequest::None
        }
    }

    fn step(&mut self, grads: &GradStore, stats: Option<&[LayerStats]>) -> Result<StageTimes> {
        let mut times = StageTimes::default();
        let mut sw = Stopwatch::start();
        let k = self.steps;

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
                self.blocks[i].observe_shared(s, self.cfg.stat_decay, &rng, self.comm.as_ref())?;
            }
            self.observed = true;
        }
        times.statistics = sw.lap();

        if self.observed && (k.is_multiple_of(self.cfg.t_inv) || !self.refreshed) {
            for b in &mut self.blocks {
                // A failure is logged by the block, which then takes its plain gradient.
                let _ = b.refresh(self.cfg.damping);
            }
            self.refreshed = true;
        }
        times.inverse = sw.lap();

        let mut pre: Vec<Option<Tensor>> = Vec::with_capacity(self.blocks.len());
        let mut vg = 0.0;
        for b in &self.blocks {
            let Some(v) = b.gradient_matrix(grads)? else {
                pre.push(None);
                continue;
            };
            let p = match b.precondition(&v)? {
                Some(p) => {
                    let d = Self::dot(&p, &v)?;
                    if d.is_finite() {
                        vg += d;
                        p
                    } else {
                        tracing::warn!(
                            layer = b.name(),
                            "non-finite preconditioned gradient; using the plain gradient"
                        );
                        vg += Self::dot(&v, &v)?;
                        v
                    }
                }
                None => {
                    vg += Self::dot(&v, &v)?;
                    v
                }
            };
            pre.push(Some(p));
        }
        let nu = self.kl_scale(vg);
        times.precondition = sw.lap();

        let sgd = self.cfg.sgd();
        for (i, p) in pre.into_iter().enumerate() {
            let Some(p) = p else { continue };
            let p = if nu < 1.0 { (p * nu)? } else { p };
            let (gw, gb) = self.blocks[i].split(&p)?;
            let spec = &self.blocks[i].spec;
            Sgd::momentum_step(&sgd, &mut self.weight_bufs[i], spec.weight.as_tensor(), &gw)?;
            if let (Some(b), Some(gb)) = (&spec.bias, gb) {
                Sgd::momentum_step(&sgd, &mut self.bias_bufs[i], b.as_tensor(), &gb)?;
            }
        }
        for (p, buf) in self.others.iter().zip(self.other_bufs.iter_mut()) {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                Sgd::momentum_step(&sgd, buf, p.var.as_tensor(), g)?;
            }
        }
        times.update = sw.lap();
        self.steps += 1;
        Ok(times)
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn set_communicator(&mut self, comm: Arc<dyn Communicator>) {
        self.comm = comm;
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut tensors = BTreeMap::new();
        for (i, b) in self.blocks.iter().enumerate() {
            b.save(&format!("block.{i}"), &mut tensors)?;
        }
        put_list(&mut tensors, "momentum.weight", &self.weight_bufs)?;
        put_list(&mut tensors, "momentum.bias", &self.bias_bufs)?;
        put_list(&mut tensors, "momentum.other", &self.other_bufs)?;
        let meta = json!({
            "name": self.cfg.name,
            "approx": format!("{:?}", self.cfg.approx),
            "steps": self.steps,
            "lr": self.cfg.lr,
            "observed": self.observed,
            "refreshed": self.refreshed,
            "layers": self.blocks.len(),
        });
        Ok(OptimizerState { meta, tensors })
    }

    fn load_state(&mut self, s: &OptimizerState) -> Result<()> {
        s.expect_name(self.cfg.name)?;
        let layers = s.usize_field("layers")?;
        if layers != self.blocks.len() {
            return Err(Error::State(format!(
                "the saved state has {layers} preconditioned layers, this model {}",
                self.blocks.len()
            )));
        }
        let approx = format!("{:?}", self.cfg.approx);
        if s.meta.get("approx").and_then(|a| a.as_str()) != Some(approx.as_str()) {
            return Err(Error::State(format!(
                "the saved state was made with {:?}, this optimizer uses {approx}",
                s.meta.get("approx")
            )));
        }
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.load(&format!("block.{i}"), &s.tensors)?;
        }
        let n = self.blocks.len();
        self.weight_bufs = take_list(&s.tensors, "momentum.weight", n)?;
        self.bias_bufs = take_list(&s.tensors, "momentum.bias", n)?;
        self.other_bufs = take_list(&s.tensors, "momentum.other", self.others.len())?;
        self.steps = s.usize_field("steps")?;
        self.cfg.lr = s.f64_field("lr")?;
        let flag = |k: &str| s.meta.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        self.observed = flag("observed");
        self.refreshed = flag("refreshed");
        Ok(())
    }
}
