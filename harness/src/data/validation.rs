//! The validation split: training images held out for choosing settings, never trained on,
//! so that test accuracy stays what time-to-target is measured on.
//!
//! The split is fixed by the data set alone (not the seed): each class gives its last images in
//! the file's order, as evenly as the count allows, so every run of every optimizer and seed
//! holds out the same images and compares on them.

use super::{ImageSet, Splits};

/// Why `n` images cannot be held out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("validation {n}: leaves fewer than one training image of the {total}; choose fewer")]
    TooMany { n: usize, total: usize },
    #[error(
        "validation {n}: class {class} has {has} training images, fewer than its share of {share} plus one to train on; choose fewer"
    )]
    ClassTooSmall {
        n: usize,
        class: usize,
        has: usize,
        share: usize,
    },
}

impl ImageSet {
    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(indices.len() * self.image_size());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        ImageSet {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            height: self.height,
            width: self.width,
            channels: self.channels,
            classes: self.classes,
        }
    }
}

/// How many of `n` held-out images each of `classes` classes gives: ⌊n / classes⌋, one more
/// for the first `n mod classes`.
pub fn shares(n: usize, classes: usize) -> Vec<usize> {
    (0..classes)
        .map(|c| n / classes + usize::from(c < n % classes))
        .collect()
}

/// The indices of `set` held out for validation, ascending: each class's last images, by
/// [`shares`].
pub fn held_out(set: &ImageSet, n: usize) -> Result<Vec<usize>, ValidationError> {
    let total = set.len();
    if n >= total {
        return Err(ValidationError::TooMany { n, total });
    }
    let mut left = shares(n, set.classes);
    let counts = set.class_counts();
    for (class, (&has, &share)) in counts.iter().zip(&left).enumerate() {
        if share > 0 && has <= share {
            return Err(ValidationError::ClassTooSmall {
                n,
                class,
                has,
                share,
            });
        }
    }
    let mut held: Vec<usize> = (0..total)
        .rev()
        .filter(|&i| {
            let c = set.labels[i] as usize;
            let take = left[c] > 0;
            left[c] -= usize::from(take);
            take
        })
        .collect();
    held.reverse();
    Ok(held)
}

impl Splits {
    /// These splits with `n` training images held out ([`held_out`]), and those images.
    pub fn hold_out(&self, n: usize) -> Result<(Splits, ImageSet), ValidationError> {
        let held = held_out(&self.train, n)?;
        let mut is_held = vec![false; self.train.len()];
        for &i in &held {
            is_held[i] = true;
        }
        let keep: Vec<usize> = (0..self.train.len()).filter(|&i| !is_held[i]).collect();
        let splits = Splits {
            train: self.train.select(&keep),
            ..self.clone()
        };
        Ok((splits, self.train.select(&held)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Normalisation;

    /// `n` one-pixel images whose value is their index (mod 256) and whose labels follow
    /// `label(i)`.
    fn set(n: usize, classes: usize, label: impl Fn(usize) -> usize) -> ImageSet {
        ImageSet {
            images: (0..n).map(|i| (i % 256) as u8).collect(),
            labels: (0..n).map(|i| label(i) as u8).collect(),
            height: 1,
            width: 1,
            channels: 1,
            classes,
        }
    }

    fn splits(train: ImageSet) -> Splits {
        Splits {
            name: "synthetic",
            test: train.clone(),
            train,
            norm: Normalisation {
                mean: vec![0.0],
                std: vec![1.0],
            },
            augment: false,
        }
    }

    #[test]
    fn each_class_gives_its_last_images_as_evenly_as_the_count_allows() {
        // Labels in an irregular order: i·7 mod 3, so each class's images are spread out.
        let s = set(30, 3, |i| (i * 7) % 3);
        let held = held_out(&s, 7).unwrap();
        // Classes 0, 1, 2 give 3, 2, 2: the last ones of each in the file.
        let by_class =
            |c: usize| -> Vec<usize> { (0..30).filter(|&i| (i * 7) % 3 == c).collect::<Vec<_>>() };
        let mut want: Vec<usize> = [(0, 3), (1, 2), (2, 2)]
            .iter()
            .flat_map(|&(c, k)| {
                let all = by_class(c);
                all[all.len() - k..].to_vec()
            })
            .collect();
        want.sort();
        assert_eq!(held, want);
        assert_eq!(shares(7, 3), vec![3, 2, 2]);
    }

    #[test]
    fn the_two_parts_partition_the_training_set_and_keep_its_order() {
        let data = splits(set(50, 5, |i| (i / 3) % 5));
        let (rest, validation) = data.hold_out(10).unwrap();
        assert_eq!((rest.train.len(), validation.len()), (40, 10));
        assert_eq!(validation.class_counts(), vec![2; 5]);
        // Each image's value is its index: together the parts are every index once, each
        // part ascending.
        let mut all: Vec<u8> = rest.train.images.clone();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(validation.images.windows(2).all(|w| w[0] < w[1]));
        all.extend(&validation.images);
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<u8>>());
        // Labels travel with their images.
        for part in [&rest.train, &validation] {
            for (v, l) in part.images.iter().zip(&part.labels) {
                assert_eq!(*l as usize, (*v as usize / 3) % 5);
            }
        }
        // The test split is untouched.
        assert_eq!(rest.test.images, data.test.images);
    }

    #[test]
    fn the_split_depends_on_the_data_alone() {
        let data = splits(set(40, 4, |i| i % 4));
        assert_eq!(
            data.hold_out(8).unwrap().1.images,
            data.hold_out(8).unwrap().1.images
        );
    }

    #[test]
    fn a_split_that_leaves_a_class_or_the_set_empty_is_refused() {
        let s = set(12, 3, |i| usize::from(i >= 2) + usize::from(i >= 7));
        // Class 0 has two images: a share of two would leave none to train on.
        assert_eq!(
            held_out(&s, 6),
            Err(ValidationError::ClassTooSmall {
                n: 6,
                class: 0,
                has: 2,
                share: 2
            })
        );
        assert!(held_out(&s, 3).is_ok());
        assert_eq!(
            held_out(&s, 12),
            Err(ValidationError::TooMany { n: 12, total: 12 })
        );
    }
}
