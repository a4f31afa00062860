//! The training loss: cross-entropy, with label smoothing.

use candle_core::{Result, Tensor, D};

/// Cross-entropy of `logits` `[M, K]` against `labels` `[M]`, averaged over the batch, with
/// label smoothing `eps` (PyTorch's convention): the target puts `1−ε` on the label and `ε/K`
/// on every class, so the loss is `(1−ε)·CE + ε·mean over rows of (−mean_k log p_k)`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, eps: f64) -> Result<Tensor> {
    let ce = candle_nn::loss::cross_entropy(logits, labels)?;
    if eps == 0.0 {
        return Ok(ce);
    }
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let uniform = log_p.mean(D::Minus1)?.mean_all()?.neg()?;
    (ce * (1.0 - eps))? + (uniform * eps)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn smoothing_is_the_cross_entropy_against_the_smoothed_target() -> Result<()> {
        let rows = [[2.0f64, -1.0, 0.5], [0.1, 0.2, 3.0]];
        let labels = [0u32, 1];
        let logits = Tensor::new(&rows, &Device::Cpu)?;
        let y = Tensor::new(&labels, &Device::Cpu)?;
        for eps in [0.0, 0.1, 0.5] {
            // −Σ_k t_k log softmax(z)_k with t = (1−ε)·onehot + ε/K, by hand in f64.
            let mut want = 0.0;
            for (z, &l) in rows.iter().zip(&labels) {
                let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
                for (k, v) in z.iter().enumerate() {
                    let t = eps / 3.0 + if k == l as usize { 1.0 - eps } else { 0.0 };
                    want -= t * (v - lse);
                }
            }
            want /= 2.0;
            let got = cross_entropy(&logits, &y, eps)?.to_scalar::<f64>()?;
            assert!((got - want).abs() < 1e-12, "ε = {eps}: {got} vs {want}");
        }
        Ok(())
    }
}
