//! Capturing a layer's `A` and `G` rows on statistics steps.
//!
//! `G` is read through a probe: a zero-valued `Var` added to the pre-activation output `s`.
//! `s + probe` equals `s`, and the probe's gradient is `∂L/∂s`, which candle's `GradStore`
//! does not keep for intermediate tensors. The probe is only added when capturing, so ordinary
//! steps pay nothing.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use optimizers::LayerStats;

struct Captured {
    a: Tensor,
    probe: Var,
    batch: usize,
    positions: usize,
}

/// One layer's capture slot, filled by a capturing forward pass and emptied by [`Capture::take`].
#[derive(Default)]
pub struct Capture {
    slot: Mutex<Option<Captured>>,
}

impl Capture {
    /// Records `a` (`[batch*positions, in]`) and returns `s + probe`, where `s` is the
    /// pre-activation output as rows `[batch*positions, out]`.
    pub fn attach(&self, s: &Tensor, a: &Tensor, batch: usize, positions: usize) -> Result<Tensor> {
        let probe = Var::zeros(s.shape(), s.dtype(), s.device())?;
        let out = (s + probe.as_tensor())?;
        *self.slot.lock().expect("capture slot poisoned") = Some(Captured {
            a: a.detach(),
            probe,
            batch,
            positions,
        });
        Ok(out)
    }

    /// The statistics of the last capturing forward pass, given the gradients of its loss.
    /// `None` when nothing was captured since the last call.
    pub fn take(&self, grads: &GradStore, has_bias: bool) -> Result<Option<LayerStats>> {
        let Some(c) = self.slot.lock().expect("capture slot poisoned").take() else {
            return Ok(None);
        };
        let g = match grads.get(c.probe.as_tensor()) {
            Some(g) => (g * c.batch as f64)?,
            // The layer did not influence the loss: its pre-activation gradient is zero.
            None => c.probe.as_tensor().zeros_like()?,
        };
        Ok(Some(LayerStats {
            a: c.a,
            g,
            batch: c.batch,
            positions: c.positions,
            has_bias,
        }))
    }

    pub fn clear(&self) {
        *self.slot.lock().expect("capture slot poisoned") = None;
    }
}
