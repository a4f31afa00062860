//! What a model tells an optimizer about its parameters and, on statistics steps, about the
//! activations and pre-activation gradients of its Linear and Conv2d layers.

use candle_core::{Result, Tensor, Var, D};

/// A trainable parameter with a stable name (used in checkpoints and logs).
#[derive(Clone, Debug)]
pub struct NamedVar {
    pub name: String,
    pub var: Var,
}

/// The shape of a layer that the K-FAC family preconditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// `W: [out, in]`.
    Linear { inputs: usize, outputs: usize },
    /// Weight stored as `[c_out, kh, kw, c_in]`, so that as a matrix it is `[c_out, kh*kw*c_in]`
    /// and the im2col columns run (kernel row, kernel column, input channel). With this order
    /// K-FAC-SUA's factor is `I_{kh*kw} ⊗ Ω_c`, as algorithms.md writes it.
    Conv2d {
        c_in: usize,
        c_out: usize,
        kh: usize,
        kw: usize,
        stride: usize,
        padding: usize,
    },
}

impl LayerKind {
    /// Columns of `W` as a matrix, without the bias column.
    pub fn inputs(&self) -> usize {
        match *self {
            LayerKind::Linear { inputs, .. } => inputs,
            LayerKind::Conv2d { c_in, kh, kw, .. } => c_in * kh * kw,
        }
    }

    pub fn outputs(&self) -> usize {
        match *self {
            LayerKind::Linear { outputs, .. } => outputs,
            LayerKind::Conv2d { c_out, .. } => c_out,
        }
    }
}

/// One preconditioned layer: its weight, optional bias and shape.
#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub name: String,
    pub kind: LayerKind,
    pub weight: Var,
    pub bias: Option<Var>,
}

/// All trainable parameters of a model, split into preconditioned layers and the rest
/// (BatchNorm scale/shift, ...), which every optimizer steps with its plain rule.
#[derive(Clone, Debug, Default)]
pub struct ParamSet {
    pub layers: Vec<LayerSpec>,
    pub others: Vec<NamedVar>,
}

impl ParamSet {
    /// Every trainable variable, layers first, in a fixed order.
    pub fn all(&self) -> Vec<NamedVar> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.push(NamedVar {
                name: format!("{}.weight", l.name),
                var: l.weight.clone(),
            });
            if let Some(b) = &l.bias {
                out.push(NamedVar {
                    name: format!("{}.bias", l.name),
                    var: b.clone(),
                });
            }
        }
        out.extend(self.others.iter().cloned());
        out
    }

    pub fn num_parameters(&self) -> usize {
        self.all().iter().map(|p| p.var.elem_count()).sum()
    }
}

/// Curvature statistics of one layer for one batch, as algorithms.md defines them.
#[derive(Clone, Debug)]
pub struct LayerStats {
    /// Layer inputs, one row per (example, output position): `[M*T, in]`, without the
    /// trailing column of ones that a bias adds (see [`LayerStats::a_augmented`]).
    pub a: Tensor,
    /// Gradient of the loss w.r.t. the pre-activation output, one row per (example, position),
    /// multiplied by the batch size `M`: `[M*T, out]`.
    pub g: Tensor,
    /// Batch size `M`.
    pub batch: usize,
    /// Output positions per example `T` (1 for Linear).
    pub positions: usize,
    pub has_bias: bool,
}

impl LayerStats {
    /// `A` with a trailing column of ones when the layer has a bias, so that
    /// `[∇W | ∇b] = Gᵀ A_aug / M`.
    pub fn a_augmented(&self) -> Result<Tensor> {
        if !self.has_bias {
            return Ok(self.a.clone());
        }
        let ones = Tensor::ones((self.a.dim(0)?, 1), self.a.dtype(), self.a.device())?;
        Tensor::cat(&[&self.a, &ones], D::Minus1)
    }
}
