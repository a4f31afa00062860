//! K-FAC with spatially uncorrelated activations (Grosse & Martens 2016) for a Conv2d input
//! factor: `Ω ≈ I_K ⊗ Ω_c`, `K = kh·kw` kernel offsets sharing one `c_in × c_in` channel
//! covariance, so only `Ω_c` is inverted. For candle-nn's channels-first weights the columns
//! run offset fastest and the factor is `Ω_c ⊗ I_K`: the same matrix, permuted.
//!
//! With a bias, the homogeneous coordinate gets its own diagonal entry (its mean square, 1) and
//! no coupling to the channels: the coupled form `[[I⊗Ω_c, 1⊗μ], [1ᵀ⊗μᵀ, 1]]` is indefinite
//! whenever `K·μᵀΩ_c⁻¹μ > 1`, which near-constant inputs reach easily.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor, D};

use super::{mean_diagonal, missing, moving_average, square, Factor};
use crate::comm::{all_reduce_mean, Channel, Communicator};
use crate::damping::FactorInit;
use crate::layer::ConvLayout;
use crate::linalg::{self, DenseMethod, FactorError, InverseDtype};
use crate::state::{put, take};

/// A Conv2d input factor `I_K ⊗ Ω_c` (plus a bias corner), kept and inverted as its
/// `c_in × c_in` channel covariance `Ω_c`.
pub struct SuaFactor {
    offsets: usize,
    channels: usize,
    layout: ConvLayout,
    bias: bool,
    method: DenseMethod,
    precision: InverseDtype,
    init: FactorInit,
    stat: Option<Tensor>,
    inv: Option<Tensor>,
    /// `1/(1+λ)` for the bias coordinate, set on refresh.
    bias_inv: f64,
}

impl SuaFactor {
    /// For rows of `offsets × channels` columns in the order `layout` names, plus a trailing
    /// column of ones when `bias`, inverted with `method` in `precision`; `init` starts the
    /// channel covariance's moving average.
    pub fn new(
        offsets: usize,
        channels: usize,
        layout: ConvLayout,
        bias: bool,
        method: DenseMethod,
        precision: InverseDtype,
        init: FactorInit,
    ) -> Self {
        SuaFactor {
            offsets,
            channels,
            layout,
            bias,
            method,
            precision,
            init,
            stat: None,
            inv: None,
            bias_inv: 0.0,
        }
    }

    /// The bias coordinate's damped inverse, `1/(1+λ)` (its mean square is 1).
    fn bias_inverse(damping: f64) -> f64 {
        1.0 / (1.0 + damping)
    }

    fn width(&self) -> usize {
        self.offsets * self.channels
    }

    /// The column of channel `c` at kernel offset `o`.
    fn column(&self, o: usize, c: usize) -> usize {
        match self.layout {
            ConvLayout::ChannelsLast => o * self.channels + c,
            ConvLayout::ChannelsFirst => c * self.offsets + o,
        }
    }

    /// The first `width` columns of `v` (`[r, width(+1)]`) as `[r·K, c_in]`: one row per
    /// (row, kernel offset), the channels along it.
    fn channel_rows(&self, v: &Tensor) -> Result<Tensor> {
        let (r, (k, c)) = (v.dim(0)?, (self.offsets, self.channels));
        let x = v.narrow(1, 0, self.width())?;
        match self.layout {
            ConvLayout::ChannelsLast => x.contiguous()?.reshape((r * k, c)),
            ConvLayout::ChannelsFirst => x
                .reshape((r, c, k))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((r * k, c)),
        }
    }

    /// The inverse of [`SuaFactor::channel_rows`] for `r` rows.
    fn columns_of_channel_rows(&self, x: &Tensor, r: usize) -> Result<Tensor> {
        let (k, c) = (self.offsets, self.channels);
        match self.layout {
            ConvLayout::ChannelsLast => x.reshape((r, self.width())),
            ConvLayout::ChannelsFirst => x
                .reshape((r, k, c))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((r, self.width())),
        }
    }

    /// `I_K ⊗ c` (or `c ⊗ I_K`, as the layout orders the columns), plus the bias corner
    /// `corner` when there is a bias.
    fn expand(&self, c: &Tensor, corner: f64) -> Result<Tensor> {
        let (k, ch) = (self.offsets, self.channels);
        let n = self.width() + usize::from(self.bias);
        let mut out = vec![0f64; n * n];
        let cv = c.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
        for o in 0..k {
            for i in 0..ch {
                for j in 0..ch {
                    out[self.column(o, i) * n + self.column(o, j)] = cv[i][j];
                }
            }
        }
        if self.bias {
            out[n * n - 1] = corner;
        }
        Tensor::from_vec(out, (n, n), c.device())?.to_dtype(c.dtype())
    }
}

impl Factor for SuaFactor {
    fn observe(&mut self, rows: &Tensor, decay: f64, comm: &dyn Communicator) -> Result<()> {
        let n = rows.dim(0)?;
        let x = self.channel_rows(rows)?;
        let batch = (x.t()?.matmul(&x)? / (n * self.offsets) as f64)?;
        let batch = all_reduce_mean(comm, &batch, Channel::Statistics)?;
        self.stat = Some(moving_average(self.stat.as_ref(), batch, decay, self.init)?);
        Ok(())
    }

    fn refresh(&mut self, damping: f64) -> std::result::Result<(), FactorError> {
        let stat = self.stat.as_ref().ok_or_else(|| missing("statistic"))?;
        self.inv = Some(linalg::damped_inverse_tensor(
            stat,
            damping,
            self.method,
            self.precision,
        )?);
        self.bias_inv = Self::bias_inverse(damping);
        Ok(())
    }

    fn inverse_shapes(&self) -> Result<Vec<(usize, usize)>> {
        Ok(vec![square(self.stat.as_ref())?])
    }

    fn inverse_parts(&self) -> Result<Vec<Tensor>> {
        Ok(vec![self.inv.clone().ok_or_else(|| missing("inverse"))?])
    }

    fn set_inverse(&mut self, mut parts: Vec<Tensor>, damping: f64) -> Result<()> {
        self.inv = Some(parts.pop().ok_or_else(|| missing("inverse"))?);
        self.bias_inv = Self::bias_inverse(damping);
        Ok(())
    }

    fn has_inverse(&self) -> bool {
        self.inv.is_some()
    }

    fn clear_inverse(&mut self) {
        self.inv = None;
    }

    fn apply_right(&self, v: &Tensor) -> Result<Tensor> {
        let inv = self.inv.as_ref().ok_or_else(|| missing("inverse"))?;
        let r = v.dim(0)?;
        let x = self.columns_of_channel_rows(&self.channel_rows(v)?.matmul(inv)?, r)?;
        if !self.bias {
            return Ok(x);
        }
        let b = (v.narrow(1, self.width(), 1)? * self.bias_inv)?;
        Tensor::cat(&[&x, &b], D::Minus1)
    }

    fn mean_diagonal(&self) -> Result<f64> {
        // `I_K ⊗ Ω_c` and the bias coordinate's 1.
        let c = mean_diagonal(self.stat.as_ref().ok_or_else(|| missing("statistic"))?)?;
        let width = self.width() as f64;
        let bias = f64::from(u8::from(self.bias));
        Ok((width * c + bias) / (width + bias))
    }

    fn matrix(&self) -> Result<Tensor> {
        self.expand(self.stat.as_ref().ok_or_else(|| missing("statistic"))?, 1.0)
    }

    fn inverse_matrix(&self) -> Result<Tensor> {
        self.expand(
            self.inv.as_ref().ok_or_else(|| missing("inverse"))?,
            self.bias_inv,
        )
    }

    fn save(&self, prefix: &str, out: &mut BTreeMap<String, Tensor>) -> Result<()> {
        put(out, format!("{prefix}.stat"), self.stat.as_ref())?;
        put(out, format!("{prefix}.inv"), self.inv.as_ref())?;
        if self.inv.is_some() {
            let b = Tensor::new(&[self.bias_inv], &candle_core::Device::Cpu)?;
            out.insert(format!("{prefix}.bias_inv"), b);
        }
        Ok(())
    }

    fn load(&mut self, prefix: &str, src: &BTreeMap<String, Tensor>) -> Result<()> {
        self.stat = take(src, &format!("{prefix}.stat"))?;
        self.inv = take(src, &format!("{prefix}.inv"))?;
        self.bias_inv = match src.get(&format!("{prefix}.bias_inv")) {
            Some(t) => t.to_vec1::<f64>()?[0],
            None => 0.0,
        };
        Ok(())
    }
}
