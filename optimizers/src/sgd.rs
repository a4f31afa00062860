//! SGD with momentum, weight decay and optional Nesterov momentum (PyTorch's convention:
//! `b ← μ b + (g + wd·w)`, `w ← w − lr·b`, or with Nesterov `w ← w − lr·(g + wd·w + μ b)`).

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use crate::error::{check, Result};
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
        let buffers = vec![None; params.len()];
        Ok(Sgd {
            params,
            buffers,
            cfg,
            steps: 0,
        })
    }

    /// The update direction for one parameter (before the learning rate), advancing its
    /// momentum buffer. Shared with the K-FAC family, which feeds it preconditioned gradients.
    pub(crate) fn direction(
        cfg: &SgdConfig,
        buf: &mut Option<Tensor>,
        w: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let d = if cfg.weight_decay > 0.0 {
            (g + (w * cfg.weight_decay)?)?
        } else {
            g.clone()
        };
        if cfg.momentum == 0.0 {
            return Ok(d);
        }
        let b = match buf.take() {
            Some(b) => ((b * cfg.momentum)? + &d)?,
            None => d.clone(),
        };
        let out = if cfg.nesterov {
            (&d + (&b * cfg.momentum)?)?
        } else {
            b.clone()
        };
        *buf = Some(b);
        Ok(out)
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
            let w = p.var.as_tensor();
            let d = Sgd::direction(&self.cfg, buf, w, g)?;
            p.var.set(&(w - (d * self.cfg.lr)?)?)?;
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
