//! SGD with momentum, weight decay and optional Nesterov momentum (PyTorch's convention:
//! `b ← μ b + (g + wd·w)`, `w ← w − lr·b`, or with Nesterov `w ← w − lr·(g + wd·w + μ b)`).

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use crate::error::{check, Result};
use crate::fused;
use crate::layer::{LayerStats, NamedVar};
use crate::optimizer::Optimizer;
use crate::state::{put_list, take_list, OptimizerState};
use crate::timing::{StageTimes, Stopwatch};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

pub struct Sgd {
    params: Vec<NamedVar>,
    buffers: Vec<Option<Tensor>>,
    cfg: SgdConfig,
    steps: usize,
}

impl Sgd {
    pub fn new(params: Vec<NamedVar>, cfg: SgdConfig) -> Result<Self> {
        check("lr", cfg.lr, cfg.lr > 0.0, "must be positive")?;
        check(
            "momentum",
            cfg.momentum,
            (0.0..1.0).contains(&cfg.momentum),
            "must be in [0, 1)",
        )?;
        check(
            "weight_decay",
            cfg.weight_decay,
            cfg.weight_decay >= 0.0,
            "must be >= 0",
        )?;
        check(
            "momentum",
            cfg.momentum,
            !cfg.nesterov || cfg.momentum > 0.0,
            "Nesterov momentum needs momentum > 0",
        )?;
        let buffers = vec![None; params.len()];
        Ok(Sgd {
            params,
            buffers,
            cfg,
            steps: 0,
        })
    }

    /// One momentum step on `w` with the (possibly preconditioned) gradient `g`, in place:
    /// `b ← μ b + g + wd·w`, then `w ← w − lr·b` (Nesterov: `w ← w − lr·(g + wd·w + μ b)`).
    /// Shared with the K-FAC family, which feeds it preconditioned gradients.
    pub(crate) fn momentum_step(
        cfg: &SgdConfig,
        buf: &mut Option<Tensor>,
        w: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<()> {
        let (lr, mu, wd) = (cfg.lr, cfg.momentum, cfg.weight_decay);
        if mu == 0.0 {
            return fused::update("sgd", w, g, g, |w, g, _| w - lr * (g + wd * w));
        }
        // A zero buffer makes the first step b = g + wd·w, as PyTorch does.
        let b = match buf {
            Some(b) => b,
            None => buf.insert(w.zeros_like()?),
        };
        fused::update("sgd-momentum", b, g, w, |b, g, w| mu * b + g + wd * w)?;
        if cfg.nesterov {
            fused::update("sgd-nesterov", w, g, b, |w, g, b| {
                w - lr * (g + wd * w + mu * b)
            })
        } else {
            fused::update("sgd-apply", w, b, b, |w, b, _| w - lr * b)
        }
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> String {
        "sgd".into()
    }

    fn step(&mut self, grads: &GradStore, _stats: Option<&[LayerStats]>) -> Result<StageTimes> {
        let mut sw = Stopwatch::start();
        for (p, buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            Sgd::momentum_step(&self.cfg, buf, p.var.as_tensor(), g)?;
        }
        self.steps += 1;
        Ok(StageTimes {
            update: sw.lap(),
            ..Default::default()
        })
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut tensors = BTreeMap::new();
        put_list(&mut tensors, "momentum", &self.buffers)?;
        let meta = json!({"name": "sgd", "steps": self.steps, "lr": self.cfg.lr, "params": self.params.len()});
        Ok(OptimizerState { meta, tensors })
    }

    fn load_state(&mut self, s: &OptimizerState) -> Result<()> {
        s.expect_name("sgd")?;
        expect_params(s, self.params.len())?;
        self.buffers = take_list(&s.tensors, "momentum", self.params.len())?;
        self.steps = s.usize_field("steps")?;
        self.cfg.lr = s.f64_field("lr")?;
        Ok(())
    }
}

/// Refuses a state saved over a different number of parameters.
pub(crate) fn expect_params(s: &OptimizerState, n: usize) -> Result<()> {
    let saved = s.usize_field("params")?;
    if saved != n {
        return Err(crate::error::Error::State(format!(
            "the saved state covers {saved} parameters, this model has {n}"
        )));
    }
    Ok(())
}
