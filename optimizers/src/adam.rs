//! Adam (Kingma & Ba 2015) with bias correction; weight decay either as an L2 term in the
//! gradient (PyTorch's `Adam`) or decoupled (`AdamW`, Loshchilov & Hutter 2019).

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::fused;
use crate::hyper::Hyper;
use crate::layer::{device_of, LayerStats, NamedVar};
use crate::optimizer::Optimizer;
use crate::state::{put_list, take_list, OptimizerState};
use crate::timing::{StageTimes, Stopwatch};
use serde_json::json;
use std::collections::BTreeMap;

/// Reads `lr`, `beta1`, `beta2`, `eps`, `weight_decay` and `decoupled_weight_decay` of its
/// [`Hyper`].
pub struct Adam {
    params: Vec<NamedVar>,
    /// Where the parameters live, for the stopwatch.
    device: Device,
    /// Whether steps time their stages ([`Optimizer::set_timing`]).
    timing: bool,
    moments: Vec<Option<(Tensor, Tensor)>>,
    hyper: Hyper,
    /// The learning rate of the next step: `hyper.lr` until a schedule sets another.
    lr: f64,
    steps: usize,
}

impl Adam {
    /// Adam over `params`; fails if `hyper` does not pass [`Hyper::validate`].
    pub fn from_hyper(params: Vec<NamedVar>, hyper: Hyper) -> Result<Self> {
        hyper.validate()?;
        let moments = vec![None; params.len()];
        Ok(Adam {
            device: device_of(&params),
            timing: false,
            params,
            moments,
            lr: hyper.lr,
            hyper,
            steps: 0,
        })
    }
}

impl Optimizer for Adam {
    fn name(&self) -> String {
        "adam".into()
    }

    fn step(&mut self, grads: &GradStore, _stats: Option<&[LayerStats]>) -> Result<StageTimes> {
        let mut sw = Stopwatch::start_if(self.timing, &self.device);
        let c = &self.hyper;
        let t = (self.steps + 1) as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for (p, mom) in self.params.iter().zip(self.moments.iter_mut()) {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let w = p.var.as_tensor();
            let (m, v) = match mom {
                Some(mv) => mv,
                None => mom.insert((w.zeros_like()?, w.zeros_like()?)),
            };
            let (b1, b2, eps, lr) = (c.beta1, c.beta2, c.eps, self.lr);
            // L2 decay enters the gradient; decoupled decay shrinks the weight directly.
            let (l2, dwd) = if c.decoupled_weight_decay {
                (0.0, c.weight_decay)
            } else {
                (c.weight_decay, 0.0)
            };
            // The decayed gradient g + l2·w, as tensor ops.
            let decayed = |g: &Tensor, w: &Tensor| g + w.affine(l2, 0.0)?;
            fused::update(
                "adam-m",
                m,
                g,
                w,
                |m, g, w| b1 * m + (1.0 - b1) * (g + l2 * w),
                |m, g, w| m.affine(b1, 0.0)? + decayed(g, w)?.affine(1.0 - b1, 0.0)?,
            )?;
            fused::update(
                "adam-v",
                v,
                g,
                w,
                |v, g, w| {
                    let g = g + l2 * w;
                    b2 * v + (1.0 - b2) * g * g
                },
                |v, g, w| v.affine(b2, 0.0)? + decayed(g, w)?.sqr()?.affine(1.0 - b2, 0.0)?,
            )?;
            fused::update(
                "adam-apply",
                w,
                m,
                v,
                |w, m, v| w * (1.0 - lr * dwd) - lr * (m / bc1) / ((v / bc2).sqrt() + eps),
                |w, m, v| {
                    let denom = v.affine(1.0 / bc2, 0.0)?.sqrt()?.affine(1.0, eps)?;
                    w.affine(1.0 - lr * dwd, 0.0)? - m.affine(lr / bc1, 0.0)?.div(&denom)?
                },
            )?;
        }
        self.steps += 1;
        Ok(StageTimes {
            update: sw.lap(),
            ..StageTimes::default()
        })
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

    fn steps(&self) -> usize {
        self.steps
    }

    fn state(&self) -> Result<OptimizerState> {
        let (m, v): (Vec<_>, Vec<_>) = self
            .moments
            .iter()
            .map(|mv| match mv {
                Some((m, v)) => (Some(m.clone()), Some(v.clone())),
                None => (None, None),
            })
            .unzip();
        let mut tensors = BTreeMap::new();
        put_list(&mut tensors, "m", &m)?;
        put_list(&mut tensors, "v", &v)?;
        let meta = json!({"name": "adam", "steps": self.steps, "lr": self.lr, "params": self.params.len()});
        Ok(OptimizerState { meta, tensors })
    }

    fn load_state(&mut self, s: &OptimizerState) -> Result<()> {
        s.expect_name("adam")?;
        let n = self.params.len();
        s.expect_params(n)?;
        let m = take_list(&s.tensors, "m", n)?;
        let v = take_list(&s.tensors, "v", n)?;
        self.moments = m
            .into_iter()
            .zip(v)
            .map(|mv| match mv {
                (Some(m), Some(v)) => Some((m, v)),
                _ => None,
            })
            .collect();
        self.steps = s.usize_field("steps")?;
        self.lr = s.f64_field("lr")?;
        Ok(())
    }
}
