//! The momentum step shared by SGD and the K-FAC family (PyTorch's convention:
//! `b ← μ b + (g + wd·w)`, `w ← w − lr·b`, or with Nesterov `w ← w − lr·(g + wd·w + μ b)`).
//! The K-FAC family feeds it preconditioned gradients.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor};

use crate::fused;
use crate::hyper::Hyper;
use crate::state::{put_list, take_list};

/// One momentum buffer per parameter, each created at zero on its first step.
pub(crate) struct MomentumBuffers {
    bufs: Vec<Option<Tensor>>,
}

impl MomentumBuffers {
    pub fn new(params: usize) -> Self {
        MomentumBuffers {
            bufs: vec![None; params],
        }
    }

    /// One step on parameter `i`, `w`, with the (possibly preconditioned) gradient `g`, in
    /// place, with learning rate `lr` and `h`'s momentum (Nesterov's if `h.nesterov`) and
    /// weight decay.
    pub fn step(&mut self, i: usize, lr: f64, h: &Hyper, w: &Tensor, g: &Tensor) -> Result<()> {
        let (mu, wd) = (h.momentum, h.weight_decay);
        if mu == 0.0 {
            return fused::update(
                "sgd",
                w,
                g,
                g,
                |w, g, _| w - lr * (g + wd * w),
                |w, g, _| w.affine(1.0 - lr * wd, 0.0)? - g.affine(lr, 0.0)?,
            );
        }
        // A zero buffer makes the first step b = g + wd·w, as PyTorch does.
        let buf = &mut self.bufs[i];
        let b = match buf {
            Some(b) => b,
            None => buf.insert(w.zeros_like()?),
        };
        fused::update(
            "sgd-momentum",
            b,
            g,
            w,
            |b, g, w| mu * b + g + wd * w,
            |b, g, w| (b.affine(mu, 0.0)? + g)? + w.affine(wd, 0.0)?,
        )?;
        if h.nesterov {
            fused::update(
                "sgd-nesterov",
                w,
                g,
                b,
                |w, g, b| w - lr * (g + wd * w + mu * b),
                |w, g, b| {
                    (w.affine(1.0 - lr * wd, 0.0)? - g.affine(lr, 0.0)?)?
                        - b.affine(lr * mu, 0.0)?
                },
            )
        } else {
            fused::update(
                "sgd-apply",
                w,
                b,
                b,
                |w, b, _| w - lr * b,
                |w, b, _| w - b.affine(lr, 0.0)?,
            )
        }
    }

    /// Deep copies of the buffers under `prefix.INDEX`.
    pub fn save(&self, prefix: &str, out: &mut BTreeMap<String, Tensor>) -> Result<()> {
        put_list(out, prefix, &self.bufs)
    }

    /// Restores what [`MomentumBuffers::save`] wrote; absent buffers start at zero again.
    pub fn load(&mut self, prefix: &str, src: &BTreeMap<String, Tensor>) -> Result<()> {
        self.bufs = take_list(src, prefix, self.bufs.len())?;
        Ok(())
    }
}
