//! Mini-batches: seeded shuffling, CIFAR-style augmentation (random crop from a 4-pixel zero
//! padding, horizontal flip), per-channel normalisation, NHWC f32 tensors.
//!
//! Every random choice comes from an RNG seeded by (seed, epoch, batch), so a run is
//! reproducible and can resume at any step without saving RNG state.

use candle_core::{Device, Result, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ImageSet;

/// Per-channel mean and standard deviation of pixel values scaled to [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// A batch ready for the model: images `[B, H, W, C]` (f32), labels `[B]` (u32).
pub struct Batch {
    pub x: Tensor,
    pub y: Tensor,
    pub labels: Vec<u8>,
}

/// Padding of the random crop, in pixels.
pub const CROP_PAD: usize = 4;

fn rng_for(seed: u64, epoch: usize, batch: usize) -> ChaCha8Rng {
    // Distinct, well-mixed streams per (epoch, batch); the constants are odd 64-bit mixers.
    // Wrapping: the shuffle stream uses `batch = usize::MAX`.
    let s = seed
        ^ (epoch as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (batch as u64)
            .wrapping_add(1)
            .wrapping_mul(0xD1B5_4A32_D192_ED03);
    ChaCha8Rng::seed_from_u64(s)
}

/// The order in which one epoch visits the examples.
#[derive(Clone, Debug)]
pub struct BatchPlan {
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
}

impl BatchPlan {
    /// A shuffled epoch of full batches (the last partial batch is dropped).
    pub fn train(n: usize, batch_size: usize, seed: u64, epoch: usize) -> Self {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng_for(seed, epoch, usize::MAX));
        BatchPlan {
            order,
            batch_size,
            drop_last: true,
        }
    }

    /// Every example once, in order, the last batch possibly smaller.
    pub fn eval(n: usize, batch_size: usize) -> Self {
        BatchPlan {
            order: (0..n).collect(),
            batch_size,
            drop_last: false,
        }
    }

    pub fn len(&self) -> usize {
        if self.drop_last {
            self.order.len() / self.batch_size
        } else {
            self.order.len().div_ceil(self.batch_size)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example indices of batch `i`.
    pub fn indices(&self, i: usize) -> &[usize] {
        let start = i * self.batch_size;
        &self.order[start..(start + self.batch_size).min(self.order.len())]
    }
}

/// Assembles a batch. With `augment = Some((seed, epoch, batch))` each image gets a random
/// crop and flip from that batch's RNG.
pub fn make_batch(
    set: &ImageSet,
    indices: &[usize],
    norm: &Normalisation,
    augment: Option<(u64, usize, usize)>,
    device: &Device,
) -> Result<Batch> {
    make_shard(set, indices, 0..indices.len(), norm, augment, device)
}

/// The images `keep` of the batch `indices` (a data-parallel process's shard), with the
/// augmentation a single process would give them: the batch's RNG is drawn for every image,
/// but only the kept ones are assembled.
pub fn make_shard(
    set: &ImageSet,
    indices: &[usize],
    keep: std::ops::Range<usize>,
    norm: &Normalisation,
    augment: Option<(u64, usize, usize)>,
    device: &Device,
) -> Result<Batch> {
    let (h, w, c) = (set.height, set.width, set.channels);
    let scale: Vec<f32> = norm.std.iter().map(|s| 1.0 / (255.0 * s)).collect();
    let shift: Vec<f32> = norm
        .mean
        .iter()
        .zip(&norm.std)
        .map(|(m, s)| -m / s)
        .collect();
    let mut rng = augment.map(|(s, e, b)| rng_for(s, e, b));
    let kept = &indices[keep.clone()];
    let mut x = vec![0f32; kept.len() * h * w * c];
    let mut chunks = x.chunks_mut(h * w * c);
    for (k, &i) in indices.iter().enumerate() {
        // Offsets into the zero-padded image, and whether to mirror.
        let (oy, ox, flip) = match rng.as_mut() {
            Some(r) => (
                r.random_range(0..=2 * CROP_PAD),
                r.random_range(0..=2 * CROP_PAD),
                r.random_bool(0.5),
            ),
            None => (CROP_PAD, CROP_PAD, false),
        };
        if !keep.contains(&k) {
            continue;
        }
        let dst = chunks.next().expect("one chunk per kept image");
        let src = set.image(i);
        for y in 0..h {
            for xx in 0..w {
                let sx = if flip { w - 1 - xx } else { xx };
                let (py, px) = (
                    (y + oy) as isize - CROP_PAD as isize,
                    (sx + ox) as isize - CROP_PAD as isize,
                );
                let inside = py >= 0 && px >= 0 && (py as usize) < h && (px as usize) < w;
                for ch in 0..c {
                    let v = if inside {
                        src[(py as usize * w + px as usize) * c + ch]
                    } else {
                        0
                    };
                    dst[(y * w + xx) * c + ch] = v as f32 * scale[ch] + shift[ch];
                }
            }
        }
    }
    let labels: Vec<u8> = kept.iter().map(|&i| set.labels[i]).collect();
    let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    Ok(Batch {
        x: Tensor::from_vec(x, (kept.len(), h, w, c), device)?,
        y: Tensor::from_vec(y, kept.len(), device)?,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ImageSet {
        ImageSet {
            images: (0..n * 4 * 4 * 3).map(|i| (i % 200) as u8 + 1).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            height: 4,
            width: 4,
            channels: 3,
            classes: 10,
        }
    }

    #[test]
    fn train_plans_are_seeded_permutations_without_the_last_partial_batch() {
        let a = BatchPlan::train(10, 3, 7, 0);
        assert_eq!(a.len(), 3);
        let mut seen: Vec<usize> = (0..3).flat_map(|i| a.indices(i).to_vec()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9);
        assert_eq!(a.indices(1), BatchPlan::train(10, 3, 7, 0).indices(1));
        assert_ne!(
            a.order,
            BatchPlan::train(10, 3, 7, 1).order,
            "each epoch reshuffles"
        );
        let e = BatchPlan::eval(10, 3);
        assert_eq!((e.len(), e.indices(3)), (4, &[9][..]));
    }

    #[test]
    fn the_shuffle_stream_differs_from_every_batch_stream() {
        // The shuffle uses `batch = usize::MAX`; the mixing must wrap, not overflow.
        let mut shuffle = rng_for(7, 0, usize::MAX);
        let mut first = rng_for(7, 0, 0);
        assert_ne!(shuffle.random::<u64>(), first.random::<u64>());
    }

    #[test]
    fn normalisation_and_identity_crop() -> Result<()> {
        let s = set(2);
        let norm = Normalisation {
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        };
        let b = make_batch(&s, &[1], &norm, None, &Device::Cpu)?;
        let x = b.x.flatten_all()?.to_vec1::<f32>()?;
        for (v, p) in x.iter().zip(s.image(1)) {
            assert!((v - (*p as f32 / 255.0 - 0.5) / 0.25).abs() < 1e-5);
        }
        assert_eq!(b.y.to_vec1::<u32>()?, vec![1]);
        Ok(())
    }

    #[test]
    fn augmentation_is_a_shifted_possibly_mirrored_copy_and_reproducible() -> Result<()> {
        let s = set(8);
        let norm = Normalisation {
            mean: vec![0.0; 3],
            std: vec![1.0 / 255.0; 3],
        };
        let idx: Vec<usize> = (0..8).collect();
        let a = make_batch(&s, &idx, &norm, Some((3, 1, 2)), &Device::Cpu)?.x;
        let b = make_batch(&s, &idx, &norm, Some((3, 1, 2)), &Device::Cpu)?.x;
        assert_eq!(
            a.flatten_all()?.to_vec1::<f32>()?,
            b.flatten_all()?.to_vec1::<f32>()?
        );
        // With unit scaling every value is either a source pixel value or the zero padding.
        let a = a.flatten_all()?.to_vec1::<f32>()?;
        for (k, v) in a.iter().enumerate() {
            let img = s.image(k / 48);
            assert!(
                *v == 0.0 || img.contains(&(*v as u8)),
                "value {v} not from image"
            );
        }
        Ok(())
    }

    #[test]
    fn a_shard_is_the_matching_slice_of_the_augmented_batch() -> Result<()> {
        let s = set(8);
        let norm = Normalisation {
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        };
        let idx: Vec<usize> = (0..8).rev().collect();
        let full = make_batch(&s, &idx, &norm, Some((5, 0, 3)), &Device::Cpu)?;
        let shard = make_shard(&s, &idx, 4..8, &norm, Some((5, 0, 3)), &Device::Cpu)?;
        assert_eq!(shard.labels, full.labels[4..]);
        assert_eq!(
            shard.x.flatten_all()?.to_vec1::<f32>()?,
            full.x.narrow(0, 4, 4)?.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }
}
