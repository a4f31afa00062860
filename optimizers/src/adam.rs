//! Adam (Kingma & Ba 2015) with bias correction; weight decay either as an L2 term in the
//! gradient (PyTorch's `Adam`) or decoupled (`AdamW`, Loshchilov & Hutter 2019).

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use crate::error::{check, Result};
use crate::layer::{LayerStats, NamedVar};
use crate::optimizer::Optimizer;
use crate::timing::{StageTimes, Stopwatch};

#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub decoupled: bool,
}

pub struct Adam {
    params: Vec<NamedVar>,
    moments: Vec<Option<(Tensor, Tensor)>>,
    cfg: AdamConfig,
    steps: usize,
}

impl Adam {
    pub fn new(params: Vec<NamedVar>, cfg: AdamConfig) -> Result<Self> {
        check("lr", cfg.lr, cfg.lr > 0.0, "must be positive")?;
        check(
            "beta1",
            cfg.beta1,
            (0.0..1.0).contains(&cfg.beta1),
            "must be in [0, 1)",
        )?;
        check(
            "beta2",
            cfg.beta2,
            (0.0..1.0).contains(&cfg.beta2),
            "must be in [0, 1)",
        )?;
        check("eps", cfg.eps, cfg.eps > 0.0, "must be positive")?;
        check(
            "weight_decay",
            cfg.weight_decay,
            cfg.weight_decay >= 0.0,
            "must be >= 0",
        )?;
        let moments = vec![None; params.len()];
        Ok(Adam {
            params,
            moments,
            cfg,
            steps: 0,
        })
    }
}

impl Optimizer for Adam {
    fn name(&self) -> String {
        "adam".into()
    }

    fn step(&mut self, grads: &GradStore, _stats: Option<&[LayerStats]>) -> Result<StageTimes> {
        let mut sw = Stopwatch::start();
        let c = &self.cfg;
        let t = (self.steps + 1) as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for (p, mom) in self.params.iter().zip(self.moments.iter_mut()) {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let mut w = p.var.as_tensor().clone();
            let g = if c.weight_decay > 0.0 && !c.decoupled {
                (g + (&w * c.weight_decay)?)?
            } else {
                g.clone()
            };
            let (m, v) = match mom.take() {
                Some((m, v)) => (
                    ((m * c.beta1)? + (&g * (1.0 - c.beta1))?)?,
                    ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?,
                ),
                None => ((&g * (1.0 - c.beta1))?, (g.sqr()? * (1.0 - c.beta2))?),
            };
            let denom = ((&v / bc2)?.sqrt()? + c.eps)?;
            let upd = ((&m / bc1)? / denom)?;
            if c.weight_decay > 0.0 && c.decoupled {
                w = (&w * (1.0 - c.lr * c.weight_decay))?;
            }
            p.var.set(&(w - (upd * c.lr)?)?)?;
            *mom = Some((m, v));
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
