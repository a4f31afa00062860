//! Data sets: obtaining them offline (`skfac data`), reading them, and batching.

pub mod cifar10;
pub mod digest;
pub mod fashion_mnist;
pub mod loader;
pub mod validation;

use std::path::{Path, PathBuf};

pub use loader::{Batch, BatchPlan, Normalisation};

/// An image classification data set held in memory as bytes, images in HWC order.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub classes: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_size(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.images[i * s..(i + 1) * s]
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// The first `n` images (all of them if `n` is larger).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.images.truncate(n * self.image_size());
        self.labels.truncate(n);
    }
}

/// Train and test splits of one data set.
#[derive(Clone, Debug)]
pub struct Splits {
    pub name: &'static str,
    pub train: ImageSet,
    pub test: ImageSet,
    pub norm: Normalisation,
    /// Whether training uses random crops and flips (natural images, not Fashion-MNIST).
    pub augment: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{what} not found in {dir}: run `{fix}` to obtain it")]
    Missing {
        what: &'static str,
        dir: PathBuf,
        fix: String,
    },
    #[error("{file} is corrupt ({why}): delete it and run `{fix}` again")]
    Corrupt {
        file: PathBuf,
        why: String,
        fix: String,
    },
    #[error("{0}")]
    Obtain(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The data sets `skfac train --dataset` accepts.
pub const DATASET_NAMES: [&str; 2] = ["cifar10", "fashion-mnist"];

/// Obtains the named data set into `dir` unless it is there and verified already.
pub fn obtain(name: &str, dir: &Path) -> Result<Obtained, DataError> {
    match name {
        "cifar10" => cifar10::obtain(dir, None),
        "fashion-mnist" => fashion_mnist::obtain(dir, None),
        other => Err(DataError::Obtain(format!(
            "unknown data set `{other}`; valid choices: {}",
            DATASET_NAMES.join(", ")
        ))),
    }
}

/// Loads the named data set from `dir` (as written by `skfac data NAME --dir DIR`).
pub fn load(name: &str, dir: &Path) -> Result<Splits, DataError> {
    match name {
        "cifar10" => cifar10::load(dir),
        "fashion-mnist" => fashion_mnist::load(dir),
        other => Err(DataError::Obtain(format!(
            "unknown data set `{other}`; valid choices: {}",
            DATASET_NAMES.join(", ")
        ))),
    }
}

/// What `skfac data` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Obtained {
    /// The folder already held the verified files; nothing was done.
    AlreadyPresent(PathBuf),
    Written(PathBuf),
}

/// Writes `files` into `out` (each atomically) with a `SHA256SUMS` listing of them.
pub(crate) fn install(out: &Path, files: &[(&str, &[u8])]) -> Result<(), DataError> {
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    for (name, bytes) in files {
        write_atomic(&out.join(name), bytes)?;
    }
    write_atomic(
        &out.join("SHA256SUMS"),
        digest::sha256_listing(files).as_bytes(),
    )
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that an interrupted
/// write never leaves a truncated file under the final name. The temporary file is this
/// process's own: two sweeps obtaining the same data at once each rename a whole file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| DataError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}
