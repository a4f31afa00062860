//! SGD with momentum, weight decay and optional Nesterov momentum (PyTorch's convention:
//! `b ← μ b + (g + wd·w)`, `w ← w − lr·b`, or with Nesterov `w ← w − lr·(g + wd·w + μ b)`).

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use crate::error::{check, Result};
use crate::fused;
use crate::layer::{LayerStats, NamedVar};
use crate::optimizer::Optimizer;
use crate::timing::{StageTimes, Stopwatch};

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
}
