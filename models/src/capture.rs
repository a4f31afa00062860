//! Capturing a layer's `A` and `G` rows on statistics steps.
//!
//! `G` is read through a probe: a zero-valued `Var` added to the pre-activation output `s`.
//! `s + probe` equals `s`, and the probe's gradient is `∂L/∂s`, which candle's `GradStore`
//! does not keep for intermediate tensors. The probe is only added when capturing, so ordinary
//! steps pay nothing.

use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use optimizers::{LayerKind, LayerSpec, LayerStats};

/// A preconditioned layer as the optimizer sees it, with the slot its statistics land in.
pub type CapturedLayer = (LayerSpec, Arc<Capture>);

/// A new layer `name` over `weight` and `bias`, with an empty capture slot.
pub fn layer(name: String, kind: LayerKind, weight: &Var, bias: &Option<Var>) -> CapturedLayer {
    let spec = LayerSpec {
        name,
        kind,
        weight: weight.clone(),
        bias: bias.clone(),
    };
    (spec, Arc::new(Capture::default()))
}

/// The statistics every layer of `layers` captured, in order; `hint` says how to capture, for
/// the error when one captured nothing.
pub fn take_all(
    layers: &[CapturedLayer],
    grads: &GradStore,
    hint: &str,
) -> Result<Vec<LayerStats>> {
    let mut out = Vec::with_capacity(layers.len());
    for (spec, cap) in layers {
        match cap.take(grads, spec.bias.is_some())? {
            Some(s) => out.push(s),
            None => candle_core::bail!("layer {} captured nothing: {hint}", spec.name),
        }
    }
    Ok(out)
}

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
    /// Records `a` (`[batch*positions, in]`, detached) and returns `s + probe`, where `s` is
    /// the pre-activation output as rows `[batch*positions, out]`; the layer must carry on with
    /// the returned tensor for the probe to receive a gradient. Replaces anything captured
    /// before.
    ///
    /// # Errors
    ///
    /// When the probe cannot be created or added.
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

    /// The statistics of the last capturing forward pass, given the gradients of its loss:
    /// `A` as recorded and `G` the probe's gradient times `batch` (zeros when the layer did
    /// not influence the loss). `has_bias` is passed on to the [`LayerStats`]. `None` when
    /// nothing was captured since the last call; the slot is empty afterwards.
    ///
    /// # Errors
    ///
    /// When scaling the gradient fails.
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

    /// Drops whatever was captured.
    pub fn clear(&self) {
        *self.slot.lock().expect("capture slot poisoned") = None;
    }
}
