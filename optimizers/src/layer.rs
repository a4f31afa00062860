//! What a model tells an optimizer about its parameters and, on statistics steps, about the
//! activations and pre-activation gradients of its Linear and Conv2d layers.

use candle_core::{Device, Result, Tensor, Var, D};

/// A trainable parameter with a stable name (used in checkpoints and logs).
#[derive(Clone, Debug)]
pub struct NamedVar {
    /// Unique within the model; checkpoints and logs refer to the parameter by it.
    pub name: String,
    /// The variable, which the optimizer updates in place.
    pub var: Var,
}

/// The shape of a layer that the K-FAC family preconditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// `W: [out, in]`, bias `[out]`.
    Linear {
        /// Input features, `in`.
        inputs: usize,
        /// Output features, `out`.
        outputs: usize,
    },
    /// A 2-d convolution whose weight, as a matrix, is `[c_out, kh*kw*c_in]` in the order
    /// `layout` names, the order of the im2col columns of `A`; bias `[c_out]`.
    Conv2d {
        /// Input channels.
        c_in: usize,
        /// Output channels.
        c_out: usize,
        /// Kernel height.
        kh: usize,
        /// Kernel width.
        kw: usize,
        /// Stride, the same along both spatial axes.
        stride: usize,
        /// Zero padding on each side, the same along both spatial axes.
        padding: usize,
        /// How the weight (and so each row of `A`) orders channels and kernel offsets.
        layout: ConvLayout,
    },
}

/// The order of a Conv2d weight's input axes, which the rows of its `A` follow. Only
/// K-FAC-SUA's factor depends on it (`I_K ⊗ Ω_c` channel fastest, `Ω_c ⊗ I_K` offset fastest);
/// every other approximation works on the weight as the `[c_out, in]` matrix it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvLayout {
    /// `[c_out, kh, kw, c_in]`: channel fastest, for NHWC activations (this repository's
    /// models; algorithms.md's convention).
    #[default]
    ChannelsLast,
    /// `[c_out, c_in, kh, kw]`: kernel offset fastest, candle-nn's (and PyTorch's) `conv2d`
    /// for NCHW activations.
    ChannelsFirst,
}

impl LayerKind {
    /// Columns of `W` as a matrix, without the bias column.
    pub fn inputs(&self) -> usize {
        match *self {
            LayerKind::Linear { inputs, .. } => inputs,
            LayerKind::Conv2d { c_in, kh, kw, .. } => c_in * kh * kw,
        }
    }

    /// Rows of `W` as a matrix: output features or channels.
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
    /// Unique within the model; the parameters are called `NAME.weight` and `NAME.bias`.
    pub name: String,
    /// The layer's shape; `weight` and `bias` must match it.
    pub kind: LayerKind,
    /// `[out, in]` for Linear; for Conv2d `[c_out, kh, kw, c_in]` or `[c_out, c_in, kh, kw]`
    /// as its [`ConvLayout`] says.
    pub weight: Var,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<Var>,
}

/// All trainable parameters of a model, split into preconditioned layers and the rest
/// (BatchNorm scale/shift, ...), which every optimizer steps with its plain rule.
#[derive(Clone, Debug, Default)]
pub struct ParamSet {
    /// The layers the K-FAC family preconditions, in the order of the [`LayerStats`] handed
    /// to [`crate::Optimizer::step`].
    pub layers: Vec<LayerSpec>,
    /// Every other trainable parameter.
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

    /// The device the parameters live on (the CPU when there are none).
    pub fn device(&self) -> Device {
        device_of(&self.all())
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        self.all().iter().map(|p| p.var.elem_count()).sum()
    }
}

/// The device of the first of `params`, which a model's parameters share; the CPU for none.
pub fn device_of(params: &[NamedVar]) -> Device {
    params
        .first()
        .map_or(Device::Cpu, |p| p.var.device().clone())
}

/// Curvature statistics of one layer for one batch, as algorithms.md defines them.
#[derive(Clone, Debug)]
pub struct LayerStats {
    /// Layer inputs, one row per (example, output position), each example's `T` rows
    /// consecutive: `[M*T, in]`, without the trailing column of ones that a bias adds (see
    /// [`LayerStats::a_augmented`]). For Conv2d, the rows are im2col patches in the order of
    /// [`LayerKind::Conv2d`]'s weight.
    pub a: Tensor,
    /// Gradient of the loss w.r.t. the pre-activation output, one row per (example, position),
    /// multiplied by the batch size `M`: `[M*T, out]`.
    pub g: Tensor,
    /// Batch size `M`.
    pub batch: usize,
    /// Output positions per example `T` (1 for Linear).
    pub positions: usize,
    /// Whether the layer has a bias, which adds a column of ones to `A`.
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
