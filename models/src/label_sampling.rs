//! Labels sampled from the model's predictive distribution, for the true Fisher (paper eq. 3).

use candle_core::{Result, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One label per row of `logits` (`[M, classes]`), drawn from `softmax(logits)` by inverse-CDF
/// sampling in f64 with a stream seeded by `seed`; a u32 tensor `[M]` on the logits' device.
/// The rows are rows `first_row..` of a larger batch (0 alone): each row takes one `f64` (two
/// 32-bit words) of the stream, so a data-parallel shard skips to its first row's words and
/// draws what a single process would.
///
/// # Errors
///
/// When `logits` is not two-dimensional or cannot be converted to f64.
pub fn sample_labels(logits: &Tensor, seed: u64, first_row: usize) -> Result<Tensor> {
    let probs = candle_nn::ops::softmax(&logits.to_dtype(candle_core::DType::F64)?, D::Minus1)?
        .to_vec2::<f64>()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_word_pos(2 * first_row as u128);
    let labels: Vec<u32> = probs
        .iter()
        .map(|p| {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            for (k, pk) in p.iter().enumerate() {
                acc += pk;
                if u < acc {
                    return k as u32;
                }
            }
            (p.len() - 1) as u32
        })
        .collect();
    Tensor::from_vec(labels, probs.len(), logits.device())
}

/// The seed of the labels sampled on step `step` of a run seeded with `seed`: a fresh stream
/// per step, reproducible from the step count alone (a resumed run draws what an uninterrupted
/// one would), and at step 0 not the model-initialisation seed. The harness's loop and
/// [`crate::nn::KfacOptimizer`] both draw with it.
pub fn fisher_seed(seed: u64, step: usize) -> u64 {
    seed ^ (step as u64)
        .wrapping_add(1)
        .wrapping_mul(0xA24B_AED4_963E_E407)
}

/// The gradients that define the true Fisher's `G`: those of the cross-entropy of `logits`
/// against labels sampled from them ([`sample_labels`] with `seed` and `first_row`). `logits`
/// must be the output of the capturing forward pass, whose probes receive these gradients.
pub fn sampled_gradients(
    logits: &Tensor,
    seed: u64,
    first_row: usize,
) -> Result<candle_core::backprop::GradStore> {
    let labels = sample_labels(&logits.detach(), seed, first_row)?;
    candle_nn::loss::cross_entropy(logits, &labels)?.backward()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn sampled_frequencies_follow_the_softmax() -> Result<()> {
        // Row probabilities 0.7 / 0.2 / 0.1 (logits are their logs), 20,000 draws.
        let row = [0.7f64.ln(), 0.2f64.ln(), 0.1f64.ln()];
        let logits = Tensor::from_vec(row.repeat(20_000), (20_000, 3), &Device::Cpu)?;
        let s = sample_labels(&logits, 11, 0)?.to_vec1::<u32>()?;
        for (k, p) in [0.7, 0.2, 0.1].iter().enumerate() {
            let f = s.iter().filter(|&&l| l == k as u32).count() as f64 / 20_000.0;
            // Four standard deviations of a binomial proportion.
            assert!(
                (f - p).abs() < 4.0 * (p * (1.0 - p) / 20_000.0f64).sqrt(),
                "class {k}: {f}"
            );
        }
        assert_eq!(
            s,
            sample_labels(&logits, 11, 0)?.to_vec1::<u32>()?,
            "seeded"
        );
        let tail = sample_labels(&logits.narrow(0, 12_345, 7_655)?, 11, 12_345)?;
        assert_eq!(
            tail.to_vec1::<u32>()?,
            s[12_345..],
            "a shard draws the batch's labels"
        );
        Ok(())
    }
}
